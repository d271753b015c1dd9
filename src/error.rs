//! Errors, as precise types: every failure a caller can act on has its own variant.

use std::path::PathBuf;

/// Everything that can go wrong in mnema.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration key has a bad value; checked before anything is opened.
    #[error("invalid config `{key}`: {reason}")]
    Config { key: String, reason: String },

    /// The data dir belongs to another node. Nothing was changed.
    #[error(
        "data dir {dir} belongs to node `{recorded}`, not `{configured}`: a data dir opens only under the node name it was created with: start it as `{recorded}`, or give `{configured}` a data dir of its own"
    )]
    NodeNameMismatch { dir: PathBuf, recorded: String, configured: String },

    /// The data dir was written by a format this build cannot read.
    #[error("data dir {dir} has format version {found}; this build reads version {supported}")]
    FormatVersion { dir: PathBuf, found: u32, supported: u32 },

    /// This core's stored state is damaged or went back (`file` names what): it refuses to
    /// start rather than take part in Raft as a member that forgot its vote or its log.
    /// Nothing was changed; `mnema data rebuild` sets it aside and the node rejoins as a
    /// new member.
    #[error(
        "damaged state in {file}: {reason}. This core will not start on it; run `mnema data rebuild --config <its config>` to set it aside and rejoin the cluster as a new member (README: Rebuild a core)"
    )]
    DamagedState { file: PathBuf, reason: String },

    /// The data dir's IDENTITY records another cluster than the one this core's Raft
    /// membership answers as: it would be refused by every member as foreign. Nothing was
    /// changed.
    #[error(
        "{file} records cluster {ours}, but the members {members} of this core's membership answer as cluster {theirs}: restore this node's own IDENTITY, or give it an empty data dir and run `mnema data rebuild --config <its config>`"
    )]
    ForeignIdentity { file: PathBuf, ours: String, theirs: String, members: String },

    /// Bytes from disk or the network did not decode.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },

    /// An export file is not one this build can import; nothing was written.
    #[error("bad export file at line {line}, column {column}: {reason}")]
    BadExport { line: usize, column: usize, reason: String },

    #[error("storage: {0}")]
    Storage(String),

    #[error("io on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A transaction names a table this node does not know.
    #[error("unknown table `{0}`")]
    UnknownTable(String),

    /// A transaction is malformed (e.g. `delete_object` on a set, a local table in a replicated txn).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    /// A topic name or filter breaks MQTT's rules; nothing was stored.
    #[error("invalid topic `{topic}`: {reason}")]
    InvalidTopic { topic: String, reason: String },

    /// A record breaks its table's rule ([`ValueRule`](crate::engine::ValueRule)); nothing
    /// of its transaction was stored.
    #[error("invalid value for `{table}` key {key}: {reason}")]
    InvalidValue { table: String, key: String, reason: String },

    /// A transaction's condition (`require_*`) did not hold; nothing was applied.
    #[error("conflict: {0}")]
    Conflict(String),

    /// No leader is known right now (election in progress, or cut off from the majority).
    #[error("no leader available: {0}")]
    NoLeader(String),

    /// The operation is refused by the cluster for a stated reason.
    #[error("refused: {0}")]
    Refused(String),

    /// A peer refused our cookie, or we refused a peer's.
    #[error("cookie mismatch with {peer}: the nodes were started with different `node.cookie` values")]
    CookieMismatch { peer: String },

    /// A peer could not be reached at all (connection refused, no route, a test
    /// partition): the call was certainly not sent, so it may be sent again.
    #[error("could not reach {peer} (nothing was sent): {reason}")]
    Unreachable { peer: String, reason: String },

    /// A peer answered with a transport error, or a call to it failed after it was sent.
    #[error("rpc to {peer}: {reason}")]
    Rpc { peer: String, reason: String },

    #[error("raft: {0}")]
    Raft(String),

    /// A write was sent `attempts` times and no answer said whether it was applied (the
    /// leader failed mid-call each time). It was applied at most once: retries carry the
    /// same request id.
    #[error("write outcome unknown after {attempts} attempts (applied at most once): {last}")]
    WriteOutcomeUnknown { attempts: u32, last: String },

    /// The write was committed at `index` (it is durable on a majority and will be applied
    /// everywhere) but this node had not applied it after `ms` ms, so it cannot return the
    /// outcome yet. Not a failure of the write: read with `wait_applied(index)` to see it.
    #[error("committed at index {index}, but not yet applied on this node after {ms} ms")]
    NotYetApplied { index: u64, ms: u64 },

    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: String, ms: u64 },

    /// This core's Raft stopped by itself after a storage failure (a full disk, an I/O
    /// error); the process must be restarted once the cause is fixed (see `Node::failed`).
    #[error(
        "this node's Raft stopped after a storage failure ({reason}); restart the node once the cause (e.g. a full disk) is fixed"
    )]
    NodeFailed { reason: String },

    /// The node is shutting down or has stopped.
    #[error("node is shut down")]
    Shutdown,
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt { what, reason: reason.to_string() }
    }

    pub fn config(key: &str, reason: impl std::fmt::Display) -> Self {
        Error::Config { key: key.to_string(), reason: reason.to_string() }
    }

    /// A record of `table` under `key` that its rule refuses (the key shown as text,
    /// cut at 100 characters).
    pub fn invalid_value(table: &str, key: &[u8], reason: impl std::fmt::Display) -> Self {
        let shown: String = String::from_utf8_lossy(key).chars().take(100).collect();
        Error::InvalidValue { table: table.to_string(), key: format!("{shown:?}"), reason: reason.to_string() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A copy for each of many callers that share one failure (a failed batch).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::NoLeader(s) => Error::NoLeader(s.clone()),
            Error::Refused(s) => Error::Refused(s.clone()),
            Error::InvalidTxn(s) => Error::InvalidTxn(s.clone()),
            Error::UnknownTable(s) => Error::UnknownTable(s.clone()),
            Error::CookieMismatch { peer } => Error::CookieMismatch { peer: peer.clone() },
            Error::Rpc { peer, reason } => Error::Rpc { peer: peer.clone(), reason: reason.clone() },
            Error::Unreachable { peer, reason } => Error::Unreachable { peer: peer.clone(), reason: reason.clone() },
            Error::Timeout { what, ms } => Error::Timeout { what: what.clone(), ms: *ms },
            Error::Shutdown => Error::Shutdown,
            Error::Conflict(s) => Error::Conflict(s.clone()),
            Error::InvalidValue { table, key, reason } => {
                Error::InvalidValue { table: table.clone(), key: key.clone(), reason: reason.clone() }
            }
            Error::InvalidTopic { topic, reason } => {
                Error::InvalidTopic { topic: topic.clone(), reason: reason.clone() }
            }
            Error::WriteOutcomeUnknown { attempts, last } => {
                Error::WriteOutcomeUnknown { attempts: *attempts, last: last.clone() }
            }
            Error::NotYetApplied { index, ms } => Error::NotYetApplied { index: *index, ms: *ms },
            other => Error::Raft(other.to_string()),
        }
    }
}

/// A write's failure as it crosses the network (the `Transact` reply), keeping the
/// variants a caller branches on; anything else travels as its message.
#[cfg(feature = "server")]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum WireError {
    InvalidValue { table: String, key: String, reason: String },
    InvalidTopic { topic: String, reason: String },
    InvalidTxn(String),
    UnknownTable(String),
    Conflict(String),
    NoLeader(String),
    Timeout { what: String, ms: u64 },
    NotYetApplied { index: u64, ms: u64 },
    WriteOutcomeUnknown { attempts: u32, last: String },
    Unreachable { peer: String, reason: String },
    Shutdown,
    Refused(String),
    Other(String),
}

#[cfg(feature = "server")]
impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidValue { table, key, reason } => WireError::InvalidValue { table, key, reason },
            Error::InvalidTopic { topic, reason } => WireError::InvalidTopic { topic, reason },
            Error::InvalidTxn(m) => WireError::InvalidTxn(m),
            Error::UnknownTable(t) => WireError::UnknownTable(t),
            Error::Conflict(m) => WireError::Conflict(m),
            Error::NoLeader(m) => WireError::NoLeader(m),
            Error::Timeout { what, ms } => WireError::Timeout { what, ms },
            Error::NotYetApplied { index, ms } => WireError::NotYetApplied { index, ms },
            Error::WriteOutcomeUnknown { attempts, last } => WireError::WriteOutcomeUnknown { attempts, last },
            Error::Unreachable { peer, reason } => WireError::Unreachable { peer, reason },
            Error::Shutdown => WireError::Shutdown,
            Error::Refused(m) => WireError::Refused(m),
            other => WireError::Other(other.to_string()),
        }
    }
}

#[cfg(feature = "server")]
impl WireError {
    /// The error a caller on the other side sees; `peer` names the node that answered.
    pub(crate) fn into_error(self, peer: &str) -> Error {
        match self {
            WireError::InvalidValue { table, key, reason } => Error::InvalidValue { table, key, reason },
            WireError::InvalidTopic { topic, reason } => Error::InvalidTopic { topic, reason },
            WireError::InvalidTxn(m) => Error::InvalidTxn(m),
            WireError::UnknownTable(t) => Error::UnknownTable(t),
            WireError::Conflict(m) => Error::Conflict(m),
            WireError::NoLeader(m) => Error::NoLeader(m),
            WireError::Timeout { what, ms } => Error::Timeout { what, ms },
            WireError::NotYetApplied { index, ms } => Error::NotYetApplied { index, ms },
            WireError::WriteOutcomeUnknown { attempts, last } => Error::WriteOutcomeUnknown { attempts, last },
            WireError::Unreachable { peer, reason } => Error::Unreachable { peer, reason },
            WireError::Shutdown => Error::Refused(format!("{peer} is shutting down")),
            WireError::Refused(m) => Error::Refused(m),
            WireError::Other(m) => Error::Rpc { peer: peer.to_string(), reason: m },
        }
    }
}
