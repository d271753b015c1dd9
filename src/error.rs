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
        "data dir {dir} belongs to node `{recorded}`, not `{configured}`: a data dir opens only under the node name it was created with (rename offline with `mnema ctl data rename` if intended)"
    )]
    NodeNameMismatch { dir: PathBuf, recorded: String, configured: String },

    /// The data dir was written by a format this build cannot read.
    #[error("data dir {dir} has format version {found}; this build reads version {supported}")]
    FormatVersion { dir: PathBuf, found: u32, supported: u32 },

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

    /// A peer could not be reached or answered with a transport error.
    #[error("rpc to {peer}: {reason}")]
    Rpc { peer: String, reason: String },

    #[error("raft: {0}")]
    Raft(String),

    /// A write was sent `attempts` times and no answer said whether it was applied (the
    /// leader failed mid-call each time). It was applied at most once: retries carry the
    /// same request id.
    #[error("write outcome unknown after {attempts} attempts (applied at most once): {last}")]
    WriteOutcomeUnknown { attempts: u32, last: String },

    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: String, ms: u64 },

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
            Error::Timeout { what, ms } => Error::Timeout { what: what.clone(), ms: *ms },
            Error::Shutdown => Error::Shutdown,
            Error::Conflict(s) => Error::Conflict(s.clone()),
            Error::InvalidTopic { topic, reason } => {
                Error::InvalidTopic { topic: topic.clone(), reason: reason.clone() }
            }
            Error::WriteOutcomeUnknown { attempts, last } => {
                Error::WriteOutcomeUnknown { attempts: *attempts, last: last.clone() }
            }
            other => Error::Raft(other.to_string()),
        }
    }
}
