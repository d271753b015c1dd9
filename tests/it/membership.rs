//! Leaving, removing members and autoclean on running clusters.

use crate::harness::*;
use mnema::ReplicantState;
use mnema::schema::routes::Dest;
use mnema::{Error, Txn};
use std::time::Duration;

fn member_names(node: &mnema::Node) -> Vec<String> {
    let (voters, learners) = node.members().expect("members");
    let mut v: Vec<String> = voters.into_iter().chain(learners).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicants_are_not_members_so_removing_or_joining_one_is_refused() {
    let c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    wait_until("replicant normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
    let err = c.nodes[0].remove_member(&name(4), false).await.expect_err("replicant");
    assert!(matches!(&err, Error::NotAMember { name: n, .. } if *n == name(4)), "{err:?}");
    let target = mnema::Peer::parse("t", &format!("{}:{}", name(4), c.base + 4), c.base).expect("peer");
    let err = c.nodes[0].join(&target).await.expect_err("joining a replicant");
    assert!(matches!(&err, Error::IsReplicant { node, .. } if *node == name(4)), "{err:?}");
    assert!(matches!(r.leave(false).await, Err(Error::IsReplicant { .. })), "a replicant does not leave");
    assert_eq!(member_names(&c.nodes[0]), [name(1), name(2), name(3)], "the membership is unchanged");
    r.shutdown().await.expect("replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_running_voter_below_a_majority_is_refused_and_a_stopped_one_is_removed() {
    let mut c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    let done = c.nodes[0].transact(Txn::new().put("kv", "k", "v")).await.expect("write");
    c.wait_applied(done.index).await;
    // n3 stops. Removing a running voter now would leave 1 of 2 voters running: refused.
    let n3 = c.nodes.remove(2);
    n3.shutdown().await.expect("stop n3");
    c.wait_leader().await;
    let err = c.nodes[1].remove_member(&name(2), false).await.expect_err("refused");
    assert!(matches!(&err, Error::MajorityAtRisk { up: 1, remaining: 2, majority: 2, .. }), "{err:?}");
    // Removing the stopped one is fine; data intact.
    c.nodes[1].remove_member(&name(3), false).await.expect("force-leave n3");
    wait_until("n3 out of the membership on both", Duration::from_secs(10), || async {
        c.nodes.iter().all(|n| member_names(n) == [name(1), name(2)])
    })
    .await;
    let s = c.nodes[0].cluster_status().await.expect("status");
    assert_eq!(s.members.iter().filter(|m| m.role == mnema::Role::Core).count(), 2, "{s:?}");
    assert!(s.members.iter().all(|m| m.running), "{s:?}");
    let done = c.nodes[0].transact(Txn::new().put("kv", "after", "v")).await.expect("writes go on with 2 of 2");
    r.wait_applied(done.index, Duration::from_secs(10)).await.expect("replicant follows");
    assert_eq!(c.nodes[0].get("kv", b"k").expect("get").len(), 1);
    r.shutdown().await.expect("replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaver_becomes_a_cluster_of_one_without_the_data_and_the_last_voter_stays() {
    let c = Cluster::start(2).await;
    let done = c.nodes[0].transact(Txn::new().put("kv", "k", "v")).await.expect("write");
    c.wait_applied(done.index).await;
    let before = c.nodes[0].status().cluster_id;
    c.nodes[1].leave(false).await.expect("leave");
    wait_until("n2 alone, n1 alone", Duration::from_secs(10), || async {
        member_names(&c.nodes[0]) == [name(1)]
            && member_names(&c.nodes[1]) == [name(2)]
            && c.nodes[0].is_leader()
            && c.nodes[1].is_leader()
    })
    .await;
    assert_eq!(c.nodes[0].status().cluster_id, before, "the cluster keeps its id");
    assert_ne!(c.nodes[1].status().cluster_id, before, "a new cluster id after leaving");
    assert!(c.nodes[1].get("kv", b"k").expect("get").is_empty(), "the leaver dropped the cluster's data");
    let err = c.nodes[0].remove_member(&name(1), false).await.expect_err("last voter");
    assert!(matches!(err, Error::Refused(_)), "the last voter stays: {err:?}");
    c.nodes[0].transact(Txn::new().put("kv", "alone", "v")).await.expect("n1 alone still writes");
    assert_eq!(c.nodes[0].get("kv", b"k").expect("get").len(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn autoclean_removes_a_dead_member_and_its_routes() {
    let mut c = Cluster::start_with(3, |cfg| cfg.cluster.autoclean = Some("1s".parse().unwrap())).await;
    let (d1, d3) = (Dest::Node(name(1)), Dest::Node(name(3)));
    c.nodes[0].routes().add("t/+", &d3).await.expect("route");
    c.nodes[0].routes().add("t/#", &d3).await.expect("route");
    let done = c.nodes[0].routes().add("t/+", &d1).await.expect("route");
    c.wait_applied(done.index).await;
    let n3 = c.nodes.remove(2);
    n3.shutdown().await.expect("stop n3");
    wait_until("autoclean to remove n3 and its routes", Duration::from_secs(20), || async {
        c.nodes.iter().all(|n| {
            member_names(n) == [name(1), name(2)]
                && n.routes().match_routes("t/x").map(|r| r.len() == 1 && r[0].dest == d1).unwrap_or(false)
        })
    })
    .await;
    c.nodes[1].transact(Txn::new().put("kv", "k", "v")).await.expect("cluster of 2 writes");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_leaves_the_majority_writable_and_heals_by_itself() {
    let c = Cluster::start_with(3, |cfg| {
        cfg.raft.write_timeout = "2s".parse().unwrap();
        cfg.cluster.autoclean = None;
    })
    .await;
    let r = c.replicant(4).await;
    wait_until("replicant normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
    let upstream = r.replicant_status().expect("status").upstream;
    let m = c.nodes.iter().position(|n| Some(n.name()) == upstream.as_deref()).expect("upstream is a core");
    let others: Vec<usize> = (0..3).filter(|i| *i != m).collect();
    // Cut the replicant's core off from the other two, both ways.
    let other_addrs: Vec<String> = others.iter().map(|o| c.nodes[*o].addr().to_string()).collect();
    c.nodes[m].runtime().peers().partition(&other_addrs.iter().map(String::as_str).collect::<Vec<_>>());
    for o in &others {
        c.nodes[*o].runtime().peers().partition(&[c.nodes[m].addr()]);
    }
    // The majority elects a leader (if it has to) and keeps writing.
    let mut last = 0;
    for i in 0..20 {
        let n = &c.nodes[others[i % 2]];
        last = n.transact(Txn::new().put("kv", format!("p{i}"), "v")).await.expect("majority writes").index;
    }
    // The minority refuses, with an error that says why.
    let err = c.nodes[m].transact(Txn::new().put("kv", "minority", "v")).await.expect_err("minority write");
    assert!(matches!(&err, Error::NoLeader(msg) if msg.contains("majority")), "{err}");
    // The replicant leaves the minority core for the majority and misses nothing.
    wait_until("the replicant on a majority core", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal && s.upstream != upstream)
    })
    .await;
    r.wait_applied(last, Duration::from_secs(10)).await.expect("replicant has the majority's writes");
    // Heal: the minority catches up by itself; all nodes end identical.
    for n in &c.nodes {
        n.runtime().peers().heal();
    }
    c.nodes[m].wait_applied(last, Duration::from_secs(20)).await.expect("the minority catches up");
    let final_index = c.nodes[others[0]].transact(Txn::new().put("kv", "healed", "v")).await.expect("write").index;
    c.wait_applied(final_index).await;
    r.wait_applied(final_index, Duration::from_secs(10)).await.expect("replicant");
    let dump = |n: &mnema::Node| {
        let mut d: Vec<_> = n.dump("kv").expect("dump").into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        d.sort();
        d
    };
    let reference = dump(&c.nodes[0]);
    assert_eq!(reference.len(), 21, "20 majority writes and one after healing; the refused one is nowhere");
    for n in c.nodes.iter().chain(std::iter::once(&r)) {
        assert_eq!(dump(n), reference, "{} differs after healing", n.name());
    }
    r.shutdown().await.expect("replicant");
    c.shutdown().await;
}

/// A core of the manual strategy whose store was set aside comes back through `cluster
/// join` as a new member (its old voter removed first), with the cluster's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_core_that_lost_its_store_rejoins_as_a_new_member_through_cluster_join() {
    let mut c = Cluster::start(3).await;
    let before = c.nodes[0].transact(Txn::new().put("kv", "before", "1")).await.expect("write").index;
    c.wait_applied(before).await;
    c.stop_node(3).await;
    let mut events = c.nodes[0].watch_members();
    let mut cfg = config(c.dir.path(), c.base, 3, 3);
    mnema::rebuild_data_dir(&cfg).expect("set the store aside");
    cfg.cluster.discovery_strategy = mnema::config::DiscoveryStrategy::Manual;
    cfg.cluster.static_.seeds.clear();
    let n3 = mnema::Node::start(cfg, test_tables()).await.expect("start with an empty store");
    let target = mnema::Peer::parse("join", &name(1), c.base).expect("peer");
    n3.join(&target).await.expect("cluster join");
    wait_rejoined_as_new_member(&mut events, &name(3)).await;
    let after = c.nodes[0].transact(Txn::new().put("kv", "after", "2")).await.expect("write").index;
    n3.wait_applied(after, Duration::from_secs(20)).await.expect("caught up");
    assert_eq!(n3.get("kv", b"before").expect("read").len(), 1);
    assert_eq!(member_names(&c.nodes[0]), [name(1), name(2), name(3)]);
    n3.shutdown().await.expect("stop n3");
    c.shutdown().await;
}

/// Pre-vote: a follower cut off from the others for several election timeouts does not
/// raise its term while no majority would vote for it, so when the partition heals the
/// leader it had keeps leading: no election, the same term everywhere. (Without pre-vote
/// the follower campaigns alone during the partition, and its higher term deposes the
/// leader on the first append after the heal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_back_from_a_partition_does_not_depose_the_leader() {
    let c = Cluster::start(3).await;
    let first = c.nodes[0].transact(Txn::new().put("kv", "before", "v")).await.expect("write").index;
    c.wait_applied(first).await;
    let state = |n: &mnema::Node| {
        let m = n.runtime().metrics().expect("metrics");
        (m.current_leader, m.current_term)
    };
    let (leader, term) = state(&c.nodes[0]);
    let leader = leader.expect("a leader");
    let f = c.nodes.iter().position(|n| n.node_id() != leader).expect("a follower");
    let others: Vec<usize> = (0..3).filter(|i| *i != f).collect();
    let other_addrs: Vec<&str> = others.iter().map(|o| c.nodes[*o].addr()).collect();
    c.nodes[f].runtime().peers().partition(&other_addrs);
    for o in &others {
        c.nodes[*o].runtime().peers().partition(&[c.nodes[f].addr()]);
    }
    // The fault's length: six election timeouts (300 ms in the test timings), long enough
    // for the follower to have campaigned several times had it not asked first.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(state(&c.nodes[f]).1, term, "the cut-off follower raised its term while it could not win");
    for n in &c.nodes {
        n.runtime().peers().heal();
    }
    let leader_node = c.nodes.iter().find(|n| n.node_id() == leader).expect("the leader");
    let after = leader_node.transact(Txn::new().put("kv", "after", "v")).await.expect("the leader still writes").index;
    c.nodes[f].wait_applied(after, Duration::from_secs(10)).await.expect("the follower catches up");
    for n in &c.nodes {
        assert_eq!(state(n), (Some(leader), term), "{}: the heal changed the leader or the term", n.name());
    }
    c.shutdown().await;
}
