//! Shared set-up for the benches: the crate's cluster harness (`mnema::testing`, feature
//! `test-util`) with benchmark settings.

#![allow(dead_code)]

use mnema::schema::routes::{self, Dest};
use mnema::testing::{Cluster, wait_until};
use mnema::{Node, Txn};
use std::time::Duration;

/// The tables the benches use: the broker's and a `kv` set among them.
pub fn tables() -> Vec<mnema::TableDef> {
    mnema::testing::test_tables()
}

/// A cluster of benchmark cores.
pub type Bench = Cluster;

/// Starts `n` static-seed cores with the default Raft timings (the harness's are tuned for
/// fast tests; a bench measures what a deployment runs) and rare snapshots (a bench
/// measures writes, not compaction), and waits for a leader.
pub async fn cluster(n: u16) -> Bench {
    Cluster::start_with(n, settings).await
}

/// The benches' settings on top of the harness's config (see [`cluster`]).
pub fn settings(c: &mut mnema::NodeConfig) {
    c.raft = mnema::config::RaftSection { snapshot_after_entries: 100_000, ..Default::default() };
}

/// Waits (bounded) until a replicant streams in state `normal`.
pub async fn wait_normal(node: &Node) {
    wait_until("the replicant to be normal", Duration::from_secs(300), || async {
        node.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
}

/// Adds `total` routes through `node` in transactions of 2,000 and waits until `node` has
/// applied them; returns the last one's index. 90% are exact filters `d/<i>/t`, 10%
/// wildcard ones, `w/<j>/+/x` and `w/<j>/#` alternately, each to one of three broker nodes
/// (the set `benches/routes.rs`, `benches/peers.rs` and the Mnesia escript all use).
pub async fn load_routes(node: &Node, total: u64) -> u64 {
    let exact = total * 9 / 10;
    let dests: Vec<Dest> = (0..3).map(|n| Dest::Node(format!("b{n}@127.0.0.1"))).collect();
    let mut txn = Txn::new();
    let mut last = 0;
    for i in 0..total {
        let filter = if i < exact {
            format!("d/{i}/t")
        } else if i % 2 == 0 {
            format!("w/{}/+/x", i - exact)
        } else {
            format!("w/{}/#", i - exact - 1)
        };
        txn = routes::add(txn, &filter, &dests[(i % 3) as usize]).expect("route");
        if txn.ops.len() == 2000 {
            last = node.transact(std::mem::take(&mut txn)).await.expect("load routes").index;
        }
    }
    if !txn.ops.is_empty() {
        last = node.transact(txn).await.expect("load routes").index;
    }
    node.wait_applied(last, Duration::from_secs(120)).await.expect("applied");
    last
}

/// 4,096 topics for the routes of [`load_routes`]: alternately an exact filter's topic
/// and one that two wildcard filters (`+/x` and `#`) match.
pub fn route_topics(total: u64) -> Vec<String> {
    let (exact, wild) = (total * 9 / 10, total - total * 9 / 10);
    (0..4096u64)
        .map(|i| {
            if i % 2 == 0 {
                format!("d/{}/t", (i * 104_729) % exact)
            } else {
                format!("w/{}/y/x", ((i * 7919) % (wild / 2)) * 2)
            }
        })
        .collect()
}
