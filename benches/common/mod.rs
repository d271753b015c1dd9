//! Shared set-up for the benches: the crate's cluster harness (`mnema::testing`, feature
//! `test-util`) with benchmark settings.

#![allow(dead_code)]

use mnema::Node;
use mnema::testing::{Cluster, wait_until};
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
