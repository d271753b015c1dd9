//! The composition root: [`Node::start`] opens the runtime and starts the parts the
//! node's role needs (the gRPC server, cluster formation, the replicant's follower, the
//! leader's sweeps, etcd registration); [`Node::shutdown`] stops them. The read and write
//! paths themselves live in `crate::runtime`.

mod server;

use crate::config::{NodeConfig, Role};
use crate::engine::memory::{Blob, MemState};
use crate::engine::{Catalog, Committed, OpResult, TableDef, TableIx, Txn};
use crate::error::{Error, Result};
use crate::name::Peer;
use crate::raft::types::{NodeId, RaftMetrics};
use crate::rpc::pb;
use crate::runtime::Runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A node of a mnema cluster. Dropping it without [`Node::shutdown`] leaves tasks running
/// until the runtime ends.
pub struct Node {
    shared: Arc<Runtime>,
}

/// The broker's table modules (`schema::*`) take `&Runtime`; a `&Node` coerces.
impl std::ops::Deref for Node {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.shared
    }
}

impl Node {
    /// Opens the data dir, starts serving, and joins or forms the cluster as configured.
    ///
    /// `tables` must be the same list on every node of the cluster.
    pub async fn start(config: NodeConfig, tables: Vec<TableDef>) -> Result<Node> {
        let cfg = config.validate()?;
        let catalog = Catalog::new(tables)?;
        // Everything that can be refused without touching the data dir is checked first:
        // the TLS files, and the listen address (a port in use stops the node here).
        server::builder(&cfg)?;
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| Error::config("node.listen", format!("cannot listen on {}: {e}", cfg.listen)))?;
        let rt = Runtime::open(config, cfg, catalog).await?;
        let node = Node { shared: rt.clone() };
        rt.spawn(server::serve(rt.clone(), listener));
        // etcd discovery: registered for as long as the node runs, whatever its role.
        let etcd_lease = match rt.cfg.etcd.clone() {
            Some(etcd) => {
                let (tx, rx) = watch::channel(None);
                let me = crate::discovery::EtcdRegistration { addr: rt.cfg.advertise.clone(), role: rt.cfg.role };
                rt.spawn(crate::discovery::etcd::keep_registered(
                    etcd,
                    rt.cfg.name.to_string(),
                    me,
                    tx,
                    rt.stop_token(),
                ));
                Some(rx)
            }
            None => None,
        };
        match rt.link.clone() {
            Some(link) => rt.spawn(crate::replication::replicant::run(rt.clone(), link)),
            None => {
                if let Err(e) = crate::cluster::bootstrap::form(&rt, etcd_lease).await {
                    // Nothing keeps running behind a start that failed.
                    let _ = node.shutdown().await;
                    return Err(e);
                }
                rt.spawn(crate::schema::expiry::run(rt.clone(), rt.cfg.expiry_sweep_interval));
                if let Some(after) = rt.cfg.autoclean {
                    rt.spawn(crate::cluster::autoclean::run(rt.clone(), after));
                }
            }
        }
        tracing::info!(name = %rt.cfg.name, addr = %rt.cfg.advertise, "node started");
        Ok(node)
    }

    /// The routes table of this node.
    pub fn routes(&self) -> crate::schema::routes::Routes<'_> {
        crate::schema::routes::Routes::new(&self.shared)
    }

    pub fn shared(&self) -> &Arc<Runtime> {
        &self.shared
    }

    pub fn name(&self) -> &str {
        self.shared.cfg.name.as_str()
    }

    pub fn node_id(&self) -> NodeId {
        self.shared.cfg.node_id
    }

    pub fn addr(&self) -> &str {
        &self.shared.cfg.advertise
    }

    /// Writes a transaction of replicated tables. Returns once a majority of cores has it
    /// durably and this node has applied it.
    pub async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.shared.transact(txn).await
    }

    /// Writes a transaction of local tables.
    pub fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        self.shared.transact_local(txn)
    }

    pub fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        self.shared.get(table, key)
    }

    pub fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        self.shared.dump(table)
    }

    /// Records whose keys start with `prefix` (sets and ordered sets; see `Runtime::prefix`).
    pub fn prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Blob, Blob)>> {
        self.shared.prefix(table, prefix)
    }

    /// A linearizable read: sees every write committed before the call, on any node
    /// (one round trip to the leader, then a local read once this node has caught up).
    pub async fn get_linearizable(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        self.shared.barrier().await?;
        self.shared.get(table, key)
    }

    /// Waits until this node has applied every write committed before the call.
    pub async fn barrier(&self) -> Result<()> {
        self.shared.barrier().await
    }

    /// A replicant's state, upstream core and lag (`None` on a core).
    pub fn replicant_status(&self) -> Option<pb::ReplicantStatus> {
        self.shared.link.as_ref().map(|l| l.report(self.shared.applied_index()))
    }

    /// Whether this node is a core or a replicant.
    pub fn role(&self) -> Role {
        self.shared.cfg.role
    }

    /// A consistent, lock-free view of every in-memory replicated table at one index.
    pub fn view(&self) -> arc_swap::Guard<Arc<MemState>> {
        self.shared.mem.load()
    }

    pub fn table_ix(&self, table: &str) -> Result<TableIx> {
        self.shared.catalog.lookup(table)
    }

    pub fn applied_index(&self) -> u64 {
        self.shared.applied_index()
    }

    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.shared.wait_applied(index, timeout).await
    }

    pub fn metrics(&self) -> Result<RaftMetrics> {
        self.shared.metrics()
    }

    pub fn is_leader(&self) -> bool {
        self.metrics().map(|m| m.current_leader == Some(self.node_id())).unwrap_or(false)
    }

    /// Joins the cluster `target` belongs to, discarding this node's replicated data.
    pub async fn join(&self, target: &Peer) -> Result<()> {
        crate::cluster::membership::join(&self.shared, target).await
    }

    /// The cluster as this node sees it.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatus> {
        crate::cluster::status::collect(&self.shared).await
    }

    /// Resolves when this core's Raft has stopped by itself: a storage failure (a full
    /// disk, an I/O error) that openraft cannot go on after. The node is then no member
    /// any more: writes fail, it answers no Raft call, and only a restart (once the cause
    /// is fixed) brings it back, with everything it had acknowledged. `mnema start` exits
    /// non-zero on it so that a supervisor restarts the process; a broker should do the
    /// same. Never resolves on a replicant or on a clean shutdown.
    pub async fn failed(&self) -> Error {
        self.shared.failed().await
    }

    /// Stops serving and shuts Raft down; the data dir stays as it is. When this returns,
    /// RocksDB is closed and the data dir can be opened again.
    pub async fn shutdown(self) -> Result<()> {
        self.shared.shutdown().await?;
        // gRPC handlers still answering a call hold the runtime until they return (bounded:
        // without Raft they end at once); then the last handle closes RocksDB.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.shared) > 1 || self.shared.db.handles() > 1 {
            if Instant::now() > deadline {
                return Err(Error::Timeout { what: "tasks holding the node to end".into(), ms: 10_000 });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
