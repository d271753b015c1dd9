//! Paged, ordered reads: pages of a range read concatenate to the table in order while it
//! changes, on every kind of table, locally and over gRPC; first, last and count.

use crate::harness::*;
use mnema::{Blob, Client, KeyRange, Node, Txn};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Reads all of `table` in pages of `page`, locally or (`client`) over gRPC.
async fn paged(node: &Node, client: Option<&Client>, table: &str, range: KeyRange, page: usize) -> Vec<(Blob, Blob)> {
    let mut out = Vec::new();
    let mut r = range.limit(page);
    loop {
        let got = match client {
            Some(c) => c.clone().range(table, &r).await.expect("range over gRPC"),
            None => node.range(table, &r).expect("range"),
        };
        out.extend(got.iter().cloned());
        match got.last() {
            Some(last) if got.len() == page => r = r.after(last),
            _ => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_of_a_range_read_concatenate_under_concurrent_writes_with_nothing_missed_or_repeated() {
    let c = Arc::new(Cluster::start(3).await);
    // Records that stay throughout: keys s0000..s0299 in every kind of table (two values
    // each in the bag).
    for chunk in 0..3 {
        let mut txn = Txn::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            let k = format!("s{i:04}");
            for table in ["kv", "ordered", "big"] {
                txn = txn.put(table, k.as_bytes(), format!("v{i}"));
            }
            txn = txn.put("bag", k.as_bytes(), "a").put("bag", k.as_bytes(), "b");
        }
        c.nodes[0].transact(txn).await.expect("load");
    }
    // Meanwhile, records come and go between them, and the stable ones change value.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (c, stop, written) = (c.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("s{:04}x{n}", (n * 37) % 300);
                let mut txn = Txn::new();
                for table in ["kv", "ordered", "big"] {
                    txn = txn.put(table, k.as_bytes(), "churn").put(table, format!("s{:04}", n % 300), format!("w{n}"));
                }
                txn = txn.put("bag", k.as_bytes(), "c");
                c.nodes[(n % 3) as usize].transact(txn).await.expect("churn");
                if n % 2 == 1 {
                    let old = format!("s{:04}x{}", ((n - 1) * 37) % 300, n - 1);
                    let txn = ["kv", "ordered", "big", "bag"]
                        .into_iter()
                        .fold(Txn::new(), |t, table| t.delete(table, old.as_bytes()));
                    c.nodes[(n % 3) as usize].transact(txn).await.expect("churn delete");
                }
                n += 1;
                written.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    let node = &c.nodes[1];
    let client = Client::new(node.addr(), COOKIE).expect("client");
    let stable: BTreeSet<Vec<u8>> = (0..300).map(|i| format!("s{i:04}").into_bytes()).collect();
    for table in ["kv", "ordered", "big", "bag"] {
        for reverse in [false, true] {
            for over_grpc in [false, true] {
                // Each read runs while the writer is at work: it waits for one more write.
                let seen = written.load(Ordering::Relaxed);
                wait_until("the writer to write again", std::time::Duration::from_secs(20), || async {
                    written.load(Ordering::Relaxed) > seen
                })
                .await;
                let range = if reverse { KeyRange::prefix("s").reverse() } else { KeyRange::prefix("s") };
                let got = paged(node, over_grpc.then_some(&client), table, range, 37).await;
                let what = format!("{table} reverse={reverse} grpc={over_grpc}");
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = got.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                // In order, no record twice.
                for w in pairs.windows(2) {
                    let ordered = if reverse { w[0] > w[1] } else { w[0] < w[1] };
                    assert!(ordered, "{what}: {:?} then {:?}", w[0], w[1]);
                    if table != "bag" {
                        assert_ne!(w[0].0, w[1].0, "{what}: a key twice");
                    }
                }
                // Every record that stayed is there.
                let keys: BTreeSet<Vec<u8>> = pairs.iter().map(|(k, _)| k.clone()).collect();
                let missing: Vec<_> = stable.difference(&keys).collect();
                assert!(missing.is_empty(), "{what}: missing {missing:?}");
                if table == "bag" {
                    for k in &stable {
                        let values: BTreeSet<&[u8]> =
                            pairs.iter().filter(|(pk, _)| pk == k).map(|(_, v)| &v[..]).collect();
                        assert!(values.contains(&b"a"[..]) && values.contains(&b"b"[..]), "{what}: {k:?} {values:?}");
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.expect("writer");
    assert!(writes > 10, "the table hardly changed during the reads ({writes} writes)");
    // First, last, count, on a table that no longer changes.
    let done = c.nodes[0]
        .transact(Txn::new().put("rules", "a", "{}").put("rules", "m", "{}").put("rules", "z", "{}"))
        .await
        .expect("rules");
    node.wait_applied(done.index, std::time::Duration::from_secs(20)).await.expect("applied");
    for table in ["rules"] {
        assert_eq!(node.count(table).expect("count"), 3);
        assert_eq!(client.clone().count(table).await.expect("count over gRPC"), 3);
        assert_eq!(node.first(table).expect("first").map(|(k, _)| k.to_vec()), Some(b"a".to_vec()));
        assert_eq!(node.last(table).expect("last").map(|(k, _)| k.to_vec()), Some(b"z".to_vec()));
    }
    let last_big = c.nodes[0].last("big").expect("last of a disc_only table").expect("some");
    assert!(last_big.0.starts_with(b"s0299"), "{:?}", last_big.0);
    assert!(matches!(node.range("nope", &KeyRange::all()), Err(mnema::Error::UnknownTable(_))));
    match Arc::try_unwrap(c) {
        Ok(c) => {
            c.shutdown().await;
        }
        Err(_) => panic!("the cluster is still shared"),
    }
}
