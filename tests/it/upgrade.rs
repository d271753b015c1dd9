//! Rolling upgrades (see `mnema::protocol`): every call carries the caller's protocol
//! version and a node refuses one it cannot talk to; a kind of log entry is proposed only
//! once every member announces a version that reads it.

use crate::harness::*;
use mnema::protocol::{self, PROTOCOL};
use mnema::rpc::client::Peers;
use mnema::rpc::pb;
use mnema::rpc::status::from_status;
use mnema::{Error, Kind, Node, Storage, TableDef, Txn};
use std::time::Duration;

fn plain(name: &str) -> TableDef {
    TableDef::replicated(name, Kind::Set, Storage::Disc)
}

/// `FeatureNotEnabled` for a catalog change while `pinned` announces the older version.
fn assert_gated(res: mnema::Result<mnema::Committed>, feature: &str, pinned: &str) {
    match res {
        Err(Error::FeatureNotEnabled { feature: f, needs, node, announces }) => {
            assert_eq!((f.as_str(), needs, node.as_str(), announces), (feature, PROTOCOL, pinned, protocol::OLDEST));
        }
        other => panic!("expected FeatureNotEnabled naming {pinned}, got {other:?}"),
    }
}

/// Starts replicant `i` of `c` announcing the older version, and waits until it streams.
async fn older_replicant(c: &Cluster, i: u16) -> Node {
    let mut pinned = replicant_config(c.dir.path(), c.base, i, 3);
    pinned.node.protocol = Some(protocol::OLDEST);
    let r = Node::start(pinned, test_tables()).await.expect("an older replicant");
    wait_until("the older replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_a_version_two_away_is_refused_naming_both_versions() {
    let c = Cluster::start(1).await;
    let addr = c.nodes[0].addr().to_string();
    for theirs in [PROTOCOL + 2, PROTOCOL + 100] {
        let peers = Peers::new(COOKIE, None, theirs, None).unwrap();
        let status = peers.cluster(&addr).unwrap().node_info(pb::Empty {}).await.unwrap_err();
        match from_status(&addr, status) {
            Error::VersionMismatch { peer, ours, theirs: t } => {
                assert_eq!((peer, ours, t), (addr.clone(), PROTOCOL, theirs))
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
        // Raft and the replication stream are refused the same way, before anything is read.
        let status = peers.raft(&addr).unwrap().vote(pb::Payload { data: vec![0xff] }).await.unwrap_err();
        assert!(matches!(from_status(&addr, status), Error::VersionMismatch { .. }));
        let sub = pb::SubscribeRequest { replicant: "n9@127.0.0.1".into(), ..Default::default() };
        let status = peers.replication(&addr).unwrap().subscribe(sub).await.unwrap_err();
        assert!(matches!(from_status(&addr, status), Error::VersionMismatch { .. }));
    }
    // One version either side is served, and the node says which version it announces.
    for theirs in [PROTOCOL - 1, PROTOCOL + 1] {
        let peers = Peers::new(COOKIE, None, theirs, None).unwrap();
        let s = peers.cluster(&addr).unwrap().node_info(pb::Empty {}).await.expect("served").into_inner();
        assert_eq!(s.protocol, PROTOCOL);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_version_cluster_serves_and_refuses_new_entry_kinds_until_every_member_reads_them() {
    let mut c = Cluster::start(3).await;
    let idx = c.nodes[0].transact(Txn::new().put("kv", "before", "1")).await.expect("write").index;
    c.wait_applied(idx).await;

    // n2 goes back to the older version (a node not upgraded yet, or one pinned there).
    c.stop_node(2).await;
    let mut older = config(c.dir.path(), c.base, 2, 3);
    older.node.protocol = Some(protocol::OLDEST);
    c.nodes.push(Node::start(older, test_tables()).await.expect("n2 at the older version"));
    c.wait_leader().await;
    let n2 = c.nodes.last().expect("n2");
    assert_eq!(n2.status().protocol, protocol::OLDEST);

    // Reads and writes go on through every node, the older one included.
    for (k, n) in c.nodes.iter().enumerate() {
        let i =
            n.transact(Txn::new().put("kv", format!("mixed{k}"), "2")).await.expect("write in a mixed cluster").index;
        c.wait_applied(i).await;
    }
    for n in &c.nodes {
        assert_eq!(n.get("kv", b"before").expect("read").len(), 1, "{}", n.name());
        assert_eq!(n.get("kv", b"mixed2").expect("read").len(), 1, "{}", n.name());
    }
    // A replicant at this build's version streams from the mixed cluster.
    let r = c.replicant(4).await;
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;

    // The kinds the older version cannot read are refused through every path: a core, the
    // older node itself, a replicant, a client over gRPC; nothing is written.
    let older_name = name(2);
    for n in c.nodes.iter().chain([&r]) {
        assert_gated(n.create_table(&plain("added")).await, "CreateTable", &older_name);
        assert_gated(n.drop_table("kv").await, "DropTable", &older_name);
    }
    let mut client = client_of(c.nodes[0].addr());
    assert_gated(client.drop_table("kv").await, "DropTable", &older_name);
    assert!(c.nodes.iter().all(|n| !n.tables().iter().any(|t| t.declaration.name == "added")));

    // A replicant pinned to the older version holds the gate closed as well.
    c.stop_node(2).await;
    c.nodes.push(Node::start(config(c.dir.path(), c.base, 2, 3), test_tables()).await.expect("n2 upgraded"));
    c.wait_leader().await;
    let r5 = older_replicant(&c, 5).await;
    assert_gated(c.nodes[0].create_table(&plain("added")).await, "CreateTable", &name(5));
    r5.shutdown().await.expect("stop the older replicant");

    // Every member at this build's version: the table is created, everywhere.
    wait_until("the older replicant to be gone from its core's subscribers", Duration::from_secs(20), || async {
        c.nodes.iter().all(|n| n.status().subscribers.iter().all(|s| s.name != name(5)))
    })
    .await;
    let created = c.nodes[0].create_table(&plain("added")).await.expect("created once every member reads it");
    c.wait_applied(created.index).await;
    r.wait_applied(created.index, Duration::from_secs(20)).await.expect("replicant applies");
    assert!(r.tables().iter().any(|t| t.declaration.name == "added"));
    r.shutdown().await.expect("stop replicant");
    c.shutdown().await;
}

/// A replicant the leader's gate could not see (between two streams) when a new kind of
/// entry was committed is refused that entry by the core it streams from, with
/// `FeatureNotEnabled` naming it, and never applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replicant_the_gate_missed_is_never_streamed_an_entry_it_cannot_read() {
    let mut c = Cluster::start(3).await;
    let r5 = older_replicant(&c, 5).await;
    // Its core goes away while it can reach no other: no core streams to it for a while.
    let upstream = r5.replicant_status().and_then(|s| s.upstream).expect("an upstream core");
    let cores: Vec<String> = c.nodes.iter().map(|n| n.addr().to_string()).collect();
    r5.runtime().peers().partition(&cores.iter().map(String::as_str).collect::<Vec<_>>());
    let j = (1..=3).find(|j| name(*j) == upstream).expect("upstream is a core");
    c.stop_node(j).await;
    c.nodes.push(Node::start(config(c.dir.path(), c.base, j, 3), test_tables()).await.expect("restart its core"));
    c.wait_leader().await;
    wait_until("no core to stream to the older replicant", Duration::from_secs(20), || async {
        c.nodes.iter().all(|n| n.status().subscribers.iter().all(|s| s.name != name(5)))
    })
    .await;

    // The gate sees every core at this build's version and no replicant: the table is made.
    let created = c.nodes[0].create_table(&plain("added")).await.expect("no member the gate can see is older");
    c.wait_applied(created.index).await;

    // Back in reach, the replicant resumes where it was; the entry is refused to it.
    r5.runtime().peers().heal();
    wait_until("the older replicant to be refused the new entry", Duration::from_secs(20), || async {
        r5.replicant_status().and_then(|s| s.last_error).is_some_and(|e| match e {
            Error::FeatureNotEnabled { feature, node, announces, .. } => {
                assert_eq!((feature.as_str(), announces), ("CreateTable", protocol::OLDEST));
                node == name(5)
            }
            _ => false,
        })
    })
    .await;
    assert!(r5.applied_index() < created.index, "applied {} of {}", r5.applied_index(), created.index);
    assert!(!r5.tables().iter().any(|t| t.declaration.name == "added"));
    r5.shutdown().await.expect("stop the older replicant");
    c.shutdown().await;
}

/// A node cannot be configured to announce a version its build does not speak.
#[test]
fn a_node_announces_at_most_one_version_back() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [PROTOCOL + 1, protocol::OLDEST.wrapping_sub(1)] {
        let mut c = config(dir.path(), 4000, 1, 1);
        c.node.protocol = Some(bad);
        match c.validate() {
            Err(Error::Config { key, .. }) => assert_eq!(key, "node.protocol"),
            other => panic!("node.protocol = {bad}: {other:?}"),
        }
    }
}

fn client_of(addr: &str) -> mnema::Client {
    mnema::Client::new(addr, COOKIE).expect("client")
}

/// The procedure of `docs/operations.md` ("Rolling upgrade") on 3 cores and a replicant
/// as `mnema start` processes with the default timings, under writes: each node restarted
/// in turn announcing the older version (as an upgraded binary pinned with
/// `node.protocol`), then each restarted again without the pin. No acknowledged write is
/// lost; a new kind of entry is refused while any node announces the older version and
/// accepted once none does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_one_node_at_a_time_under_writes_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(4);
    let spawn = |i: u16, pin: Option<u32>| {
        let role = if i == 4 { "replicant" } else { "core" };
        spawn_announcing(dir.path(), base, i, 3, role, None, Timings::Defaults, pin)
    };
    let mut procs: std::collections::BTreeMap<u16, Proc> = (1..=4).map(|i| (i, spawn(i, None))).collect();
    for i in 1..=4 {
        wait_serving(base, i).await;
    }
    agreed_leader(base, &[1, 2, 3]).await;
    put(base, 4, "first", "\"0\"").await;

    // Writes through every node, cores and replicant in turn, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let writer = tokio::spawn({
        let (stop, acked) = (stop.clone(), acked.clone());
        async move {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{k}");
                let via = 1 + (k % 4) as u16;
                let (mut to, txn) = (client(base, via), Txn::new().put("rules", key.as_str(), "\"v\""));
                if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(10), to.transact(&txn)).await {
                    acked.lock().unwrap().push((key, c.index));
                }
                k += 1;
            }
        }
    });

    let expect_gated = |pinned: bool| async move {
        let res = client(base, 1).create_table(&mnema::Declaration::of(&plain("added"))).await;
        match (pinned, res) {
            (true, Err(Error::FeatureNotEnabled { feature, .. })) => assert_eq!(feature, "CreateTable"),
            (false, Ok(_)) => {}
            (pinned, other) => panic!("some node pinned: {pinned}; create_table gave {other:?}"),
        }
    };
    let mut written_before = 0;
    for (round, pin) in [(1, Some(protocol::OLDEST)), (2, None)] {
        // The replicant first, then the followers, the leader last.
        let leader = agreed_leader(base, &[1, 2, 3]).await;
        let mut order: Vec<u16> = vec![4];
        order.extend((1..=3).filter(|i| *i != leader));
        order.push(leader);
        for (step, i) in order.iter().copied().enumerate() {
            procs.remove(&i).expect("running").stop().await;
            procs.insert(i, spawn(i, pin));
            wait_serving(base, i).await;
            agreed_leader(base, &[1, 2, 3]).await;
            if i == 4 {
                // The gate asks the replicants the cores stream to: one between two streams
                // is refused the new entry by its core instead (see
                // `a_replicant_the_gate_missed_is_never_streamed_an_entry_it_cannot_read`).
                let announced = pin.unwrap_or(PROTOCOL);
                wait_until("the replicant to stream again", Duration::from_secs(30), || async {
                    client(base, 1).status().await.is_ok_and(|s| {
                        s.members
                            .iter()
                            .filter_map(|m| m.status.as_ref())
                            .any(|st| st.subscribers.iter().any(|r| r.name == name(4) && r.protocol == announced))
                    })
                })
                .await;
            }
            // Writes go on between restarts.
            wait_until("writes acknowledged since the last restart", Duration::from_secs(30), || {
                let n = acked.lock().unwrap().len();
                async move { n > written_before }
            })
            .await;
            written_before = acked.lock().unwrap().len();
            let last = round == 2 && step == order.len() - 1;
            expect_gated(!last).await;
        }
        // What the operator sees: every node, cores and replicant, at the version announced.
        let want = pin.unwrap_or(PROTOCOL);
        let status = client(base, 1).status().await.expect("cluster status");
        assert_eq!(status.members.len(), 4, "{status:?}");
        for m in &status.members {
            assert_eq!(m.status.as_ref().map(|s| s.protocol), Some(want), "round {round}: {}", m.name);
        }
    }
    assert_eq!(read_on(base, 4, "first", 0).await.as_deref(), Some(&b"\"0\""[..]));
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let acked = acked.lock().unwrap().clone();
    let last = acked.iter().map(|(_, i)| *i).max().unwrap_or(0);
    assert!(acked.len() > 8, "writes acknowledged during the upgrade: {}", acked.len());
    for i in 1..=4 {
        for (key, _) in &acked {
            assert_eq!(read_on(base, i, key, last).await.as_deref(), Some(&b"\"v\""[..]), "{key} on n{i}");
        }
    }
}
