//! The typed table modules' handle on the node (`schema`: routes, the expiry sweep): the
//! only way they reach the runtime. It writes a transaction through the one write path,
//! reads the published tables and their secondary indexes, tells whether a table is
//! declared and whether this core leads, and (for the sweep's task) when the node stops.
//! `TablesRoom` borrows the node (the read path of `Node::routes()` takes no reference
//! count); `TablesTask` owns it for a spawned task. The feature never names `Runtime`.

use super::Runtime;
use crate::engine::memory::MemState;
use crate::engine::{Committed, IndexHit, IndexRange, Txn};
use crate::error::Result;
use std::sync::Arc;

/// What the `schema` modules may do with the node, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct TablesRoom<'a> {
    rt: &'a Runtime,
}

/// The same, owned, for a task the node spawns (the expiry sweep).
#[derive(Clone)]
pub(crate) struct TablesTask {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for the typed table modules.
    pub(crate) fn tables_room(&self) -> TablesRoom<'_> {
        TablesRoom { rt: self }
    }

    /// This node's owned handle for a table task.
    pub(crate) fn tables_task(self: &Arc<Self>) -> TablesTask {
        TablesTask { rt: self.clone() }
    }
}

impl TablesTask {
    /// The handle, borrowed from this task's hold.
    pub(crate) fn room(&self) -> TablesRoom<'_> {
        TablesRoom { rt: &self.rt }
    }

    /// Resolves when the node stops.
    pub(crate) fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.rt.stopped()
    }
}

impl<'a> TablesRoom<'a> {
    /// Writes `txn` as every write goes (checked, group-committed, applied here).
    pub(crate) async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.rt.transact(txn).await
    }

    /// The replicated tables as published now.
    pub(crate) fn view(&self) -> arc_swap::Guard<Arc<MemState>> {
        self.rt.view()
    }

    /// The entries of `table`'s secondary index `index` within `range`.
    pub(crate) fn index(&self, table: &str, index: &str, range: &IndexRange) -> Result<Vec<IndexHit>> {
        self.rt.index(table, index, range)
    }

    /// Whether this node declares `table` (created through the log or not yet).
    pub(crate) fn declares(&self, table: &str) -> bool {
        self.rt.schema.declares(table).is_some()
    }

    /// Whether this core is the leader now.
    pub(crate) fn leads(&self) -> bool {
        self.rt.leads()
    }
}
