//! The expiry sweep: sessions past their expiry interval, retained messages past their
//! expiry time and ended bans are deleted through Raft, by the leader only, so every
//! node removes the same records at the same log index (never each node on its own). It
//! finds them through each table's expiry index: O(expired), not O(records).
//!
//! Each removal is conditional on the record being unchanged since the sweep read it: a
//! session resumed meanwhile is not deleted.

use super::{BANNED, RETAINED, SESSIONS};
use crate::engine::{IndexRange, Txn};
use crate::error::{Error, Result};
use crate::runtime::{TablesRoom, TablesTask};
use std::time::Duration;

/// The most records of one table one sweep deletes; the next sweep goes on from there.
const MAX_PER_TABLE: usize = 10_000;

/// Deletes what has expired at `now_ms`; returns how many records went.
///
/// Each table's expiry index (`by_expiry`: 8-byte big-endian deadlines) is read up to
/// `now_ms`, so a sweep reads the expired records only, never the whole table.
pub(crate) async fn sweep_once(node: TablesRoom<'_>, now_ms: u64) -> Result<usize> {
    let mut doomed: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::new();
    for (table, index) in [
        (SESSIONS, super::sessions::BY_EXPIRY),
        (BANNED, super::banned::BY_EXPIRY),
        (RETAINED, super::retained::BY_EXPIRY),
    ] {
        let due = IndexRange::up_to(now_ms.to_be_bytes()).limit(MAX_PER_TABLE);
        match node.index(table, index, &due) {
            Ok(hits) => doomed.extend(hits.into_iter().map(|h| (table, h.key.to_vec(), h.value.to_vec()))),
            // A broker that declares the table without its index (or not at all).
            Err(Error::UnknownTable(_) | Error::UnknownIndex { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut removed = 0;
    let writes = doomed.into_iter().map(|(table, k, v)| {
        let txn = Txn::new().require_value(table, k.clone(), v).delete(table, k);
        node.transact(txn)
    });
    for res in futures::future::join_all(writes).await {
        match res {
            Ok(_) => removed += 1,
            Err(Error::Conflict(_)) => {} // changed since the read: not expired any more
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Sweeps every `every` while this node is the leader, until the node stops.
pub(crate) async fn run(node: TablesTask, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = node.stopped() => return,
        }
        if node.room().leads()
            && let Err(e) = sweep_once(node.room(), super::time::now_ms()).await
        {
            tracing::warn!(error = %e, "expiry sweep failed; will try again");
        }
    }
}
