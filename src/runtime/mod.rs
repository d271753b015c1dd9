//! The running node, under every role: its store, in-memory tables, Raft instance and
//! peers, and the read and write paths that `cluster`, `replication`, `schema`, `backup`
//! and `node` use (none of which this module imports).
//!
//! Reads come from the local in-memory copy (or RocksDB for `disc_only` tables) and never
//! leave the node. Writes of replicated tables go through the group-commit
//! [`proposer`] to the leader (forwarded over gRPC from a follower), and return once this
//! node has applied them, so a read after a write on the same node sees it.

mod campaign;
mod catalog;
mod handle;
pub mod link;
mod read;
mod members;
mod ready;
mod watcher;
pub use watcher::{Watch, WatchSnapshot};
pub(crate) use catalog::keep_declared_tables;
pub(crate) use members::watch_peers;
pub use members::MemberWatch;
pub(crate) use read::Place;
pub use handle::TableHandle;
pub mod proposer;
mod raft_setup;
mod instruments;
pub use instruments::Instruments;
pub mod subscribers;

use crate::config::{DiscoveryStrategy, Role, Validated};
use crate::engine::declaration::{SchemaInfo, code_mismatch, first_difference};
use crate::engine::feed::{FeedRing, RingLimits};
use crate::engine::members::MemberFeed;
use crate::engine::memory::{Blob, Holding, MemState, MemStore};
use crate::engine::txn::DEFAULT_SHARD;
use crate::engine::{
    Batch, BatchOutcome, Committed, IndexHit, IndexRange, NodeSchema, OpResult, RequestId, Scope, Txn, TxnOutcome,
};
use crate::error::{Error, Result};
use crate::raft::slot::RaftSlot;
use crate::raft::types::{ClientWriteError, NodeId, NodeInfo, Raft, RaftError, RaftMetrics};
use crate::rpc::client::{Peers, status_error};
use crate::rpc::pb;
use crate::status::{NodeStatus, RaftRole};
use crate::storage::db::Db;
use crate::storage::log_store::RetentionPins;
use crate::storage::{identity, layout};
use link::Link;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subscribers::Subscribers;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// State shared by the node's tasks and gRPC services.
pub struct Runtime {
    pub(crate) cfg: Validated,
    pub(crate) data_dir: PathBuf,
    pub(crate) db: Db,
    /// The tables it declared and the code it registered.
    pub(crate) schema: Arc<NodeSchema>,
    /// Replicated tables, with the catalog they were applied under.
    pub(crate) mem: Arc<MemStore>,
    /// The change feed: what each applied entry changed (see `engine::feed`).
    pub(crate) feed: Arc<FeedRing>,
    /// Membership events (see `engine::members`).
    pub(crate) members: Arc<MemberFeed>,
    /// Local tables; writers serialise on `local_writer`.
    pub(crate) local: Arc<MemStore>,
    local_writer: Mutex<()>,
    applied_tx: Arc<watch::Sender<u64>>,
    raft: Arc<RaftSlot>,
    pub(crate) peers: Peers,
    /// The cluster this node belongs to (recorded in IDENTITY; changes on join).
    cluster_id: crate::rpc::auth::ClusterId,
    /// Serialises membership changes this node makes as leader.
    pub(crate) membership_lock: tokio::sync::Mutex<()>,
    proposer: mpsc::Sender<proposer::Pending>,
    /// Cancelled when the node shuts down; every background task ends on it.
    stop: CancellationToken,
    /// Every task the node spawned, awaited by shutdown.
    tasks: TaskTracker,
    /// Log entries held for replication streams (cores).
    pub(crate) pins: RetentionPins,
    /// The commit index as this core knows it.
    pub(crate) committed_tx: Arc<watch::Sender<u64>>,
    /// Replicants streaming from this core.
    pub(crate) subscribers: Subscribers,
    /// A replicant's link to the cores (`None` on a core).
    pub(crate) link: Option<Arc<Link>>,
    /// This process's request-id client number, and the next sequence number.
    request_client: u64,
    request_seq: AtomicU64,
    /// Writes sent again after an unknown outcome (for status and tests).
    pub(crate) write_retries: AtomicU64,
    /// Counters and histograms for `/metrics`.
    pub(crate) instruments: Instruments,
    /// Bumped each time this node's Raft state is wiped (join, leave).
    pub(crate) generation: AtomicU64,
    /// The node list this node proposes to form a cluster with (dns, k8s discovery), shown
    /// in its status so that the others initialise only when every member proposes it.
    pub(crate) forming_with: Mutex<Vec<String>>,
    /// Set when this core's Raft stopped by itself (a storage failure such as a full disk:
    /// `NodeFailed`), or was stopped on damage found in its store (`DamagedState`): the
    /// node can no longer take part and must be restarted, or rebuilt ([`Node::failed`]).
    failure: watch::Sender<Option<Error>>,
    /// This core's `RAFT_MARK` writer, one for every Raft instance it runs.
    pub(crate) mark: Arc<crate::storage::raft_mark::MarkWriter>,
    /// Whether the data dir had its IDENTITY before this start: a core with an identity but
    /// no Raft state lost its store (or had it set aside) and rejoins as a new member.
    pub(crate) had_identity: bool,
}

/// What became of one attempt to get a batch committed.
enum Attempt {
    Done((u64, BatchOutcome)),
    /// Certainly not proposed (no leader known, "not leader").
    NotSent,
    /// Certainly not proposed: the leader could not be reached (a refused or failed
    /// connection). A replicant relays the next attempt through its upstream core.
    Unreachable,
    /// Maybe proposed: only a batch with a request id may be sent again.
    Unknown(Error),
    Failed(Error),
}

impl Runtime {
    /// Opens the data dir (IDENTITY, then RocksDB and `RAFT_MARK`), loads the local tables
    /// and, on a core, starts Raft over the store after checking it against the mark. The
    /// proposer runs from here on; nothing else is started.
    pub(crate) async fn open(cfg: Validated, schema: NodeSchema) -> Result<Arc<Runtime>> {
        let config = cfg.config.clone();
        let replicant = cfg.role == Role::Replicant;
        let data_dir = config.node.data_dir.clone();
        let schema = Arc::new(schema);
        let initial = cfg.initial_cluster_id(&config.cluster.name, config.cluster.discovery_strategy);
        let (ident, created) = identity::open_or_create(&data_dir, cfg.name.as_str(), cfg.node_id, &initial)?;
        let cluster_id: crate::rpc::auth::ClusterId = Arc::new(RwLock::new(ident.cluster_id));
        let db = Db::open(&layout::db(&data_dir))?;
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
            members: members.clone(),
            local,
            local_writer: Mutex::new(()),
            applied_tx: Arc::new(watch::channel(0u64).0),
            raft: Arc::new(RaftSlot::default()),
            peers,
            cluster_id,
            membership_lock: tokio::sync::Mutex::new(()),
            proposer: ptx,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            pins: RetentionPins::default(),
            committed_tx: Arc::new(watch::channel(0u64).0),
            subscribers: Subscribers::new(members),
            link: replicant.then(|| Arc::new(Link::default())),
            request_client: crate::config::random_u64(),
            request_seq: AtomicU64::new(1),
            write_retries: AtomicU64::new(0),
            instruments: Default::default(),
            generation: AtomicU64::new(0),
            forming_with: Mutex::new(Vec::new()),
            failure: watch::channel(None).0,
            mark,
            had_identity: !created,
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
        Ok(rt)
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
        self.stop.cancel();
        let raft = self.raft().ok();
        if let Some(raft) = raft {
            raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
            // Nothing applies any more: sync what was applied and say so in the mark, so a
            // WAL that loses any of it before the next start is refused there.
            // (Best effort: a full disk fails the write, and the stop goes on.)
            if let Err(e) = self.db.sync_wal().and_then(|()| self.mark.stopped_at(self.applied_index())) {
                tracing::warn!(error = %e, "could not record the stop in RAFT_MARK");
            }
        }
        self.set_raft(None)?;
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait()).await.is_err() {
            return Err(Error::Timeout { what: "the node's tasks to end".into(), ms: 10_000 });
        }
        Ok(())
    }
}

impl Runtime {
    /// The running Raft instance.
    pub fn raft(&self) -> Result<Raft> {
        self.raft.get()
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

    /// The leader's id and address as this node knows them (a replicant: as its core said).
    pub fn leader(&self) -> Result<Option<(NodeId, NodeInfo)>> {
        if let Some(link) = &self.link {
            let s = link.status.borrow();
            return Ok(s.leader_id().zip(s.leader.clone()).map(|(id, (name, addr))| (id, NodeInfo { name, addr })));
        }
        let m = self.metrics()?;
        Ok(m.current_leader.and_then(|id| m.membership_config.membership().get_node(&id).map(|n| (id, n.clone()))))
    }

    pub fn name(&self) -> &str {
        self.cfg.name.as_str()
    }

    /// Whether this node is a leader that no majority has acknowledged for two election
    /// timeouts (it is on the minority side of a partition).
    pub fn cut_off(&self) -> bool {
        let Ok(m) = self.metrics() else { return false };
        m.current_leader == Some(self.cfg.node_id)
            && m.millis_since_quorum_ack.is_some_and(|ms| ms > 2 * self.cfg.election_timeout().as_millis() as u64)
    }

    pub fn is_replicant(&self) -> bool {
        self.link.is_some()
    }

    /// The commit index as this node knows it (a replicant: as its core last said).
    pub fn committed_index(&self) -> u64 {
        match &self.link {
            Some(link) => link.status.borrow().committed,
            None => *self.committed_tx.borrow(),
        }
    }

    pub(crate) fn next_request_id(&self) -> RequestId {
        RequestId { client: self.request_client, seq: self.request_seq.fetch_add(1, Ordering::Relaxed) }
    }

    /// Proposes `batch` on the leader (here or forwarded) and returns its index and outcome.
    ///
    /// Sends it again, without limit until `raft.write_timeout`, where nothing can have been
    /// proposed (no leader yet, a peer that says it is not the leader, a refused
    /// connection). Where the outcome is unknown (the leader failed mid-call), a batch with
    /// a request id is sent again up to `raft.write_retries` times with backoff: the state
    /// machine applies an id once, so the retry answers with the first outcome.
    pub async fn write_batch(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        let mut retries = 0u32;
        let mut backoff = self.cfg.write_retry_backoff();
        // A replicant whose last attempt could not reach the leader sends the next one
        // through its upstream core (see `relay_to`), and the one after to the leader again.
        let mut relay = false;
        loop {
            let mut changes = self.leader_changes();
            let leader_now = self.leader().ok().flatten().map(|(id, _)| id);
            // A leader cut off from its majority, or stalled (a long pause, a frozen VM),
            // never answers: bound each attempt, and give it up as soon as another leader
            // is known, resending to that one under the same request id.
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::select! {
                a = tokio::time::timeout(left, self.try_write(&batch, relay)) => match a {
                    Ok(a) => a,
                    Err(_) => Attempt::Unknown(Error::Timeout {
                        what: "the leader to commit the write".into(),
                        ms: self.cfg.write_timeout().as_millis() as u64,
                    }),
                },
                new = self.leader_moves_from(leader_now), if leader_now.is_some_and(|l| l != self.cfg.node_id) => {
                    Attempt::Unknown(Error::transport(
                        &format!("node {}", leader_now.unwrap_or_default()),
                        crate::error::TransportKind::NoAnswer,
                        format!("a new leader (node {new}) was elected while the write was in flight"),
                    ))
                }
            };
            let failed_to_reach = matches!(
                &attempt,
                Attempt::Unreachable | Attempt::Unknown(Error::Transport { .. } | Error::Timeout { .. })
            );
            relay = !relay && failed_to_reach && self.relay_to().is_some();
            // A leader that answered that its Raft stopped (it is shutting down, or failed)
            // leads no more: the next attempt waits for another leader instead of sending it
            // there again and spending the retries in a few backoffs.
            let mut until_another_leader = None;
            let pause = match attempt {
                Attempt::Done(done) => return Ok(done),
                Attempt::Failed(e) => return Err(e),
                // The next attempt goes another way at once.
                Attempt::Unreachable if relay => Duration::ZERO,
                Attempt::NotSent | Attempt::Unreachable => Duration::from_millis(100),
                Attempt::Unknown(e) => {
                    if !batch.retryable() {
                        return Err(e);
                    }
                    // A node shutting down does not try again itself: a forwarded batch
                    // goes back to its sender, which sends it to the next leader.
                    if retries >= self.cfg.config.raft.write_retries
                        || deadline <= Instant::now()
                        || self.stop.is_cancelled()
                    {
                        return Err(Error::WriteOutcomeUnknown { attempts: retries + 1, last: e.to_string() });
                    }
                    retries += 1;
                    self.write_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(error = %e, attempt = retries + 1, "write outcome unknown; sending it again under the same request id");
                    if matches!(
                        e,
                        Error::Raft(_) | Error::Shutdown | Error::NodeFailed { .. } | Error::WriteOutcomeUnknown { .. }
                    )
                        && leader_now.is_some_and(|l| l != self.cfg.node_id)
                    {
                        until_another_leader = leader_now;
                    }
                    let p = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    p
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && retries > 0 {
                // An earlier attempt may have been applied: say so, never "no leader".
                return Err(Error::WriteOutcomeUnknown {
                    attempts: retries + 1,
                    last: format!("no leader accepted a resend within {:?}", self.cfg.write_timeout()),
                });
            }
            if left.is_zero() {
                return Err(Error::NoLeader(format!(
                    "no leader accepted the write within {:?}; is a majority of cores running?",
                    self.cfg.write_timeout()
                )));
            }
            if let Some(stopped) = until_another_leader {
                let _ = tokio::time::timeout(left, self.leader_moves_from(Some(stopped))).await;
            } else if !pause.is_zero() {
                // Wake on the next leader change, or retry a little later.
                changes.wait(left.min(pause)).await;
            }
        }
    }

    async fn try_write(&self, batch: &Batch, relay: bool) -> Attempt {
        let leader = match self.leader() {
            Ok(l) => l,
            Err(e) => return Attempt::Failed(e),
        };
        if relay && let Some(core) = self.relay_to() {
            return self.classify_forward(self.forward_bounded(&core, batch, true).await);
        }
        match leader {
            Some((id, _)) if id == self.cfg.node_id && !self.is_replicant() => {
                if self.cut_off() {
                    // A leader no majority has heard from: do not append what cannot commit.
                    return Attempt::NotSent;
                }
                let raft = match self.raft() {
                    Ok(r) => r,
                    Err(e) => return Attempt::Failed(e),
                };
                match raft.client_write(batch.clone()).await {
                    Ok(resp) => Attempt::Done((resp.log_id.index, resp.data)),
                    // Raft answers so before appending, or after truncating the entry.
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Attempt::NotSent,
                    Err(e) => Attempt::Unknown(Error::Raft(e.to_string())),
                }
            }
            Some((_, leader)) => self.classify_forward(self.forward_bounded(&leader, batch, false).await),
            None => Attempt::NotSent,
        }
    }

    /// What a forward's answer means for the write.
    fn classify_forward(&self, answer: Result<(u64, BatchOutcome)>) -> Attempt {
        match answer {
            Ok(done) => Attempt::Done(done),
            // The peer is no longer the leader: nothing proposed.
            Err(Error::NotLeader { .. }) => Attempt::NotSent,
            // The call never left: nothing proposed.
            Err(e) if e.never_sent() => Attempt::Unreachable,
            // Proposed maybe: the leader failed mid-call, or Raft failed after appending, or
            // no answer came in time.
            // (`WriteOutcomeUnknown`: the leader gave up on it, shutting down or after its
            // own retries; sent again under its request id, it applies once.)
            Err(
                e @ (Error::Transport { .. }
                | Error::Raft(_)
                | Error::Shutdown
                | Error::NoLeader(_)
                | Error::Timeout { .. }
                | Error::WriteOutcomeUnknown { .. }),
            ) => Attempt::Unknown(e),
            Err(e) => Attempt::Failed(e),
        }
    }

    /// Forwards `batch` to `to` (`relay`: to a core that forwards it on to the leader),
    /// counted for `/metrics`. A batch that may be sent again (it has a request id) waits
    /// for an answer no longer than the election timeout's maximum: a leader that has not
    /// answered by then is stalled or cut off from this node, and the write goes again,
    /// another way or to a new leader, under the same id.
    async fn forward_bounded(&self, to: &NodeInfo, batch: &Batch, relay: bool) -> Result<(u64, BatchOutcome)> {
        self.instruments.forwarded_batches.inc();
        self.instruments.forwarded_txns.inc_by(batch.txns.len() as u64);
        if !batch.retryable() {
            return self.forward(to, batch, relay).await;
        }
        let bound = self.cfg.election_timeout() * 2;
        tokio::time::timeout(bound, self.forward(to, batch, relay)).await.unwrap_or_else(|_| {
            Err(Error::Timeout { what: format!("{} to answer a forwarded write", to.name), ms: bound.as_millis() as u64 })
        })
    }

    /// On a replicant: the core it streams from, when that is not the leader it knows (a
    /// write it cannot get to the leader goes there, to be forwarded on).
    fn relay_to(&self) -> Option<NodeInfo> {
        let link = self.link.as_ref()?;
        let s = link.status.borrow();
        let (name, addr) = s.upstream.clone()?;
        (s.leader.as_ref().map(|l| &l.0) != Some(&name)).then_some(NodeInfo { name, addr })
    }

    /// Returns once this node knows a leader other than `from`: that leader's id.
    async fn leader_moves_from(&self, from: Option<NodeId>) -> NodeId {
        let mut changes = self.leader_changes();
        loop {
            // Read in place: this runs beside every forwarded write, and the metrics change
            // with every append.
            if let Some(id) = changes.current()
                && Some(id) != from
            {
                return id;
            }
            changes.wait(Duration::from_secs(1)).await;
        }
    }

    /// A way to wait for the leader to change, as this node learns of it.
    fn leader_changes(&self) -> LeaderChanges {
        match (&self.link, self.raft()) {
            // A new subscriber has seen the value sent last.
            (Some(link), _) => LeaderChanges::Link(link.status.subscribe()),
            (None, Ok(raft)) => {
                // A clone of openraft's receiver carries the version that one saw, which is
                // never read: without marking the current metrics seen, `changed()` would
                // answer at once, every time, and every waiter would spin.
                let mut rx = raft.metrics();
                rx.borrow_and_update();
                LeaderChanges::Raft(rx)
            }
            (None, Err(_)) => LeaderChanges::Never,
        }
    }

    async fn forward(&self, to: &NodeInfo, batch: &Batch, relay: bool) -> Result<(u64, BatchOutcome)> {
        let mut client = self.peers.cluster(&to.addr)?;
        let req = pb::WriteRequest { batch: crate::codec::encode_versioned(crate::codec::WIRE_VERSION, batch)?, relay };
        let reply = client.write(req).await.map_err(|s| status_error(&to.name, s))?.into_inner();
        crate::codec::decode_versioned("forward reply", crate::codec::WIRE_VERSION, &reply.reply)
    }

    /// Serves a batch forwarded by a follower or replicant: merged into this leader's
    /// group commit (see [`proposer`]). A node that is not the leader says so at once
    /// (`NotLeader`, nothing proposed) rather than forwarding it on.
    pub async fn serve_forwarded(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        match self.leader()? {
            Some((id, _)) if id == self.cfg.node_id && !self.is_replicant() => {}
            other => return Err(self.not_leader(other.map(|(_, info)| info))),
        }
        let (tx, rx) = oneshot::channel();
        self.proposer.send(proposer::Pending::Forwarded { batch, reply: tx }).await.map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Serves a batch a replicant relays because it cannot reach the leader: on the leader
    /// as a forwarded batch; on another core, written through this core's own write path
    /// (forwarded to the leader it knows, sent again under the batch's request id as any
    /// of its writes: applied once however often it arrives). A replicant relays nothing.
    pub async fn serve_relayed(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        if self.is_replicant() {
            return Err(self.not_leader(None));
        }
        match self.leader()? {
            Some((id, _)) if id == self.cfg.node_id => self.serve_forwarded(batch).await,
            _ => self.write_batch(batch).await,
        }
    }

    /// [`Error::NotLeader`] from this node, naming the leader it knows.
    fn not_leader(&self, leader: Option<NodeInfo>) -> Error {
        Error::NotLeader { node: self.cfg.name.to_string(), leader: leader.map(|l| l.name) }
    }

    /// Writes a transaction of replicated tables; returns once committed and applied here.
    pub async fn transact(&self, txn: Txn) -> Result<Committed> {
        let started = Instant::now();
        let out = tracing::Instrument::instrument(self.transact_inner(txn), tracing::debug_span!("transact")).await;
        self.instruments.write_seconds.observe(started.elapsed().as_secs_f64());
        if out.is_err() {
            self.instruments.write_errors.inc();
        }
        out
    }

    async fn transact_inner(&self, mut txn: Txn) -> Result<Committed> {
        if txn.changes_catalog() {
            if let Some(done) = self.prepare_catalog_change(&txn).await? {
                return Ok(done);
            }
        } else {
            self.check_write(&mut txn).await?;
        }
        self.every_member_reads(&txn).await?;
        self.propose_checked(txn).await
    }

    /// Proposes `txn`, checked already, through this node's proposer; returns once this
    /// node applied it.
    async fn propose_checked(&self, txn: Txn) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.proposer.send(proposer::Pending::Txn { txn, reply: tx }).await.map_err(|_| Error::Shutdown)?;
        let (index, outcome) = rx.await.map_err(|_| Error::Shutdown)??;
        // Whatever the outcome, return once this node has applied the entry: after a
        // conflict, a retry then reads the write that caused it instead of the same stale
        // value (read-modify-write loops on a lagging follower or replicant).
        let applied = self.wait_applied(index, self.cfg.write_timeout()).await;
        match (applied, &outcome) {
            // Committed, so it will be applied here too: say so rather than fail the write.
            (Err(Error::Timeout { ms, .. }), TxnOutcome::Applied(_)) => return Err(Error::NotYetApplied { index, ms }),
            (Err(e), TxnOutcome::Applied(_)) => return Err(e),
            _ => {}
        }
        match outcome {
            TxnOutcome::Applied(results) => Ok(Committed { index, results }),
            TxnOutcome::Rejected(reason) => Err(Error::InvalidTxn(reason)),
            TxnOutcome::Conflict(reason) => Err(Error::Conflict(reason)),
        }
    }

    /// The index a linearizable read must wait for: the leader's commit index, confirmed
    /// by a quorum (openraft's read index). Asked of the leader from any other node.
    pub async fn read_index(&self) -> Result<u64> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        loop {
            let mut changes = self.leader_changes();
            let res = match self.leader()? {
                Some((id, _)) if id == self.cfg.node_id && !self.is_replicant() => self.read_index_as_leader().await,
                Some((_, leader)) => self.ask_read_index(&leader).await,
                None => Err(Error::NoLeader("no leader known".into())),
            };
            match res {
                Ok(i) => return Ok(i),
                Err(e @ (Error::NoLeader(_) | Error::Transport { .. } | Error::NotLeader { .. })) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    changes.wait(left.min(Duration::from_millis(100))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read index on this node, which must be the leader.
    pub async fn read_index_as_leader(&self) -> Result<u64> {
        if self.is_replicant() {
            return Err(Error::NotLeader { node: self.cfg.name.to_string(), leader: None });
        }
        match self.raft()?.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_node))
            }
            Err(RaftError::APIError(e)) => Err(Error::NoLeader(e.to_string())),
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    async fn ask_read_index(&self, leader: &NodeInfo) -> Result<u64> {
        let mut client = self.peers.cluster(&leader.addr)?;
        let reply = client.read_index(pb::Empty {}).await.map_err(|s| status_error(&leader.name, s))?;
        Ok(reply.into_inner().index)
    }

    /// Waits until this node has applied every write committed before the call: a read
    /// after it is linearizable.
    pub async fn barrier(&self) -> Result<()> {
        let index = self.read_index().await?;
        self.wait_applied(index, self.cfg.write_timeout()).await
    }

    /// Checks a transaction of replicated tables before it is proposed, under the catalog
    /// this node has applied: its shard is set from its tables when left at the default.
    /// A table this node declares but the log has not created yet is waited for (the node
    /// creates it: `runtime::catalog`), at most `raft.write_timeout`.
    async fn check_write(&self, txn: &mut Txn) -> Result<()> {
        // A table another node created may not have reached this node yet: before calling
        // a table unknown, catch up with what the cluster has committed (once).
        let mut caught_up = false;
        loop {
            let view = self.mem.load();
            if txn.shard == DEFAULT_SHARD
                && let Some(shard) = view.catalog.shard_of(txn)?
            {
                txn.shard = shard;
            }
            match view.catalog.check(txn, Scope::Replicated) {
                Ok(_) => return Ok(()),
                Err(Error::UnknownTable(name)) => {
                    if let Ok(ix) = self.schema.local.lookup(&name) {
                        return Err(Error::InvalidTxn(format!(
                            "table `{}` is local, not replicated: local and replicated writes do not mix",
                            self.schema.local.def(ix).name
                        )));
                    }
                    drop(view);
                    if self.schema.declares(&name).is_some() {
                        self.wait_created(&name).await?;
                    } else if !caught_up {
                        caught_up = true;
                        self.barrier().await?;
                    } else {
                        return Err(Error::UnknownTable(name));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a transaction of local tables, on this node only.
    pub fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        if let Err(Error::UnknownTable(name)) = self.schema.local.check(txn, Scope::Local)
            && self.mem.load().catalog.lookup(&name).is_ok()
        {
            return Err(Error::InvalidTxn(format!(
                "table `{name}` is replicated, not local: local and replicated writes do not mix"
            )));
        }
        self.schema.local.check(txn, Scope::Local)?;
        let _guard = self.local_writer.lock().map_err(|_| Error::Invariant("the local tables' writer lock is poisoned".into()))?;
        let mut work: MemState = (*self.local.snapshot()).clone();
        let outcome = crate::storage::apply::apply_local(&self.db, &mut work, txn)?;
        self.local.publish(work);
        match outcome {
            TxnOutcome::Applied(r) => Ok(r),
            TxnOutcome::Rejected(reason) => Err(Error::InvalidTxn(reason)),
            TxnOutcome::Conflict(reason) => Err(Error::Conflict(reason)),
        }
    }

    /// A replicant's state, upstream core, lag and shards (`None` on a core).
    pub fn replicant_status(&self) -> Option<crate::status::ReplicantStatus> {
        let link = self.link.as_ref()?;
        let mut report = link.report(self.applied_index());
        let view = self.mem.load();
        let mut shards: std::collections::BTreeMap<u16, crate::status::ShardStatus> = Default::default();
        for (def, t) in view.catalog.defs().iter().zip(&view.tables) {
            if !view.holding.follows(def.shard) {
                continue;
            }
            let s = shards.entry(def.shard).or_insert_with(|| crate::status::ShardStatus {
                shard: def.shard,
                tables: Vec::new(),
                records: 0,
                lag_entries: report.lag_entries,
            });
            s.tables.push(def.name.clone());
            s.records += t.len() as u64;
        }
        report.shards = shards.into_values().collect();
        Some(report)
    }

    /// This node's status.
    pub fn node_status(&self) -> NodeStatus {
        let mut status = NodeStatus {
            name: self.cfg.name.to_string(),
            node_id: self.cfg.node_id,
            role: self.cfg.role,
            raft_role: None,
            applied_index: self.applied_index(),
            term: 0,
            leader: None,
            addr: self.cfg.advertise.clone(),
            cluster_id: self.cluster_id(),
            replicant: None,
            subscribers: Vec::new(),
            committed: self.committed_index(),
            write_retries: self.write_retries.load(Ordering::Relaxed),
            forming_with: Vec::new(),
            schema: self.schema_info(),
            protocol: self.cfg.protocol(),
        };
        if let Some(link) = &self.link {
            status.leader = link.leader().map(|l| l.0);
            status.replicant = self.replicant_status();
            return status;
        }
        match self.metrics() {
            Ok(m) => {
                status.leader = m
                    .current_leader
                    .and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.name.clone()));
                status.raft_role = Some(match m.state {
                    openraft::ServerState::Leader => RaftRole::Leader,
                    openraft::ServerState::Follower => RaftRole::Follower,
                    openraft::ServerState::Candidate => RaftRole::Candidate,
                    openraft::ServerState::Learner => RaftRole::Learner,
                    openraft::ServerState::Shutdown => RaftRole::Shutdown,
                });
                status.term = m.current_term;
            }
            Err(_) => status.raft_role = Some(RaftRole::Shutdown),
        }
        status.subscribers = self.subscribers.list();
        status.forming_with = self.forming_with.lock().map(|f| f.clone()).unwrap_or_default();
        status
    }

    /// [`Error::SchemaMismatch`] when `peer` declares a replicated table this node declares
    /// too, but differently; [`Error::CodeMismatch`] when it registers a rule or extractor
    /// under another version (a peer that said nothing is taken at its word). Tables one
    /// side declares and the other does not are no conflict: the log creates them.
    pub(crate) fn check_schema(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        if theirs.is_empty() {
            return Ok(());
        }
        let ours = self.schema.info();
        if let Some((table, reason)) = first_difference(&ours.declared, &theirs.declared) {
            return Err(Error::SchemaMismatch { peer: peer.to_string(), table, reason });
        }
        if let Some((kind, name, ours, theirs)) = code_mismatch(&ours.registry, &theirs.registry) {
            return Err(Error::CodeMismatch { peer: peer.to_string(), kind, name, ours, theirs });
        }
        Ok(())
    }

    /// What this node says of its schema: its declarations, its code, and the code of the
    /// tables in the catalog it applied.
    pub(crate) fn schema_info(&self) -> SchemaInfo {
        let mut info = self.schema.info();
        info.uses = SchemaInfo::code_of(&self.mem.load().catalog.declarations());
        info
    }

    /// [`Error::Unregistered`] naming `peer` when it lacks code that a table of this node's
    /// catalog names: it could not apply the log (a joiner, a subscribing replicant).
    pub(crate) fn check_peer_has_code(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        if theirs.is_empty() {
            return Ok(());
        }
        theirs.must_have_code_of(peer, &self.schema_info())
    }

    /// [`Error::Unregistered`] naming this node when it lacks code that the tables of
    /// `peer`'s catalog name: it could not apply that cluster's log (checked before a join
    /// discards anything, and before a replicant follows a core).
    pub(crate) fn check_can_follow(&self, theirs: &SchemaInfo) -> Result<()> {
        self.schema_info().must_have_code_of(self.name(), theirs)
    }

    /// The node's RocksDB, for the crate's tests (a look at what is stored).
    #[cfg(any(test, feature = "test-util"))]
    pub fn store(&self) -> &Db {
        &self.db
    }

    /// Writes sent again after an unknown outcome since start.
    pub fn write_retries(&self) -> u64 {
        self.write_retries.load(Ordering::Relaxed)
    }

    /// Channels to the peers (tests cut and heal them: `partition`, `heal`).
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The shared cell of this node's cluster id, for the Raft calls' cluster check.
    pub(crate) fn cluster_id_cell(&self) -> crate::rpc::auth::ClusterId {
        self.cluster_id.clone()
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether this core refuses vote requests (see [`RaftSlot::refuses_votes`]).
    pub fn refuses_votes(&self) -> bool {
        self.raft.refuses_votes()
    }

    /// Sets whether this core refuses vote requests and campaigns (see `cluster::rebuild`).
    pub(crate) fn set_refuse_votes(&self, refuse: bool) {
        self.raft.set_refuse_votes(refuse)
    }

    /// The slot of this core's Raft instance, for the Raft gRPC service.
    pub(crate) fn raft_slot(&self) -> Arc<RaftSlot> {
        self.raft.clone()
    }

    /// Records that this node now belongs to `id`.
    pub(crate) fn adopt_cluster_id(&self, id: &str) -> Result<()> {
        identity::set_cluster_id(&self.data_dir, id)?;
        *self.cluster_id.write().map_err(|_| Error::Shutdown)? = id.to_string();
        Ok(())
    }
}

impl crate::engine::Tables for Runtime {
    fn node_name(&self) -> &str {
        self.name()
    }

    fn transact(&self, txn: Txn) -> impl std::future::Future<Output = Result<Committed>> + Send {
        Runtime::transact(self, txn)
    }

    fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        Runtime::transact_local(self, txn)
    }

    fn get(&self, table: &str, key: &[u8]) -> impl std::future::Future<Output = Result<Vec<Blob>>> + Send {
        std::future::ready(Runtime::get(self, table, key))
    }

    fn prefix(
        &self,
        table: &str,
        prefix: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::prefix(self, table, prefix))
    }

    fn dump(&self, table: &str) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::dump(self, table))
    }

    fn range(
        &self,
        table: &str,
        range: crate::engine::KeyRange,
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::range(self, table, &range))
    }

    fn count(&self, table: &str) -> impl std::future::Future<Output = Result<u64>> + Send {
        std::future::ready(Runtime::count(self, table))
    }

    fn index(
        &self,
        table: &str,
        index: &str,
        range: IndexRange,
    ) -> impl std::future::Future<Output = Result<Vec<IndexHit>>> + Send {
        std::future::ready(Runtime::index(self, table, index, &range))
    }
}

pub(crate) enum LeaderChanges {
    Raft(watch::Receiver<RaftMetrics>),
    Link(watch::Receiver<link::LinkStatus>),
    Never,
}

impl LeaderChanges {
    /// The leader's id as this node knows it now (none known: `None`), read in place.
    fn current(&mut self) -> Option<NodeId> {
        match self {
            LeaderChanges::Raft(rx) => rx.borrow_and_update().current_leader,
            LeaderChanges::Link(rx) => rx.borrow_and_update().leader_id(),
            LeaderChanges::Never => None,
        }
    }

    /// Returns on the next change, or after `max`.
    async fn wait(&mut self, max: Duration) {
        match self {
            LeaderChanges::Raft(rx) => {
                let _ = tokio::time::timeout(max, rx.changed()).await;
            }
            LeaderChanges::Link(rx) => {
                let _ = tokio::time::timeout(max, rx.changed()).await;
            }
            LeaderChanges::Never => tokio::time::sleep(max).await,
        }
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

impl Runtime {
    pub(crate) fn set_raft(&self, raft: Option<Raft>) -> Result<()> {
        self.raft.set(raft).map(|_| ())
    }

    /// Follows this node's applied index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub(crate) fn applied_sender(&self) -> Arc<watch::Sender<u64>> {
        self.applied_tx.clone()
    }

    pub fn strategy(&self) -> DiscoveryStrategy {
        self.cfg.config.cluster.discovery_strategy
    }
}

/// Wipes and restarts this node's Raft (see `cluster::membership::join`).
pub(crate) async fn raft_setup_reset(shared: &Arc<Runtime>) -> Result<()> {
    raft_setup::reset_raft(shared).await
}
