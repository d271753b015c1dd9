//! Secondary indexes on running nodes: every index answers as a scan of its table would, on
//! every core and replicant, after random writes, after a restart and after a bootstrap;
//! reads of an unknown index are refused by name, locally and over gRPC.

use crate::harness::*;
use mnema::engine::typed::Typed;
use mnema::engine::{Batch, TxnOutcome};
use mnema::schema::routes::{self, Dest};
use mnema::schema::sessions::{self, Session};
use mnema::schema::{CLIENT_STATUS, ROUTES, SESSIONS, client_status};
use mnema::{Client, Error, IndexHit, IndexRange, Node, ReplicantState, Scope, Txn};
use std::collections::BTreeMap;
use std::time::Duration;

/// Checks that every index of every replicated table of `node` holds exactly the entries a
/// scan of the table computes with the index's extractor.
fn assert_indexes_match_scans(node: &Node) {
    let mut checked = 0;
    for def in test_tables().iter().filter(|d| d.scope == Scope::Replicated && !d.indexes.is_empty()) {
        let records = node.dump(&def.name).expect("dump");
        for index in &def.indexes {
            let mut want = Vec::new();
            for (k, v) in &records {
                for ikey in index.extractor.keys(k, v).expect("a stored record passes its extractor") {
                    want.push(IndexHit { index_key: ikey.into(), key: k.clone(), value: v.clone() });
                }
            }
            want.sort();
            let got = node.index(&def.name, &index.name, &IndexRange::all()).expect("index read");
            assert_eq!(got, want, "{}: {}.{} differs from a scan", node.name(), def.name, index.name);
            checked += got.len();
        }
    }
    assert!(checked > 0, "{}: no index entry at all: the test wrote nothing indexed", node.name());
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const SESSIONS_T: Typed<String, Session> = Typed::new(SESSIONS);

fn session(rng: &mut Rng, client: &str) -> Session {
    Session {
        client_id: client.into(),
        subscriptions: BTreeMap::new(),
        expiry_interval_s: rng.below(100),
        owner: format!("n{}", rng.below(3)),
        connected: rng.below(2) == 0,
        created_at_ms: 1,
        updated_at_ms: 1000 + rng.below(10_000),
    }
}

/// One random write (or a write every node refuses) through a random node.
async fn random_write(rng: &mut Rng, nodes: &[&Node]) -> u64 {
    let node = nodes[rng.below(nodes.len() as u64) as usize];
    let filters = ["a/b", "a/+", "#", "x/#", "c"];
    let filter = filters[rng.below(filters.len() as u64) as usize];
    let dest = match rng.below(3) {
        0 => Dest::Node(format!("n{}", rng.below(3))),
        _ => Dest::Shared { group: "g".into(), node: format!("n{}", rng.below(3)) },
    };
    let client = format!("c{}", rng.below(12));
    let txn = match rng.below(9) {
        0 | 1 => routes::add(Txn::new(), filter, &dest).expect("route"),
        2 => routes::delete(Txn::new(), filter, &dest).expect("route"),
        3 => Txn::new().delete(ROUTES, filter),
        4 | 5 => SESSIONS_T.put(Txn::new(), &client, &session(rng, &client)).expect("session"),
        6 => Txn::new().delete(SESSIONS, client.as_bytes()),
        7 => {
            let on = format!("n{}", rng.below(3));
            return match rng.below(2) {
                0 => client_status::connected(node, &client, &on, 5).await.expect("connected").index,
                _ => client_status::disconnected(node, &client, 6).await.expect("disconnected").index,
            };
        }
        _ => Txn::new().clear(ROUTES),
    };
    node.transact(txn).await.expect("write").index
}

async fn wait_normal(r: &Node) {
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_index_answers_as_a_scan_on_every_node_after_writes_a_restart_and_a_bootstrap() {
    let mut c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    wait_normal(&r).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut last = 0;
    for _ in 0..300 {
        let nodes: Vec<&Node> = c.nodes.iter().chain([&r]).collect();
        last = last.max(random_write(&mut rng, &nodes).await);
    }
    // A batch that skipped the proposers' checks: a session value no extractor reads is
    // rejected at apply on every node, and indexes nothing.
    let leader = &c.nodes[c.leader()];
    let bad = Batch::new(vec![Txn::new().put(SESSIONS, "c0", "{\"not\": \"a session\"}")], None);
    let (index, outcome) = leader.runtime().serve_forwarded(bad).await.expect("committed");
    assert!(matches!(outcome.outcomes[0], TxnOutcome::Rejected(_)), "{outcome:?}");
    last = last.max(index);
    c.wait_applied(last).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant applies");
    for node in c.nodes.iter().chain([&r]) {
        assert_indexes_match_scans(node);
    }
    // The sessions of an owner, and the clients online on a node, through their indexes.
    let owned = sessions::owned_by(&c.nodes[0], "n1").await.expect("owned_by");
    let scanned: Vec<Session> = SESSIONS_T
        .records(&c.nodes[0].dump(SESSIONS).expect("dump"))
        .expect("decode")
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.owner == "n1")
        .collect();
    let mut scanned = scanned;
    scanned.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(owned, scanned);
    // A restarted core loads its records and rebuilds every index from them.
    let i = c.follower();
    let restarted = c.nodes.remove(i);
    let n = mnema::testing::number_of(restarted.name()).expect("a harness name");
    restarted.shutdown().await.expect("shutdown");
    let node = Node::start(config(c.dir.path(), c.base, n, 3), test_tables()).await.expect("restart");
    node.wait_applied(last, Duration::from_secs(20)).await.expect("restarted core catches up");
    assert_indexes_match_scans(&node);
    c.nodes.push(node);
    // A replicant that bootstraps rebuilds them from the snapshot.
    r.shutdown().await.expect("stop replicant");
    let r = c.replicant(5).await;
    wait_normal(&r).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("bootstrapped replicant");
    assert_indexes_match_scans(&r);
    r.shutdown().await.expect("stop replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_index_is_refused_by_name_locally_and_over_grpc_and_pages_follow_each_other() {
    let c = Cluster::start(1).await;
    let node = &c.nodes[0];
    for i in 0..25 {
        let dest = Dest::Node(format!("n{}", i % 2));
        node.routes().add(&format!("t/{i:02}"), &dest).await.expect("route");
    }
    match node.index(ROUTES, "by_colour", &IndexRange::all()) {
        Err(Error::UnknownIndex { table, index }) => {
            assert_eq!((table.as_str(), index.as_str()), (ROUTES, "by_colour"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(node.index("nope", routes::BY_NODE, &IndexRange::all()), Err(Error::UnknownTable(_))));
    let handle = node.table(CLIENT_STATUS).expect("handle");
    assert!(matches!(handle.index("by_colour", &IndexRange::all()), Err(Error::UnknownIndex { .. })));
    let mut client = Client::new(node.addr(), COOKIE).expect("client");
    match client.index(ROUTES, "by_colour", &IndexRange::all()).await {
        Err(Error::UnknownIndex { index, .. }) => assert_eq!(index, "by_colour"),
        other => panic!("{other:?}"),
    }
    // Over gRPC, pages of 5 through a client concatenate to the local answer.
    let whole = node.index(ROUTES, routes::BY_NODE, &IndexRange::exact("n0")).expect("local");
    assert_eq!(whole.len(), 13);
    let mut paged = Vec::new();
    let mut page = IndexRange::exact("n0").limit(5);
    loop {
        let got = client.index(ROUTES, routes::BY_NODE, &page).await.expect("page");
        paged.extend(got.iter().cloned());
        match got.last() {
            Some(last) if got.len() == 5 => page = page.after(last),
            _ => break,
        }
    }
    assert_eq!(paged, whole);
    // A put the extractor cannot read is refused before it is proposed, naming the table.
    match node.transact(Txn::new().put(ROUTES, "t/x", "not a destination")).await {
        Err(Error::InvalidValue { table, .. }) => assert_eq!(table, ROUTES),
        other => panic!("{other:?}"),
    }
    c.shutdown().await;
}
