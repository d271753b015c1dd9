//! The expiry sweep: sessions past their expiry interval, retained messages past their
//! expiry time and ended bans are deleted through Raft, by the leader only, so every
//! node removes the same records at the same log index (never each node on its own).
//!
//! Each removal is conditional on the record being unchanged since the sweep read it: a
//! session resumed meanwhile is not deleted.

use super::{BANNED, RETAINED, SESSIONS};
use crate::engine::Txn;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use std::time::Duration;

/// Deletes what has expired at `now_ms`; returns how many records went.
pub async fn sweep_once(node: &Runtime, now_ms: u64) -> Result<usize> {
    let mut doomed: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut scan = |table: &'static str, expired: &dyn Fn(&[u8]) -> Result<bool>| -> Result<()> {
        if node.table_ix(table).is_err() {
            return Ok(());
        }
        for (k, v) in node.dump(table)? {
            if expired(&v)? {
                doomed.push((table, k.to_vec(), v.to_vec()));
            }
        }
        Ok(())
    };
    scan(SESSIONS, &|v| Ok(super::sessions::TABLE.values(&[v.into()])?.pop().is_some_and(|s| s.expired(now_ms))))?;
    scan(BANNED, &|v| Ok(super::banned::TABLE.values(&[v.into()])?.pop().is_some_and(|b| b.ended(now_ms))))?;
    scan(RETAINED, &|v| {
        let r: Option<super::retained::Retained> =
            crate::engine::typed::Typed::<String, super::retained::Retained>::decode_value(v).ok();
        Ok(r.is_some_and(|r| r.expires_at_ms.is_some_and(|t| t <= now_ms)))
    })?;
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
pub(crate) async fn run(node: std::sync::Arc<crate::runtime::Runtime>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = node.stopped() => return,
        }
        let leader = node.leader().ok().flatten().is_some_and(|(id, _)| id == node.cfg.node_id);
        if leader && let Err(e) = sweep_once(&node, super::time::now_ms()).await {
            tracing::warn!(error = %e, "expiry sweep failed; will try again");
        }
    }
}
