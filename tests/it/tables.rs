//! The broker's tables on a running cluster.

use crate::harness::*;
use mnema::replication::applier::ReplicantState;
use mnema::schema::routes::{Dest, Route};
use std::time::Duration;

fn route(filter: &str, dest: &Dest) -> Route {
    Route { filter: filter.into(), dest: dest.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_match_on_every_node_and_purge_node_removes_exactly_one_nodes_routes() {
    let c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    let (n1, n2, n3) = (Dest::Node("n1".into()), Dest::Node("n2".into()), Dest::Node("n3".into()));
    let shared = Dest::Shared { group: "g".into(), node: "n1".into() };
    let adds = [("t/1", &n1), ("t/+", &n2), ("t/#", &n1), ("#", &n3), ("t/1", &shared), ("$SYS/#", &n2), ("u", &n1)];
    let mut last = 0;
    for (i, (f, d)) in adds.iter().enumerate() {
        last = c.nodes[i % 3].routes().add(f, d).await.expect("add route").index;
    }
    c.wait_applied(last).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    let mut expected =
        vec![route("t/1", &n1), route("t/1", &shared), route("t/+", &n2), route("t/#", &n1), route("#", &n3)];
    expected.sort();
    for node in c.nodes.iter().chain(std::iter::once(&r)) {
        assert_eq!(node.routes().match_routes("t/1").expect("match"), expected, "on {}", node.name());
        assert_eq!(node.routes().match_routes("$SYS/broker").expect("match"), vec![route("$SYS/#", &n2)]);
    }
    assert!(c.nodes[0].routes().add("t/#/x", &n1).await.is_err(), "a bad filter is refused");
    assert!(c.nodes[0].routes().match_routes("t/+").is_err(), "a wildcard is not a topic name");

    assert_eq!(c.nodes[1].routes().purge_node("n1").await.expect("purge"), 4);
    let done = c.nodes[1].routes().add("v", &n2).await.expect("add").index;
    c.wait_applied(done).await;
    r.wait_applied(done, Duration::from_secs(20)).await.expect("replicant");
    let mut rest = vec![route("t/+", &n2), route("#", &n3)];
    rest.sort();
    for node in c.nodes.iter().chain(std::iter::once(&r)) {
        assert_eq!(node.routes().match_routes("t/1").expect("match"), rest, "on {}", node.name());
        assert_eq!(node.routes().match_routes("u").expect("match"), vec![route("#", &n3)], "on {}", node.name());
        assert_eq!(node.routes().match_routes("$SYS/x").expect("match"), vec![route("$SYS/#", &n2)]);
    }
    // A replicant's fresh bootstrap rebuilds the wildcard index from the snapshot.
    r.shutdown().await.expect("stop replicant");
    let r = c.replicant(4).await;
    wait_until("replicant normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal.as_str())
    })
    .await;
    assert_eq!(r.routes().match_routes("t/1").expect("match"), rest);
    r.shutdown().await.expect("stop replicant");
    c.shutdown().await;
}
