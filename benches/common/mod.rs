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
    // `MNEMA_PEERS_RAFT_TRANSPORT=grpc`: Raft between the in-process cores over gRPC instead
    // of the default frames, to compare the two in one session.
    if std::env::var("MNEMA_PEERS_RAFT_TRANSPORT").is_ok_and(|v| v == "grpc") {
        c.raft.transport = mnema::config::RaftTransport::Grpc;
    }
    // `MNEMA_PEERS_RING_BYTES=<n>`: the change feed's ring bound (`feed.ring_bytes`), to
    // tell its share of the memory probes from the records'.
    if let Some(bytes) = std::env::var("MNEMA_PEERS_RING_BYTES").ok().and_then(|v| v.parse().ok()) {
        c.feed.ring_bytes = bytes;
    }
}

/// Waits (bounded) until a replicant streams in state `normal`.
pub async fn wait_normal(node: &Node) {
    wait_until("the replicant to be normal", Duration::from_secs(300), || async {
        node.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
}

/// Waits (bounded) until no node of `nodes` has a RocksDB flush or compaction running or
/// pending, so a read cell after a bulk load measures reads, not the load's background
/// work on the same two cores; returns how long that took.
pub async fn quiesce(nodes: &[Node]) -> Duration {
    let t0 = std::time::Instant::now();
    wait_until("RocksDB flushes and compactions to finish", Duration::from_secs(120), || async {
        nodes.iter().all(|n| {
            n.runtime().store().int_properties().iter().all(|(name, v)| match *name {
                "num-running-compactions" | "num-running-flushes" | "estimate-pending-compaction-bytes" => *v == 0,
                _ => true,
            })
        })
    })
    .await;
    t0.elapsed()
}

/// A set of routes and the topics published against them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMix {
    /// 90% exact filters `d/<i>/t`, 10% wildcard ones, `w/<j>/+/x` and `w/<j>/#`
    /// alternately; topics alternately hit an exact filter and two wildcard ones.
    Harness,
    /// Multi-tenant: 1,000 tenants; 88% exact device filters `t<T>/d<D>/up`, 12% wildcard:
    /// one `t<T>/+/up` per tenant and device subtrees `t<T>/d<D>/#`. A topic `t<T>/d<D>/up`
    /// hits its exact filter and its tenant's `+`, and its device's `#` where there is one.
    Tenants,
}

/// Tenants of [`RouteMix::Tenants`].
pub const TENANTS: u64 = 1000;

impl RouteMix {
    /// The share of exact filters, in percent.
    pub fn exact_percent(self) -> u64 {
        match self {
            RouteMix::Harness => 90,
            RouteMix::Tenants => 88,
        }
    }

    /// The `i`-th of `total` filters.
    pub fn filter(self, i: u64, total: u64) -> String {
        let exact = total * self.exact_percent() / 100;
        match self {
            RouteMix::Harness if i < exact => format!("d/{i}/t"),
            RouteMix::Harness if i % 2 == 0 => format!("w/{}/+/x", i - exact),
            RouteMix::Harness => format!("w/{}/#", i - exact - 1),
            RouteMix::Tenants if i < exact => format!("t{}/d{}/up", i % TENANTS, i / TENANTS),
            RouteMix::Tenants if i - exact < TENANTS => format!("t{}/+/up", i - exact),
            RouteMix::Tenants => {
                let k = i - exact - TENANTS;
                format!("t{}/d{}/#", k % TENANTS, k / TENANTS)
            }
        }
    }

    /// 4,096 topics published against the `total` routes of this mix.
    pub fn topics(self, total: u64) -> Vec<String> {
        match self {
            RouteMix::Harness => route_topics(total),
            RouteMix::Tenants => {
                let devices = (total * self.exact_percent() / 100 / TENANTS).max(1);
                (0..4096u64).map(|i| format!("t{}/d{}/up", (i * 7919) % TENANTS, (i * 104_729) % devices)).collect()
            }
        }
    }
}

/// Adds `total` routes of [`RouteMix::Harness`] through `node` (the set
/// `benches/routes.rs`, `benches/peers.rs` and the Mnesia escript all use); see
/// [`load_route_mix`].
pub async fn load_routes(node: &Node, total: u64) -> u64 {
    load_route_mix(node, total, RouteMix::Harness).await
}

/// Adds `total` routes of `mix` through `node` in transactions of 2,000, each to one of
/// three broker nodes, and waits until `node` has applied them; returns the last one's
/// index.
pub async fn load_route_mix(node: &Node, total: u64, mix: RouteMix) -> u64 {
    let dests: Vec<Dest> = (0..3).map(|n| Dest::Node(format!("b{n}@127.0.0.1"))).collect();
    let last = load_batched(node, total, "load routes", |txn, i| {
        routes::add(txn, &mix.filter(i, total), &dests[(i % 3) as usize]).expect("route")
    })
    .await;
    node.wait_applied(last, Duration::from_secs(120)).await.expect("applied");
    last
}

/// Writes through `node` what `add` puts into a transaction for each of `0..total`, in
/// transactions of 2,000 ops (the last one partial); returns the last one's index.
/// `what` names the load in a failure.
pub async fn load_batched(node: &Node, total: u64, what: &str, mut add: impl FnMut(Txn, u64) -> Txn) -> u64 {
    let mut txn = Txn::new();
    let mut last = 0;
    for i in 0..total {
        txn = add(txn, i);
        if txn.ops.len() == 2000 {
            last = node.transact(std::mem::take(&mut txn)).await.expect(what).index;
        }
    }
    if !txn.ops.is_empty() {
        last = node.transact(txn).await.expect(what).index;
    }
    last
}

/// The key of the `i`th record [`load_kv`] adds (above the harness's other `kv` keys).
pub fn kv_key(i: u64) -> [u8; 8] {
    (i + 1_000_000_000).to_be_bytes()
}

/// Adds `total` records of an 8-byte key ([`kv_key`]) and a 32-byte value to `kv` through
/// `node` in transactions of 2,000, and waits until `node` has applied them; returns the
/// last one's index.
pub async fn load_kv(node: &Node, total: u64) -> u64 {
    let last = load_batched(node, total, "load kv", |txn, i| txn.put("kv", kv_key(i), [0xcd; 32])).await;
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
