//! Integrity kept in the core: what a table's rule refuses is never stored, by any path;
//! what a node refuses over gRPC arrives as a typed error.

use crate::harness::*;
use mnema::Client;
use mnema::engine::{Batch, TxnOutcome};
use mnema::schema::{self, routes};
use mnema::{Error, Txn};
use std::time::Duration;

/// Transactions that break a broker table's rule, with the table they break.
fn bad_writes() -> Vec<(&'static str, Txn)> {
    let dest = routes::encode_dest(&routes::Dest::Node("n1@127.0.0.1".into())).unwrap();
    vec![
        // A value that is not a destination.
        (schema::ROUTES, Txn::new().put(schema::ROUTES, "a/b", "not a destination")),
        // A filter MQTT forbids (`#` not last), with a valid destination.
        (schema::ROUTES, Txn::new().put(schema::ROUTES, "a/#/b", dest.clone())),
        // A retained message under a wildcard: a topic name has none.
        (schema::RETAINED, Txn::new().put(schema::RETAINED, "sensors/+/temp", "{}")),
        // Neither the typed encoding nor JSON text, and put_if_absent is held to it too.
        (schema::SESSIONS, Txn::new().put_if_absent(schema::SESSIONS, "c1", vec![0xff, 0x00, 0x13])),
        // One bad op refuses its whole transaction.
        (schema::RULES, Txn::new().put("kv", "fine", "v").put(schema::RULES, "r1", vec![0xfe, 0xfe])),
    ]
}

fn assert_invalid_value(err: &Error, table: &str, what: &str) {
    match err {
        Error::InvalidValue { table: t, .. } => assert_eq!(t, table, "{what}"),
        other => panic!("{what}: expected InvalidValue for `{table}`, got {other:?}"),
    }
}

/// Nothing of any bad write is visible on `node`.
fn assert_nothing_stored(node: &mnema::Node) {
    for (table, key) in [
        (schema::ROUTES, "a/b"),
        (schema::ROUTES, "a/#/b"),
        (schema::RETAINED, "sensors/+/temp"),
        (schema::SESSIONS, "c1"),
        (schema::RULES, "r1"),
        ("kv", "fine"),
    ] {
        assert!(node.get(table, key.as_bytes()).unwrap().is_empty(), "{table} {key} was stored on {}", node.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_its_table_refuses_is_stored_by_no_write_path() {
    let c = Cluster::start(3).await;
    let follower = &c.nodes[c.follower()];
    let leader = &c.nodes[c.leader()];
    let before = leader.applied_index();

    // A broker's raw transaction, on the leader and on a follower: refused before proposing.
    for node in [leader, follower] {
        for (table, txn) in bad_writes() {
            let err = node.transact(txn).await.unwrap_err();
            assert_invalid_value(&err, table, &format!("transact on {}", node.name()));
        }
    }
    assert_eq!(leader.applied_index(), before, "a refused write reached the log");

    // gRPC `Transact` (what `mnema ctl table put` sends): the same error, not a string.
    let mut client = Client::new(follower.addr(), "test-cookie").unwrap();
    for (table, txn) in bad_writes() {
        let err = client.transact(&txn).await.unwrap_err();
        assert_invalid_value(&err, table, "gRPC Transact");
    }

    // Past the proposer's check (a batch straight into the log, as a node of another build
    // could send it): every node refuses it at apply, identically.
    let txns: Vec<Txn> = bad_writes().into_iter().map(|(_, t)| t).collect();
    let n = txns.len();
    let (index, outcome) = leader.runtime().write_batch(Batch::new(txns, None)).await.unwrap();
    assert_eq!(outcome.outcomes.len(), n);
    for o in &outcome.outcomes {
        assert!(matches!(o, TxnOutcome::Rejected(_)), "applied a refused record: {o:?}");
    }
    c.wait_applied(index).await;
    for node in &c.nodes {
        assert_nothing_stored(node);
    }

    // Good records still go in, and the export of the cluster reads back.
    let dest = routes::encode_dest(&routes::Dest::Node("n1@127.0.0.1".into())).unwrap();
    follower.transact(Txn::new().put(schema::ROUTES, "a/+/b", dest)).await.unwrap();
    let file = c.dir.path().join("export.json");
    let mut out = std::fs::File::create(&file).unwrap();
    let mut progress = mnema::backup::Progress::silent("export");
    let bytes =
        tokio::time::timeout(Duration::from_secs(20), client.export(&mut out, &mut progress)).await.unwrap().unwrap();
    assert!(bytes > 0);
    c.shutdown().await;
}

/// `Node::start` with `config` fails with a config error on `key`, and the data dir was
/// not created.
async fn assert_refused_before_open(config: mnema::NodeConfig, key: &str) {
    let data = config.node.data_dir.clone();
    match mnema::Node::start(config, test_tables()).await {
        Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
        Err(other) => panic!("expected a config error on {key}, got {other:?}"),
        Ok(_) => panic!("started with a bad {key}"),
    }
    assert!(!data.exists(), "{key}: the data dir {} was created before the config was refused", data.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listen_settings_and_cookies_stop_the_node_before_the_data_dir_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(2);
    // A port in use.
    let taken = std::net::TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    assert_refused_before_open(config(dir.path(), base, 1, 1), "node.listen").await;
    drop(taken);
    // A listen or advertise port out of range.
    let mut c = config(dir.path(), base, 1, 1);
    c.node.listen = Some("127.0.0.1:70000".into());
    assert_refused_before_open(c, "node.listen").await;
    let mut c = config(dir.path(), base, 1, 1);
    c.node.advertise = Some("127.0.0.1:0".into());
    assert_refused_before_open(c, "node.advertise").await;
    // A cookie gRPC metadata cannot carry.
    let mut c = config(dir.path(), base, 1, 1);
    c.node.cookie = "sécret".into();
    assert_refused_before_open(c, "node.cookie").await;
    // With every setting good, the same node starts.
    let n = mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await.unwrap();
    n.shutdown().await.unwrap();
}

#[test]
fn a_directory_given_as_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    match mnema::NodeConfig::load(Some(dir.path())) {
        Err(Error::Config { key, .. }) => assert_eq!(key, "--config"),
        other => panic!("a directory was read as a config: {other:?}"),
    }
}

/// `MNEMA_*` variables that name no config key (`MNEMA_CTL_NODE`, which `mnema ctl`
/// reads, or a typo) are ignored, as EMQX does; a real key still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_that_are_not_config_keys_do_not_stop_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(1);
    let p = spawn_node(dir.path(), base, 1, 1);
    drop(p);
    let conf = dir.path().join("n1.toml");
    let log = std::fs::File::create(dir.path().join("env.log")).unwrap();
    let child = std::process::Command::new(bin())
        .args(["start", "--config"])
        .arg(&conf)
        .env("MNEMA_CTL_NODE", "n9@127.0.0.1")
        .env("MNEMA_NOT_A_KEY", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _p = Proc { child, name: name(1), log: dir.path().join("env.log") };
    wait_until("the node to serve", Duration::from_secs(30), || async { client(base, 1).node_info().await.is_ok() })
        .await;
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

async fn write_rules(node: &mnema::Node, from: u32, to: u32) -> u64 {
    let mut index = 0;
    for i in from..to {
        index = node
            .transact(Txn::new().put(schema::RULES, format!("r{i}"), format!("{{\"n\":{i}}}")))
            .await
            .unwrap()
            .index;
    }
    index
}

fn voters(node: &mnema::Node) -> Vec<u64> {
    node.runtime().metrics().unwrap().membership_config.membership().voter_ids().collect()
}

/// A core whose RocksDB went back (here: an older copy of its `db/`, as a restored volume
/// snapshot or a WAL cut at its tail would leave it) refuses to start, naming the store;
/// `data rebuild` sets it aside and the node comes back as a new member with every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_whose_raft_state_went_back_refuses_to_start_and_a_rebuild_brings_it_back() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader();
    let victim = (0..3).find(|&i| i != leader).unwrap();
    let i = victim as u16 + 1;
    let data = c.dir.path().join(format!("n{i}"));
    write_rules(&c.nodes[leader], 0, 20).await;
    // An old copy of the victim's store, taken while it is stopped.
    let n = c.nodes.remove(victim);
    n.shutdown().await.unwrap();
    // At most what the copy holds: the victim applied only what the others had committed.
    let old_applied = c.nodes.iter().map(|n| n.applied_index()).max().unwrap();
    let old = c.dir.path().join("old-db");
    copy_tree(&data.join("db"), &old);
    c.nodes.insert(victim, mnema::Node::start(config(c.dir.path(), c.base, i, 3), test_tables()).await.unwrap());
    // Writes go on until the mark records synced progress past the old copy (it trails the
    // applied index by up to a second).
    let mut next = 20;
    let marked = || mnema::storage::raft_mark::read(&data).unwrap().is_some_and(|m| m.applied > old_applied);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !marked() {
        assert!(std::time::Instant::now() < deadline, "RAFT_MARK never passed index {old_applied}");
        write_rules(&c.nodes[leader], next, next + 5).await;
        next += 5;
    }
    let last = write_rules(&c.nodes[leader], next, 60.max(next + 1)).await;
    c.wait_applied(last).await;
    let n = c.nodes.remove(victim);
    n.shutdown().await.unwrap();
    std::fs::remove_dir_all(data.join("db")).unwrap();
    copy_tree(&old, &data.join("db"));

    match mnema::Node::start(config(c.dir.path(), c.base, i, 3), test_tables()).await {
        Err(Error::DamagedState { file, .. }) => assert_eq!(file, data.join("db")),
        Err(other) => panic!("expected DamagedState, got {other:?}"),
        Ok(_) => panic!("a core whose log went back started"),
    }

    // The one command: set it aside, start again, rejoin as a new member.
    let aside = mnema::storage::set_aside::set_aside(&data, &name(i)).unwrap();
    assert!(aside.join("db").exists(), "the damaged store is kept");
    let n = mnema::Node::start(config(c.dir.path(), c.base, i, 3), test_tables()).await.unwrap();
    c.nodes.insert(victim, n);
    let total = 60.max(next + 1) + 10;
    let more = write_rules(&c.nodes[leader], total - 10, total).await;
    c.wait_applied(more).await;
    let rebuilt = &c.nodes[victim];
    for k in 0..total {
        assert_eq!(
            rebuilt.get(schema::RULES, format!("r{k}").as_bytes()).unwrap().len(),
            1,
            "r{k} on the rebuilt core"
        );
    }
    wait_until("the rebuilt core to be a voter that votes again", Duration::from_secs(60), || async {
        !rebuilt.runtime().refuses_votes() && voters(&c.nodes[leader]).contains(&rebuilt.node_id())
    })
    .await;
    assert_eq!(voters(&c.nodes[leader]).len(), 3);
    c.shutdown().await;
}

/// What [`start_after`] returns: the start's result, the store, and the directory holding
/// it (removed when dropped).
type Restarted = (mnema::Result<mnema::Node>, std::path::PathBuf, tempfile::TempDir);

/// Writes 200 records through a one-core cluster, stops it with the records still in its
/// WAL (a clean stop flushes them into table files; here, as when that flush fails, it
/// does not), lets `damage` change its store (`db/`), and starts the core on it again.
async fn start_after(damage: impl FnOnce(&std::path::Path)) -> Restarted {
    let c = Cluster::start(1).await;
    write_rules(&c.nodes[0], 0, 200).await;
    c.nodes[0].runtime().keep_wal_at_stop();
    let db = c.dir.path().join("n1").join("db");
    let base = c.base;
    let dir = c.shutdown().await;
    damage(&db);
    let start = mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await;
    (start, db, dir)
}

/// The start was refused with `DamagedState` naming the store `db` (or a file in it).
fn assert_refused_naming(start: mnema::Result<mnema::Node>, db: &std::path::Path, what: &str) {
    match start {
        Err(Error::DamagedState { file, .. }) => assert!(file.starts_with(db), "{what}: {file:?}"),
        Err(other) => panic!("{what}: expected DamagedState, got {other:?}"),
        Ok(_) => panic!("{what}: started on a damaged store"),
    }
}

/// The largest WAL file of the store `db`.
fn largest_wal(db: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(db)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a WAL file")
}

/// A clean stop writes the memtables into table files, so the next start has no WAL to
/// replay (replaying 91 MB of it took 415 ms of a 1.3 s restart), and loses nothing: every
/// record is there after it, read from the table files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_no_wal_to_replay_and_loses_nothing() {
    let c = Cluster::start(1).await;
    let last = write_rules(&c.nodes[0], 0, 200).await;
    let db = c.dir.path().join("n1").join("db");
    let base = c.base;
    let dir = c.shutdown().await;
    let wal = mnema::storage::db::wal_bytes(&db);
    assert!(wal < 4096, "{wal} bytes of WAL after a clean stop");
    assert!(!mnema::testing::table_files(&db, "data").unwrap().is_empty(), "the records are in no table file");
    let node = mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await.unwrap();
    assert!(node.applied_index() >= last, "applied {} of {last}", node.applied_index());
    let rules = node.table(schema::RULES).unwrap();
    for i in 0..200 {
        assert_eq!(
            rules.get_one(format!("r{i}").as_bytes()).unwrap().as_deref(),
            Some(format!("{{\"n\":{i}}}").as_bytes())
        );
    }
    node.shutdown().await.unwrap();
}

/// Bytes flipped inside a stopped core's WAL (synced data, not a torn tail) make its
/// start fail with the store named, instead of opening on what came before the damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_inside_the_wal_are_refused_at_start() {
    let (start, db, _dir) = start_after(|db| {
        let wal = largest_wal(db);
        let mut bytes = std::fs::read(&wal).unwrap();
        assert!(bytes.len() > 4096, "WAL of {} bytes", bytes.len());
        let mid = bytes.len() / 3;
        for b in &mut bytes[mid..mid + 8] {
            *b ^= 0x5a;
        }
        std::fs::write(&wal, &bytes).unwrap();
    })
    .await;
    assert_refused_naming(start, &db, "flipped bytes in the WAL");
}

/// A WAL cut short after a clean stop (its last records gone, as a torn write would
/// leave it) is refused at start with the store named: the stop recorded in `RAFT_MARK`
/// how far the synced state had come, so the entries the cut took are missed, not
/// silently forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_cut_short_after_a_clean_stop_is_refused_at_start() {
    let (start, db, _dir) = start_after(|db| {
        let wal = largest_wal(db);
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(len > 4096, "WAL of {len} bytes");
        std::fs::OpenOptions::new().write(true).open(&wal).unwrap().set_len(len * 2 / 3).unwrap();
    })
    .await;
    assert_refused_naming(start, &db, "a WAL cut short");
}

/// A core whose IDENTITY records another cluster (a file copied from elsewhere) is refused
/// at start with the file and both ids, instead of running isolated for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_from_another_cluster_is_refused_at_start() {
    let mut c = Cluster::start(3).await;
    write_rules(&c.nodes[0], 0, 3).await;
    let n = c.nodes.remove(2);
    n.shutdown().await.unwrap();
    let data = c.dir.path().join("n3");
    mnema::storage::identity::set_cluster_id(&data, "0000000000000bad").unwrap();
    let before = std::fs::read(mnema::storage::identity::path(&data)).unwrap();
    match mnema::Node::start(config(c.dir.path(), c.base, 3, 3), test_tables()).await {
        Err(Error::ForeignIdentity { file, ours, theirs, .. }) => {
            assert_eq!(file, mnema::storage::identity::path(&data));
            assert_eq!(ours, "0000000000000bad");
            assert_eq!(theirs, c.nodes[0].runtime().cluster_id());
        }
        Err(other) => panic!("expected ForeignIdentity, got {other:?}"),
        Ok(_) => panic!("started with a foreign IDENTITY"),
    }
    assert_eq!(std::fs::read(mnema::storage::identity::path(&data)).unwrap(), before, "IDENTITY changed");
    // Its own identity back: it starts and rejoins.
    let ours = c.nodes[0].runtime().cluster_id();
    mnema::storage::identity::set_cluster_id(&data, &ours).unwrap();
    c.nodes.push(mnema::Node::start(config(c.dir.path(), c.base, 3, 3), test_tables()).await.unwrap());
    let last = write_rules(&c.nodes[0], 3, 6).await;
    c.wait_applied(last).await;
    c.shutdown().await;
}

/// `test_tables()` with the `bag` table declared as a set: the same names, another meaning.
fn other_tables() -> Vec<mnema::TableDef> {
    let mut t = test_tables();
    for d in t.iter_mut().filter(|d| d.name == "bag") {
        d.kind = mnema::Kind::Set;
    }
    t
}

fn names_the_table(res: mnema::Result<()>, table: &str) {
    match res {
        Err(Error::SchemaMismatch { table: t, .. }) => assert_eq!(t, table),
        other => panic!("expected SchemaMismatch naming `{table}`, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_declaring_other_tables_is_refused_at_join_and_keeps_its_data() {
    let c = Cluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let obase = free_base(4);
    let stranger = mnema::Node::start(manual_config(dir.path(), obase, 4), other_tables()).await.unwrap();
    let mine = stranger.transact(Txn::new().put("kv", "mine", "1")).await.expect("a write of its own");
    let target = mnema::Peer::parse("t", &format!("{}:{}", name(1), c.base + 1), 0).unwrap();
    names_the_table(stranger.join(&target).await, "bag");
    assert_eq!(stranger.get("kv", b"mine").unwrap().len(), 1, "its data was not discarded");
    assert!(stranger.applied_index() >= mine.index);
    stranger.shutdown().await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_core_declaring_other_tables_is_refused_at_start() {
    let mut c = Cluster::start(3).await;
    let done = c.nodes[0].transact(Txn::new().put("kv", "k", "v")).await.expect("write");
    c.wait_applied(done.index).await;
    let n3 = c.nodes.remove(2);
    n3.shutdown().await.expect("stop n3");
    // Restarted with its data dir and another declaration of `bag`: refused, not diverging.
    let res = mnema::Node::start(config(c.dir.path(), c.base, 3, 3), other_tables()).await;
    names_the_table(res.map(|_| ()), "bag");
    // With its own tables it comes back.
    let again = mnema::Node::start(config(c.dir.path(), c.base, 3, 3), test_tables()).await.expect("restart");
    again.wait_applied(done.index, Duration::from_secs(20)).await.expect("caught up");
    c.nodes.push(again);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replicant_declaring_other_tables_is_refused_by_every_core() {
    let c = Cluster::start(3).await;
    let r = mnema::Node::start(replicant_config(c.dir.path(), c.base, 4, 3), other_tables()).await.unwrap();
    wait_until("the replicant to be refused", Duration::from_secs(20), || async {
        r.replicant_status().and_then(|s| s.last_error).is_some_and(|e| matches!(e, Error::SchemaMismatch { .. }))
    })
    .await;
    let s = r.replicant_status().expect("replicant");
    assert_ne!(s.state, mnema::ReplicantState::Normal, "it follows no core");
    assert!(r.get("kv", b"anything").unwrap().is_empty());
    r.shutdown().await.unwrap();
    c.shutdown().await;
}

/// What a node refuses over gRPC arrives as the `Error` variant a local call returns:
/// an export or a replication stream asked of a replicant is `IsReplicant`, and bytes a
/// node cannot decode (a forwarded batch, a client's transaction, a Raft message) are
/// `Corrupt`, a definite refusal that a forwarder does not send again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_over_grpc_arrive_as_their_error_variant() {
    use mnema::rpc::client::Peers;
    use mnema::rpc::pb;
    use mnema::rpc::status::from_status;

    let c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    wait_until("the replicant to stream", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
    let mut out = Vec::new();
    let mut progress = mnema::backup::Progress::silent("export");
    let err = Client::new(r.addr(), COOKIE).unwrap().export(&mut out, &mut progress).await.unwrap_err();
    assert!(matches!(&err, Error::IsReplicant { action, .. } if action == "export"), "{err:?}");

    let peers = Peers::new(COOKIE, None, mnema::protocol::PROTOCOL, None).unwrap();
    let sub = pb::SubscribeRequest { replicant: "n9@127.0.0.1".into(), ..Default::default() };
    let Err(status) = peers.replication(r.addr()).unwrap().subscribe(sub).await else {
        panic!("a replicant streamed to another replicant")
    };
    assert!(matches!(from_status(r.addr(), status), Error::IsReplicant { .. }));

    let leader = &c.nodes[c.leader()];
    // The current encodings' version bytes (forwarded batches: 2; Raft messages: 1), then
    // bytes that decode to nothing.
    let garbage = vec![2, 0xff, 0x13, 0x37];
    let mut cluster = peers.cluster(leader.addr()).unwrap();
    let status = cluster.write(pb::WriteRequest { batch: garbage.clone(), relay: false }).await.unwrap_err();
    assert!(matches!(from_status(leader.addr(), status), Error::Corrupt { .. }), "a forwarded batch");
    let status = cluster.transact(pb::WriteRequest { batch: garbage.clone(), relay: false }).await.unwrap_err();
    assert!(matches!(from_status(leader.addr(), status), Error::Corrupt { .. }), "a client's transaction");
    // A batch in a format version this build has no decoder for (a newer build's): refused
    // naming both versions, not taken for damage.
    let newer = vec![0xff, 0x13, 0x37];
    let status = cluster.write(pb::WriteRequest { batch: newer, relay: false }).await.unwrap_err();
    let err = from_status(leader.addr(), status);
    assert!(matches!(err, Error::UnknownFormat { found: 0xff, supported: 2, .. }), "a newer batch: {err:?}");
    let garbage = vec![1, 0xff, 0x13, 0x37];
    // Raft's service answers members of its own cluster only.
    let id = std::sync::Arc::new(std::sync::RwLock::new(leader.status().cluster_id));
    let members = Peers::new(COOKIE, Some(id), mnema::protocol::PROTOCOL, None).unwrap();
    let status = members.raft(leader.addr()).unwrap().append_entries(pb::Payload { data: garbage }).await.unwrap_err();
    let err = from_status(leader.addr(), status);
    assert!(matches!(err, Error::Corrupt { .. }), "a Raft message: {err:?}");
    r.shutdown().await.unwrap();
    c.shutdown().await;
}

/// The newest file under `db` whose name starts with `prefix` or ends with `suffix`.
fn store_file(db: &std::path::Path, pick: impl Fn(&str) -> bool) -> std::path::PathBuf {
    std::fs::read_dir(db)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pick))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no such file under {}", db.display()))
}

/// Bytes flipped in a table file (SST), the MANIFEST or the OPTIONS file of a core's store
/// refuse its start with `DamagedState` naming the store, never a RocksDB abort and never
/// a start on what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_in_an_sst_the_manifest_or_options_are_refused_at_start() {
    for (what, pick) in [
        ("an SST of the records", None),
        ("the MANIFEST", Some((|n: &str| n.starts_with("MANIFEST-")) as fn(&str) -> bool)),
        ("the OPTIONS file", Some(|n: &str| n.starts_with("OPTIONS-"))),
    ] {
        let c = Cluster::start(1).await;
        write_rules(&c.nodes[0], 0, 300).await;
        let data = c.dir.path().join("n1");
        let base = c.base;
        let dir = c.shutdown().await;
        // A start and a clean stop: the records are in table files.
        let node = mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await.unwrap();
        node.shutdown().await.unwrap();
        let file = match pick {
            Some(pick) => store_file(&data.join("db"), pick),
            // The records' column family (which a start reads whole, loading the tables).
            None => mnema::testing::table_files(&data.join("db"), "data")
                .unwrap()
                .pop()
                .expect("a table file of the records"),
        };
        let mut bytes = std::fs::read(&file).unwrap();
        let (mid, end) = (bytes.len() / 2, (bytes.len() / 2 + 16).min(bytes.len()));
        for b in &mut bytes[mid..end] {
            *b ^= 0x5a;
        }
        std::fs::write(&file, &bytes).unwrap();
        match mnema::Node::start(config(dir.path(), base, 1, 1), test_tables()).await {
            Err(Error::DamagedState { file: named, .. }) => {
                assert!(named.starts_with(data.join("db")), "{what}: {named:?}")
            }
            Err(other) => panic!("{what}: expected DamagedState, got {other:?}"),
            Ok(_) => panic!("{what}: started on a damaged store"),
        }
    }
}

/// Damage RocksDB finds while a core runs (bytes of a table file flipped under it, found
/// by a read of a disc-only table) stops the core's Raft with `DamagedState` naming the
/// file: `Node::failed` resolves with it (what `mnema start` exits on), and the core takes
/// no more writes, instead of serving on from a store it cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_found_while_running_stops_the_core_with_damaged_state() {
    let c = Cluster::start(1).await;
    let node = &c.nodes[0];
    let db = c.dir.path().join("n1").join("db");
    // More than a memtable (64 MiB) of disc-only records: RocksDB flushes them to a table
    // file while the core runs, and no read has brought its blocks into the cache.
    let value = vec![b'v'; 4096];
    let keys: Vec<String> = (0..20_000).map(|i| format!("k{i:06}")).collect();
    for chunk in keys.chunks(500) {
        let mut txn = Txn::new();
        for k in chunk {
            txn = txn.put("big", k.as_str(), value.clone());
        }
        node.transact(txn).await.expect("write");
    }
    // The records' table file and the Raft log's (both flushed): bytes flipped in both.
    let big_ssts = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&db)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sst"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 16 << 20))
            .collect()
    };
    wait_until("flushed table files", Duration::from_secs(60), || async { big_ssts().len() >= 2 }).await;
    for sst in big_ssts() {
        let mut bytes = std::fs::read(&sst).unwrap();
        for at in (bytes.len() / 8..bytes.len() * 7 / 8).step_by(64 << 10) {
            for b in &mut bytes[at..at + 16] {
                *b ^= 0x5a;
            }
        }
        std::fs::write(&sst, &bytes).unwrap();
    }
    let found = keys.iter().find_map(|k| node.get("big", k.as_bytes()).err());
    match found {
        Some(Error::DamagedState { file, .. }) => assert!(file.starts_with(&db), "{file:?}"),
        other => panic!("a read of the damaged file: expected DamagedState, got {other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(10), node.failed()).await {
        Ok(Error::DamagedState { file, .. }) => assert!(file.starts_with(&db), "{file:?}"),
        Ok(other) => panic!("expected the core to stop with DamagedState, got {other:?}"),
        Err(_) => panic!("the core still runs 10 s after its store was found damaged"),
    }
    assert!(node.transact(Txn::new().put("kv", "after", "1")).await.is_err(), "a write after the damage");
    let _ = c.shutdown().await;
}
