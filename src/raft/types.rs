//! openraft's type configuration for mnema, and the aliases the rest of the crate uses.

use crate::engine::{Batch, BatchOutcome};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a Raft member knows about another: its name and RPC address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// mnema's Raft types: a log entry carries a [`Batch`] of transactions; snapshots are
    /// files streamed in chunks.
    pub TypeConfig:
        D = Batch,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type Membership = openraft::Membership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, NodeInfo>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeInfo>;

/// `membership` as the membership events compare it: `(name, voter)` of every node.
pub fn members_of(membership: &Membership) -> crate::engine::members::Members {
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    membership.nodes().map(|(id, n)| (n.name.clone(), voters.contains(id))).collect()
}
