//! Errors, as precise types: every failure a caller can act on has its own variant.

use std::path::PathBuf;

/// Everything that can go wrong in mnema.
///
/// Each variant is a case a caller can branch on; none is matched by its message. An error
/// crosses the network whole (a forwarded write, a remote `Client` call
/// and a local call see the same variant), so `Error` is `Clone` and serialisable. New
/// variants may come: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key has a bad value; checked before anything is opened.
    #[error("invalid config `{key}`: {reason}")]
    Config {
        /// The key (a config key, or a record key shown as text).
        key: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// The data dir belongs to another node. Nothing was changed.
    #[error(
        "data dir {dir} belongs to node `{recorded}`, not `{configured}`: a data dir opens only under the node name it was created with: start it as `{recorded}`, or give `{configured}` a data dir of its own"
    )]
    NodeNameMismatch {
        /// The data dir.
        dir: PathBuf,
        /// The node name the data dir records.
        recorded: String,
        /// The node name configured.
        configured: String,
    },

    /// The data dir was written by a format this build cannot read.
    #[error("data dir {dir} has format version {found}; this build reads version {supported}")]
    FormatVersion {
        /// The data dir.
        dir: PathBuf,
        /// The format version found.
        found: u32,
        /// The format version this build reads.
        supported: u32,
    },

    /// This core's stored state is damaged or went back (`file` names what): it refuses to
    /// start rather than take part in Raft as a member that forgot its vote or its log.
    /// Nothing was changed; `mnema data rebuild` sets it aside and the node rejoins as a
    /// new member.
    #[error(
        "damaged state in {file}: {reason}. This core will not start on it; run `mnema data rebuild --config <its config>` to set it aside and rejoin the cluster as a new member (README: Rebuild a core)"
    )]
    DamagedState {
        /// The file or directory concerned.
        file: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },

    /// The data dir's IDENTITY records another cluster than the one this core's Raft
    /// membership answers as: it would be refused by every member as foreign. Nothing was
    /// changed.
    #[error(
        "{file} records cluster {ours}, but the members {members} of this core's membership answer as cluster {theirs}: restore this node's own IDENTITY, or give it an empty data dir and run `mnema data rebuild --config <its config>`"
    )]
    ForeignIdentity {
        /// The file or directory concerned.
        file: PathBuf,
        /// This side's cluster id.
        ours: String,
        /// The other side's cluster id.
        theirs: String,
        /// The members that answered.
        members: String,
    },

    /// Bytes from disk or the network did not decode.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: std::borrow::Cow<'static, str>,
        /// What is wrong, in words.
        reason: String,
    },

    /// An export file is not one this build can import; nothing was written.
    #[error("bad export file at line {line}, column {column}: {reason}")]
    BadExport {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong, in words.
        reason: String,
    },

    /// RocksDB failed (an I/O error, a full disk).
    #[error("storage: {0}")]
    Storage(String),

    /// A file or directory could not be read or written.
    #[error("io on {path}: {reason}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },

    /// A transaction names a table this node does not know.
    #[error("unknown table `{0}`")]
    UnknownTable(String),

    /// A transaction is malformed (e.g. `delete_object` on a set, a local table in a replicated txn).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    /// A topic name or filter breaks MQTT's rules; nothing was stored.
    #[error("invalid topic `{topic}`: {reason}")]
    InvalidTopic {
        /// The topic name or filter.
        topic: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// A record breaks its table's rule ([`ValueRule`](crate::engine::ValueRule)); nothing
    /// of its transaction was stored.
    #[error("invalid value for `{table}` key {key}: {reason}")]
    InvalidValue {
        /// The table concerned.
        table: String,
        /// The key (a config key, or a record key shown as text).
        key: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// A transaction's condition (`require_*`) did not hold; nothing was applied.
    #[error("conflict: {0}")]
    Conflict(String),

    /// No leader is known right now (election in progress, or cut off from the majority).
    #[error("no leader available: {0}")]
    NoLeader(String),

    /// `node` is not the leader, for a call only the leader answers (a read index, a
    /// membership change); `leader` is the one it knows, if any. Nothing was done.
    #[error("{node} is not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// The node that answered.
        node: String,
        /// The leader it knows, if any.
        leader: Option<String>,
    },

    /// `node` is a replicant, and `action` needs a core. Nothing was done.
    #[error("{node} is a replicant: {action} needs a core")]
    IsReplicant {
        /// The node that answered.
        node: String,
        /// What was asked of it.
        action: String,
    },

    /// Log entries from `from` on are no longer retained on this core (compacted into a
    /// snapshot): a replicant resuming there must bootstrap again.
    #[error("log entries from {from} on are no longer retained on this core; bootstrap again")]
    NotRetained {
        /// The first index not held.
        from: u64,
    },

    /// A peer belongs to another cluster than this node (`ours`), or this node left its
    /// cluster. Nothing was done.
    #[error("{peer} belongs to another cluster than {ours}: {reason}")]
    ForeignCluster {
        /// The node called (or calling).
        peer: String,
        /// This side's cluster id.
        ours: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// Removing `name` would leave fewer running voters than a majority; nothing was done
    /// (`force` removes it anyway).
    #[error(
        "removing `{name}` leaves {up} of {remaining} voters running, below a majority of {majority}; use --force to remove it anyway"
    )]
    MajorityAtRisk {
        /// The member concerned.
        name: String,
        /// Voters running, the removed one left out.
        up: usize,
        /// Voters left after the removal.
        remaining: usize,
        /// A majority of the voters left.
        majority: usize,
    },

    /// `name` is not a member of this cluster (`reason` says what it is instead).
    #[error("`{name}` is not a member of this cluster ({reason})")]
    NotAMember {
        /// The member concerned.
        name: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// A record asked for by key does not exist.
    #[error("no record {key} in `{table}`")]
    NotFound {
        /// The table concerned.
        table: String,
        /// The key (a config key, or a record key shown as text).
        key: String,
    },

    /// The operation is refused for a stated reason no other variant covers (a node
    /// joining itself, a backup into a non-empty directory, …).
    #[error("refused: {0}")]
    Refused(String),

    /// A peer refused our cookie, or we refused a peer's.
    #[error("cookie mismatch with {peer}: the nodes were started with different `node.cookie` values")]
    CookieMismatch {
        /// The node called (or calling).
        peer: String,
    },

    /// A call to `peer` failed in transport; `kind` says whether it can have been received.
    #[error("{kind} {peer}: {reason}")]
    Transport {
        /// The node called (or calling).
        peer: String,
        /// Whether the call can have been received.
        kind: TransportKind,
        /// What is wrong, in words.
        reason: String,
    },

    /// A discovery source (`dns`, `etcd`, the Kubernetes API) failed or answered something
    /// unusable.
    #[error("discovery through {source_name}: {reason}")]
    Discovery {
        /// The source (`dns`, `etcd`, `kubernetes apiserver`).
        source_name: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// Raft refused or failed an operation for a reason no other variant covers.
    #[error("raft: {0}")]
    Raft(String),

    /// A write was sent `attempts` times and no answer said whether it was applied (the
    /// leader failed mid-call each time). It was applied at most once: retries carry the
    /// same request id.
    #[error("write outcome unknown after {attempts} attempts (applied at most once): {last}")]
    WriteOutcomeUnknown {
        /// How many times it was sent.
        attempts: u32,
        /// The last failure.
        last: String,
    },

    /// The write was committed at `index` (it is durable on a majority and will be applied
    /// everywhere) but this node had not applied it after `ms` ms, so it cannot return the
    /// outcome yet. Not a failure of the write: read with `wait_applied(index)` to see it.
    #[error("committed at index {index}, but not yet applied on this node after {ms} ms")]
    NotYetApplied {
        /// The log index the write was committed at.
        index: u64,
        /// The time waited, in milliseconds.
        ms: u64,
    },

    #[error("timed out after {ms} ms waiting for {what}")]
    /// A wait ran out of time.
    Timeout {
        /// What was being read or waited for.
        what: String,
        /// The time waited, in milliseconds.
        ms: u64,
    },

    /// This core's Raft stopped by itself after a storage failure (a full disk, an I/O
    /// error); the process must be restarted once the cause is fixed (see `Node::failed`).
    #[error(
        "this node's Raft stopped after a storage failure ({reason}); restart the node once the cause (e.g. a full disk) is fixed"
    )]
    NodeFailed {
        /// What is wrong, in words.
        reason: String,
    },

    /// The node is shutting down or has stopped.
    #[error("node is shut down")]
    Shutdown,

    /// Nodes declare different replicated tables: `table` is the first that differs
    /// (missing on one side, or declared differently). Nothing was done.
    #[error("{peer} declares the replicated tables differently from this node, first at `{table}`: {reason}")]
    SchemaMismatch {
        /// The node called (or calling).
        peer: String,
        /// The table concerned.
        table: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// A transaction says it belongs to shard `claimed`, but its tables are in `shard`
    /// (`table` is the first op's): a transaction's shard comes from its tables, never from
    /// the caller, so it is refused before it is proposed and, identically on every node,
    /// when it is applied. Nothing was applied.
    #[error("transaction claims shard {claimed}, but table `{table}` is in shard {shard}")]
    ShardMismatch {
        /// The table concerned.
        table: String,
        /// The shard the table is in.
        shard: u16,
        /// The shard the transaction claimed.
        claimed: u16,
    },

    /// A read names an index its table does not have. Nothing was read.
    #[error("table `{table}` has no index `{index}`")]
    UnknownIndex {
        /// The table concerned.
        table: String,
        /// The index asked for.
        index: String,
    },

    /// A transaction's tables are in two shards (`first` in `first_shard`, `second` in
    /// `second_shard`): a replicant following one of them would apply half of it, so it is
    /// refused before it is proposed and rejected at apply. Nothing was applied.
    #[error("a transaction spans two shards: `{first}` is in shard {first_shard}, `{second}` in shard {second_shard}")]
    CrossShard {
        /// The first table of the transaction.
        first: String,
        /// Its shard.
        first_shard: u16,
        /// The first table in another shard.
        second: String,
        /// Its shard.
        second_shard: u16,
    },

    /// `node` is a replicant that does not follow `shard`, where `table` lives: it holds
    /// none of its records (`replicant.shards`). Read it on a core or a replicant that
    /// follows the shard; writes to it are forwarded as any.
    #[error("{node} does not follow shard {shard}, which holds `{table}` (replicant.shards)")]
    ShardNotFollowed {
        /// The node that answered.
        node: String,
        /// The table concerned.
        table: String,
        /// The shard it is in.
        shard: u16,
    },

    /// A table declaration names a record rule or index extractor (`kind`, `name`,
    /// `version`) that `node` has not registered: a node cannot apply what it has no code
    /// for, so the table is not created (or, for a table already in the log, the node
    /// refuses to start or to go on rather than apply it differently).
    #[error("{node} has no {kind} `{name}` version {version} registered; every node must run code that registers it")]
    Unregistered {
        /// The node concerned.
        node: String,
        /// A rule or an extractor.
        kind: CodeKind,
        /// The code's name.
        name: String,
        /// The version asked for.
        version: u32,
    },

    /// `peer` registers the rule or extractor `name` under another version than this node:
    /// the two builds would check or index records differently. Nothing was done.
    #[error("{peer} registers {kind} `{name}` as version {theirs}; this node as version {ours}")]
    CodeMismatch {
        /// The node called (or calling).
        peer: String,
        /// A rule or an extractor.
        kind: CodeKind,
        /// The code's name.
        name: String,
        /// This node's version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },

    /// A watch cannot go on from `from`: this node's change feed holds changes from
    /// `oldest` on only (the entries before were dropped from its ring, or a snapshot or a
    /// replicant's bootstrap replaced its state). Read a snapshot and watch again from
    /// after it (`snapshot_and_watch`).
    #[error(
        "changes from index {from} on are no longer held (the feed starts at {oldest}); read a snapshot and watch again"
    )]
    Compacted {
        /// The first index asked for.
        from: u64,
        /// The first index the feed holds.
        oldest: u64,
    },

    /// `table` is local to each node: `action` needs a replicated table. Nothing was done.
    #[error("table `{table}` is local to each node: {action} needs a replicated table")]
    LocalTable {
        /// The table concerned.
        table: String,
        /// What was asked of it.
        action: String,
    },

    /// Something this build relies on does not hold (a bug, not a property of the input):
    /// the operation stopped rather than go on from a wrong state.
    #[error("internal invariant broken: {0}")]
    Invariant(String),

    /// A value could not be encoded (for the log, the network or a file). Nothing was sent
    /// or written.
    #[error("encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: std::borrow::Cow<'static, str>,
        /// What went wrong, in words.
        reason: String,
    },

    /// A task the operation ran in the background ended without its result (it panicked
    /// or was cancelled).
    #[error("{task} task failed: {reason}")]
    TaskFailed {
        /// Which task.
        task: String,
        /// How it ended.
        reason: String,
    },

    /// A peer speaks a protocol version this build cannot talk to (more than one version
    /// away: see [`crate::protocol`]). Nothing of the call was read. Upgrade one version
    /// at a time.
    #[error(
        "{peer} speaks protocol version {theirs}, this node {ours}: nodes talk to peers one version older or newer only"
    )]
    VersionMismatch {
        /// The peer (empty where the refusing side does not know its name).
        peer: String,
        /// The version this node speaks.
        ours: u32,
        /// The version the peer announced.
        theirs: u32,
    },

    /// The transaction holds a kind of log entry some member cannot read yet: `node`
    /// announces protocol version `announces`, older than the `needs` that introduced
    /// `feature`. Nothing was written; it can be once every member runs (and announces) a
    /// newer version (a rolling upgrade completed: see [`crate::protocol`]).
    #[error("{feature} needs protocol version {needs} on every member, and {node} announces {announces}")]
    FeatureNotEnabled {
        /// The kind of entry.
        feature: String,
        /// The version that introduced it.
        needs: u32,
        /// The first member found that announces an older one.
        node: String,
        /// The version that member announces.
        announces: u32,
    },

    /// Bytes from disk or the network carry a format version this build has no decoder
    /// for (a newer build wrote them, or one too old to read any more): refused, never
    /// read as something else. Unlike [`Error::Corrupt`], the bytes may be intact.
    #[error("{what} in format version {found}: this build reads version {supported}")]
    UnknownFormat {
        /// What was being read.
        what: String,
        /// The version the bytes carry.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
}

/// What kind of named, versioned code a table declaration refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum CodeKind {
    /// A [`ValueRule`](crate::ValueRule).
    Rule,
    /// An index [`Extractor`](crate::Extractor).
    Extractor,
}

impl std::fmt::Display for CodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodeKind::Rule => "rule",
            CodeKind::Extractor => "extractor",
        })
    }
}

/// How a call to a peer failed in transport: the only thing a retry decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TransportKind {
    /// No connection could be made (refused, no route, a test partition): the call was
    /// certainly not sent, so it may be sent again.
    NotConnected,
    /// The call may have been sent, but no answer came (the connection broke).
    NoAnswer,
    /// The call may have been sent, and its deadline passed without an answer.
    TimedOut,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::NotConnected => "could not reach (nothing was sent)",
            TransportKind::NoAnswer => "no answer from",
            TransportKind::TimedOut => "timed out waiting for",
        })
    }
}

impl Error {
    /// Bytes about `what` did not decode.
    pub fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt { what: std::borrow::Cow::Borrowed(what), reason: reason.to_string() }
    }

    /// A bad value for the configuration key `key`.
    pub fn config(key: &str, reason: impl std::fmt::Display) -> Self {
        Error::Config { key: key.to_string(), reason: reason.to_string() }
    }

    /// A record of `table` under `key` that its rule refuses (the key shown as text,
    /// cut at 100 characters).
    pub fn invalid_value(table: &str, key: &[u8], reason: impl std::fmt::Display) -> Self {
        Error::InvalidValue { table: table.to_string(), key: shown_key(key), reason: reason.to_string() }
    }

    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), reason: source.to_string() }
    }

    /// [`Error::TaskFailed`] for `task`, ended by `e` (a join error).
    #[cfg(feature = "server")]
    pub(crate) fn task(task: &str, e: impl std::fmt::Display) -> Self {
        Error::TaskFailed { task: task.to_string(), reason: e.to_string() }
    }

    /// [`Error::IsReplicant`] for `node`, asked `action`.
    pub fn is_replicant(node: &str, action: &str) -> Self {
        Error::IsReplicant { node: node.to_string(), action: action.to_string() }
    }

    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn transport(peer: &str, kind: TransportKind, reason: impl std::fmt::Display) -> Self {
        Error::Transport { peer: peer.to_string(), kind, reason: reason.to_string() }
    }

    pub(crate) fn discovery(source: &str, reason: impl std::fmt::Display) -> Self {
        Error::Discovery { source_name: source.to_string(), reason: reason.to_string() }
    }

    /// Whether the call that failed so was certainly not received: it may be sent again
    /// without risk of applying twice.
    pub fn never_sent(&self) -> bool {
        matches!(self, Error::Transport { kind: TransportKind::NotConnected, .. })
    }
}

/// A key as an error shows it: text, cut at 100 characters.
pub(crate) fn shown_key(key: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(key).chars().take(100).collect();
    format!("{shown:?}")
}

/// `Result` with mnema's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
