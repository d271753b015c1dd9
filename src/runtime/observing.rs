//! The observe feature's handle on the node (`observe`: `/metrics`, `/health`, `/ready`):
//! the only way the HTTP endpoint reaches the runtime. It holds the node weakly, so the
//! endpoint never keeps a node that is shutting down open, and it reads: status,
//! instruments, the change feed's size, RocksDB's statistics, the tables as published,
//! health and readiness. Nothing it offers changes the node. The composition (`node`)
//! makes it; the feature never names `Runtime`.

use super::Runtime;
use super::instruments::Instruments;
use crate::engine::memory::MemState;
use crate::status::NodeStatus;
use crate::storage::db::Db;
use std::sync::{Arc, Weak};

/// The endpoint's weak hold on the node.
#[derive(Clone)]
pub(crate) struct Observing {
    rt: Weak<Runtime>,
}

/// The node while one request is answered (`None` from [`Observing::now`] once it is gone).
pub(crate) struct Observed {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for its HTTP endpoint.
    pub(crate) fn observing(self: &Arc<Self>) -> Observing {
        Observing { rt: Arc::downgrade(self) }
    }
}

impl Observing {
    /// The node, unless it has shut down.
    pub(crate) fn now(&self) -> Option<Observed> {
        self.rt.upgrade().map(|rt| Observed { rt })
    }
}

impl Observed {
    /// Why the node can no longer take part (`/health`), if it failed.
    pub(crate) fn failure_reason(&self) -> Option<String> {
        self.rt.failure_reason()
    }

    /// Whether the node serves reads and writes (`/ready`), and why not.
    pub(crate) fn readiness(&self) -> std::result::Result<(), String> {
        self.rt.readiness()
    }

    pub(crate) fn node_status(&self) -> NodeStatus {
        self.rt.node_status()
    }

    pub(crate) fn instruments(&self) -> &Instruments {
        &self.rt.instruments
    }

    /// Applied entries and bytes the change feed's ring holds.
    pub(crate) fn feed_size(&self) -> (usize, usize) {
        self.rt.feed_size()
    }

    pub(crate) fn is_replicant(&self) -> bool {
        self.rt.is_replicant()
    }

    /// RocksDB, for its statistics.
    pub(crate) fn db(&self) -> &Db {
        &self.rt.db
    }

    /// The replicated tables as published now.
    pub(crate) fn view(&self) -> Arc<MemState> {
        self.rt.mem.snapshot()
    }
}
