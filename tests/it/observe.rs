//! The operator's endpoint (`http.listen`): `/metrics` in the Prometheus text format,
//! `/health`, `/ready`; and cluster formation without ERROR lines while peers are not up.

use crate::harness::{free_base, spawn_config, wait_until};
use mnema::testing::{Cluster, number_of, test_tables};
use mnema::{Node, Txn};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `port`: the status code and the body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut raw)).await.ok()?.ok()?;
    let code = raw.split(' ').nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// Samples of a scrape: `name{labels}` → value (comments skipped).
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub async fn scrape(port: u16) -> HashMap<String, f64> {
    let (code, body) = get(port, "/metrics").await.expect("scrape");
    assert_eq!(code, 200);
    samples(&body)
}

pub fn value(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("metric `{key}` missing; have {:?}", s.keys().collect::<Vec<_>>()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_every_family_with_real_values_on_cores_and_replicants() {
    let http = free_base(8);
    let c = Cluster::start_with(3, |cfg| {
        let i = number_of(&cfg.node.name).expect("harness name");
        cfg.http.listen = Some(format!("127.0.0.1:{}", http + i));
        // Snapshots come quickly; the log is purged once 1000 entries lie behind one.
        cfg.raft.snapshot_after_entries = 20;
    })
    .await;
    let (l, f) = (c.leader(), c.follower());
    let port = |n: &Node| http + number_of(n.name()).expect("harness name");
    let n = 1100u32;
    for i in 0..n {
        let node = if i % 2 == 0 { &c.nodes[l] } else { &c.nodes[f] };
        node.transact(Txn::new().put("kv", format!("k{i}"), vec![7u8; 10])).await.expect("write");
    }
    let last = c.nodes[l].transact(Txn::new().put("kv", "last", "x")).await.expect("write").index;
    c.wait_applied(last).await;

    let leader = scrape(port(&c.nodes[l])).await;
    assert!(value(&leader, "mnema_raft_term") >= 1.0);
    assert_eq!(value(&leader, "mnema_raft_is_leader"), 1.0);
    assert_eq!(value(&leader, "mnema_raft_has_leader"), 1.0);
    assert_eq!(value(&leader, &format!("mnema_raft_leader{{name=\"{}\"}}", c.nodes[l].name())), 1.0);
    assert!(value(&leader, "mnema_commit_index") >= last as f64);
    assert!(value(&leader, "mnema_applied_index") >= last as f64);
    assert!(value(&leader, "mnema_write_seconds_count") >= f64::from(n / 2));
    assert!(value(&leader, "mnema_write_seconds_sum") > 0.0);
    assert!(value(&leader, "mnema_batch_transactions_count") >= 1.0);
    assert_eq!(value(&leader, "mnema_table_records{table=\"kv\"}"), f64::from(n + 1));
    assert!(value(&leader, "mnema_table_bytes{table=\"kv\"}") >= f64::from(n) * 12.0);
    assert!(value(&leader, "mnema_rocksdb{property=\"estimate-num-keys\"}") > 0.0);
    assert!(leader.contains_key("mnema_write_retries_total"));
    assert!(leader.contains_key("mnema_write_errors_total"));
    assert!(value(&leader, "mnema_process_resident_bytes") > 1e6);

    let follower = scrape(port(&c.nodes[f])).await;
    assert!(value(&follower, "mnema_forwarded_batches_total") >= 1.0);
    assert!(value(&follower, "mnema_forwarded_transactions_total") >= f64::from(n / 2));
    assert_eq!(value(&follower, "mnema_raft_is_leader"), 0.0);
    // Raft's messages came over frames (the default transport without TLS).
    assert!(value(&follower, "mnema_raft_frames_connections_total") >= 1.0);

    // Every core built snapshots and purged its log behind them.
    wait_until("a snapshot and a purge on every core", Duration::from_secs(20), || async {
        let mut all = true;
        for n in &c.nodes {
            let s = scrape(port(n)).await;
            all &= value(&s, "mnema_snapshots_built_total") >= 1.0 && value(&s, "mnema_log_purges_total") >= 1.0;
        }
        all
    })
    .await;

    // A replicant started now takes a full copy (the log it would replay is purged).
    let mut rcfg = mnema::testing::replicant_config(c.dir.path(), c.base, 4, 3);
    rcfg.http.listen = Some(format!("127.0.0.1:{}", http + 4));
    let r = Node::start(rcfg, test_tables()).await.expect("replicant");
    wait_until("the replicant in state normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
    let rep = scrape(http + 4).await;
    assert_eq!(value(&rep, "mnema_replicant_state{state=\"normal\"}"), 1.0);
    assert_eq!(value(&rep, "mnema_replicant_state{state=\"bootstrap\"}"), 0.0);
    assert!(rep.contains_key("mnema_replicant_lag"));
    assert!(rep.contains_key("mnema_replicant_lag_ms"));
    assert!(value(&rep, "mnema_replicant_bootstraps_total") >= 1.0);
    assert!(value(&rep, "mnema_replicant_bootstrap_seconds") > 0.0);
    assert!(value(&rep, "mnema_replicant_bootstrap_records") >= f64::from(n));
    assert_eq!(value(&rep, "mnema_table_records{table=\"kv\"}"), f64::from(n + 1));
    // The core it streams from counts it.
    let mut streaming = 0.0;
    for n in &c.nodes {
        streaming += value(&scrape(port(n)).await, "mnema_replicants");
    }
    assert_eq!(streaming, 1.0);
    r.shutdown().await.expect("shutdown");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_only_with_a_leader_known_and_the_commit_applied_and_a_replicant_only_when_normal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(4);
    let http = free_base(4);
    let with_http = |mut cfg: mnema::NodeConfig, i: u16| {
        cfg.http.listen = Some(format!("127.0.0.1:{}", http + i));
        cfg
    };
    // One core of three, and a replicant: neither can be ready.
    let first =
        Node::start(with_http(mnema::testing::config(dir.path(), base, 1, 3), 1), test_tables()).await.expect("core 1");
    let rep = Node::start(with_http(mnema::testing::replicant_config(dir.path(), base, 4, 3), 4), test_tables())
        .await
        .expect("replicant");
    assert_eq!(get(http + 1, "/health").await.expect("health").0, 200);
    assert_eq!(get(http + 4, "/health").await.expect("health").0, 200);
    let (code, body) = get(http + 1, "/ready").await.expect("ready");
    assert_eq!((code, body.as_str()), (503, "not ready: no leader known\n"));
    let (code, _) = get(http + 4, "/ready").await.expect("ready");
    assert_eq!(code, 503);
    assert_eq!(get(http + 1, "/nope").await.expect("404").0, 404);
    // `wait_ready` goes by the same rule, and says why it gave up.
    for node in [&first, &rep] {
        match node.wait_ready(Duration::from_millis(200)).await {
            Err(mnema::Error::Timeout { what, .. }) => assert!(what.contains(node.name()), "{what}"),
            other => panic!("{}: {other:?}", node.name()),
        }
    }
    let waiting = {
        let (first, rep) = (first.clone(), rep.clone());
        tokio::spawn(async move {
            first.wait_ready(Duration::from_secs(30)).await?;
            rep.wait_ready(Duration::from_secs(30)).await
        })
    };

    let mut rest = Vec::new();
    for i in 2..=3 {
        rest.push(
            Node::start(with_http(mnema::testing::config(dir.path(), base, i, 3), i), test_tables())
                .await
                .expect("core"),
        );
    }
    for i in [1u16, 2, 3, 4] {
        wait_until(&format!("node {i} ready"), Duration::from_secs(30), || async {
            get(http + i, "/ready").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    }
    // Ready means the commit index is applied here (a later commit, an election's blank
    // entry, is applied moments after it is learned).
    for n in std::iter::once(&first).chain(&rest) {
        wait_until("the commit index applied", Duration::from_secs(5), || async {
            let s = n.status();
            s.applied_index >= s.committed && s.leader.is_some()
        })
        .await;
    }
    waiting.await.expect("waiter").expect("wait_ready returns once the cluster formed");
    rep.shutdown().await.expect("shutdown");
    for n in rest {
        n.shutdown().await.expect("shutdown");
    }
    first.shutdown().await.expect("shutdown");
}

/// `mnema start` processes of a static cluster started one after another: the first waits
/// alone through election rounds; nobody logs an ERROR line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forming_a_cluster_logs_no_error_while_peers_are_not_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(3);
    let http = free_base(3);
    let mut procs = Vec::new();
    for i in 1..=3u16 {
        let seeds: Vec<String> = (1..=3).map(|j| format!("\"{}\"", mnema::testing::name(j))).collect();
        let text = format!(
            "[node]\nname = \"{}\"\ncookie = \"test-cookie\"\ndata_dir = \"{}\"\nbase_port = {base}\n\
             [cluster]\ndiscovery_strategy = \"static\"\nstatic.seeds = [{}]\n\
             [raft]\nheartbeat_interval = \"50ms\"\nelection_timeout = \"300ms\"\n\
             [http]\nlisten = \"127.0.0.1:{}\"\n",
            mnema::testing::name(i),
            dir.path().join(format!("n{i}")).display(),
            seeds.join(", "),
            http + i
        );
        procs.push(spawn_config(dir.path(), &mnema::testing::name(i), &format!("n{i}"), &text));
        if i == 1 {
            // The first node alone: it serves, it is not ready, and it has asked peers that
            // are not there for their votes twice (pre-votes it lost: no majority, so no
            // campaign and its term stays where forming put it).
            let seen =
                crate::harness::eventually("node 1 through two pre-votes alone", Duration::from_secs(30), || async {
                    match get(http + 1, "/metrics").await {
                        Some((200, body)) => {
                            let s = samples(&body);
                            s.get("mnema_raft_pre_votes_lost_total").is_some_and(|n| *n >= 2.0).then_some(s)
                        }
                        _ => None,
                    }
                })
                .await;
            assert!(seen.get("mnema_raft_term").is_some_and(|t| *t <= 1.0), "a core alone raised its term: {seen:?}");
            assert_eq!(seen.get("mnema_raft_campaigns_total"), Some(&0.0), "a core alone campaigned");
            assert_eq!(get(http + 1, "/ready").await.expect("ready").0, 503);
        }
    }
    for i in 1..=3u16 {
        wait_until(&format!("node {i} ready"), Duration::from_secs(30), || async {
            get(http + i, "/ready").await.is_some_and(|(code, _)| code == 200)
        })
        .await;
    }
    // Read while they run: what forming logged (stopping them is not forming: a leader may
    // log a failed send to a peer killed before it).
    for p in &procs {
        let text = std::fs::read_to_string(&p.log).expect("log");
        let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", p.log.display());
    }
    drop(procs);
}
