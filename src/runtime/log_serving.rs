//! The log server's handle on the node (`replication::log_server`): the only way the
//! core side of replication reaches the runtime. It serves what a replication stream
//! needs (the log and a consistent snapshot of the store, the indexes it follows, the
//! membership feed its streams are told to, the Raft instance it streams from) and nothing
//! else: no write path, no membership change. What the feature keeps itself (the streams
//! and their retention pins) is in `replication::streams`.
//! The composition (`node::server`) makes it; the feature never holds an `Arc<Runtime>`.

use super::Runtime;
use super::lifecycle::NodeTasks;
use crate::engine::declaration::SchemaInfo;
use crate::error::Result;
use crate::name::NodeName;
use crate::storage::db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a core's log server may do with the node.
#[derive(Clone)]
pub(crate) struct LogServing {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for its log server.
    pub(crate) fn log_serving(self: &Arc<Self>) -> LogServing {
        LogServing { rt: self.clone() }
    }
}

impl LogServing {
    /// This node's name.
    pub(crate) fn name(&self) -> &NodeName {
        &self.rt.cfg.name
    }

    /// Whether this node is a core (only a core streams).
    pub(crate) fn is_core(&self) -> bool {
        !self.rt.is_replicant()
    }

    /// How long a stream may stay silent before it sends a heartbeat.
    pub(crate) fn heartbeat(&self) -> Duration {
        self.rt.cfg.heartbeat()
    }

    /// Whether this core has no Raft state of its own (no cluster's data to stream).
    pub(crate) fn refuses_votes(&self) -> bool {
        self.rt.refuses_votes()
    }

    /// Refuses a replicant whose tables differ from this core's, or that lacks the code
    /// of a table in the log.
    pub(crate) fn check_replicant(&self, replicant: &str, theirs: &SchemaInfo) -> Result<()> {
        self.rt.check_schema(replicant, theirs)?;
        self.rt.check_peer_has_code(replicant, theirs)
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.rt.applied_index()
    }

    pub(crate) fn committed_index(&self) -> u64 {
        self.rt.committed_index()
    }

    /// Follows this node's applied index.
    pub(crate) fn applied_watch(&self) -> watch::Receiver<u64> {
        self.rt.applied_watch()
    }

    /// The leader to tell replicants: none when this core is a leader cut off from its
    /// majority (its replicants move away).
    pub(crate) fn leader_to_tell(&self) -> Option<(String, String)> {
        self.rt.leader_unless_cut_off().map(|n| (n.name, n.addr))
    }

    /// The store: the log read back and consistent snapshots.
    pub(crate) fn db(&self) -> &Db {
        &self.rt.db
    }

    /// Where this node's membership events go (a replicant's stream coming and going).
    pub(crate) fn member_events(&self) -> Arc<crate::engine::members::MemberFeed> {
        self.rt.members.clone()
    }

    /// Which Raft instance this core runs: it changes when the core's Raft state is wiped
    /// (join, leave, rebuild), and a stream served from the old one ends.
    pub(crate) fn raft_instance(&self) -> u64 {
        self.rt.raft.instance()
    }

    /// The node's task tracking: spawn under it, learn when the node stops.
    pub(crate) fn tasks(&self) -> NodeTasks<'_> {
        self.rt.node_tasks()
    }
}
