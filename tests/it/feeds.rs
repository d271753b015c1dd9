//! Change feeds: every node's watcher sees every applied change once, in log order, the
//! same sequence everywhere; a snapshot and the events after it rebuild the table; a watch
//! resumed before the feed, or one that never reads, ends with `Compacted`.

use crate::harness::*;
use mnema::engine::Batch;
use mnema::{ChangeOp, Client, Error, Node, ReplicantState, Txn, Watch, WatchEvent, WatchSnapshot, WatchSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

const TABLES: [&str; 3] = ["kv", "bag", "rules"];

/// Events of `watch` until one at `until` or after (bounded).
async fn events_until(watch: &mut Watch, until: u64) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), watch.next()).await;
        let event = next.expect("an event within 30 s").expect("the watch goes on").expect("no error");
        let at = event.index;
        out.push(event);
        if at >= until {
            return out;
        }
    }
}

/// A table as a snapshot and the events after it make it: key → values (sorted).
type Model = BTreeMap<(String, Vec<u8>), BTreeSet<Vec<u8>>>;

fn rebuild(snapshot: &WatchSnapshot, events: &[WatchEvent]) -> Model {
    let mut m = Model::new();
    for (t, k, v) in &snapshot.records {
        m.entry((t.to_string(), k.to_vec())).or_default().insert(v.to_vec());
    }
    for e in events {
        for c in &e.changes {
            let key = (c.table.to_string(), c.key.to_vec());
            match &c.op {
                ChangeOp::Put(v) => {
                    let values = m.entry(key).or_default();
                    if &*c.table != "bag" {
                        values.clear();
                    }
                    values.insert(v.to_vec());
                }
                ChangeOp::Delete => {
                    m.remove(&key);
                }
                ChangeOp::DeleteObject(v) => {
                    if let Some(values) = m.get_mut(&key) {
                        values.remove(&v[..]);
                        if values.is_empty() {
                            m.remove(&key);
                        }
                    }
                }
                ChangeOp::Clear | ChangeOp::Dropped => m.retain(|(t, _), _| **t != *c.table),
                ChangeOp::Created => {}
            }
        }
    }
    m
}

fn dumped(node: &Node) -> Model {
    let mut m = Model::new();
    for t in TABLES {
        for (k, v) in node.dump(t).expect("dump") {
            m.entry((t.to_string(), k.to_vec())).or_default().insert(v.to_vec());
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_nodes_watcher_sees_every_applied_change_once_in_log_order_and_rebuilds_the_tables() {
    let c = Arc::new(Cluster::start(3).await);
    let r = c.replicant(4).await;
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
    c.nodes[0].transact(Txn::new().put("kv", "before", "1").put("rules", "r0", "{}")).await.expect("write");
    let spec = WatchSpec::tables(TABLES);
    let nodes: Vec<Node> = c.nodes.iter().cloned().chain([r.clone()]).collect();
    let mut watchers: Vec<(String, usize, WatchSnapshot, Watch)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (snap, watch) = node.snapshot_and_watch(spec.clone()).expect("watch");
        watchers.push((node.name().to_string(), i, snap, watch));
    }
    // And over gRPC, from the replicant.
    let mut client = Client::new(r.addr(), COOKIE).expect("client");
    let (snap, watch) = client.snapshot_and_watch(&spec).await.expect("watch over gRPC");
    watchers.push(("the replicant over gRPC".into(), nodes.len() - 1, snap, watch));
    // Writers on every node: plain writes, conflicts, put_if_absent on keys that exist,
    // bag values, deletes, a clear.
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                let node = &c.nodes[w as usize];
                for i in 0..60u64 {
                    let k = format!("k{}", (i * 7 + w) % 20);
                    let txn = match i % 6 {
                        0 => Txn::new().put("kv", k.as_bytes(), format!("v{w}-{i}")),
                        1 => Txn::new().require_value("kv", k.as_bytes(), "never").put("kv", "lost", "x"),
                        2 => Txn::new().put_if_absent("kv", "once", format!("{w}-{i}")),
                        3 => Txn::new().put("bag", k.as_bytes(), format!("{w}")).put("rules", k.as_bytes(), "{}"),
                        4 => Txn::new().delete_object("bag", k.as_bytes(), format!("{}", (w + 1) % 3)),
                        _ => Txn::new().delete("kv", k.as_bytes()),
                    };
                    match node.transact(txn).await {
                        Ok(_) | Err(Error::Conflict(_)) => {}
                        Err(e) => panic!("writer {w}: {e:?}"),
                    }
                }
                node.transact(Txn::new().clear("bag")).await.expect("clear");
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    // A transaction every node rejects when it applies it (a rule refuses its record).
    let leader = &c.nodes[c.leader()];
    let bad = Batch::new(vec![Txn::new().put("rules", "bad", "not json").put("kv", "rejected", "x")], None);
    leader.runtime().serve_forwarded(bad).await.expect("committed");
    let last = leader.transact(Txn::new().put("kv", "last", "x")).await.expect("write").index;
    let mut sequences = Vec::new();
    for (who, at, snap, mut watch) in watchers {
        let events = events_until(&mut watch, last).await;
        let indexes: Vec<u64> = events.iter().map(|e| e.index).collect();
        assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{who}: not in log order: {indexes:?}");
        assert!(indexes.first().is_some_and(|i| *i > snap.index), "{who}: an event at or before its snapshot");
        let flat: Vec<_> = events.iter().flat_map(|e| e.changes.iter()).collect();
        assert!(
            !flat.iter().any(|c| &*c.key == b"lost" || &*c.key == b"rejected" || &*c.key == b"bad"),
            "{who}: a change that did not apply"
        );
        let onces = flat.iter().filter(|c| &*c.key == b"once").count();
        assert_eq!(onces, 1, "{who}: put_if_absent on a key present is no change");
        // Snapshot and events rebuild the tables as the node holds them at `last`.
        let node = &nodes[at];
        node.wait_applied(last, Duration::from_secs(20)).await.expect("applied");
        assert_eq!(rebuild(&snap, &events), dumped(node), "{who}: snapshot + events differ from the tables");
        // From the same index on, every watcher saw the same events.
        sequences.push((who, snap.index, events));
    }
    let start = sequences.iter().map(|(_, s, _)| *s).max().unwrap_or(0);
    let from = |events: &Vec<WatchEvent>| events.iter().filter(|e| e.index > start).cloned().collect::<Vec<_>>();
    let reference = from(&sequences[0].2);
    for (who, _, events) in &sequences[1..] {
        assert_eq!(from(events), reference, "{who} saw another sequence than {}", sequences[0].0);
    }
    drop(nodes);
    r.shutdown().await.expect("shutdown");
    match Arc::try_unwrap(c) {
        Ok(c) => {
            c.shutdown().await;
        }
        Err(_) => panic!("cluster still shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_before_the_feed_or_one_that_never_reads_ends_with_compacted() {
    let c = Cluster::start_with(1, |cfg| cfg.feed.ring_entries = 20).await;
    let node = &c.nodes[0];
    let first = node.transact(Txn::new().put("kv", "k0", "v")).await.expect("write").index;
    // A watcher that never reads.
    let mut idle = node.watch(WatchSpec::table("kv")).expect("watch");
    for i in 1..300 {
        node.transact(Txn::new().put("kv", format!("k{i}"), "v")).await.expect("writes go on");
    }
    // Resuming before what the feed holds: refused at once.
    match node.watch(WatchSpec::table("kv").from_index(first)) {
        Err(Error::Compacted { from, oldest }) => assert!(from == first && oldest > first, "{from} {oldest}"),
        other => panic!("{other:?}"),
    }
    // The idle watcher: what it buffered, then cut off.
    let mut got = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), idle.next()).await.expect("within 30 s") {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => break e,
            None => panic!("ended without an error"),
        }
    };
    assert!(matches!(end, Error::Compacted { .. }), "{end:?}");
    assert!(got < 299, "it was cut off ({got} events)");
    assert!(idle.next().await.is_none(), "nothing after the error");
    // Over gRPC, the same refusal, as the same variant.
    let mut client = Client::new(node.addr(), COOKIE).expect("client");
    assert!(matches!(client.watch(&WatchSpec::table("kv").from_index(first)).await, Err(Error::Compacted { .. })));
    // A snapshot and a watch from after it converge.
    let (snap, mut watch) = node.snapshot_and_watch(WatchSpec::table("kv")).expect("snapshot and watch");
    assert_eq!(snap.records.len(), 300);
    let done = node.transact(Txn::new().put("kv", "after", "v")).await.expect("write").index;
    let events = events_until(&mut watch, done).await;
    let mut m = rebuild(&snap, &events);
    m.retain(|(t, _), _| t == "kv");
    let mut want = dumped(node);
    want.retain(|(t, _), _| t == "kv");
    assert_eq!(m, want);
    // Bad specs, by variant.
    assert!(matches!(node.watch(WatchSpec::table("nope")), Err(Error::UnknownTable(_))));
    assert!(matches!(node.watch(WatchSpec::table("local_disc")), Err(Error::LocalTable { .. })));
    assert!(matches!(client.watch(&WatchSpec::table("nope")).await, Err(Error::UnknownTable(_))));
    // Shutdown ends a watch with `Shutdown`.
    let mut open = node.watch(WatchSpec::table("kv")).expect("watch");
    let c = Arc::new(c);
    let waiter = tokio::spawn(async move { open.next().await });
    match Arc::try_unwrap(c) {
        Ok(c) => {
            c.shutdown().await;
        }
        Err(_) => panic!("cluster still shared"),
    }
    match waiter.await.expect("waiter") {
        Some(Err(Error::Shutdown)) | None => {}
        other => panic!("{other:?}"),
    }
}
