//! What a write's acknowledgement promises: its entry is on a majority's disks, the
//! leader's among them, before anything of it shows anywhere.

use crate::harness::*;
use mnema::Txn;
use mnema::storage::layout;
use mnema::storage::log_store::sync_hold;
use std::time::{Duration, Instant};

/// The leader replicates an entry while its own log sync runs (openraft 0.9 would append
/// to the end, fsync included, before sending), yet no node applies the entry, and the
/// writer hears nothing, until that sync is done: with the leader's sync held, both
/// followers hold the entry and the leader's Raft counts it replicated, and still nothing
/// applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaders_entry_replicates_before_its_own_sync_and_shows_nowhere_until_it() {
    let c = Cluster::start(3).await;
    let l = c.leader();
    let leader = &c.nodes[l];
    let done = leader.transact(Txn::new().put("kv", "warm", "up")).await.unwrap();
    c.wait_applied(done.index).await;
    let before = leader.applied_index();

    let db = layout::db(&c.dir.path().join(format!("n{}", l + 1)));
    sync_hold::hold(&db);
    let writer = {
        let node = leader.runtime().clone();
        tokio::spawn(async move { node.transact(Txn::new().put("kv", "held", "v")).await })
    };
    // Replicated to both followers, and acknowledged by them, with the leader's sync held.
    let mut index = 0;
    wait_until("both followers to hold the entry", Duration::from_secs(10), || {
        let m = leader.runtime().metrics().ok();
        let matched = m.as_ref().and_then(|m| m.replication.clone()).unwrap_or_default();
        if let Some(m) = &m {
            index = m.last_log_index.unwrap_or(0);
        }
        let acked = index > before
            && matched.iter().filter(|(id, _)| **id != leader.node_id()).count() == 2
            && matched.iter().all(|(_, at)| at.is_some_and(|at| at.index >= index));
        async move { acked }
    })
    .await;
    // For three heartbeats (the leader announces a commit index with each): nothing applied.
    let watch_until = Instant::now() + Duration::from_millis(150);
    while Instant::now() < watch_until {
        for n in &c.nodes {
            assert!(n.applied_index() < index, "{} applied entry {index} before the leader synced it", n.name());
        }
        assert!(!writer.is_finished(), "the write was answered before the leader synced it");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sync_hold::release(&db);
    let written = tokio::time::timeout(Duration::from_secs(10), writer).await.expect("answered").unwrap().unwrap();
    assert_eq!(written.index, index);
    c.wait_applied(index).await;
    for n in &c.nodes {
        assert_eq!(n.get_one("kv", b"held").unwrap().as_deref(), Some(&b"v"[..]), "{}", n.name());
    }
    c.shutdown().await;
}
