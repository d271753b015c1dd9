//! Export / import, data-dir backup and restore.

use crate::harness::*;
use mnema::backup::format::{self, Event};
use mnema::backup::import::Mode;
use mnema::engine::Catalog;
use mnema::{Node, Txn};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type Records = BTreeMap<String, BTreeSet<(Vec<u8>, Vec<u8>)>>;

fn catalog() -> Catalog {
    Catalog::new(test_tables()).expect("catalog")
}

/// Every record of the file, by table.
fn file_records(path: &Path) -> (format::Summary, Records) {
    let cat = catalog();
    let mut out = Records::new();
    let f = std::fs::File::open(path).expect("open export");
    let mut table = String::new();
    let summary = format::read(f, &cat, &mut |e| {
        match e {
            Event::Table { name, .. } => table = name.to_string(),
            Event::Record { key, value } => {
                out.entry(table.clone()).or_default().insert((key, value));
            }
        }
        Ok(())
    })
    .expect("a valid export");
    (summary, out)
}

/// Every replicated record on `node`, by table (tables with records only).
fn node_records(node: &Node) -> Records {
    let mut out = Records::new();
    for def in test_tables().iter().filter(|d| d.scope == mnema::Scope::Replicated) {
        let recs: BTreeSet<_> =
            node.dump(&def.name).expect("dump").into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        if !recs.is_empty() {
            out.insert(def.name.clone(), recs);
        }
    }
    out
}

async fn seed_data(node: &Node) {
    use mnema::schema::routes::Dest;
    node.routes().add("a/+", &Dest::Node("n1".into())).await.expect("route");
    node.routes().add("a/+", &Dest::Node("n2".into())).await.expect("route");
    let big = Txn::new()
        .put("big", vec![0u8, 0xff, 7], vec![1u8, 2, 3])
        .put("big_bag", "k", vec![0xfe])
        .put("bag", "k", "v1")
        .put("bag", "k", "v2");
    node.transact(big).await.expect("binary records");
    node.transact(Txn::new().put("ordered", "b", "2").put("ordered", "a", "1")).await.expect("ordered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_under_load_then_import_into_a_fresh_cluster_gives_the_same_tables() {
    let src = Arc::new(Cluster::start(3).await);
    seed_data(&src.nodes[0]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (src, stop) = (src.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("live{i:06}");
                let c = src.nodes[(i % 3) as usize]
                    .transact(Txn::new().put("kv", key.as_bytes(), "x"))
                    .await
                    .expect("write");
                acked.push((key, c.index));
                i += 1;
            }
            acked
        })
    };
    wait_until("writes under way", Duration::from_secs(20), || async { src.nodes[0].applied_index() > 50 }).await;
    let path = src.dir.path().join("export.json");
    let (at, n) = src.nodes[1].export(&path).await.expect("export");
    // Writes went on after the export point.
    wait_until("writes after the export", Duration::from_secs(20), || async { src.nodes[0].applied_index() > at + 20 })
        .await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer");
    let (summary, recs) = file_records(&path);
    assert_eq!(summary.records, n);
    // The file is the state at its index: exactly the live writes committed up to it.
    let want: BTreeSet<String> = acked.iter().filter(|(_, i)| *i <= at).map(|(k, _)| k.clone()).collect();
    let got: BTreeSet<String> = recs
        .get("kv")
        .map(|s| s.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(got, want, "kv in the export is not the state at index {at}");
    assert!(acked.iter().any(|(_, i)| *i > at), "some writes came after the export point");
    assert_eq!(recs["big"], BTreeSet::from([(vec![0u8, 0xff, 7], vec![1u8, 2, 3])]), "binary kept exactly");
    assert_eq!(recs["bag"].len(), 2);

    let dst = Cluster::start(3).await;
    let s = dst.nodes[2].import(&path, Mode::Merge).await.expect("import");
    assert_eq!(s.records, n);
    let last = dst.nodes[2].applied_index();
    dst.wait_applied(last).await;
    for node in &dst.nodes {
        assert_eq!(node_records(node), recs, "{} after import", node.name());
        assert_eq!(node.routes().match_routes("a/b").expect("match").len(), 2, "the route index is rebuilt");
    }
    dst.shutdown().await;
    Arc::into_inner(src).expect("owner").shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_file_is_rejected_with_its_position_and_changes_nothing() {
    let c = Cluster::start(3).await;
    seed_data(&c.nodes[0]).await;
    let path = c.dir.path().join("good.json");
    c.nodes[0].export(&path).await.expect("export");
    let good = std::fs::read_to_string(&path).expect("read");
    let seeded = c.nodes[0].applied_index();
    c.wait_applied(seeded).await;
    let before: Vec<_> = c.nodes.iter().map(|n| (n.applied_index(), node_records(n))).collect();
    let cases = [
        ("truncated", good[..good.len() * 2 / 3].to_string(), "EOF"),
        ("wrong version", good.replacen("\"version\":2", "\"version\":9", 1), "version 9"),
        ("bad JSON", good.replacen("\"tables\":[", "\"tables\":[}", 1), "expected"),
        (
            "renamed table",
            good.replace("\n{\"name\":\"ordered\"", "\n{\"name\":\"nosuch\""),
            "its declaration names another table",
        ),
        (
            "declared otherwise",
            good.replace(
                "\"name\":\"ordered\",\"kind\":\"ordered_set\",\"storage\":\"ram\"",
                "\"name\":\"ordered\",\"kind\":\"ordered_set\",\"storage\":\"disc\"",
            ),
            "declared here as",
        ),
        (
            "wrong kind",
            good.replace("\"name\":\"bag\",\"kind\":\"bag\"", "\"name\":\"bag\",\"kind\":\"set\""),
            "is a bag here",
        ),
        (
            "wrong value type",
            good.replacen("\"records\":[\n[\"a/+\",", "\"records\":[\n[\"a/+\",\"not a destination\"],[\"a/+\",", 1),
            "routes",
        ),
    ];
    for (what, text, reason) in cases {
        assert_ne!(text, good, "{what}: the case did not alter the file");
        let bad = c.dir.path().join("bad.json");
        std::fs::write(&bad, &text).expect("write");
        for mode in [Mode::Merge, Mode::Replace] {
            match c.nodes[1].import(&bad, mode).await {
                Err(mnema::Error::BadExport { line, column, reason: r }) => {
                    assert!(r.contains(reason), "{what}: {r}");
                    assert!(line >= 1 && column >= 1, "{what}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    let after: Vec<_> = c.nodes.iter().map(|n| (n.applied_index(), node_records(n))).collect();
    assert_eq!(before, after, "a rejected import changed the cluster");
    // Replace clears a table the file holds; merge keeps what the file does not have.
    c.nodes[0].transact(Txn::new().put("ordered", "z", "extra")).await.expect("write");
    c.nodes[0].import(&path, Mode::Merge).await.expect("merge");
    assert_eq!(c.nodes[0].get("ordered", b"z").expect("get").len(), 1, "merge keeps records not in the file");
    c.nodes[0].import(&path, Mode::Replace).await.expect("replace");
    assert!(c.nodes[0].get("ordered", b"z").expect("get").is_empty(), "replace drops records not in the file");
    assert_eq!(c.nodes[0].dump("ordered").expect("dump").len(), 2);
    c.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir).into_iter().map(|(p, b)| (p.strip_prefix(dir).expect("prefix").display().to_string(), b)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_online_backup_restores_under_its_name_only() {
    let mut c = Cluster::start(3).await;
    let stop = Arc::new(AtomicBool::new(false));
    let nodes_for_writer: Vec<_> = c.nodes.iter().map(|n| n.runtime().clone()).collect();
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = &nodes_for_writer[(i % 2) as usize];
                last = n.transact(Txn::new().put("kv", format!("w{i}"), "x")).await.expect("write").index;
                i += 1;
            }
            (i, last)
        })
    };
    wait_until("writes under way", Duration::from_secs(20), || async { c.nodes[0].applied_index() > 30 }).await;
    let backup_dir = c.dir.path().join("backup-n3");
    let info = c.nodes[2].backup_data_dir(&backup_dir).await.expect("backup");
    assert!(info.bytes > 0);
    assert!(
        matches!(c.nodes[2].backup_data_dir(&backup_dir).await, Err(mnema::Error::Refused(_))),
        "a non-empty target is refused"
    );
    wait_until("writes after the backup", Duration::from_secs(20), || async {
        c.nodes[0].applied_index() > info.applied_index + 30
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (writes, last) = writer.await.expect("writer");

    // Another name on a copy of the backup: refused, and the copy is untouched.
    let other = c.dir.path().join("other");
    copy_dir(&backup_dir, &other);
    let before = dir_bytes(&other);
    // (Its own free port: the listen address is checked before the data dir is opened.)
    let mut cfg = config(c.dir.path(), free_base(9), 9, 3);
    cfg.node.data_dir = other.clone();
    let err = Node::start(cfg, test_tables()).await.err().expect("refused under another name");
    assert!(matches!(err, mnema::Error::NodeNameMismatch { .. }), "{err}");
    assert_eq!(dir_bytes(&other), before, "the refused data dir changed");

    // The same name: n3's data dir replaced by the backup; it rejoins and catches up.
    let n3 = c.nodes.remove(2);
    n3.shutdown().await.expect("stop n3");
    let data = c.dir.path().join("n3");
    std::fs::remove_dir_all(&data).expect("rm n3");
    copy_dir(&backup_dir, &data);
    let back =
        Node::start(config(c.dir.path(), c.base, 3, 3), test_tables()).await.expect("restart n3 from the backup");
    back.wait_applied(last, Duration::from_secs(30)).await.expect("n3 catches up");
    assert_eq!(back.dump("kv").expect("dump").len() as u64, writes);
    c.nodes.push(back);
    c.shutdown().await;
}
