//! The cluster feature's handles on the node: the only way it reaches the runtime (the
//! feature never names `Runtime`). `ClusterRoom` is membership's (formation, join, leave,
//! rebuild, autoclean, cluster status): identity and schema checks, Raft and the
//! membership, tasks. `ServiceRoom` is the gRPC service's for clients and peers: writes,
//! forwarded batches, reads, watches, exports. Each method is the runtime's, documented
//! there.

use super::Runtime;
use super::lifecycle::NodeTasks;
use super::link::Link;
use super::watcher::{Watch, WatchSnapshot};
use super::{BackupSource, TablesRoom};
use crate::config::{DiscoveryStrategy, Validated};
use crate::engine::declaration::SchemaInfo;
use crate::engine::feed::WatchSpec;
use crate::engine::members::MemberEvent;
use crate::engine::{Batch, BatchOutcome, Blob, Committed, IndexHit, IndexRange, KeyRange, NodeSchema, TableIx, Txn};
use crate::error::Result;
use crate::raft::types::{NodeId, NodeInfo, Raft, RaftMetrics};
use crate::rpc::client::Peers;
use crate::status::{NodeStatus, TableInfo};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What the `cluster` feature may do with the node. Cheap to clone (one reference count):
/// its tasks (formation, autoclean, the service) each hold one.
#[derive(Clone)]
pub(crate) struct ClusterRoom {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for the cluster feature.
    pub(crate) fn cluster_room(self: &Arc<Self>) -> ClusterRoom {
        ClusterRoom { rt: self.clone() }
    }
}

/// Who this node is and what it runs.
impl ClusterRoom {
    pub(crate) fn config(&self) -> &Validated {
        self.rt.config()
    }

    pub(crate) fn name(&self) -> &str {
        self.rt.name()
    }

    pub(crate) fn me(&self) -> NodeInfo {
        self.rt.me()
    }

    pub(crate) fn is_replicant(&self) -> bool {
        self.rt.is_replicant()
    }

    pub(crate) fn cluster_id(&self) -> String {
        self.rt.cluster_id()
    }

    pub(crate) fn adopt_cluster_id(&self, id: &str) -> Result<()> {
        self.rt.adopt_cluster_id(id)
    }

    pub(crate) fn data_dir(&self) -> &Path {
        self.rt.data_dir()
    }

    pub(crate) fn strategy(&self) -> DiscoveryStrategy {
        self.rt.strategy()
    }

    pub(crate) fn schema(&self) -> &Arc<NodeSchema> {
        self.rt.schema()
    }

    pub(crate) fn link(&self) -> Option<&Arc<Link>> {
        self.rt.link()
    }

    pub(crate) fn node_status(&self) -> NodeStatus {
        self.rt.node_status()
    }

    pub(crate) fn check_schema(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        self.rt.check_schema(peer, theirs)
    }

    pub(crate) fn check_peer_has_code(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        self.rt.check_peer_has_code(peer, theirs)
    }

    pub(crate) fn check_can_follow(&self, theirs: &SchemaInfo) -> Result<()> {
        self.rt.check_can_follow(theirs)
    }
}

/// Raft and the membership.
impl ClusterRoom {
    pub(crate) fn raft(&self) -> Result<Raft> {
        self.rt.raft()
    }

    pub(crate) fn metrics(&self) -> Result<RaftMetrics> {
        self.rt.metrics()
    }

    pub(crate) fn peers(&self) -> &Peers {
        self.rt.peers()
    }

    pub(crate) fn leader(&self) -> Result<Option<(NodeId, NodeInfo)>> {
        self.rt.leader()
    }

    pub(crate) fn known_leader(&self, m: &RaftMetrics) -> Option<NodeId> {
        self.rt.known_leader(m)
    }

    pub(crate) fn leads(&self) -> bool {
        self.rt.leads()
    }

    pub(crate) fn set_refuse_votes(&self, refuse: bool) {
        self.rt.set_refuse_votes(refuse)
    }

    pub(crate) fn refuses_votes(&self) -> bool {
        self.rt.refuses_votes()
    }

    pub(crate) fn streams_to(&self, name: &str) -> bool {
        self.rt.streams_to(name)
    }

    pub(crate) fn tell_member_event(&self, event: MemberEvent) {
        self.rt.tell_member_event(event)
    }

    /// Whether the log created `table` (autoclean's purge of a gone node's routes).
    pub(crate) fn table_ix(&self, table: &str) -> Result<TableIx> {
        self.rt.table_ix(table)
    }

    /// The typed tables' handle (autoclean purges routes through it).
    pub(crate) fn tables_room(&self) -> TablesRoom<'_> {
        self.rt.tables_room()
    }

    /// Wipes and restarts this node's Raft (joining another cluster, leaving).
    pub(crate) async fn reset_raft(&self) -> Result<()> {
        super::raft_setup_reset(&self.rt).await
    }
}

/// Tasks and shutdown.
impl ClusterRoom {
    /// The node's task tracking: spawn under it, learn when the node stops.
    pub(crate) fn tasks(&self) -> NodeTasks<'_> {
        self.rt.node_tasks()
    }
}

/// What the node's gRPC service may do with the node: answer clients' and peers' calls.
#[derive(Clone)]
pub(crate) struct ServiceRoom {
    rt: Arc<Runtime>,
}

impl Runtime {
    /// This node's handle for its gRPC service.
    pub(crate) fn service_room(self: &Arc<Self>) -> ServiceRoom {
        ServiceRoom { rt: self.clone() }
    }
}

/// Who answers.
impl ServiceRoom {
    pub(crate) fn config(&self) -> &Validated {
        self.rt.config()
    }

    pub(crate) fn name(&self) -> &str {
        self.rt.name()
    }

    pub(crate) fn is_replicant(&self) -> bool {
        self.rt.is_replicant()
    }

    pub(crate) fn leader(&self) -> Result<Option<(NodeId, NodeInfo)>> {
        self.rt.leader()
    }

    pub(crate) fn tasks(&self) -> NodeTasks<'_> {
        self.rt.node_tasks()
    }
}

/// What it answers: writes, reads, watches, and exports through backup's handle.
impl ServiceRoom {
    pub(crate) async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.rt.transact(txn).await
    }

    pub(crate) async fn serve_forwarded(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        self.rt.serve_forwarded(batch).await
    }

    pub(crate) async fn serve_relayed(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        self.rt.serve_relayed(batch).await
    }

    pub(crate) async fn read_index(&self) -> Result<u64> {
        self.rt.read_index().await
    }

    pub(crate) async fn read_index_as_leader(&self) -> Result<u64> {
        self.rt.read_index_as_leader().await
    }

    pub(crate) async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.rt.wait_applied(index, timeout).await
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.rt.applied_index()
    }

    pub(crate) fn tables(&self) -> Vec<TableInfo> {
        self.rt.tables()
    }

    pub(crate) fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        self.rt.get(table, key)
    }

    pub(crate) fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        self.rt.dump(table)
    }

    pub(crate) fn range(&self, table: &str, range: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
        self.rt.range(table, range)
    }

    pub(crate) fn count(&self, table: &str) -> Result<u64> {
        self.rt.count(table)
    }

    pub(crate) fn index(&self, table: &str, index: &str, range: &IndexRange) -> Result<Vec<IndexHit>> {
        self.rt.index(table, index, range)
    }

    pub(crate) fn watch(&self, spec: WatchSpec) -> Result<Watch> {
        self.rt.watch(spec)
    }

    pub(crate) fn snapshot_and_watch(&self, spec: WatchSpec) -> Result<(WatchSnapshot, Watch)> {
        self.rt.snapshot_and_watch(spec)
    }

    pub(crate) fn backup_source(&self) -> BackupSource {
        self.rt.backup_source()
    }
}
