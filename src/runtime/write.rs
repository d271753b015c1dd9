//! The write path: a transaction checked against the catalog and the members' protocol
//! versions, proposed through the group-commit [`super::proposer`] on the leader (forwarded
//! over gRPC from a follower, relayed through a core by a replicant that cannot reach the
//! leader, sent again under its request id where the outcome is unknown), and answered
//! once this node has applied it; and writes of local tables.

use crate::raft::frame::Kind;
use super::{Runtime, link, proposer};
use crate::engine::memory::MemState;
use crate::engine::txn::DEFAULT_SHARD;
use crate::engine::{
    Batch, BatchOutcome, Committed, OpResult, RequestId, Scope, Txn, TxnOutcome,
};
use crate::error::{Error, Result};
use crate::raft::types::{ClientWriteError, NodeId, NodeInfo, RaftError, RaftMetrics};
use crate::rpc::client::status_error;
use crate::rpc::pb;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

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
    ///
    /// A node that is shutting down stops trying at once (its gRPC server waits for the
    /// calls in flight): `Shutdown` if nothing can have been proposed, else
    /// `WriteOutcomeUnknown`, which a forwarding node or client sends again elsewhere.
    pub async fn write_batch(&self, batch: Batch) -> Result<(u64, BatchOutcome)> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        let mut retries = 0u32;
        let mut backoff = self.cfg.write_retry_backoff();
        // A replicant whose last attempt could not reach the leader sends the next one
        // through its upstream core (see `relay_to`), and the one after to the leader again.
        let mut relay = false;
        loop {
            if self.stop.is_cancelled() {
                return Err(match retries {
                    0 => Error::Shutdown,
                    _ => Error::WriteOutcomeUnknown { attempts: retries + 1, last: "this node is shutting down".into() },
                });
            }
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
                // Given up as the node stops: it may have been sent.
                () = self.stop.cancelled() => Attempt::Unknown(Error::Shutdown),
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
            // Either wait ends as the node stops (the loop's first check answers).
            if let Some(stopped) = until_another_leader {
                tokio::select! {
                    _ = tokio::time::timeout(left, self.leader_moves_from(Some(stopped))) => {}
                    () = self.stop.cancelled() => {}
                }
            } else if !pause.is_zero() {
                // Wake on the next leader change, or retry a little later.
                tokio::select! {
                    () = changes.wait(left.min(pause)) => {}
                    () = self.stop.cancelled() => {}
                }
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
    pub(super) fn leader_changes(&self) -> LeaderChanges {
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

    /// Sends `batch` to `to` over frames (a pooled connection) or, where frames are off or
    /// `to` has none, as a gRPC `Write` call; both reach the same handling there
    /// (`cluster::service::serve_write`).
    async fn forward(&self, to: &NodeInfo, batch: &Batch, relay: bool) -> Result<(u64, BatchOutcome)> {
        let batch = crate::codec::encode_versioned(crate::codec::WIRE_VERSION, batch)?;
        let kind = if relay { Kind::Relay } else { Kind::Forward };
        let reply = match self.forwards.call(&self.peers, &to.name, &to.addr, kind, &batch).await.transpose()? {
            Some(reply) => reply,
            None => {
                let mut client = self.peers.cluster(&to.addr)?;
                let req = pb::WriteRequest { batch, relay };
                client.write(req).await.map_err(|s| status_error(&to.name, s))?.into_inner().reply
            }
        };
        crate::codec::decode_versioned("forward reply", crate::codec::WIRE_VERSION, &reply)
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
    pub(super) fn not_leader(&self, leader: Option<NodeInfo>) -> Error {
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
        self.members_can_apply(&txn).await?;
        self.propose_checked(txn).await
    }

    /// Proposes `txn`, checked already, through this node's proposer; returns once this
    /// node applied it.
    pub(super) async fn propose_checked(&self, txn: Txn) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.proposer.send(proposer::Pending::Txn { txn, reply: tx }).await.map_err(|_| Error::Shutdown)?;
        let (index, outcome) = rx.await.map_err(|_| Error::Shutdown)??;
        // Whatever the outcome, return once this node has applied the entry: after a
        // conflict, a retry then reads the write that caused it instead of the same stale
        // value (read-modify-write loops on a lagging follower or replicant).
        let waiting = Instant::now();
        let applied = self.wait_applied(index, self.cfg.write_timeout()).await;
        match (applied, &outcome) {
            // Committed, so it will be applied here too (or by the cluster, if this node
            // stops first): say so rather than fail the write.
            (Err(Error::Timeout { ms, .. }), TxnOutcome::Applied(_)) => return Err(Error::NotYetApplied { index, ms }),
            (Err(Error::Shutdown), TxnOutcome::Applied(_)) => {
                return Err(Error::NotYetApplied { index, ms: waiting.elapsed().as_millis() as u64 });
            }
            (Err(e), TxnOutcome::Applied(_)) => return Err(e),
            _ => {}
        }
        match outcome {
            TxnOutcome::Applied(results) => Ok(Committed { index, results }),
            TxnOutcome::Rejected(reason) => Err(Error::InvalidTxn(reason)),
            TxnOutcome::Conflict(reason) => Err(Error::Conflict(reason)),
        }
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
    pub(super) async fn wait(&mut self, max: Duration) {
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
