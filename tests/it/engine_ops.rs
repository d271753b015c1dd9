//! Transaction semantics through Raft on one node: every op and table kind.

use crate::harness::*;
use mnema::{Error, OpResult, Txn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_absent_reports_what_happened_on_memory_and_disc_only_tables() {
    let c = Cluster::start(1).await;
    let n = &c.nodes[0];
    for table in ["kv", "big"] {
        let r = n.transact(Txn::new().put_if_absent(table, "k", "a").put_if_absent(table, "k", "b")).await.unwrap();
        assert_eq!(r.results, vec![OpResult::Inserted, OpResult::Exists], "{table}");
        assert_eq!(n.get(table, b"k").unwrap()[0].as_ref(), b"a", "{table}");
        let r = n.transact(Txn::new().delete(table, "k").put_if_absent(table, "k", "c")).await.unwrap();
        assert_eq!(r.results[1], OpResult::Inserted, "{table}: absent after delete in the same txn");
        let r = n.transact(Txn::new().clear(table).put_if_absent(table, "k", "d")).await.unwrap();
        assert_eq!(r.results[1], OpResult::Inserted, "{table}: absent after clear in the same txn");
        assert_eq!(n.get_one(table, b"k").unwrap().as_deref(), Some(&b"d"[..]));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bags_keep_distinct_values_and_delete_object_removes_one() {
    let c = Cluster::start(1).await;
    let n = &c.nodes[0];
    for table in ["bag", "big_bag"] {
        n.transact(Txn::new().put(table, "t", "n1").put(table, "t", "n2").put(table, "t", "n1").put(table, "u", "n1"))
            .await
            .unwrap();
        let mut vals: Vec<_> = n.get(table, b"t").unwrap().iter().map(|v| v.to_vec()).collect();
        vals.sort();
        assert_eq!(vals, vec![b"n1".to_vec(), b"n2".to_vec()], "{table}");
        n.transact(Txn::new().delete_object(table, "t", "n1")).await.unwrap();
        assert_eq!(n.get(table, b"t").unwrap().len(), 1, "{table}");
        n.transact(Txn::new().delete(table, "t")).await.unwrap();
        assert!(n.get(table, b"t").unwrap().is_empty(), "{table}");
        assert_eq!(n.get(table, b"u").unwrap().len(), 1, "{table}: other keys untouched");
        assert!(matches!(n.get_one(table, b"u"), Err(Error::InvalidTxn(_))), "{table}: get_one is for sets");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_transactions_are_refused_before_they_reach_the_log() {
    let c = Cluster::start(1).await;
    let n = &c.nodes[0];
    let before = n.applied_index();
    let err = n.transact(Txn::new().put("nope", "k", "v")).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTable(ref t) if t == "nope"), "{err:?}");
    // delete_object on a set, a local table in a replicated transaction, nothing at all.
    for txn in [Txn::new().delete_object("kv", "k", "v"), Txn::new().put("local_disc", "k", "v"), Txn::new()] {
        let err = n.transact(txn.clone()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTxn(_)), "{txn:?}: {err:?}");
    }
    assert_eq!(n.applied_index(), before, "refused transactions reached the log");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disc_tables_survive_a_restart_and_local_ram_tables_start_empty() {
    let c = Cluster::start(1).await;
    let n = &c.nodes[0];
    n.transact_local(&Txn::new().put("local_disc", "lk", "lv")).unwrap();
    n.transact_local(&Txn::new().put("subscriptions", "t/1", "sub1")).unwrap();
    n.transact(Txn::new().put("big", "k", "d")).await.unwrap();
    assert_eq!(n.get("local_disc", b"lk").unwrap()[0].as_ref(), b"lv");
    let base = c.base;
    let dir = c.shutdown().await;
    let n = mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await.unwrap();
    assert_eq!(n.get("local_disc", b"lk").unwrap()[0].as_ref(), b"lv", "local disc table survives restart");
    assert!(n.get("subscriptions", b"t/1").unwrap().is_empty(), "local ram table starts empty");
    assert_eq!(n.get("big", b"k").unwrap()[0].as_ref(), b"d");
    n.shutdown().await.unwrap();
}

/// A conditional write that loses returns once the node it was made on has applied the
/// write it lost to, so a read-modify-write retry on a follower reads fresh data, even when
/// winner and loser were group-committed in one entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_on_a_follower_returns_after_it_applied_the_winning_write() {
    let c = Cluster::start(3).await;
    let follower = c.nodes[c.follower()].runtime().clone();
    let base = follower.transact(Txn::new().put("kv", "cas", "v0")).await.expect("write");
    c.wait_applied(base.index).await;
    let mut conflicts = 0;
    for round in 1..=30u32 {
        let old = format!("v{}", round - 1);
        // Two racers on the follower from the same value: one wins, the other loses.
        let racers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let (f, old) = (follower.clone(), old.clone());
                tokio::spawn(async move {
                    let txn = Txn::new().require_value("kv", "cas", old.as_bytes()).put("kv", "cas", who);
                    let res = f.transact(txn).await;
                    // Read at once, as a retry would.
                    (res, f.get("kv", b"cas").expect("get")[0].to_vec())
                })
            })
            .collect();
        for racer in racers {
            let (res, seen) = racer.await.expect("racer");
            if let Err(Error::Conflict(_)) = res {
                conflicts += 1;
                assert_ne!(seen, old.as_bytes(), "round {round}: the loser still reads the value it lost on");
            }
        }
        follower.transact(Txn::new().put("kv", "cas", format!("v{round}"))).await.expect("next round's value");
    }
    assert_eq!(conflicts, 30, "exactly one racer loses each round");
    drop(follower);
    c.shutdown().await;
}
