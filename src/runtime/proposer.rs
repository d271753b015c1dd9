//! Group commit: many callers' transactions become one log entry and one fsync.
//!
//! Callers queue transactions; one task takes everything queued (up to
//! `raft.max_batch_txns`) as one [`Batch`] whenever fewer than `raft.max_inflight_batches`
//! batches are in flight. Under light load a batch is one transaction and waits for
//! nothing; under heavy load callers queue while earlier batches commit, so batches grow
//! with the load and the fsync cost per transaction falls.

use super::Runtime;
use crate::engine::{Batch, Txn, TxnOutcome};
use crate::error::{Error, Result};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub(crate) struct Pending {
    pub txn: Txn,
    pub reply: oneshot::Sender<Result<(u64, TxnOutcome)>>,
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
        let mut pending = vec![first];
        while pending.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => pending.push(p),
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

async fn submit(shared: &Runtime, pending: Vec<Pending>) {
    let (txns, replies): (Vec<Txn>, Vec<_>) = pending.into_iter().map(|p| (p.txn, p.reply)).unzip();
    let n = txns.len();
    match shared.write_batch(Batch { txns, request: Some(shared.next_request_id()) }).await {
        Ok((index, outcome)) if outcome.outcomes.len() == n => {
            for (reply, o) in replies.into_iter().zip(outcome.outcomes) {
                let _ = reply.send(Ok((index, o)));
            }
        }
        Ok((_, outcome)) => {
            let msg = format!("state machine answered {} outcomes for {n} transactions", outcome.outcomes.len());
            for reply in replies {
                let _ = reply.send(Err(Error::Raft(msg.clone())));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
