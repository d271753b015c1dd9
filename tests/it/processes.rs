//! Black-box tests of the `mnema` binary: real processes, SIGKILL, restarts, the CLI.

use crate::harness::*;
use mnema::Txn;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_the_leader_then_restart_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let mut procs: BTreeMap<u16, Proc> = (1..=3).map(|i| (i, spawn_node(dir.path(), base, i, 3))).collect();
    for i in 1..=3 {
        wait_serving(base, i).await;
    }
    let leader = agreed_leader(base, &[1, 2, 3]).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let idx = put(base, follower, "before", "\"1\"").await;
    for i in 1..=3 {
        assert_eq!(read_on(base, i, "before", idx).await.as_deref(), Some(&b"\"1\""[..]), "n{i}");
    }
    // SIGKILL the leader's process.
    drop(procs.remove(&leader));
    let alive: Vec<u16> = (1..=3).filter(|i| *i != leader).collect();
    let new_leader = agreed_leader(base, &alive).await;
    assert_ne!(new_leader, leader, "a new leader is elected");
    let mut last = 0;
    for k in 0..20 {
        last = put(base, alive[k % 2], &format!("during{k}"), "\"2\"").await;
    }
    // The killed node restarts from its data dir and catches up.
    procs.insert(leader, spawn_node(dir.path(), base, leader, 3));
    wait_serving(base, leader).await;
    for k in 0..20 {
        let v = read_on(base, leader, &format!("during{k}"), last).await;
        assert_eq!(v.as_deref(), Some(&b"\"2\""[..]), "during{k} on the restarted n{leader}");
    }
    assert_eq!(read_on(base, leader, "before", 0).await.as_deref(), Some(&b"\"1\""[..]));
}

fn ctl(base: u16, i: u16, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["ctl", "--node", &addr(base, i), "--cookie", "test-cookie"])
        .args(args)
        .output()
        .expect("run mnema ctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_survives_killing_the_whole_cluster() {
    // The seed's persistence check: create a rule, delete every node, start them again on
    // the same data dirs, the rule is there on each.
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let procs = start_three(dir.path(), base).await;
    let rule = r#"{"id":"rule_persist","sql":"SELECT * FROM \"t/#\"","enable":true}"#;
    eventually("ctl table put", Duration::from_secs(30), || async move {
        ctl(base, 2, &["table", "put", "rules", "rule_persist", rule]).status.success().then_some(())
    })
    .await;
    let out = ctl(base, 3, &["cluster", "status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(status["running_nodes"].as_array().map(|a| a.len()), Some(3), "{status}");
    assert_eq!(status["stopped_nodes"].as_array().map(|a| a.len()), Some(0), "{status}");
    assert!(status["nodes"][0]["applied_index"].as_u64().is_some(), "{status}");
    drop(procs); // SIGKILL, all of them
    let _procs: Vec<Proc> = (1..=3).map(|i| spawn_node(dir.path(), base, i, 3)).collect();
    for i in 1..=3 {
        wait_serving(base, i).await;
    }
    for i in 1..=3 {
        let found = eventually(&format!("the rule on n{i}"), Duration::from_secs(30), || async move {
            let out = ctl(base, i, &["table", "get", "rules", "rule_persist"]);
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .await;
        let v: serde_json::Value = serde_json::from_str(&found).unwrap();
        assert_eq!(v["id"], "rule_persist", "n{i}: {found}");
    }
}

/// Names, sizes and contents of every file under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_refuses_another_node_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(1);
    let p = spawn_node(dir.path(), base, 1, 1);
    wait_serving(base, 1).await;
    put(base, 1, "r", "\"x\"").await;
    drop(p);
    let data = dir.path().join("n1");
    let before = tree(&data);
    assert!(before.contains_key("IDENTITY"));
    // Same config file, name overridden by the environment (EMQX style).
    let out = Command::new(bin())
        .args(["start", "--config"])
        .arg(dir.path().join("n1.toml"))
        .env("MNEMA_NODE__NAME", "other@127.0.0.1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started under another name: {stderr}");
    assert!(stderr.contains("n1@127.0.0.1") && stderr.contains("other@127.0.0.1"), "{stderr}");
    assert_eq!(tree(&data), before, "data dir changed");
    // A bad config value is named by its key.
    let out = Command::new(bin())
        .args(["start", "--config"])
        .arg(dir.path().join("n1.toml"))
        .env("MNEMA_RAFT__HEARTBEAT_INTERVAL", "often")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("raft.heartbeat_interval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mnema dev-cluster` (the README's first command) forms, shows its status, and logs no
/// warning or error on the way: a normal start is quiet.
#[test]
fn dev_cluster_starts_shows_status_and_logs_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(5);
    let out = Command::new(bin())
        .args(["dev-cluster", "--once", "--base-port", &base.to_string(), "--dir"])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let noisy: Vec<&str> = stderr.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    assert!(noisy.is_empty(), "a normal dev-cluster start logged:\n{}", noisy.join("\n"));
    assert!(stdout.contains("running_nodes: [") && stdout.contains("mnema3@127.0.0.1"), "{stdout}");
    assert!(stdout.contains("stopped_nodes: []"), "{stdout}");
    assert!(stdout.contains("3 cores and 2 replicants"), "{stdout}");
    for i in 4..=5 {
        let line = stdout.lines().find(|l| l.starts_with(&format!("mnema{i}@"))).unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.contains("replicant") && line.contains("normal"), "mnema{i}: {line}");
    }
    for i in 1..=5 {
        assert!(dir.path().join(format!("mnema{i}/IDENTITY")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(1);
    let p = spawn_node(dir.path(), base, 1, 1);
    wait_serving(base, 1).await;
    let out = Command::new(bin())
        .args(["ctl", "--node", &addr(base, 1), "--cookie", "wrong", "cluster", "status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted a wrong cookie");
    assert!(stderr.contains("cookie mismatch"), "client side: {stderr}");
    let log = p.log.clone();
    wait_until("the server to log the refusal", Duration::from_secs(10), || {
        let log = log.clone();
        async move { std::fs::read_to_string(&log).map(|l| l.contains("wrong cookie")).unwrap_or(false) }
    })
    .await;
}

/// A replicant process's status, once it reports one.
async fn replicant_status(base: u16, i: u16) -> Option<mnema::ReplicantStatus> {
    client(base, i).node_info().await.ok().and_then(|s| s.replicant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_a_replicants_core_and_it_resumes_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(4);
    let mut procs = start_three(dir.path(), base).await;
    for k in 0..20 {
        put(base, 1 + (k % 3) as u16, &format!("before{k}"), "\"1\"").await;
    }
    let _replicant = spawn_replicant(dir.path(), base, 4, 3);
    let first = eventually("the replicant in state normal", Duration::from_secs(30), || async {
        replicant_status(base, 4).await.filter(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
    let upstream: u16 = first.upstream.as_deref().and_then(number_of).expect("n<i>");
    // SIGKILL the core the replicant streams from.
    drop(procs.remove(&upstream));
    let alive: Vec<u16> = (1..=3).filter(|i| *i != upstream).collect();
    agreed_leader(base, &alive).await;
    let mut last = 0;
    for k in 0..20 {
        last = put(base, alive[k % 2], &format!("after{k}"), "\"2\"").await;
    }
    let now = eventually("the replicant on another core", Duration::from_secs(30), || async {
        replicant_status(base, 4)
            .await
            .filter(|s| s.state == mnema::ReplicantState::Normal && s.upstream != first.upstream)
    })
    .await;
    assert_eq!(now.bootstraps, 1, "resumed without a second bootstrap: {now:?}");
    assert!(now.resumes >= 1, "{now:?}");
    let since: Vec<_> = now.transitions.iter().skip(first.transitions.len()).collect();
    assert!(since.iter().all(|t| !t.starts_with("bootstrap")), "{since:?}");
    for k in 0..20 {
        assert_eq!(read_on(base, 4, &format!("before{k}"), 0).await.as_deref(), Some(&b"\"1\""[..]), "before{k}");
        let v = read_on(base, 4, &format!("after{k}"), last).await;
        assert_eq!(v.as_deref(), Some(&b"\"2\""[..]), "after{k} on the replicant");
    }
    // The operator's view: the replicant with its state and upstream, via a core.
    let out = ctl(base, alive[0], &["cluster", "status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rep = status["nodes"].as_array().and_then(|n| n.iter().find(|n| n["role"] == "replicant")).cloned();
    let rep = rep.unwrap_or_else(|| panic!("no replicant in {status:#}"));
    assert_eq!(rep["name"], name(4));
    assert_eq!(rep["replicant"]["state"], "normal", "{rep:#}");
    assert_eq!(rep["replicant"]["upstream"], now.upstream.as_deref().unwrap_or(""), "{rep:#}");
}

/// Writes `rules` keys through the cores in turn until a write fails; returns the acked
/// keys and the highest index.
async fn write_until_failure(base: u16, prefix: &str, stop_after: usize) -> (Vec<String>, u64) {
    let mut acked = Vec::new();
    let mut last = 0;
    for k in 0..stop_after {
        let key = format!("{prefix}{k}");
        match client(base, 1 + (k % 3) as u16).transact(&Txn::new().put("rules", key.as_str(), "\"v\"")).await {
            Ok(c) => {
                acked.push(key);
                last = last.max(c.index);
            }
            Err(_) => break,
        }
    }
    (acked, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_every_core_mid_writes_and_restart_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let procs = start_three(dir.path(), base).await;
    // Kill all three while writes are in flight.
    let writer = tokio::spawn(write_until_failure(base, "k", 100_000));
    wait_until("some writes acknowledged", Duration::from_secs(30), || async {
        client(base, 1).read("rules", None, 0).await.map(|r| r.records.len() > 50).unwrap_or(false)
    })
    .await;
    drop(procs);
    let (acked, last) = writer.await.expect("writer");
    assert!(acked.len() > 40, "{} writes acknowledged", acked.len());
    let _procs: Vec<Proc> = (1..=3).map(|i| spawn_node(dir.path(), base, i, 3)).collect();
    for i in 1..=3 {
        wait_serving(base, i).await;
        for key in &acked {
            assert!(read_on(base, i, key, last).await.is_some(), "{key} acknowledged before SIGKILL, missing on n{i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_whose_volume_is_lost_rejoins_as_a_new_member_after_data_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let mut procs = start_three(dir.path(), base).await;
    let mut last = 0;
    for k in 0..20 {
        last = put(base, 1 + (k % 3) as u16, &format!("before{k}"), "\"1\"").await;
    }
    // n3's volume is gone: kill it, delete its data dir; the one documented command on the
    // new empty dir, then start it.
    drop(procs.remove(&3));
    std::fs::remove_dir_all(dir.path().join("n3")).expect("delete n3's volume");
    let out =
        Command::new(bin()).args(["data", "rebuild", "--config"]).arg(dir.path().join("n3.toml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    procs.insert(3, spawn_node(dir.path(), base, 3, 3));
    wait_serving(base, 3).await;
    // It was removed and added back: a voter again, under its name.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&procs[&3].log).unwrap_or_default();
        let status = status_json(base, 1);
        let voter = status["nodes"].as_array().is_some_and(|m| {
            m.iter().any(|m| m["name"] == name(3).as_str() && m["voter"] == true && m["running"] == true)
        });
        if voter && log.contains("rebuilt") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let n1 = std::fs::read_to_string(&procs[&1].log).unwrap_or_default();
            let tail =
                |s: &str| s.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            panic!(
                "n3 not a voter again after 60 s\nstatus: {status:#}\nn3 log:\n{}\nn1 log:\n{}",
                tail(&log),
                tail(&n1)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for k in 0..20 {
        let v = read_on(base, 3, &format!("before{k}"), last).await;
        assert_eq!(v.as_deref(), Some(&b"\"1\""[..]), "before{k} on the rebuilt n3");
    }
    let after = put(base, 3, "after", "\"2\"").await;
    for i in 1..=3 {
        assert_eq!(read_on(base, i, "after", after).await.as_deref(), Some(&b"\"2\""[..]), "n{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_majority_is_recovered_from_one_survivors_export() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let mut procs = start_three(dir.path(), base).await;
    let mut last = 0;
    for k in 0..20 {
        last = put(base, 1 + (k % 3) as u16, &format!("r{k}"), &format!("\"{k}\"")).await;
    }
    read_on(base, 1, "r0", last).await.expect("n1 has applied everything");
    // Two volumes are lost: no majority, no writes. The survivor still exports its state.
    for i in [2, 3] {
        drop(procs.remove(&i));
        std::fs::remove_dir_all(dir.path().join(format!("n{i}"))).expect("delete volume");
    }
    let file = dir.path().join("survivor.json");
    let out = ctl(base, 1, &["data", "export", &file.display().to_string()]);
    assert!(out.status.success(), "export from the survivor: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("at applied index"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A new cluster on fresh volumes, then the survivor's data imported into it.
    drop(procs);
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).expect("fresh volumes");
    let base2 = free_base(3);
    let _procs: Vec<Proc> = (1..=3).map(|i| spawn_node(&fresh, base2, i, 3)).collect();
    for i in 1..=3 {
        wait_serving(base2, i).await;
    }
    agreed_leader(base2, &[1, 2, 3]).await;
    let out = ctl(base2, 2, &["data", "import", &file.display().to_string(), "--mode", "replace"]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("records/s"),
        "progress: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let idx = client(base2, 2).node_info().await.expect("status").applied_index;
    for i in 1..=3 {
        for k in 0..20 {
            let v = read_on(base2, i, &format!("r{k}"), idx).await;
            assert_eq!(v.as_deref(), Some(format!("\"{k}\"").as_bytes()), "r{k} on the new n{i}");
        }
    }
    // A bad file through the CLI: refused with the position, nothing written.
    let bad = dir.path().join("bad.json");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&bad, text.replacen("\"version\":2", "\"version\":7", 1)).expect("write");
    let out = ctl(base2, 1, &["data", "import", &bad.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("line") && err.contains("version 7"), "{err}");
}

fn status_json(base: u16, i: u16) -> serde_json::Value {
    let out = ctl(base, i, &["cluster", "status", "--json"]);
    assert!(out.status.success(), "status via n{i}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn names_in(status: &serde_json::Value, field: &str) -> Vec<String> {
    let mut v: Vec<String> = status[field]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(String::from)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_force_leave_through_the_cli_on_three_cores_and_two_replicants() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(5);
    let mut procs = start_three(dir.path(), base).await;
    for i in 4..=5 {
        procs.insert(i, spawn_replicant(dir.path(), base, i, 3));
    }
    let idx = put(base, 1, "k", "\"v\"").await;
    let want_all: Vec<String> = (1..=5).map(name).collect();
    let s = eventually("3 cores and 2 normal replicants in status", Duration::from_secs(30), || async {
        let s = status_json(base, 1);
        let normal = s["nodes"].as_array().map(|n| n.iter().filter(|n| n["replicant"]["state"] == "normal").count());
        (names_in(&s, "running_nodes") == want_all && normal == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(names_in(&s, "stopped_nodes"), Vec::<String>::new());

    // n3 dies; removing n2 now would leave 1 of 2 voters running: refused, with why.
    drop(procs.remove(&3));
    agreed_leader(base, &[1, 2]).await;
    let s = status_json(base, 1);
    assert_eq!(names_in(&s, "stopped_nodes"), vec![name(3)], "{s:#}");
    let out = ctl(base, 1, &["cluster", "force-leave", &name(2)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("majority") && err.contains("--force"), "{err}");
    let out = ctl(base, 1, &["cluster", "force-leave", &name(4)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("replicant"), "{err}");
    // Removing the dead n3 works; the status says so; data intact on the cores and replicants.
    let out = ctl(base, 2, &["cluster", "force-leave", &name(3)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // (A replicant that streamed from n3 shows again once it follows another core.)
    let s = eventually("n3 gone, both replicants back", Duration::from_secs(20), || async {
        let s = status_json(base, 2);
        (names_in(&s, "running_nodes") == vec![name(1), name(2), name(4), name(5)]).then_some(s)
    })
    .await;
    assert_eq!(names_in(&s, "stopped_nodes"), Vec::<String>::new(), "{s:#}");
    for i in [1, 2, 4, 5] {
        assert_eq!(read_on(base, i, "k", idx).await.as_deref(), Some(&b"\"v\""[..]), "k on n{i}");
    }
    // n2 leaves: a cluster of one; n1 and the replicants go on without it.
    let out = ctl(base, 2, &["cluster", "leave"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cluster of one"));
    let idx = put(base, 1, "after", "\"w\"").await;
    let s = eventually("n1 and both replicants, without n2", Duration::from_secs(30), || async {
        let s = status_json(base, 1);
        (names_in(&s, "running_nodes") == vec![name(1), name(4), name(5)]).then_some(s)
    })
    .await;
    assert_eq!(names_in(&s, "stopped_nodes"), Vec::<String>::new(), "{s:#}");
    for i in [1, 4, 5] {
        assert_eq!(read_on(base, i, "after", idx).await.as_deref(), Some(&b"\"w\""[..]), "after on n{i}");
    }
    assert!(read_on(base, 2, "k", 0).await.is_none(), "n2 dropped the cluster's data when it left");
    let s2 = status_json(base, 2);
    assert_eq!(names_in(&s2, "running_nodes"), vec![name(2)], "{s2:#}");
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on `dir`; `None` where this process may not mount.
    fn mount(dir: &Path, mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file; returns the file.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let f = dir.join("filler");
    let mut out = std::fs::File::create(&f).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while out.write_all(&chunk).is_ok() {}
    let _ = out.sync_all();
    f
}

/// A core whose disk fills up stops being a member and exits non-zero with a clear
/// message (a supervisor restarts it) instead of running on with a dead Raft; given
/// space again it comes back with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_out_of_disk_exits_non_zero_and_returns_with_every_write_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let Some(_disk) = Tmpfs::mount(&dir.path().join("n3"), 64) else {
        return cannot_run_here("a full disk is a small tmpfs, and mounting one needs root");
    };
    let mut procs = start_three(dir.path(), base).await;
    let mut last = 0;
    for k in 0..10 {
        last = put(base, 1 + (k % 2) as u16, &format!("before{k}"), "\"1\"").await;
    }
    let filler = fill(&dir.path().join("n3"));
    // The cluster goes on with a majority; n3 fails its next append.
    let mut acked = Vec::new();
    for k in 0..200 {
        last = put(base, 1 + (k % 2) as u16, &format!("full{k}"), "\"2\"").await;
        acked.push(format!("full{k}"));
        if procs.get_mut(&3).unwrap().child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let status = eventually("n3 to exit", Duration::from_secs(30), || {
        let st = procs.get_mut(&3).unwrap().child.try_wait().unwrap();
        async move { st }
    })
    .await;
    assert!(!status.success(), "n3 exited with {status} on a full disk");
    let log = std::fs::read_to_string(&procs[&3].log).unwrap();
    assert!(log.contains("storage failure"), "no clear message in n3's log:\n{log}");
    // Space is back: n3 restarts and has everything acknowledged meanwhile.
    std::fs::remove_file(filler).unwrap();
    procs.insert(3, spawn_node(dir.path(), base, 3, 3));
    wait_serving(base, 3).await;
    for key in (0..10).map(|k| format!("before{k}")).chain(acked) {
        assert!(read_on(base, 3, &key, last).await.is_some(), "{key} missing on n3 after the disk-full restart");
    }
}

/// A stalled leader (SIGSTOP: a long pause, a frozen VM) does not hold writes made on the
/// other nodes: a write forwarded to it is given up once another leader is elected and
/// sent there under the same request id, and acknowledged well before the write timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_followers_go_to_the_new_leader_while_the_old_one_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let procs = start_three(dir.path(), base).await;
    let leader = agreed_leader(base, &[1, 2, 3]).await;
    let followers: Vec<u16> = (1..=3).filter(|&i| i != leader).collect();
    put(base, followers[0], "warm", "\"0\"").await;
    procs[&leader].signal("STOP");
    // Each follower's first attempt goes to the stopped leader (it is still the one they know).
    let writes = followers.iter().map(|&f| async move {
        client(base, f).transact(&Txn::new().put("rules", format!("during{f}"), "\"1\"")).await
    });
    let results = futures::future::join_all(writes).await;
    procs[&leader].signal("CONT");
    let mut last = 0;
    for (f, r) in followers.iter().zip(results) {
        match r {
            Ok(c) => last = last.max(c.index),
            Err(e) => panic!("write through n{f} while the leader was stopped: {e:?}"),
        }
    }
    for i in 1..=3 {
        for f in &followers {
            assert!(read_on(base, i, &format!("during{f}"), last).await.is_some(), "during{f} on n{i}");
        }
    }
}

/// A paused follower (SIGSTOP) leaves no ERROR line in any node's log: the leader says at
/// WARN that the peer does not answer and at INFO that it answers again once resumed,
/// and writes go on meanwhile (openraft logs every call the peer missed at ERROR; `mnema
/// start` leaves those out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_peer_is_a_warning_in_the_log_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(3);
    let procs = start_three(dir.path(), base).await;
    let leader = agreed_leader(base, &[1, 2, 3]).await;
    let paused = (1..=3).find(|&i| i != leader).expect("a follower");
    put(base, leader, "before", "\"0\"").await;
    let log = |i: u16| std::fs::read_to_string(&procs[&i].log).unwrap_or_default();
    procs[&paused].signal("STOP");
    wait_until("the leader to warn of the paused peer", Duration::from_secs(30), || async {
        log(leader).contains("a Raft peer does not answer")
    })
    .await;
    put(base, leader, "during", "\"1\"").await;
    procs[&paused].signal("CONT");
    let now = agreed_leader(base, &[1, 2, 3]).await;
    let last = put(base, now, "after", "\"2\"").await;
    assert!(read_on(base, paused, "during", last).await.is_some(), "the paused peer caught up");
    for i in 1..=3 {
        let text = log(i);
        let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "n{i} logged errors:\n{}", errors.join("\n"));
    }
}

/// A linearizable read is one call to any node, core or replicant: it sees a write
/// acknowledged on another node just before, through the library and through `ctl`; one
/// client, cloned, serves many tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_through_any_node_sees_what_was_acknowledged_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(4);
    let mut procs = start_three(dir.path(), base).await;
    procs.insert(4, spawn_replicant(dir.path(), base, 4, 3));
    wait_serving(base, 4).await;
    let shared = client(base, 4);
    let tasks: Vec<_> = (0..16u16)
        .map(|t| {
            let mut reader = shared.clone();
            tokio::spawn(async move {
                let writer = 1 + t % 3;
                let key = format!("lin{t}");
                put(base, writer, &key, &format!("\"{t}\"")).await;
                // Right after the acknowledgement, through the replicant.
                let r = reader.read_linearizable("rules", Some(key.as_bytes())).await.expect("linearizable read");
                assert_eq!(r.records.len(), 1, "{key} written on n{writer}, not seen on the replicant");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    put(base, 2, "cli", "\"v\"").await;
    for i in [1, 4] {
        let out = ctl(base, i, &["table", "get", "rules", "cli", "--linearizable"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"v\"", "on n{i}");
    }
}

/// A watch of a replicant over gRPC: its events go on, in order and whole, while the core
/// it streams from is SIGKILLed, then the leader; the snapshot and the events rebuild the
/// table the cores end with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicants_watch_goes_on_across_sigkill_of_its_core_and_of_the_leader() {
    use mnema::{ChangeOp, WatchSpec};
    let dir = tempfile::tempdir().unwrap();
    let base = free_base(4);
    let mut procs = start_three(dir.path(), base).await;
    for k in 0..10 {
        put(base, 1 + (k % 3) as u16, &format!("before{k}"), "\"1\"").await;
    }
    let _replicant = spawn_replicant(dir.path(), base, 4, 3);
    let first = eventually("the replicant in state normal", Duration::from_secs(30), || async {
        replicant_status(base, 4).await.filter(|s| s.state == mnema::ReplicantState::Normal)
    })
    .await;
    let (snap, mut watch) = client(base, 4).snapshot_and_watch(&WatchSpec::table("rules")).await.expect("watch");
    // Its core goes.
    let upstream: u16 = first.upstream.as_deref().and_then(number_of).expect("n<i>");
    drop(procs.remove(&upstream));
    let alive: Vec<u16> = (1..=3).filter(|i| *i != upstream).collect();
    agreed_leader(base, &alive).await;
    for k in 0..20 {
        put(base, alive[k % 2], &format!("after_core{k}"), "\"2\"").await;
    }
    // It comes back; then the leader goes.
    procs.insert(upstream, spawn_node(dir.path(), base, upstream, 3));
    wait_serving(base, upstream).await;
    let leader = agreed_leader(base, &[1, 2, 3]).await;
    drop(procs.remove(&leader));
    let alive: Vec<u16> = (1..=3).filter(|i| *i != leader).collect();
    agreed_leader(base, &alive).await;
    let mut last = 0;
    for k in 0..20 {
        last = put(base, alive[k % 2], &format!("after_leader{k}"), "\"3\"").await;
    }
    // Every event up to `last`, in order; nothing ended the watch.
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = snap.records.iter().map(|(_, k, v)| (k.to_vec(), v.to_vec())).collect();
    let mut seen = snap.index;
    while seen < last {
        let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("an event within 30 s")
            .expect("the watch goes on")
            .expect("no error across the failovers");
        assert!(event.index > seen, "event {} after {seen}", event.index);
        seen = event.index;
        for c in event.changes {
            match c.op {
                ChangeOp::Put(v) => {
                    model.insert(c.key.to_vec(), v.to_vec());
                }
                ChangeOp::Delete => {
                    model.remove(&c.key[..]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let cores = client(base, alive[0]).read("rules", None, last).await.expect("read");
    let theirs: BTreeMap<Vec<u8>, Vec<u8>> = cores.records.into_iter().collect();
    assert_eq!(model, theirs, "snapshot + events differ from the cores' table");
    let now = replicant_status(base, 4).await.expect("status");
    assert_eq!(now.bootstraps, 1, "the replicant resumed, never bootstrapped again: {now:?}");
}
