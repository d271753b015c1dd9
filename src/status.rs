//! What a node reports about itself: typed values a caller can branch on (no strings to
//! compare). Pure data: the runtime fills them in, gRPC carries them, `mnema ctl` prints them.

pub use crate::config::Role;
use serde::{Deserialize, Serialize};

/// A replicant's state, as Mria names them (plus `connecting`, between cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicantState {
    /// Looking for a core to stream from.
    Connecting,
    /// Receiving a snapshot.
    Bootstrap,
    /// Applying the entries the core had already applied when the stream began.
    LocalReplay,
    /// Caught up; applying entries as the core applies them.
    Normal,
}

impl ReplicantState {
    /// Every state, in the order a replicant passes through them.
    pub const ALL: [ReplicantState; 4] =
        [ReplicantState::Connecting, ReplicantState::Bootstrap, ReplicantState::LocalReplay, ReplicantState::Normal];

    /// The state as `mnema ctl status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicantState::Connecting => "connecting",
            ReplicantState::Bootstrap => "bootstrap",
            ReplicantState::LocalReplay => "local_replay",
            ReplicantState::Normal => "normal",
        }
    }
}

/// A core's part in Raft, as openraft reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaftRole {
    /// Leads the cluster: the only node that appends to the log.
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigns to become leader.
    Candidate,
    /// A member without a vote (being added, or rejoining after a rebuild).
    Learner,
    /// Raft is not running (the node is stopping, or stopped after a storage failure).
    Shutdown,
}

impl RaftRole {
    /// The role as `mnema ctl status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "Leader",
            RaftRole::Follower => "Follower",
            RaftRole::Candidate => "Candidate",
            RaftRole::Learner => "Learner",
            RaftRole::Shutdown => "Shutdown",
        }
    }
}

/// One node's view of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `name@host`.
    pub name: String,
    /// The node id (derived from the name).
    pub node_id: u64,
    /// Core or replicant.
    pub role: Role,
    /// A core's Raft role; `None` on a replicant.
    pub raft_role: Option<RaftRole>,
    /// The last log index applied here.
    pub applied_index: u64,
    /// A core's current term (0 on a replicant).
    pub term: u64,
    /// The leader this node knows.
    pub leader: Option<String>,
    /// The address other nodes reach it at.
    pub addr: String,
    /// The cluster it belongs to.
    pub cluster_id: String,
    /// A replicant's link to the cores.
    pub replicant: Option<ReplicantStatus>,
    /// On a core: the replicants streaming from it.
    pub subscribers: Vec<Subscriber>,
    /// The commit index as this node knows it.
    pub committed: u64,
    /// Writes sent again after an unknown outcome since start.
    pub write_retries: u64,
    /// While forming a cluster from `dns`/`k8s` discovery: the node list it proposes.
    pub forming_with: Vec<String>,
    /// The replicated tables it declared and the code it registered (empty: it did not say).
    pub(crate) schema: crate::engine::declaration::SchemaInfo,
    /// The protocol version it announces (0: a build from before versions were announced).
    pub protocol: u32,
}

/// A replicant's link to the cores.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicantStatus {
    /// Where its stream is.
    pub state: ReplicantState,
    /// The core it streams from.
    pub upstream: Option<String>,
    /// Commit index it knows minus what it applied.
    pub lag_entries: u64,
    /// How long the oldest known-committed, unapplied entry has waited.
    pub lag_ms: u64,
    /// Snapshots received since start.
    pub bootstraps: u64,
    /// Streams resumed from an index without a snapshot.
    pub resumes: u64,
    /// Recent states, oldest first: `bootstrap@mnema1`.
    pub transitions: Vec<String>,
    /// Why the last stream failed, or a core was passed over, since it was last normal.
    pub last_error: Option<crate::Error>,
    /// The shards it holds (`replicant.shards`, or every shard of the catalog), each with
    /// its tables and records. One stream carries every shard it follows, so they share
    /// the lag above.
    pub shards: Vec<ShardStatus>,
}

/// One shard as a replicant holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStatus {
    /// The shard.
    pub shard: u16,
    /// Its tables, by name.
    pub tables: Vec<String>,
    /// Their records held.
    pub records: u64,
    /// Commit index known minus applied: the stream's lag.
    pub lag_entries: u64,
}

/// A table of a node, as [`Node::tables`](crate::Node::tables) lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Its declaration (a local table's too).
    pub declaration: crate::engine::declaration::Declaration,
    /// Replicated through the log, or local to the node.
    pub scope: crate::engine::Scope,
    /// Its records, where the node holds them in memory (`None`: read from disc, or not
    /// held: a replicant's shard it does not follow).
    pub records: Option<u64>,
}

/// A replicant streaming from a core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// The replicant's name.
    pub name: String,
    /// The address it gave.
    pub addr: String,
    /// The protocol version it announced when it subscribed.
    pub protocol: u32,
}

/// One node of the cluster, as the node asked sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStatus {
    /// `name@host`.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Core or replicant.
    pub role: Role,
    /// Whether it votes (a core that is a voter, not a learner).
    pub voter: bool,
    /// Whether it answered.
    pub running: bool,
    /// What it answered.
    pub status: Option<NodeStatus>,
    /// Why it is counted as stopped.
    pub error: Option<String>,
}

/// The cluster as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// `cluster.name`.
    pub cluster: String,
    /// The leader, if one is known.
    pub leader: Option<String>,
    /// Every member and replicant it knows of.
    pub members: Vec<MemberStatus>,
    /// The cluster id.
    pub cluster_id: String,
}
