//! The backup feature's handle on the node (`backup`): the only way export, import and the
//! data dir copy reach the runtime. It reads the store as one snapshot, names the node and
//! its cluster, and writes imported records through the same path as every write
//! (`Runtime::transact`); nothing else. The composition (`node`, the cluster service) makes
//! it; the feature never holds a `Runtime`.

use super::Runtime;
use crate::config::ClusterSection;
use crate::engine::{Committed, Txn};
use crate::error::Result;
use crate::storage::db::Db;
use std::path::Path;
use std::sync::Arc;

/// What backup, export and import may do with the node.
#[derive(Clone)]
pub(crate) struct BackupSource {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for backups, exports and imports.
    pub(crate) fn backup_source(self: &Arc<Self>) -> BackupSource {
        BackupSource { rt: self.clone() }
    }
}

impl BackupSource {
    /// This node's name.
    pub(crate) fn name(&self) -> &str {
        self.rt.name()
    }

    /// Whether this node is a replicant (which holds no store to export or copy).
    pub(crate) fn is_replicant(&self) -> bool {
        self.rt.is_replicant()
    }

    /// The store: snapshots to export, checkpoints to copy.
    pub(crate) fn db(&self) -> &Db {
        &self.rt.db
    }

    /// The node's data dir (its IDENTITY goes with a copy).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.rt.data_dir
    }

    /// The cluster section of the node's config (an export records it).
    pub(crate) fn cluster_config(&self) -> &ClusterSection {
        &self.rt.cfg.config.cluster
    }

    pub(crate) fn cluster_id(&self) -> String {
        self.rt.cluster_id()
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.rt.applied_index()
    }

    /// Writes a transaction of imported records, as every write goes.
    pub(crate) async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.rt.transact(txn).await
    }
}
