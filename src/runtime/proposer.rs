//! Group commit: many callers' transactions become one log entry and one fsync.
//!
//! Callers queue transactions; one task takes everything queued (up to
//! `raft.max_batch_txns` transactions) as one [`Batch`] whenever fewer than
//! `raft.max_inflight_batches` batches are in flight. Under light load a batch is one
//! transaction and waits for nothing; under heavy load callers queue while earlier batches
//! commit, so batches grow with the load and the fsync cost per transaction falls.
//!
//! On the leader, batches forwarded by followers and replicants join the same queue: they
//! are merged with the leader's own transactions into one entry, each keeping its request
//! id (so a resent one still applies once), instead of becoming an entry each. Writes that
//! start on every node then share the leader's group commit.

use super::Runtime;
use crate::engine::{Batch, BatchOutcome, Txn, TxnOutcome};
use crate::error::{Error, Result};
use crate::stages::Stage;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub(crate) enum Pending {
    /// A transaction of a caller on this node.
    Txn { txn: Txn, reply: oneshot::Sender<Result<(u64, TxnOutcome)>> },
    /// A batch another node forwarded to this one, the leader.
    Forwarded { batch: Batch, reply: oneshot::Sender<Result<(u64, BatchOutcome)>> },
}

impl Pending {
    fn txns(&self) -> usize {
        match self {
            Pending::Txn { .. } => 1,
            Pending::Forwarded { batch, .. } => batch.txns.len().max(1),
        }
    }
}

pub(crate) async fn run(shared: Arc<Runtime>, mut rx: mpsc::Receiver<Pending>, max_batch: usize, max_inflight: usize) {
    let inflight = Arc::new(Semaphore::new(max_inflight));
    loop {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let first = tokio::select! {
            p = rx.recv() => p,
            _ = shared.stopped() => None,
        };
        let Some(first) = first else { return };
        let mut txns = first.txns();
        let mut pending = vec![first];
        while txns < max_batch {
            match rx.try_recv() {
                Ok(p) => {
                    txns += p.txns();
                    pending.push(p);
                }
                Err(_) => break,
            }
        }
        let rt = shared.clone();
        shared.spawn(async move {
            let _permit = permit;
            submit(&rt, pending).await;
        });
    }
}

/// Where each input's outcome goes.
enum Reply {
    Txns(Vec<oneshot::Sender<Result<(u64, TxnOutcome)>>>),
    Forwarded(oneshot::Sender<Result<(u64, BatchOutcome)>>),
}

async fn submit(shared: &Runtime, pending: Vec<Pending>) {
    let mut txns = Vec::new();
    let mut own = Vec::new();
    let mut batches = Vec::new();
    let mut replies = Vec::new();
    for p in pending {
        match p {
            Pending::Txn { txn, reply } => {
                txns.push(txn);
                own.push(reply);
            }
            Pending::Forwarded { batch, reply } => {
                batches.push(batch);
                replies.push(Reply::Forwarded(reply));
            }
        }
    }
    if !txns.is_empty() {
        batches.insert(0, Batch::new(txns, Some(shared.next_request_id())));
        replies.insert(0, Reply::Txns(own));
    }
    let (batch, lens) = Batch::merge(batches);
    shared.instruments.batch_txns.observe(batch.txns.len() as f64);
    crate::stages::proposed(shared.cfg.node_id);
    let written = shared.write_batch(batch).await;
    if let Ok((index, _)) = &written {
        crate::stages::mark_node(Stage::Returned, shared.cfg.node_id, *index, *index);
    }
    let pieces = match written {
        Ok((index, outcome)) => outcome.split(&lens).map(|p| (index, p)).ok_or_else(|| {
            Error::Raft(format!("the state machine's outcome does not fit the {} batches merged", lens.len()))
        }),
        Err(e) => Err(e),
    };
    match pieces {
        Ok((index, pieces)) => replies.into_iter().zip(pieces).for_each(|(r, piece)| r.send(Ok((index, piece)))),
        Err(e) => replies.into_iter().for_each(|r| r.send(Err(e.clone()))),
    }
}

impl Reply {
    /// Answers this input's callers with their piece of the outcome, or the error.
    fn send(self, result: Result<(u64, BatchOutcome)>) {
        match (self, result) {
            (Reply::Forwarded(tx), r) => {
                let _ = tx.send(r);
            }
            (Reply::Txns(txs), Ok((index, piece))) => {
                for (tx, o) in txs.into_iter().zip(piece.outcomes) {
                    let _ = tx.send(Ok((index, o)));
                }
            }
            (Reply::Txns(txs), Err(e)) => {
                for tx in txs {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }
}
