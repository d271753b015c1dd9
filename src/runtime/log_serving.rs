//! The log server's handle on the node (`replication::log_server`): the only way the
//! core side of replication reaches the runtime. It serves what a replication stream
//! needs (the log and a consistent snapshot of the store, the indexes it follows, the log's
//! retention pins, the registry of replicants streaming from this core, the generation of
//! the Raft state it streams from) and nothing else: no write path, no membership change.
//! The composition (`node::server`) makes it; the feature never holds an `Arc<Runtime>`.

use super::Runtime;
use super::lifecycle::NodeTasks;
use super::subscribers::Registered;
use crate::engine::declaration::SchemaInfo;
use crate::error::Result;
use crate::name::NodeName;
use crate::storage::db::Db;
use crate::storage::log_store::Pin;
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

    /// Holds the log from `index` for a stream (released when the pin is dropped).
    pub(crate) fn pin_log(&self, index: u64) -> Result<Pin> {
        self.rt.pins.pin(index)
    }

    /// Holds the log from `from` if it is still retained, for a stream resuming at `applied`.
    pub(crate) fn pin_log_if_retained(&self, from: u64, applied: u64) -> Result<Option<Pin>> {
        self.rt.pins.pin_if_retained(&self.rt.db, from, applied)
    }

    /// Registers a replicant streaming from this core until the guard drops.
    pub(crate) fn register_subscriber(&self, s: crate::status::Subscriber) -> Registered<'_> {
        self.rt.subscribers.register(s)
    }

    /// Bumped each time this node's Raft state is wiped (join, leave): a stream served from
    /// an older generation ends.
    pub(crate) fn raft_generation(&self) -> u64 {
        self.rt.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The node's task tracking: spawn under it, learn when the node stops.
    pub(crate) fn tasks(&self) -> NodeTasks<'_> {
        self.rt.node_tasks()
    }
}
