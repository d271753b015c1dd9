//! Shards: a transaction's shard comes from its tables, never from its caller, so a
//! replicant that follows a subset of shards applies exactly what the cores apply.

use crate::harness::*;
use mnema::engine::{Batch, TxnOutcome};
use mnema::{Client, Error, Node, ReplicantState, Txn};
use std::collections::BTreeMap;
use std::time::Duration;

fn dump(node: &Node, table: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    node.dump(table).expect("dump").into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// A replicant of `c` following `shards` only.
async fn replicant_following(c: &Cluster, i: u16, shards: Vec<u16>) -> Node {
    let mut cfg = replicant_config(c.dir.path(), c.base, i, c.nodes.len() as u16);
    cfg.replicant.shards = shards;
    let r = Node::start(cfg, test_tables()).await.expect("start replicant");
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
    r
}

fn forged() -> Txn {
    Txn { shard: 7, ..Txn::new().put("kv", "forged", "x") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_claiming_another_shard_is_refused_and_every_node_stays_identical() {
    let c = Cluster::start(3).await;
    let r = replicant_following(&c, 4, vec![0]).await;
    // Through the API, on a core and on the replicant: refused before anything is proposed.
    for node in [&c.nodes[c.follower()], &r] {
        match node.transact(forged()).await {
            Err(Error::ShardMismatch { table, shard: 0, claimed: 7 }) => assert_eq!(table, "kv"),
            other => panic!("{}: {other:?}", node.name()),
        }
    }
    // Over gRPC `Transact`, where the field arrives as the caller encoded it.
    let mut client = Client::new(c.nodes[0].addr(), COOKIE).expect("client");
    match client.transact(&forged()).await {
        Err(Error::ShardMismatch { claimed: 7, .. }) => {}
        other => panic!("over gRPC: {other:?}"),
    }
    // A batch that skipped every proposer's check (a peer of another build forwards it):
    // every node, the replicant included, rejects that transaction when it applies it.
    let leader = &c.nodes[c.leader()];
    let batch = Batch::new(vec![forged(), Txn::new().put("kv", "beside", "y")], None);
    let (index, outcome) = leader.runtime().serve_forwarded(batch).await.expect("committed");
    assert!(matches!(outcome.outcomes[0], TxnOutcome::Rejected(_)), "{outcome:?}");
    assert!(matches!(outcome.outcomes[1], TxnOutcome::Applied(_)), "{outcome:?}");
    c.wait_applied(index).await;
    r.wait_applied(index, Duration::from_secs(20)).await.expect("replicant applies");
    let reference = dump(&c.nodes[0], "kv");
    assert!(!reference.contains_key(&b"forged"[..]), "a forged transaction was applied");
    assert!(reference.contains_key(&b"beside"[..]));
    for node in c.nodes.iter().chain([&r]) {
        assert_eq!(dump(node, "kv"), reference, "{} differs", node.name());
    }
    r.shutdown().await.expect("shutdown");
    c.shutdown().await;
}

#[tokio::test]
async fn a_replicant_leaving_out_the_shard_that_holds_the_tables_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(4);
    let mut cfg = replicant_config(dir.path(), base, 4, 3);
    cfg.replicant.shards = vec![3];
    let data_dir = cfg.node.data_dir.clone();
    match Node::start(cfg, test_tables()).await {
        Err(Error::Config { key, .. }) => assert_eq!(key, "replicant.shards"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a replicant skipping every table started"),
    }
    assert!(!data_dir.exists(), "the data dir was touched");
}
