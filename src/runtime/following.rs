//! A replicant's handle on the node (`replication::replicant`): the only way the
//! replicant side of replication reaches the runtime. It reads what following a core needs
//! (the config, the peers, the declared tables, the state as published) and hands what the
//! stream's applier produced to the runtime through one call (`hand_over`): the replicant
//! never writes the runtime's memory, feed, membership events or applied index itself, and
//! has no write path. The composition (`node`) makes
//! it; the feature never holds an `Arc<Runtime>`.

use super::Runtime;
use super::lifecycle::NodeTasks;
use super::link::Link;
use crate::config::Validated;
use crate::engine::NodeSchema;
use crate::engine::declaration::SchemaInfo;
use crate::engine::feed::Change;
use crate::engine::members::MemberEvent;
use crate::engine::memory::MemState;
use crate::error::Result;
use crate::rpc::client::Peers;
use std::sync::Arc;

/// The replicated tables at `state.applied`, as a replicant's applier made them, for
/// [`Following::hand_over`]: readers see them from then on, and the change feed tells of
/// `changes` (entries by index), or, after a bootstrap (`None`: a snapshot replaced the
/// state), starts again at the new index, since no change before it can be told.
pub(crate) struct Published {
    pub(crate) state: MemState,
    pub(crate) changes: Option<Vec<(u64, Vec<Change>)>>,
}

/// What a replicant's stream may do with the node.
#[derive(Clone)]
pub(crate) struct Following {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This replicant's handle for its stream, with its link to the cores (`None` on a core).
    pub(crate) fn following(self: &Arc<Self>) -> Option<(Following, Arc<Link>)> {
        let link = self.link.clone()?;
        Some((Following { rt: self.clone() }, link))
    }
}

impl Following {
    /// The node's validated configuration (immutable).
    pub(crate) fn config(&self) -> &Validated {
        &self.rt.cfg
    }

    /// Channels to the cores.
    pub(crate) fn peers(&self) -> &Peers {
        &self.rt.peers
    }

    /// The tables this node declared and the code it registered.
    pub(crate) fn schema(&self) -> &Arc<NodeSchema> {
        &self.rt.schema
    }

    /// The replicated state as published now.
    pub(crate) fn view(&self) -> Arc<MemState> {
        self.rt.mem.snapshot()
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.rt.applied_index()
    }

    /// Refuses core `core` when it declares other tables than this node, or its log names
    /// code this node does not have.
    pub(crate) fn check_can_follow(&self, core: &str, theirs: &SchemaInfo) -> Result<()> {
        self.rt.check_schema(core, theirs)?;
        self.rt.check_can_follow(theirs)
    }

    /// Records that this node now belongs to cluster `id`.
    pub(crate) fn adopt_cluster_id(&self, id: &str) -> Result<()> {
        self.rt.adopt_cluster_id(id)
    }

    /// Records the last bootstrap: how long it took and the records it carried.
    pub(crate) fn record_bootstrap(&self, seconds: f64, records: i64) {
        self.rt.instruments.bootstrap_seconds.set(seconds);
        self.rt.instruments.bootstrap_records.set(records);
    }

    /// Hands what one stream message produced to the node, in the order a reader relies
    /// on: the published state (`None`: the message changed no table) with what the change
    /// feed tells of it, then the membership events, then the applied index, announced
    /// last, so a caller woken by it sees the state and events before it.
    pub(crate) fn hand_over(&self, publish: Option<Published>, events: Vec<MemberEvent>) {
        let applied = publish.map(|p| {
            let applied = p.state.applied;
            self.rt.mem.publish(p.state);
            match p.changes {
                Some(entries) => self.rt.feed.push(entries, applied),
                None => self.rt.feed.reset(applied),
            }
            applied
        });
        events.into_iter().for_each(|e| self.rt.members.send(e));
        if let Some(applied) = applied {
            self.rt.applied_tx.send_replace(applied);
        }
    }

    /// The node's task tracking: spawn under it, learn when the node stops.
    pub(crate) fn tasks(&self) -> NodeTasks<'_> {
        self.rt.node_tasks()
    }
}
