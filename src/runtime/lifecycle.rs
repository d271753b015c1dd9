//! The node's life: opening the data dir and starting Raft (`Runtime::open`), the tasks
//! it runs and how they end (`spawn`, `shutdown`), and a core's failure: Raft stopping by
//! itself, or stopped on damage found in the store.

use super::{Runtime, campaign, proposer, raft_setup};
use crate::config::{Role, Validated};
use crate::engine::feed::{FeedRing, RingLimits};
use crate::engine::members::MemberFeed;
use crate::engine::memory::{Holding, MemState, MemStore};
use crate::engine::NodeSchema;
use crate::error::{Error, Result};
use crate::raft::slot::RaftSlot;
use crate::rpc::client::Peers;
use crate::storage::db::Db;
use crate::storage::log_store::RetentionPins;
use crate::storage::{identity, layout};
use super::link::Link;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the replication feature lends the runtime at open (see `replication::streams`).
pub(crate) struct Lent {
    /// The log entries replication streams hold: the log store's purge leaves them.
    pub(crate) pins: RetentionPins,
    /// The replicants streaming from this core.
    pub(crate) streamed: Arc<dyn super::StreamedTo>,
}

impl Runtime {
    /// Opens the data dir (IDENTITY, then RocksDB and `RAFT_MARK`), loads the local tables
    /// and, on a core, starts Raft over the store after checking it against the mark. The
    /// proposer runs from here on; nothing else is started. Also says whether the data dir
    /// had its IDENTITY before this start (the cluster feature keeps that, `ClusterState`).
    ///
    /// `streams` is the replication feature's state, lent: its retention pins for the log
    /// store, and the replicants streaming from this core for the status and version gate.
    pub(crate) async fn open(cfg: Validated, schema: NodeSchema, streams: Lent) -> Result<(Arc<Runtime>, bool)> {
        let config = cfg.config.clone();
        let replicant = cfg.role == Role::Replicant;
        let data_dir = config.node.data_dir.clone();
        let schema = Arc::new(schema);
        let initial = cfg.initial_cluster_id(&config.cluster.name, config.cluster.discovery_strategy);
        let (ident, created) = identity::open_or_create(&data_dir, cfg.name.as_str(), cfg.node_id, &initial)?;
        let cluster_id: crate::rpc::auth::ClusterId = Arc::new(RwLock::new(ident.cluster_id));
        let t0 = std::time::Instant::now();
        let db = Db::open(&layout::db(&data_dir))?;
        tracing::info!(ms = t0.elapsed().as_millis() as u64, "opened RocksDB");
        let mark = Arc::new(crate::storage::raft_mark::MarkWriter::open(&data_dir)?);
        let local = Arc::new(MemStore::new(crate::storage::apply::load_local(&db, &schema.local)?));
        // A replicant holds the tables of the shards it follows in memory and starts empty
        // each time; a core loads its state when Raft starts.
        let holding =
            if replicant { Holding::replicant(&config.replicant.shards) } else { Holding::core() };
        let mem = Arc::new(MemStore::new(MemState::with_holding(Arc::new(schema.empty_catalog()), holding)));
        let peers = Peers::new(
            &config.node.cookie,
            Some(cluster_id.clone()),
            cfg.protocol(),
            cfg.tls.as_ref().map(crate::rpc::client::client_tls),
        )?;
        let peers = match config.raft.transport {
            crate::config::RaftTransport::Frames => peers,
            crate::config::RaftTransport::Grpc => peers.without_frames(),
        };
        if config.node.cookie == crate::config::DEFAULT_COOKIE {
            // Only loopback can reach a node listening there (a dev-cluster): no warning.
            let loopback = cfg.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
            if loopback {
                tracing::info!("node.cookie is the default (this node listens on loopback only)");
            } else {
                tracing::warn!("node.cookie is the default; set a secret cookie in production");
            }
        }
        let (ptx, prx) = mpsc::channel(config.raft.max_batch_txns * 4);
        let members = Arc::new(MemberFeed::default());
        let rt = Arc::new(Runtime {
            cfg,
            data_dir,
            db,
            schema,
            mem,
            feed: Arc::new(FeedRing::new(
                RingLimits { entries: config.feed.ring_entries, bytes: config.feed.ring_bytes },
                0,
            )),
            members,
            local,
            local_writer: Mutex::new(()),
            applied_tx: Arc::new(watch::channel(0u64).0),
            raft: Arc::new(RaftSlot::default()),
            peers,
            forwards: Default::default(),
            cluster_id,
            proposer: ptx,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            pins: streams.pins,
            committed_tx: Arc::new(watch::channel(0u64).0),
            streamed: streams.streamed,
            link: replicant.then(|| Arc::new(Link::default())),
            request_client: crate::config::random_u64(),
            request_seq: AtomicU64::new(1),
            write_retries: AtomicU64::new(0),
            instruments: Default::default(),
            state_machine_gone: Mutex::new(None),
            failure: watch::channel(None).0,
            mark,
            flush_at_stop: std::sync::atomic::AtomicBool::new(true),
        });
        if !replicant {
            raft_setup::start_raft(&rt).await?;
            // No Raft state of its own: no vote counts until it is a member (see
            // `cluster::rebuild`); forming or joining a cluster lifts this.
            let initialized = rt.raft()?.is_initialized().await.map_err(|e| Error::Raft(e.to_string()))?;
            rt.set_refuse_votes(!initialized);
            rt.spawn(watch_raft(rt.clone()));
            rt.spawn(stop_on_damage(rt.clone()));
            rt.spawn(campaign::campaign(rt.clone()));
        }
        let (max_batch, max_inflight) = (config.raft.max_batch_txns, config.raft.max_inflight_batches);
        rt.spawn(proposer::run(rt.clone(), prx, max_batch, max_inflight));
        Ok((rt, !created))
    }

    /// Runs `task` as one of the node's tasks: shutdown waits for it to end (it must end
    /// once [`Runtime::stopped`] resolves).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Runs `work` on the blocking pool as one of the node's tasks (shutdown waits for it).
    pub(crate) fn spawn_blocking<F, R>(&self, work: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.tasks.spawn_blocking(work)
    }

    /// Why this core's Raft stopped by itself, if it did.
    pub(crate) fn failure_reason(&self) -> Option<String> {
        self.failure.borrow().as_ref().map(|e| e.to_string())
    }

    /// Resolves when this core's Raft stopped by itself (see `Node::failed`).
    pub(crate) async fn failed(&self) -> Error {
        let mut rx = self.failure.subscribe();
        match rx.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone().unwrap_or(Error::NodeFailed { reason: String::new() }),
            Err(_) => std::future::pending().await,
        }
    }

    /// Resolves once the node is shutting down.
    pub(crate) fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// A token cancelled when the node shuts down, for tasks that outlive a borrow.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Whether the node is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops every task and Raft, and waits (bounded) for the tasks to end: when it
    /// returns, nothing of this node runs any more and RocksDB can be closed.
    pub(crate) async fn shutdown(&self) -> Result<()> {
        let t0 = std::time::Instant::now();
        self.stop.cancel();
        let raft = self.raft().ok();
        if let Some(raft) = raft {
            raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "stop: Raft stopped");
            // Nothing applies any more: sync what was applied and say so in the mark, so a
            // WAL that loses any of it before the next start is refused there.
            // (Best effort: a full disk fails the write, and the stop goes on.)
            if let Err(e) = self.db.sync_wal().and_then(|()| self.mark.stopped_at(self.applied_index())) {
                tracing::warn!(error = %e, "could not record the stop in RAFT_MARK");
            }
            // And leave no WAL for the next start to replay (best effort too: what is not
            // flushed is replayed).
            if self.flush_at_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let db = self.db.clone();
                match tokio::task::spawn_blocking(move || db.flush_all()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not flush the memtables at the stop"),
                    Err(e) => tracing::warn!(error = %e, "could not flush the memtables at the stop"),
                }
            }
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, "stop: memtables flushed");
        }
        self.set_raft(None)?;
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await.is_err() {
            return Err(Error::Timeout { what: "the node's tasks to end".into(), ms: 10_000 });
        }
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "stop: tasks ended");
        Ok(())
    }
}

/// Stops this core's Raft when its store turns out damaged while it runs (a read or write
/// that RocksDB answers with a `Corruption` status: `Db::err`): a member must not go on
/// voting and acknowledging from a store it cannot read. The failure is that
/// `DamagedState`, naming the file and the rebuild command; `Node::failed` resolves with
/// it and `mnema start` exits with it.
async fn stop_on_damage(shared: Arc<Runtime>) {
    let mut damage = shared.db.damage();
    let found = tokio::select! {
        found = damage.wait_for(|d| d.is_some()) => found.ok().and_then(|d| d.clone()),
        _ = shared.stopped() => None,
    };
    let Some(err) = found else { return };
    tracing::error!(error = %err, "damage found in this core's store while running: stopping its Raft");
    shared.failure.send_if_modified(|f| f.is_none() && f.replace(err).is_none());
    if let Ok(raft) = shared.raft()
        && let Err(e) = raft.shutdown().await
    {
        tracing::warn!(error = %e, "stopping Raft after damage");
    }
}

/// Watches this core's Raft (the current instance, across join/leave resets) and records a
/// failure when it stops by itself; a stop asked for (shutdown, reset) is not one.
async fn watch_raft(shared: Arc<Runtime>) {
    loop {
        let Ok(raft) = shared.raft() else {
            tokio::select! {
                _ = shared.stopped() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        };
        let mut metrics = raft.metrics();
        drop(raft);
        loop {
            let fatal = match &metrics.borrow().running_state {
                Err(openraft::error::Fatal::Stopped) | Ok(()) => None,
                Err(f) => Some(f.to_string()),
            };
            if let Some(reason) = fatal {
                if !shared.is_stopping() {
                    tracing::error!(%reason, "Raft stopped after a storage failure; this node must be restarted");
                    // A storage error that was damage in the store is named as such.
                    let damage = shared.db.damage().borrow().clone();
                    let failure = damage.unwrap_or(Error::NodeFailed { reason });
                    shared.failure.send_if_modified(|f| f.is_none() && f.replace(failure).is_none());
                }
                return;
            }
            if metrics.changed().await.is_err() {
                break;
            }
        }
        if shared.is_stopping() {
            return;
        }
    }
}

/// The node's task tracking as a feature's handle lends it (`tasks()`): run a task or
/// blocking work under it (shutdown waits for both), and learn when the node stops.
#[derive(Clone, Copy)]
pub(crate) struct NodeTasks<'a> {
    rt: &'a Runtime,
}

impl Runtime {
    /// The task tracking, for a feature's handle to lend.
    pub(crate) fn node_tasks(&self) -> NodeTasks<'_> {
        NodeTasks { rt: self }
    }
}

impl<'a> NodeTasks<'a> {
    /// Runs `task` as one of the node's tasks (it must end once [`NodeTasks::stopped`]
    /// resolves).
    pub(crate) fn spawn<F>(self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(task)
    }

    /// Runs `work` on the blocking pool as one of the node's tasks.
    pub(crate) fn spawn_blocking<F, R>(self, work: F) -> tokio::task::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.rt.spawn_blocking(work)
    }

    /// Resolves once the node is shutting down.
    pub(crate) fn stopped(self) -> tokio_util::sync::WaitForCancellationFuture<'a> {
        self.rt.stopped()
    }

    /// Whether the node is shutting down.
    pub(crate) fn is_stopping(self) -> bool {
        self.rt.is_stopping()
    }
}
