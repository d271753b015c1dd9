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
async fn a_replicant_following_a_shard_that_holds_no_table_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(4);
    let mut cfg = replicant_config(dir.path(), base, 4, 3);
    cfg.replicant.shards = vec![mnema::schema::shards::ROUTES, 9];
    let data_dir = cfg.node.data_dir.clone();
    match Node::start(cfg, test_tables()).await {
        Err(Error::Config { key, .. }) => assert_eq!(key, "replicant.shards"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a replicant skipping every table started"),
    }
    assert!(!data_dir.exists(), "the data dir was touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replicant_following_one_shard_holds_exactly_its_tables_and_refuses_the_others() {
    use mnema::schema::{self, routes::Dest, shards};
    let c = Cluster::start(3).await;
    // Records in several shards before and after the replicant bootstraps.
    c.nodes[0].routes().add("a/+", &Dest::Node("n1".into())).await.expect("route");
    c.nodes[1].transact(Txn::new().put("kv", "k", "v")).await.expect("kv");
    mnema::schema::sessions::open(&c.nodes[2], "c1", "n1", 60, 1).await.expect("session");
    let r = replicant_following(&c, 4, vec![shards::ROUTES]).await;
    c.nodes[0].routes().add("b/#", &Dest::Node("n2".into())).await.expect("route");
    // Its writes go to the leader whatever the shard.
    mnema::schema::client_status::connected(&r, "c2", "n2", 2).await.expect("a write of another shard");
    // A read-modify-write of another shard reads it first: refused, never an empty read.
    assert!(matches!(mnema::schema::sessions::open(&r, "c2", "n2", 60, 2).await, Err(Error::ShardNotFollowed { .. })));
    let last = r.transact(Txn::new().put("kv", "through-replicant", "v")).await.expect("kv").index;
    c.wait_applied(last).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    assert_eq!(r.routes().match_routes("a/x").expect("match").len(), 1);
    assert_eq!(r.routes().match_routes("b/x/y").expect("match").len(), 1);
    for table in ["kv", schema::SESSIONS, schema::CLIENT_STATUS, schema::RULES] {
        match r.get(table, b"k") {
            Err(Error::ShardNotFollowed { table: t, node, .. }) => {
                assert_eq!((t.as_str(), node.as_str()), (table, r.name()))
            }
            other => panic!("{table}: {other:?}"),
        }
        assert!(matches!(r.dump(table), Err(Error::ShardNotFollowed { .. })), "{table}");
        assert!(matches!(r.table(table), Err(Error::ShardNotFollowed { .. })), "{table}");
    }
    // It knows every table (the catalog goes to every replicant) and holds its shard's only.
    let held: Vec<String> = r
        .tables()
        .into_iter()
        .filter(|t| t.records.is_some() && t.scope == mnema::Scope::Replicated)
        .map(|t| t.declaration.name)
        .collect();
    assert_eq!(held, vec![schema::ROUTES.to_string()]);
    let s = r.replicant_status().expect("a replicant");
    assert_eq!(s.shards.len(), 1, "{s:?}");
    assert_eq!(
        (s.shards[0].shard, s.shards[0].tables.clone(), s.shards[0].records),
        (shards::ROUTES, vec!["routes".to_string()], 2)
    );
    // The cores hold everything.
    assert_eq!(c.nodes[0].get("kv", b"through-replicant").expect("get").len(), 1);
    // A table created later in another shard: known, not held.
    c.nodes[0]
        .create_table(&mnema::TableDef::replicated("later", mnema::Kind::Set, mnema::Storage::Ram).with_shard(7))
        .await
        .expect("create");
    let last = c.nodes[0].transact(Txn::new().put("later", "k", "v")).await.expect("write").index;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    assert!(matches!(r.get("later", b"k"), Err(Error::ShardNotFollowed { shard: 7, .. })));
    r.shutdown().await.expect("shutdown");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_across_two_shards_is_refused_everywhere() {
    use mnema::schema::{self, shards};
    let c = Cluster::start(3).await;
    let across = || Txn::new().put("kv", "k", "v").delete(schema::SESSIONS, "c1");
    match c.nodes[c.follower()].transact(across()).await {
        Err(Error::CrossShard { first, first_shard, second, second_shard }) => {
            assert_eq!((first.as_str(), first_shard), ("kv", shards::COMMON));
            assert_eq!((second.as_str(), second_shard), (schema::SESSIONS, shards::SESSIONS));
        }
        other => panic!("{other:?}"),
    }
    let mut client = Client::new(c.nodes[0].addr(), COOKIE).expect("client");
    assert!(matches!(client.transact(&across()).await, Err(Error::CrossShard { .. })));
    // Past every proposer's check, it is rejected when applied, on every node.
    let leader = &c.nodes[c.leader()];
    let (index, outcome) = leader.runtime().serve_forwarded(Batch::new(vec![across()], None)).await.expect("committed");
    assert!(matches!(outcome.outcomes[0], TxnOutcome::Rejected(_)), "{outcome:?}");
    c.wait_applied(index).await;
    for n in &c.nodes {
        assert!(n.get("kv", b"k").expect("get").is_empty(), "{}", n.name());
    }
    c.shutdown().await;
}
