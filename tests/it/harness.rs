//! Helpers: free ports, in-process clusters, `mnema` processes, bounded waits.

#![allow(dead_code)]

use mnema::Txn;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use mnema::testing::*;

/// A `mnema start` process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Sends `sig` (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig} {}", self.name);
    }

    /// The last 40 lines of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stops the node as an operator does (SIGTERM) and waits, 30 s at most, for it to
    /// exit; panics unless it exits with success.
    pub async fn stop(mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for mnema") {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM; its log ends:\n{}",
                    self.name,
                    self.log_tail()
                );
                return;
            }
            assert!(Instant::now() < deadline, "{} still running 30 s after SIGTERM", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test part that cannot run on this machine (`what` it needs is missing): fails the
/// test, loudly, unless `MNEMA_ALLOW_SKIP=1` is set outside CI, in which case it says it
/// skips. Tests never pass by returning early.
pub fn cannot_run_here(what: &str) {
    let allowed = std::env::var_os("MNEMA_ALLOW_SKIP").is_some_and(|v| v == "1") && std::env::var_os("CI").is_none();
    assert!(allowed, "this test cannot run here: {what} (run as root, or set MNEMA_ALLOW_SKIP=1 to skip it)");
    eprintln!("SKIPPED (MNEMA_ALLOW_SKIP=1): {what}");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mnema")
}

/// Writes node `i`'s config file and starts `mnema start` on it.
pub fn spawn_node(dir: &Path, base: u16, i: u16, n: u16) -> Proc {
    spawn_with(dir, base, i, n, "core")
}

/// Starts replicant `i` of the `n` static-seed cores as a `mnema start` process.
pub fn spawn_replicant(dir: &Path, base: u16, i: u16, n: u16) -> Proc {
    spawn_with(dir, base, i, n, "replicant")
}

fn spawn_with(dir: &Path, base: u16, i: u16, n: u16, role: &str) -> Proc {
    spawn_as(dir, base, i, n, role, None)
}

/// Raft and replicant timings of a `mnema start` process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timings {
    /// The product's defaults (100 ms heartbeats, a 1 s election timeout, a replicant's 2 s
    /// stall timeout): what a deployment runs.
    Defaults,
    /// Fast, for tests: 50 ms heartbeats, a 300 ms election timeout, a 1 s stall timeout.
    Fast,
}

/// Like [`spawn_node`] / [`spawn_replicant`] (`role`), the process running with group id
/// `gid` if given (as root): firewall rules can then match its connections by owner.
pub fn spawn_as(dir: &Path, base: u16, i: u16, n: u16, role: &str, gid: Option<u32>) -> Proc {
    spawn_timed(dir, base, i, n, role, gid, Timings::Fast)
}

/// Like [`spawn_as`], with `timings`.
pub fn spawn_timed(dir: &Path, base: u16, i: u16, n: u16, role: &str, gid: Option<u32>, timings: Timings) -> Proc {
    spawn_announcing(dir, base, i, n, role, gid, timings, None)
}

/// Like [`spawn_timed`], the node announcing protocol version `protocol` (`node.protocol`)
/// when given.
#[allow(clippy::too_many_arguments)]
pub fn spawn_announcing(
    dir: &Path,
    base: u16,
    i: u16,
    n: u16,
    role: &str,
    gid: Option<u32>,
    timings: Timings,
    protocol: Option<u32>,
) -> Proc {
    let pin = protocol.map(|v| format!("protocol = {v}\n")).unwrap_or_default();
    let seeds: Vec<String> = (1..=n).map(|j| format!("\"{}\"", name(j))).collect();
    let tuned = match timings {
        Timings::Defaults => "",
        Timings::Fast => {
            "[raft]\nheartbeat_interval = \"50ms\"\nelection_timeout = \"300ms\"\n[replicant]\nstall_timeout = \"1s\"\n"
        }
    };
    let text = format!(
        "[node]\nname = \"{}\"\nrole = \"{role}\"\ncookie = \"test-cookie\"\ndata_dir = \"{}\"\nbase_port = {base}\n{pin}\
         [cluster]\ndiscovery_strategy = \"static\"\nstatic.seeds = [{}]\n{tuned}",
        name(i),
        dir.join(format!("n{i}")).display(),
        seeds.join(", ")
    );
    spawn_config_as(dir, &name(i), &format!("n{i}"), &text, gid)
}

/// Writes `config` (TOML) as `{file}.toml` under `dir` and starts `mnema start` on it;
/// the log goes to `{file}.log`.
pub fn spawn_config(dir: &Path, node: &str, file: &str, config: &str) -> Proc {
    spawn_config_as(dir, node, file, config, None)
}

fn spawn_config_as(dir: &Path, node: &str, file: &str, config: &str, gid: Option<u32>) -> Proc {
    let conf = dir.join(format!("{file}.toml"));
    std::fs::write(&conf, config).expect("write config");
    let log = dir.join(format!("{file}.log"));
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = Command::new(bin());
    cmd.args(["start", "--config"])
        .arg(&conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some(g) = gid {
        std::os::unix::process::CommandExt::gid(&mut cmd, g);
    }
    let child = cmd.spawn().expect("spawn mnema");
    Proc { child, name: node.to_string(), log }
}

pub async fn wait_serving(base: u16, i: u16) {
    wait_until(&format!("n{i} to serve"), Duration::from_secs(30), || async {
        client(base, i).node_info().await.is_ok()
    })
    .await;
}

/// The leader's number, once every listed node agrees on one of them.
pub async fn agreed_leader(base: u16, alive: &[u16]) -> u16 {
    let leader: String = eventually("an agreed leader", Duration::from_secs(30), || async move {
        let mut seen = Vec::new();
        for &i in alive {
            match client(base, i).node_info().await {
                Ok(mnema::NodeStatus { leader: Some(l), .. }) => seen.push(l),
                _ => return None,
            }
        }
        // Agreed, and one of the living (survivors name a dead leader until they time out).
        let alive_names: Vec<String> = alive.iter().map(|&i| name(i)).collect();
        (seen.iter().all(|l| *l == seen[0]) && alive_names.contains(&seen[0])).then(|| seen[0].clone())
    })
    .await;
    number_of(&leader).expect("leader name n<i>@…")
}

/// Three static-seed core processes, serving and agreed on a leader.
pub async fn start_three(dir: &Path, base: u16) -> BTreeMap<u16, Proc> {
    let procs: BTreeMap<u16, Proc> = (1..=3).map(|i| (i, spawn_node(dir, base, i, 3))).collect();
    for i in 1..=3 {
        wait_serving(base, i).await;
    }
    agreed_leader(base, &[1, 2, 3]).await;
    procs
}

/// Writes through node `i`, retrying while the cluster has no leader (bounded).
pub async fn put(base: u16, i: u16, key: &str, value: &str) -> u64 {
    eventually(&format!("write of {key} via n{i}"), Duration::from_secs(30), || async move {
        client(base, i).transact(&Txn::new().put("rules", key, value)).await.ok().map(|c| c.index)
    })
    .await
}

pub async fn read_on(base: u16, i: u16, key: &str, min_applied: u64) -> Option<Vec<u8>> {
    let r = client(base, i).read("rules", Some(key.as_bytes()), min_applied).await.ok()?;
    r.records.first().map(|(_, v)| v.clone())
}

pub fn addr(base: u16, i: u16) -> String {
    format!("127.0.0.1:{}", base + i)
}

pub fn client(base: u16, i: u16) -> mnema::Client {
    mnema::Client::new(&addr(base, i), "test-cookie").expect("client")
}

/// Like [`wait_until`], for a condition that yields a value.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every file under `dir` (recursively) with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read file");
                out.push((p, bytes));
            }
        }
    }
    out
}

/// A certificate authority made by a test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

pub fn new_ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("CA");
    Ca { cert, key }
}

/// A node certificate for 127.0.0.1, signed by `ca`; writes cert, key and CA PEM files.
pub fn issue(ca: &Ca, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    let (c, k, a) =
        (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")), dir.join(format!("{name}-ca.pem")));
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    std::fs::write(&a, ca.cert.pem()).expect("write");
    (c, k, a)
}

/// Two static-seed cores under `dir` that snapshot every 50 entries (so that a few thousand
/// writes purge their logs), and the index of the leader once they have one.
pub async fn start_snapshotting_pair(dir: &Path, base: u16) -> (Vec<mnema::Node>, usize) {
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let mut cfg = config(dir, base, i, 2);
        cfg.raft.snapshot_after_entries = 50;
        nodes.push(mnema::Node::start(cfg, test_tables()).await.expect("start"));
    }
    wait_until("leader", Duration::from_secs(20), || async { nodes.iter().any(|n| n.is_leader()) }).await;
    let l = nodes.iter().position(|n| n.is_leader()).expect("a leader");
    (nodes, l)
}

/// Waits (60 s at most) until `events` (a member watch opened before the restart) show
/// `name` removed, added back as a learner and promoted, in that order: a core that lost
/// its store coming back as a new member, never as its old voter.
pub async fn wait_rejoined_as_new_member(events: &mut mnema::MemberWatch, name: &str) {
    use mnema::MemberEvent;
    let step = |e: &MemberEvent| match e {
        MemberEvent::Removed { name: n, .. } if n == name => Some("removed"),
        MemberEvent::Joined { name: n, voter: false, .. } if n == name => Some("joined"),
        MemberEvent::Promoted { name: n, .. } if n == name => Some("promoted"),
        _ => None,
    };
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        let event = tokio::time::timeout_at(deadline, events.next()).await;
        let event = event.unwrap_or_else(|_| panic!("{name} not removed and added back within 60 s: saw {seen:?}"));
        let event = event.unwrap_or_else(|| panic!("the watching node stopped; saw {seen:?}"));
        seen.extend(step(&event));
    }
    assert_eq!(seen, ["removed", "joined", "promoted"], "{name}");
}
