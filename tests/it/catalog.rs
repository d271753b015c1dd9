//! Tables created and dropped through the log: on every core and replicant, across a
//! whole-cluster restart, a snapshot install, export and import; a rolling restart that adds
//! tables; code every node must have; nothing left on disc by a drop.

use crate::harness::*;
use mnema::schema::routes::{self, Dest};
use mnema::storage::data_snapshot::DataSnapshot;
use mnema::{
    CodeKind, Declared, Error, Extractor, IndexKeys, IndexRange, Kind, Node, OpResult, ReplicantState, Storage,
    TableDef, Txn, ValueRule,
};
use std::time::Duration;

/// A table with no code: any node can create it.
fn plain(name: &str) -> TableDef {
    TableDef::replicated(name, Kind::OrderedSet, Storage::Disc)
}

/// A bag of routes-like records indexed by node with the `routes.node` extractor, which
/// every node registers (the `routes` table declares it).
fn routed(name: &str) -> TableDef {
    let extractor = test_tables()
        .into_iter()
        .find(|t| t.name == mnema::schema::ROUTES)
        .and_then(|t| t.indexes.first().map(|i| i.extractor))
        .expect("routes has its index");
    TableDef::replicated(name, Kind::Bag, Storage::Disc).with_index("by_node", extractor)
}

fn digits(_: &[u8], v: &[u8]) -> Result<(), String> {
    if v.iter().all(u8::is_ascii_digit) { Ok(()) } else { Err("not digits".into()) }
}

/// A table whose rule only nodes of the "new build" register.
fn ruled(version: u32) -> TableDef {
    TableDef::replicated("ruled", Kind::Set, Storage::Disc).with_rule(ValueRule::new("digits", digits).version(version))
}

fn names(node: &Node) -> Vec<String> {
    node.tables().into_iter().map(|t| t.declaration.name).collect()
}

async fn wait_table(node: &Node, table: &str) {
    wait_until(&format!("{} to have `{table}`", node.name()), Duration::from_secs(20), || async {
        names(node).iter().any(|n| n == table)
    })
    .await;
}

async fn wait_normal(r: &Node) {
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
}

fn dest(node: &str) -> Vec<u8> {
    routes::encode_dest(&Dest::Node(node.into())).expect("dest")
}

/// Checks `node` holds what the test wrote to the tables it created.
fn assert_created_tables_hold(node: &Node) {
    assert_eq!(node.get("made", b"k1").expect("get"), vec![mnema::Blob::from(&b"v1"[..])], "on {}", node.name());
    let hits = node.index("made_routes", "by_node", &IndexRange::exact("n2")).expect("index");
    assert_eq!(hits.len(), 2, "on {}", node.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_created_at_runtime_is_everywhere_after_a_whole_cluster_restart_and_survives_export_and_import() {
    let mut c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    wait_normal(&r).await;
    let created = c.nodes[0].create_table(&plain("made")).await.expect("create");
    assert_eq!(created.results, vec![OpResult::Inserted]);
    // Again, identical: a no-op, on any node. Declared otherwise: refused, naming it.
    let again = c.nodes[1].create_table(&plain("made")).await.expect("create again");
    assert_eq!(again.results, vec![OpResult::Exists]);
    match c.nodes[2].create_table(&TableDef::replicated("made", Kind::Set, Storage::Ram)).await {
        Err(Error::SchemaMismatch { table, .. }) => assert_eq!(table, "made"),
        other => panic!("{other:?}"),
    }
    // A table naming code every node has, created through the replicant (forwarded).
    r.create_table(&routed("made_routes")).await.expect("create through the replicant");
    c.nodes[1].transact(Txn::new().put("made", "k1", "v1")).await.expect("write");
    for (f, n) in [("a/b", "n2"), ("a/+", "n2"), ("c", "n3")] {
        c.nodes[2].transact(Txn::new().put("made_routes", f, dest(n))).await.expect("write");
    }
    let last = r.transact(Txn::new().put("made", "k2", "v2")).await.expect("write").index;
    c.wait_applied(last).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    for node in c.nodes.iter().chain([&r]) {
        assert_created_tables_hold(node);
    }
    // The whole cluster stops and starts again with its declared tables only.
    r.shutdown().await.expect("stop replicant");
    let mut numbers = Vec::new();
    for n in std::mem::take(&mut c.nodes) {
        numbers.push(mnema::testing::number_of(n.name()).expect("a harness name"));
        n.shutdown().await.expect("shutdown");
    }
    for i in numbers {
        c.nodes.push(Node::start(config(c.dir.path(), c.base, i, 3), test_tables()).await.expect("restart"));
    }
    c.wait_leader().await;
    let r = c.replicant(5).await;
    wait_normal(&r).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    for node in c.nodes.iter().chain([&r]) {
        node.wait_applied(last, Duration::from_secs(20)).await.expect("catch up");
        assert_created_tables_hold(node);
    }
    // Exported, then imported into a new cluster that never heard of these tables.
    let file = c.dir.path().join("export.json");
    c.nodes[0].export(&file).await.expect("export");
    let other = Cluster::start(1).await;
    assert!(!names(&other.nodes[0]).contains(&"made".to_string()));
    other.nodes[0].import(&file, mnema::backup::Mode::Merge).await.expect("import");
    assert_created_tables_hold(&other.nodes[0]);
    assert_eq!(other.nodes[0].get("made", b"k2").expect("get").len(), 1);
    other.shutdown().await;
    r.shutdown().await.expect("stop replicant");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_that_adds_tables_is_accepted_and_new_code_waits_for_every_core() {
    let mut c = Cluster::start(3).await;
    let newer = || {
        let mut t = test_tables();
        t.push(plain("added"));
        t.push(ruled(1));
        t
    };
    let mut numbers: Vec<u16> = c.nodes.iter().map(|n| mnema::testing::number_of(n.name()).expect("name")).collect();
    numbers.sort();
    for (step, i) in numbers.iter().enumerate() {
        c.stop_node(*i).await;
        let node =
            Node::start(config(c.dir.path(), c.base, *i, 3), newer()).await.expect("a node adding tables starts");
        c.nodes.push(node);
        c.wait_leader().await;
        // The table without code is created by the first upgraded node, for every node.
        for n in &c.nodes {
            wait_table(n, "added").await;
        }
        let old = c.nodes.iter().find(|n| n.name() != name(*i)).expect("another node");
        old.transact(Txn::new().put("added", format!("step{step}"), "x")).await.expect("write through any node");
        if step < numbers.len() - 1 {
            // The ruled table needs code the nodes not yet upgraded lack: refused, naming one.
            let upgraded = &c.nodes[c.nodes.len() - 1];
            match upgraded.create_table(&ruled(1)).await {
                Err(Error::Unregistered { kind: CodeKind::Rule, name, version: 1, node }) => {
                    assert_eq!(name, "digits");
                    assert!(node != upgraded.name(), "{node}");
                }
                other => panic!("step {step}: {other:?}"),
            }
            assert!(!names(upgraded).contains(&"ruled".to_string()));
        }
    }
    for n in &c.nodes {
        wait_table(n, "ruled").await;
    }
    match c.nodes[0].transact(Txn::new().put("ruled", "k", "x1")).await {
        Err(Error::InvalidValue { table, .. }) => assert_eq!(table, "ruled"),
        other => panic!("{other:?}"),
    }
    c.nodes[0].transact(Txn::new().put("ruled", "k", "12")).await.expect("a value the rule takes");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_member_gets_the_catalog_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let (nodes, l) = start_snapshotting_pair(dir.path(), base).await;
    nodes[l].create_table(&routed("made_routes")).await.expect("create");
    let mut last = 0;
    // Enough entries that the leader purges its log past what a snapshot keeps (1,000).
    for i in 0..1500u32 {
        let n = format!("n{}", i % 3);
        last = nodes[l].transact(Txn::new().put("made_routes", format!("t/{i}"), dest(&n))).await.unwrap().index;
    }
    wait_until("log purged", Duration::from_secs(30), || async {
        nodes[l].runtime().metrics().unwrap().purged.map(|p| p.index > 100).unwrap_or(false)
    })
    .await;
    // A newcomer that does not declare the table: it gets it from the snapshot.
    let n3 = Node::start(manual_config(dir.path(), base, 3), mnema::schema::broker_tables()).await.unwrap();
    n3.join(&mnema::Peer::parse("t", &name(1), base).unwrap()).await.expect("join");
    n3.wait_applied(last, Duration::from_secs(30)).await.expect("newcomer catches up");
    assert!(n3.runtime().metrics().unwrap().snapshot.is_some(), "newcomer installed a snapshot");
    assert_eq!(n3.dump("made_routes").unwrap().len(), 1500);
    assert_eq!(n3.index("made_routes", "by_node", &IndexRange::exact("n1")).unwrap().len(), 500);
    n3.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// Every stored key of `node`'s replicated state that belongs to `table` (its records or
/// its catalog record).
fn keys_of(node: &Node, table: &str) -> Vec<Vec<u8>> {
    let prefix = mnema::engine::keys::table_prefix(table);
    let catalog_key = mnema::engine::catalog::record_key(table);
    let mut out = Vec::new();
    DataSnapshot::take(node.runtime().store())
        .for_each_record(|k, _| {
            if k.starts_with(&prefix) || k == catalog_key.as_slice() {
                out.push(k.to_vec());
            }
            Ok(true)
        })
        .expect("scan");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_table_leaves_no_key_on_disc() {
    let c = Cluster::start(3).await;
    c.nodes[0].create_table(&plain("gone")).await.expect("create");
    c.nodes[0].create_table(&TableDef::replicated("gone_big", Kind::Set, Storage::DiscOnly)).await.expect("create");
    for i in 0..50 {
        c.nodes[i % 3].transact(Txn::new().put("gone", format!("k{i}"), "v")).await.expect("write");
        c.nodes[i % 3].transact(Txn::new().put("gone_big", format!("k{i}"), "v")).await.expect("write");
    }
    let last = c.nodes[0].transact(Txn::new().put("kv", "stays", "v")).await.expect("write").index;
    c.wait_applied(last).await;
    for n in &c.nodes {
        assert_eq!(keys_of(n, "gone").len(), 51, "50 records and the catalog record on {}", n.name());
    }
    c.nodes[1].drop_table("gone").await.expect("drop");
    let last = c.nodes[2].drop_table("gone_big").await.expect("drop").index;
    c.wait_applied(last).await;
    for n in &c.nodes {
        for table in ["gone", "gone_big"] {
            assert_eq!(keys_of(n, table), Vec::<Vec<u8>>::new(), "`{table}` left keys on {}", n.name());
            assert!(matches!(n.get(table, b"k1"), Err(Error::UnknownTable(_))), "{table} on {}", n.name());
        }
        assert_eq!(n.get("kv", b"stays").expect("get").len(), 1, "other tables stay");
    }
    assert!(matches!(c.nodes[0].drop_table("gone").await, Err(Error::UnknownTable(_))));
    // A declared table that is dropped comes back empty: its nodes create it again.
    c.nodes[0].transact(Txn::new().put("rules", "r", "{}")).await.expect("write");
    c.nodes[0].drop_table("rules").await.expect("drop a declared table");
    for n in &c.nodes {
        wait_table(n, "rules").await;
    }
    assert!(c.nodes[0].get("rules", b"r").expect("get").is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_whose_code_differs_are_refused_at_join() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(4);
    let start = |i: u16, declared: Declared| {
        let cfg = manual_config(dir.path(), base, i);
        async move { Node::start(cfg, declared).await.expect("start") }
    };
    let target = mnema::Peer::parse("t", &name(1), base).unwrap();
    // n1 runs a table whose rule is version 1, and registers an extractor besides.
    fn first(_: &[u8], v: &[u8], out: &mut IndexKeys) -> Result<(), String> {
        out.push(&v[..v.len().min(1)]);
        Ok(())
    }
    let mut tables = mnema::schema::broker_tables();
    tables.push(ruled(1));
    let n1 = start(1, Declared::new(tables.clone()).extractor(Extractor::new("first", first))).await;
    wait_table(&n1, "ruled").await;
    // A table created at runtime with the extra extractor: every later member needs it.
    let indexed =
        TableDef::replicated("indexed", Kind::Set, Storage::Disc).with_index("first", Extractor::new("first", first));
    n1.create_table(&indexed).await.expect("create");
    // n2 declares the same table with the rule at version 2: refused before it discards anything.
    let mut v2 = mnema::schema::broker_tables();
    v2.push(ruled(2));
    let n2 = start(2, Declared::new(v2).extractor(Extractor::new("first", first))).await;
    match n2.join(&target).await {
        Err(Error::SchemaMismatch { table, .. }) => assert_eq!(table, "ruled"),
        other => panic!("{other:?}"),
    }
    // n3 does not declare it, but registers the rule's name at version 2: refused too.
    let n3 = start(
        3,
        Declared::new(mnema::schema::broker_tables())
            .rule(ValueRule::new("digits", digits).version(2))
            .extractor(Extractor::new("first", first)),
    )
    .await;
    match n3.join(&target).await {
        Err(Error::CodeMismatch { kind: CodeKind::Rule, name, ours: 2, theirs: 1, .. }) => assert_eq!(name, "digits"),
        other => panic!("{other:?}"),
    }
    // n4 lacks the extractor a table in the log names: it could not apply the log.
    let mut with_ruled = mnema::schema::broker_tables();
    with_ruled.push(ruled(1));
    let n4 = start(4, Declared::new(with_ruled)).await;
    match n4.join(&target).await {
        Err(Error::Unregistered { kind: CodeKind::Extractor, name, node, .. }) => {
            assert_eq!((name.as_str(), node.as_str()), ("first", n4.name()))
        }
        other => panic!("{other:?}"),
    }
    for n in [n4, n3, n2, n1] {
        n.shutdown().await.expect("shutdown");
    }
}

/// `mnema ctl` against `node`, from a thread of its own (the CLI blocks until it exits).
async fn ctl(node: &Node, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["ctl", "--node", node.addr(), "--cookie", COOKIE]).args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run mnema ctl")).await.expect("ctl thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctl_creates_lists_and_drops_tables() {
    let c = Cluster::start(1).await;
    let node = &c.nodes[0];
    let out =
        ctl(node, &["table", "create", "audit", "--kind", "ordered_set", "--storage", "disc", "--shard", "5"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created"), "{}", String::from_utf8_lossy(&out.stdout));
    let indexed =
        ["table", "create", "mine", "--storage", "ram", "--index", "owner=sessions.owner@1", "--rule", "sessions"];
    assert!(ctl(node, &indexed).await.status.success());
    let again = ctl(node, &["table", "create", "audit", "--kind", "ordered_set", "--shard", "5"]).await;
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("exists"), "{}", String::from_utf8_lossy(&again.stdout));
    // Code no node registered: refused, naming the node.
    let unknown = ctl(node, &["table", "create", "bad", "--rule", "nobody-has-this"]).await;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("nobody-has-this"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let put = ctl(node, &["table", "put", "audit", "0001", "\"created\""]).await;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let list = ctl(node, &["table", "list", "--json"]).await;
    let tables: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
    let audit = tables.as_array().and_then(|t| t.iter().find(|t| t["name"] == "audit")).cloned().expect("audit listed");
    assert_eq!(audit["declaration"]["shard"], 5);
    assert_eq!(audit["declaration"]["kind"], "ordered_set");
    assert_eq!(audit["records"], 1);
    let mine = tables.as_array().and_then(|t| t.iter().find(|t| t["name"] == "mine")).cloned().expect("mine listed");
    assert_eq!(mine["declaration"]["indexes"][0]["extractor"]["name"], "sessions.owner");
    let text = ctl(node, &["table", "list"]).await;
    assert!(String::from_utf8_lossy(&text.stdout).lines().any(|l| l.starts_with("audit\treplicated")));
    assert!(ctl(node, &["table", "drop", "audit"]).await.status.success());
    assert!(!names(node).contains(&"audit".to_string()));
    let gone = ctl(node, &["table", "drop", "audit"]).await;
    assert!(!gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("unknown table"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_from_before_the_catalog_adopts_the_tables_its_node_declares() {
    let c = Cluster::start(1).await;
    c.nodes[0].transact(Txn::new().put("kv", "k", "v")).await.expect("write");
    mnema::schema::routes::add(Txn::new(), "a/+", &Dest::Node("n1".into()))
        .map(|t| c.nodes[0].transact(t))
        .expect("route")
        .await
        .expect("write");
    let data_dir = c.dir.path().join("n1");
    let dir = c.shutdown().await;
    // What a build before the catalog left: the tables' records, no catalog record.
    {
        use mnema::storage::db::{CF_DATA, Db};
        let db = Db::open(&mnema::storage::layout::db(&data_dir)).expect("open the store");
        let cf = db.cf(CF_DATA).expect("cf");
        let prefix = mnema::engine::keys::table_prefix(mnema::engine::catalog::TABLE);
        let keys: Vec<Vec<u8>> = db
            .raw()
            .prefix_iterator_cf(cf, &prefix)
            .map(|item| item.expect("scan").0.to_vec())
            .take_while(|k| k.starts_with(&prefix))
            .collect();
        assert!(keys.len() > 10, "the catalog was stored: {} records", keys.len());
        for k in &keys {
            db.raw().delete_cf(cf, k).expect("delete a catalog record");
        }
        db.sync_wal().expect("sync");
    }
    let base = free_base(1);
    let node = Node::start(config(dir.path(), base, 1, 1), test_tables()).await.expect("start on the old store");
    assert_eq!(node.get("kv", b"k").expect("get").len(), 1, "its records are there");
    assert_eq!(node.routes().match_routes("a/b").expect("match").len(), 1);
    let declared: Vec<String> =
        test_tables().into_iter().filter(|t| t.scope == mnema::Scope::Replicated).map(|t| t.name).collect();
    let mut have = names(&node);
    have.retain(|n| declared.contains(n));
    have.sort();
    let mut want = declared.clone();
    want.sort();
    assert_eq!(have, want);
    assert_eq!(keys_of(&node, "kv").len(), 2, "its record and its catalog record, on disc again");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_declaring_a_table_otherwise_than_its_log_is_refused_at_start() {
    let c = Cluster::start(1).await;
    let dir = c.shutdown().await;
    let mut tables = test_tables();
    let kv = tables.iter_mut().find(|t| t.name == "kv").expect("kv");
    *kv = TableDef::replicated("kv", Kind::Bag, Storage::Disc);
    let base = free_base(1);
    match Node::start(config(dir.path(), base, 1, 1), tables).await {
        Err(Error::SchemaMismatch { table, .. }) => assert_eq!(table, "kv"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a node declaring `kv` otherwise than its log started"),
    }
    // Nothing of it keeps running: the same node starts as declared before.
    let node = Node::start(config(dir.path(), base, 1, 1), test_tables()).await.expect("start as before");
    node.shutdown().await.expect("shutdown");
}
