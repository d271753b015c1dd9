//! A running mnema node: opens its data dir, serves gRPC, runs Raft, and offers the
//! read and write API the broker links against.
//!
//! Reads come from the local in-memory copy (or RocksDB for `disc_only` tables) and never
//! leave the node. Writes of replicated tables go through the group-commit
//! [`proposer`] to the leader (forwarded over gRPC from a follower), and return once this
//! node has applied them, so a read after a write on the same node sees it.

pub mod proposer;
mod raft_setup;

use crate::config::{DiscoveryStrategy, NodeConfig, Role, Validated};
use crate::engine::memory::{Blob, MemState, MemStore};
use crate::engine::{Batch, BatchOutcome, Catalog, Committed, OpResult, Scope, TableDef, TableIx, Txn, TxnOutcome};
use crate::error::{Error, Result};
use crate::name::Peer;
use crate::raft::types::{ClientWriteError, NodeId, NodeInfo, Raft, RaftError, RaftMetrics};
use crate::rpc::client::{Peers, status_error};
use crate::rpc::pb;
use crate::storage::apply::{DiscWriter, apply_txn, load_memory};
use crate::storage::db::{CF_LOCAL, Db, storage_err};
use crate::storage::records;
use crate::storage::{identity, layout};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// A leader's answer to a forwarded batch.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not (or no longer) the leader; nothing was proposed.
    NotLeader,
    Failed(String),
}

pub type ForwardReply = std::result::Result<(u64, BatchOutcome), ForwardError>;

/// State shared by the node's tasks and gRPC services.
pub struct NodeShared {
    pub cfg: Validated,
    pub config: NodeConfig,
    pub data_dir: PathBuf,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    /// Replicated tables.
    pub mem: Arc<MemStore>,
    /// Local tables; writers serialise on `local_writer`.
    pub local: MemStore,
    local_writer: Mutex<()>,
    applied_tx: Arc<watch::Sender<u64>>,
    raft: RwLock<Option<Raft>>,
    pub peers: Peers,
    /// The cluster this node belongs to (recorded in IDENTITY; changes on join).
    pub cluster_id: crate::rpc::auth::ClusterId,
    /// Serialises membership changes this node makes as leader.
    pub membership_lock: tokio::sync::Mutex<()>,
    proposer: mpsc::Sender<proposer::Pending>,
    /// Becomes `true` when the node shuts down; background tasks watch it.
    pub stopping: watch::Receiver<bool>,
}

/// A node of a mnema cluster. Dropping it without [`Node::shutdown`] leaves tasks running
/// until the runtime ends.
pub struct Node {
    shared: Arc<NodeShared>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    proposer: tokio::task::JoinHandle<()>,
}

impl NodeShared {
    /// The running Raft instance.
    pub fn raft(&self) -> Result<Raft> {
        self.raft.read().map_err(|_| Error::Shutdown)?.clone().ok_or(Error::Shutdown)
    }

    pub fn me(&self) -> NodeInfo {
        NodeInfo { name: self.cfg.name.to_string(), addr: self.cfg.advertise.clone() }
    }

    pub fn metrics(&self) -> Result<RaftMetrics> {
        Ok(self.raft()?.metrics().borrow().clone())
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Waits until this node has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.applied_tx.subscribe();
        let res = tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index)).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout {
                what: format!("{} to apply index {index} (applied {})", self.cfg.name, self.applied_index()),
                ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The leader's id and address as this node knows them.
    pub fn leader(&self) -> Result<Option<(NodeId, NodeInfo)>> {
        let m = self.metrics()?;
        Ok(m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).map(|n| (id, n.clone()))))
    }

    /// Proposes `batch` on the leader (here or forwarded) and returns its index and outcome.
    /// Retries only where nothing can have been proposed (no leader yet, or a peer that
    /// says it is not the leader); any other failure is returned, never retried blindly.
    pub async fn write_batch(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        let deadline = Instant::now() + self.cfg.write_timeout;
        loop {
            let raft = self.raft()?;
            let mut metrics = raft.metrics();
            match self.leader()? {
                Some((id, _)) if id == self.cfg.node_id => match raft.client_write(batch.clone()).await {
                    Ok(resp) => return Ok((resp.log_id.index, resp.data)),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {}
                    Err(e) => return Err(Error::Raft(e.to_string())),
                },
                Some((_, leader)) => match self.forward(&leader, &batch).await {
                    Ok(Ok(done)) => return Ok(done),
                    Ok(Err(ForwardError::NotLeader)) => {}
                    Ok(Err(ForwardError::Failed(e))) => return Err(Error::Raft(e)),
                    Err(e) if never_sent(&e) => {}
                    Err(e) => return Err(e),
                },
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::NoLeader(format!(
                    "no leader accepted the write within {:?}; is a majority of cores running?",
                    self.cfg.write_timeout
                )));
            }
            // Wake on the next Raft state change (an election), or retry a little later.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), metrics.changed()).await;
        }
    }

    async fn forward(&self, leader: &NodeInfo, batch: &Batch) -> Result<ForwardReply> {
        let mut client = self.peers.cluster(&leader.addr)?;
        let req = pb::WriteRequest { batch: crate::codec::encode_versioned(crate::codec::WIRE_VERSION, batch)? };
        let reply = client.write(req).await.map_err(|s| status_error(&leader.name, s))?.into_inner();
        crate::codec::decode_versioned("forward reply", crate::codec::WIRE_VERSION, &reply.reply)
    }

    /// Serves a batch forwarded by a follower.
    pub async fn serve_forwarded(&self, batch: Batch) -> ForwardReply {
        let raft = self.raft().map_err(|e| ForwardError::Failed(e.to_string()))?;
        match raft.client_write(batch).await {
            Ok(resp) => Ok((resp.log_id.index, resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ForwardError::NotLeader),
            Err(e) => Err(ForwardError::Failed(e.to_string())),
        }
    }

    /// Writes a transaction of replicated tables; returns once committed and applied here.
    pub async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.catalog.check(&txn, Scope::Replicated)?;
        let (tx, rx) = oneshot::channel();
        self.proposer.send(proposer::Pending { txn, reply: tx }).await.map_err(|_| Error::Shutdown)?;
        let (index, outcome) = rx.await.map_err(|_| Error::Shutdown)??;
        match outcome {
            TxnOutcome::Applied(results) => {
                self.wait_applied(index, self.cfg.write_timeout).await?;
                Ok(Committed { index, results })
            }
            TxnOutcome::Rejected(reason) => Err(Error::InvalidTxn(reason)),
        }
    }

    /// Writes a transaction of local tables, on this node only.
    pub fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        self.catalog.check(txn, Scope::Local)?;
        let _guard = self.local_writer.lock().map_err(|_| Error::Storage("local writer poisoned".into()))?;
        let mut work: MemState = (*self.local.snapshot()).clone();
        let cf = self.db.cf(CF_LOCAL)?;
        let mut disc = DiscWriter::new(&self.db, cf);
        let outcome = apply_txn(&self.catalog, Scope::Local, &mut work, &mut disc, txn)?;
        if !disc.batch.is_empty() {
            self.db.raw().write_opt(disc.batch, &Db::sync_opts()).map_err(|e| storage_err("local write", e))?;
        }
        self.local.publish(work);
        match outcome {
            TxnOutcome::Applied(r) => Ok(r),
            TxnOutcome::Rejected(reason) => Err(Error::InvalidTxn(reason)),
        }
    }

    /// The in-memory copy that holds tables of `scope`.
    fn memory(&self, scope: Scope) -> &MemStore {
        match scope {
            Scope::Local => &self.local,
            Scope::Replicated => &self.mem,
        }
    }

    /// The values under `key` in `table` (at most one for sets), read locally.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        let ix = self.catalog.lookup(table)?;
        let def = self.catalog.def(ix);
        if def.in_memory() {
            return Ok(self.memory(def.scope).load().table(ix).get(key));
        }
        records::get(&self.db, def, key)
    }

    /// Every record of `table`, read locally (ordered tables in key order).
    pub fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        let ix = self.catalog.lookup(table)?;
        let def = self.catalog.def(ix);
        if def.in_memory() {
            let mut out = Vec::new();
            self.memory(def.scope).load().table(ix).for_each(|k, v| out.push((k.clone(), v.clone())));
            return Ok(out);
        }
        records::dump(&self.db, def)
    }

    /// This node's status.
    pub fn node_status(&self) -> pb::NodeStatus {
        let (state, term, leader) = match self.metrics() {
            Ok(m) => {
                let leader = m
                    .current_leader
                    .and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.name.clone()))
                    .unwrap_or_default();
                (format!("{:?}", m.state), m.current_term, leader)
            }
            Err(_) => ("Shutdown".to_string(), 0, String::new()),
        };
        pb::NodeStatus {
            name: self.cfg.name.to_string(),
            node_id: self.cfg.node_id,
            role: "core".into(),
            raft_state: state,
            applied_index: self.applied_index(),
            term,
            leader,
            addr: self.cfg.advertise.clone(),
            cluster_id: self.cluster_id(),
        }
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Records that this node now belongs to `id`.
    pub(crate) fn adopt_cluster_id(&self, id: &str) -> Result<()> {
        identity::set_cluster_id(&self.data_dir, id)?;
        *self.cluster_id.write().map_err(|_| Error::Shutdown)? = id.to_string();
        Ok(())
    }
}

/// Whether a forwarding error proves the request never reached the peer.
fn never_sent(e: &Error) -> bool {
    match e {
        Error::Rpc { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            r.contains("tcp connect error") || r.contains("connection refused") || r.contains("error trying to connect")
        }
        _ => false,
    }
}

impl Node {
    /// Opens the data dir, starts serving, and joins or forms the cluster as configured.
    ///
    /// `tables` must be the same list on every node of the cluster.
    pub async fn start(config: NodeConfig, tables: Vec<TableDef>) -> Result<Node> {
        let cfg = config.validate()?;
        if config.node.role != Role::Core {
            return Err(Error::config("node.role", "replicant nodes are not available in this version; use core"));
        }
        let data_dir = config.node.data_dir.clone();
        let initial = cfg.initial_cluster_id(&config.cluster.name, config.cluster.discovery_strategy);
        let ident = identity::check_or_create(&data_dir, cfg.name.as_str(), cfg.node_id, &initial)?;
        let cluster_id: crate::rpc::auth::ClusterId = Arc::new(RwLock::new(ident.cluster_id));
        let catalog = Arc::new(Catalog::new(tables)?);
        let db = Db::open(&layout::db(&data_dir))?;
        let local = MemStore::new(load_memory(&db, db.cf(CF_LOCAL)?, &catalog, 0)?);
        let mem = Arc::new(MemStore::new(MemState::empty(&catalog)));
        let applied_tx = Arc::new(watch::channel(0u64).0);
        let peers = Peers::new(&config.node.cookie, Some(cluster_id.clone()))?;
        if config.node.cookie == crate::config::DEFAULT_COOKIE {
            tracing::warn!("node.cookie is the default; set a secret cookie in production");
        }
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| Error::Io { path: PathBuf::from(format!("listen {}", cfg.listen)), source: e })?;
        let (ptx, prx) = mpsc::channel(config.raft.max_batch_txns * 4);
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(NodeShared {
            cfg,
            config: config.clone(),
            data_dir,
            db,
            catalog,
            mem,
            local,
            local_writer: Mutex::new(()),
            applied_tx,
            raft: RwLock::new(None),
            peers,
            cluster_id,
            membership_lock: tokio::sync::Mutex::new(()),
            proposer: ptx,
            stopping: stop_rx,
        });
        raft_setup::start_raft(&shared).await?;
        let server = tokio::spawn(crate::cluster::server::serve(shared.clone(), listener));
        let proposer = tokio::spawn(proposer::run(
            shared.clone(),
            prx,
            config.raft.max_batch_txns,
            config.raft.max_inflight_batches,
        ));
        let node = Node { shared, stop, server, proposer };
        crate::cluster::bootstrap::form(&node.shared).await?;
        tracing::info!(name = %node.shared.cfg.name, addr = %node.shared.cfg.advertise, "node started");
        Ok(node)
    }

    pub fn shared(&self) -> &Arc<NodeShared> {
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

    /// Stops serving and shuts Raft down; the data dir stays as it is. When this returns,
    /// RocksDB is closed and the data dir can be opened again.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Ok(raft) = self.shared.raft() {
            raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
        }
        self.shared.set_raft(None)?;
        let _ = self.server.await;
        let _ = self.proposer.await;
        // In-flight RPC handlers and write tasks end promptly once Raft is gone; wait for
        // them (bounded) so that the DB is closed when we return.
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

impl NodeShared {
    pub(crate) fn set_raft(&self, raft: Option<Raft>) -> Result<()> {
        *self.raft.write().map_err(|_| Error::Shutdown)? = raft;
        Ok(())
    }

    pub(crate) fn applied_sender(&self) -> Arc<watch::Sender<u64>> {
        self.applied_tx.clone()
    }

    pub fn strategy(&self) -> DiscoveryStrategy {
        self.config.cluster.discovery_strategy
    }
}

/// Wipes and restarts this node's Raft (see `cluster::membership::join`).
pub(crate) async fn raft_setup_reset(shared: &Arc<NodeShared>) -> Result<()> {
    raft_setup::reset_raft(shared).await
}
