//! The fault suite: real `mnema start` processes (3 cores, 2 replicants), clients on every
//! node running writes, compare-and-sets and linearizable reads on a few registers while a
//! nemesis kills (SIGKILL any node, the leader, every core at once), stalls (SIGSTOP the
//! leader), restarts and partitions nodes (iptables by process group, where root); then a linearizability check of every key's
//! history, every acknowledged write read back on every node, every node identical.
//!
//! The nodes run the product's default timings (100 ms heartbeats, 1 s election timeout):
//! what a deployment runs, and what the recovery figures it prints are worth;
//! `MNEMA_FAULT_TIMINGS=fast` runs the test timings (50 ms, 300 ms) instead.
//!
//! Short in CI (`MNEMA_FAULT_SECS`, default 20 s); long by hand:
//! `MNEMA_FAULT_SECS=600 cargo test --test faults -- --nocapture` (`MNEMA_FAULT_KEEP=1`: keep
//! the nodes' dirs and logs, and print where).

use crate::harness::*;
use crate::linearizable::{self, Call, Op, Ret};
use mnema::{ChangeOp, Error, Txn, WatchSpec};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CORES: u16 = 3;
const REPLICANTS: u16 = 2;
const KEYS: u64 = 8;
const TABLE: &str = "rules";
/// An operation with no answer this long counts as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(12);

/// What a watcher of one node rebuilt: the table's records from its last snapshot and the
/// events after it.
#[derive(Default)]
struct Replay {
    /// The index the records are at.
    index: u64,
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Snapshots taken (the first, and one after each `Compacted`: a restarted node).
    snapshots: u32,
    events: u64,
}

/// Follows `TABLE` on node `i` over gRPC until `stop`: a snapshot, then events, resumed
/// from the index after the last one seen when the stream breaks (a killed or stopped
/// node), from a new snapshot when the node answers `Compacted` (it restarted).
async fn watcher(base: u16, i: u16, replay: Arc<Mutex<Replay>>, stop: Arc<AtomicBool>) {
    let spec = WatchSpec::table(TABLE);
    while !stop.load(Ordering::Relaxed) {
        let next = { replay.lock().unwrap().snapshots > 0 }.then(|| replay.lock().unwrap().index + 1);
        let mut c = client(base, i);
        let opened = match next {
            Some(from) => match c.watch(&spec.clone().from_index(from)).await {
                Err(Error::Compacted { .. }) => None,
                other => Some(other),
            },
            None => None,
        };
        let mut watch = match opened {
            Some(Ok(w)) => w,
            Some(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            None => match c.snapshot_and_watch(&spec).await {
                Ok((snap, w)) => {
                    let mut r = replay.lock().unwrap();
                    r.records = snap.records.into_iter().map(|(_, k, v)| (k.to_vec(), v.to_vec())).collect();
                    r.index = snap.index;
                    r.snapshots += 1;
                    w
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        loop {
            let event = tokio::select! {
                e = watch.next() => e,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return } else { continue }
                }
            };
            let Some(Ok(event)) = event else { break };
            let mut r = replay.lock().unwrap();
            assert!(
                event.index > r.index,
                "n{i}: event {} after {}: out of log order or seen twice",
                event.index,
                r.index
            );
            for ch in &event.changes {
                match &ch.op {
                    ChangeOp::Put(v) => {
                        r.records.insert(ch.key.to_vec(), v.to_vec());
                    }
                    ChangeOp::Delete | ChangeOp::DeleteObject(_) => {
                        r.records.remove(ch.key.as_ref());
                    }
                    ChangeOp::Clear | ChangeOp::Dropped => r.records.clear(),
                    ChangeOp::Created => {}
                }
            }
            r.index = event.index;
            r.events += 1;
        }
    }
}

fn key(k: u64) -> String {
    format!("reg{k}")
}

fn encode(v: u64) -> String {
    format!("{{\"v\":{v}}}")
}

fn decode(bytes: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("v")?.as_u64()
}

/// A small deterministic generator (xorshift), seeded per worker.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the run saw, shared by the workers and the nemesis.
struct Run {
    start: Instant,
    base: u16,
    history: Mutex<BTreeMap<u64, Vec<Op>>>,
    /// The last value each key was seen to hold, for compare-and-set guesses.
    guess: Mutex<BTreeMap<u64, u64>>,
    next_value: AtomicU64,
    stop: AtomicBool,
    /// Why writes ended without a known outcome, by error kind.
    unknown_why: Mutex<BTreeMap<String, u64>>,
}

impl Run {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn record(&self, k: u64, op: Op) {
        if let Ok(mut h) = self.history.lock() {
            h.entry(k).or_default().push(op);
        }
    }
}

/// The node a linearizable read must ask for its read index: the leader `node` knows.
async fn leader_of(base: u16, node: u16) -> Option<u16> {
    let s = client(base, node).node_info().await.ok()?;
    number_of(s.leader.as_deref()?)
}

/// One linearizable read of key `k` through `node`, in one call (the node asks the
/// leader's read index and waits for it).
async fn read(base: u16, node: u16, k: u64) -> Option<Option<u64>> {
    let r = client(base, node).read_linearizable(TABLE, Some(key(k).as_bytes())).await.ok()?;
    Some(r.records.first().and_then(|(_, v)| decode(v)))
}

/// A worker: random operations on random keys through one node until told to stop.
async fn worker(run: Arc<Run>, node: u16, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut ops = 0;
    while !run.stop.load(Ordering::Relaxed) {
        let k = rng.below(KEYS);
        let invoked = run.now();
        let choice = rng.below(10);
        ops += 1;
        if choice < 4 {
            let got = tokio::time::timeout(OP_TIMEOUT, read(run.base, node, k)).await.ok().flatten();
            // A read without an answer tells nothing; it is left out.
            if let Some(value) = got {
                if let Some(v) = value
                    && let Ok(mut g) = run.guess.lock()
                {
                    g.insert(k, v);
                }
                run.record(k, Op { call: Call::Read, ret: Ret::Value(value), invoked, completed: Some(run.now()) });
            }
            continue;
        }
        let new = run.next_value.fetch_add(1, Ordering::Relaxed);
        let (call, txn) = if choice < 7 {
            (Call::Write(new), Txn::new().put(TABLE, key(k), encode(new)))
        } else {
            let expected = run.guess.lock().ok().and_then(|g| g.get(&k).copied()).unwrap_or(0);
            (
                Call::Cas { expected, new },
                Txn::new().require_value(TABLE, key(k), encode(expected)).put(TABLE, key(k), encode(new)),
            )
        };
        let res = tokio::time::timeout(OP_TIMEOUT, async { client(run.base, node).transact(&txn).await }).await;
        let ret = match res {
            // Certainly not applied: the node could not be reached, or no leader took it.
            Ok(Err(e)) if e.never_sent() || matches!(e, Error::NoLeader(_)) => continue,
            Ok(Ok(_)) => Ret::Done,
            // The state machine (or the proposer, before proposing) said the condition failed.
            Ok(Err(Error::Conflict(_))) => Ret::Conflict,
            other => {
                let why = match other {
                    Ok(Err(e)) => format!("{e:?}").chars().take(60).collect(),
                    _ => "client timeout".to_string(),
                };
                if let Ok(mut m) = run.unknown_why.lock() {
                    *m.entry(why).or_default() += 1;
                }
                Ret::Unknown
            }
        };
        let completed = (ret != Ret::Unknown).then(|| run.now());
        if ret == Ret::Done
            && let Ok(mut g) = run.guess.lock()
        {
            g.insert(k, new);
        }
        run.record(k, Op { call, ret, invoked, completed });
    }
    ops
}

/// Faults the nemesis injects, and how long the cluster took to acknowledge a write after
/// each (from the fault to the first acknowledged probe write).
#[derive(Default)]
struct Faults {
    injected: BTreeMap<&'static str, u32>,
    recovery_ms: BTreeMap<&'static str, Vec<u64>>,
}

/// Node `i`'s group id: its connections are matched by it in firewall rules.
fn gid(base: u16, i: u16) -> u32 {
    50_000 + base as u32 * 8 + i as u32
}

/// The timings the nodes run: the defaults unless `MNEMA_FAULT_TIMINGS=fast`.
fn timings() -> Timings {
    match std::env::var("MNEMA_FAULT_TIMINGS").as_deref() {
        Ok("fast") => Timings::Fast,
        Ok("" | "defaults") | Err(_) => Timings::Defaults,
        Ok(other) => panic!("MNEMA_FAULT_TIMINGS={other}: `defaults` or `fast`"),
    }
}

fn spawn(dir: &std::path::Path, base: u16, i: u16, fw: bool) -> Proc {
    let role = if i <= CORES { "core" } else { "replicant" };
    spawn_timed(dir, base, i, CORES, role, fw.then(|| gid(base, i)), timings())
}

/// Partitions between processes on loopback: each node runs under its own group id, and
/// iptables drops a node's packets to another's port (matched by owner), both ways. Every
/// rule carries this run's tag and is removed on heal and on drop.
struct Firewall {
    base: u16,
    tag: String,
    rules: Vec<Vec<String>>,
}

impl Firewall {
    /// `None` where iptables cannot be used (not root, not installed).
    fn new(base: u16) -> Option<Firewall> {
        let ok = std::process::Command::new("iptables")
            .args(["-L", "OUTPUT", "-n"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Firewall { base, tag: format!("mnema-faults-{base}"), rules: Vec::new() })
    }

    fn rule(&self, op: &str, from: u16, to: u16) -> Vec<String> {
        let port = (self.base + to).to_string();
        let g = gid(self.base, from).to_string();
        [op, "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", &port, "-m", "owner", "--gid-owner", &g]
            .into_iter()
            .chain(["-m", "comment", "--comment", &self.tag, "-j", "DROP"])
            .map(String::from)
            .collect()
    }

    /// Cuts `a` and `b` apart (both directions).
    fn cut(&mut self, a: u16, b: u16) {
        for (from, to) in [(a, b), (b, a)] {
            let rule = self.rule("-A", from, to);
            let ok = std::process::Command::new("iptables").args(&rule).status().is_ok_and(|s| s.success());
            assert!(ok, "iptables {rule:?}");
            self.rules.push(self.rule("-D", from, to));
        }
    }

    /// Cuts `a` from every other node.
    fn isolate(&mut self, a: u16) {
        for b in (1..=CORES + REPLICANTS).filter(|&b| b != a) {
            self.cut(a, b);
        }
    }

    fn heal(&mut self) {
        for rule in self.rules.drain(..) {
            let _ = std::process::Command::new("iptables").args(&rule).status();
        }
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.heal();
    }
}

/// The core replicant `r` streams from, while it is in state normal.
async fn upstream(base: u16, r: u16) -> Option<u16> {
    let s = client(base, r).node_info().await.ok()?.replicant?;
    if s.state != mnema::ReplicantState::Normal {
        return None;
    }
    number_of(s.upstream.as_deref()?)
}

/// Writes through the cores in turn until one acknowledges; the time it took.
async fn probe(base: u16, alive: &[u16], n: u64) -> Duration {
    let t = Instant::now();
    let tries = Mutex::new(Vec::new());
    eventually("a write acknowledged after a fault", Duration::from_secs(60), || async {
        for &i in alive {
            let txn = Txn::new().put(TABLE, format!("probe{n}"), encode(n));
            let at = t.elapsed();
            let answer = tokio::time::timeout(Duration::from_secs(3), client(base, i).transact(&txn)).await;
            if let Ok(Ok(_)) = answer {
                return Some(());
            }
            let why = match answer {
                Ok(Err(e)) => format!("{e}"),
                _ => "no answer in 3 s".to_string(),
            };
            tries.lock().unwrap().push(format!("n{i} at {} ms: {why}", at.as_millis()));
        }
        None
    })
    .await;
    let took = t.elapsed();
    // A slow recovery, told attempt by attempt (what the figures are made of).
    if took > Duration::from_millis(2500) {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default() - took;
        eprintln!(
            "probe {n}: {} ms from {}.{:03} s after the epoch; failed attempts: {:?}",
            took.as_millis(),
            since.as_secs(),
            since.subsec_millis(),
            tries.lock().unwrap()
        );
    }
    took
}

async fn nemesis(
    run: Arc<Run>,
    dir: std::path::PathBuf,
    mut procs: BTreeMap<u16, Proc>,
    mut fw: Option<Firewall>,
    until: Instant,
) -> (Faults, BTreeMap<u16, Proc>) {
    let base = run.base;
    let with_fw = fw.is_some();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut faults = Faults::default();
    let mut n = 0u64;
    let kinds = if with_fw { 8 } else { 5 };
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1500 + rng.below(1500))).await;
        n += 1;
        let cores: Vec<u16> = (1..=CORES).collect();
        let kind = match rng.below(kinds) {
            5..=7 if fw.is_some() => {
                let Some(f) = fw.as_mut() else { continue };
                let (kind, took) = match rng.below(4) {
                    0 => {
                        let Some(l) = leader_of(base, 1).await.filter(|l| *l <= CORES) else { continue };
                        f.isolate(l);
                        let others: Vec<u16> = cores.iter().copied().filter(|&c| c != l).collect();
                        ("partition the leader away", probe(base, &others, n).await)
                    }
                    1 => {
                        let leader = leader_of(base, 1).await;
                        let Some(x) = cores.iter().copied().find(|&c| Some(c) != leader) else { continue };
                        f.isolate(x);
                        let others: Vec<u16> = cores.iter().copied().filter(|&c| c != x).collect();
                        ("partition a follower away", probe(base, &others, n).await)
                    }
                    2 => {
                        // Cut from the leader only, its upstream core still reachable: its
                        // writes go through that core.
                        let r = CORES + 1 + rng.below(REPLICANTS as u64) as u16;
                        let Some(l) = leader_of(base, 1).await.filter(|l| *l <= CORES) else { continue };
                        if upstream(base, r).await.is_none_or(|u| u == l) {
                            continue;
                        }
                        f.cut(r, l);
                        ("cut a replicant from the leader only", probe(base, &[r], n).await)
                    }
                    _ => {
                        let r = CORES + 1 + rng.below(REPLICANTS as u64) as u16;
                        let Some(up) = upstream(base, r).await else { continue };
                        f.cut(r, up);
                        // Recovered once it streams from another core.
                        let t = Instant::now();
                        wait_until("the replicant to move to another core", Duration::from_secs(30), || async {
                            upstream(base, r).await.is_some_and(|u| u != up)
                        })
                        .await;
                        ("cut a replicant from its core", t.elapsed())
                    }
                };
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                f.heal();
                faults.recovery_ms.entry(kind).or_default().push(took.as_millis() as u64);
                *faults.injected.entry(kind).or_default() += 1;
                continue;
            }
            0 => {
                let i = 1 + rng.below(CORES as u64) as u16;
                drop(procs.remove(&i));
                tokio::time::sleep(Duration::from_millis(500)).await;
                procs.insert(i, spawn(&dir, base, i, with_fw));
                "sigkill a core"
            }
            1 => {
                let leader = leader_of(base, 1 + rng.below(CORES as u64) as u16).await.filter(|l| *l <= CORES);
                let Some(l) = leader else { continue };
                procs[&l].signal("STOP");
                let others: Vec<u16> = cores.iter().copied().filter(|&c| c != l).collect();
                let took = probe(base, &others, n).await;
                procs[&l].signal("CONT");
                faults.recovery_ms.entry("sigstop the leader").or_default().push(took.as_millis() as u64);
                *faults.injected.entry("sigstop the leader").or_default() += 1;
                continue;
            }
            2 => {
                let i = CORES + 1 + rng.below(REPLICANTS as u64) as u16;
                drop(procs.remove(&i));
                tokio::time::sleep(Duration::from_millis(300)).await;
                procs.insert(i, spawn(&dir, base, i, with_fw));
                "sigkill a replicant"
            }
            3 => {
                for i in 1..=CORES {
                    drop(procs.remove(&i));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                for i in 1..=CORES {
                    procs.insert(i, spawn(&dir, base, i, with_fw));
                }
                "sigkill every core"
            }
            _ => {
                let leader = leader_of(base, 1).await.filter(|l| *l <= CORES);
                let Some(l) = leader else { continue };
                drop(procs.remove(&l));
                let others: Vec<u16> = cores.iter().copied().filter(|&c| c != l).collect();
                let took = probe(base, &others, n).await;
                procs.insert(l, spawn(&dir, base, l, with_fw));
                faults.recovery_ms.entry("sigkill the leader").or_default().push(took.as_millis() as u64);
                *faults.injected.entry("sigkill the leader").or_default() += 1;
                continue;
            }
        };
        let took = probe(base, &cores, n).await;
        faults.recovery_ms.entry(kind).or_default().push(took.as_millis() as u64);
        *faults.injected.entry(kind).or_default() += 1;
    }
    (faults, procs)
}

fn verdict_name(v: &linearizable::Verdict) -> &'static str {
    match v {
        linearizable::Verdict::Linearizable => "linearizable",
        linearizable::Verdict::Not(_) => "NOT linearizable",
        linearizable::Verdict::Unknown => "undecided",
    }
}

/// Every acknowledged operation is linearizable, nothing acknowledged is lost, and every
/// node ends with the same records, after crashes, stops and restarts of any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_crashes_stalls_and_partitions_are_linearizable_and_every_node_ends_identical() {
    let secs: u64 = std::env::var("MNEMA_FAULT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("MNEMA_FAULT_KEEP").is_some() {
        // The nodes' data dirs and logs, kept for a look after the run.
        eprintln!("fault suite: keeping the nodes' dirs and logs under {}", dir.path().display());
    }
    let base = free_base(CORES + REPLICANTS);
    let fw = Firewall::new(base);
    if fw.is_none() {
        cannot_run_here("the partitions need iptables, as root");
    }
    let with_fw = fw.is_some();
    let procs: BTreeMap<u16, Proc> =
        (1..=CORES + REPLICANTS).map(|i| (i, spawn(dir.path(), base, i, with_fw))).collect();
    for i in 1..=CORES + REPLICANTS {
        wait_serving(base, i).await;
    }
    agreed_leader(base, &(1..=CORES).collect::<Vec<_>>()).await;
    for k in 0..KEYS {
        put(base, 1, &key(k), &encode(0)).await;
    }
    let run = Arc::new(Run {
        start: Instant::now(),
        base,
        history: Mutex::new(BTreeMap::new()),
        guess: Mutex::new(BTreeMap::new()),
        next_value: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        unknown_why: Mutex::new(BTreeMap::new()),
    });
    // The registers start at 0: a write everyone saw completed before the run.
    for k in 0..KEYS {
        run.record(k, Op { call: Call::Write(0), ret: Ret::Done, invoked: 0, completed: Some(0) });
    }
    // A watcher on every node, from before the first fault.
    let watch_stop = Arc::new(AtomicBool::new(false));
    let replays: Vec<Arc<Mutex<Replay>>> = (1..=CORES + REPLICANTS).map(|_| Arc::default()).collect();
    let watchers: Vec<_> = (1..=CORES + REPLICANTS)
        .zip(&replays)
        .map(|(i, r)| tokio::spawn(watcher(base, i, r.clone(), watch_stop.clone())))
        .collect();
    let workers: Vec<_> = (1..=CORES + REPLICANTS)
        .enumerate()
        .map(|(w, node)| tokio::spawn(worker(run.clone(), node, 0x5eed + w as u64 * 7919)))
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let (faults, procs) = nemesis(run.clone(), dir.path().to_path_buf(), procs, fw, until).await;
    run.stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    for w in workers {
        ops += w.await.unwrap();
    }
    for i in 1..=CORES + REPLICANTS {
        wait_serving(base, i).await;
    }
    let leader = agreed_leader(base, &(1..=CORES).collect::<Vec<_>>()).await;

    // The final value of every key, read linearizably on every node, joins each history.
    let index = client(base, leader).read_index().await.unwrap();
    let end = run.now();
    let mut dumps = Vec::new();
    for i in 1..=CORES + REPLICANTS {
        for k in 0..KEYS {
            let r = client(base, i).read(TABLE, Some(key(k).as_bytes()), index).await.unwrap();
            let v = r.records.first().and_then(|(_, v)| decode(v));
            run.record(k, Op { call: Call::Read, ret: Ret::Value(v), invoked: end, completed: Some(end) });
        }
        let all = client(base, i).read(TABLE, None, index).await.unwrap();
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = all.records;
        records.sort();
        dumps.push((i, records));
    }
    for (i, d) in &dumps[1..] {
        assert!(*d == dumps[0].1, "n{i}'s records differ from n{}'s", dumps[0].0);
    }
    // Each watcher's snapshots and events replay to its node's final records (the watcher
    // may still be catching up: compared until equal, 30 s at most).
    for (i, replay) in (1..=CORES + REPLICANTS).zip(&replays) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut held = client(base, i).read(TABLE, None, index).await.unwrap().records;
            held.sort();
            let (rebuilt, at, events, snapshots) = {
                let r = replay.lock().unwrap();
                let rebuilt: Vec<(Vec<u8>, Vec<u8>)> = r.records.clone().into_iter().collect();
                (rebuilt, r.index, r.events, r.snapshots)
            };
            if rebuilt == held {
                eprintln!("n{i}'s watcher: {events} events, {snapshots} snapshots, at index {at}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n{i}: the watcher's snapshots and events rebuild {rebuilt:?} (index {at}), the node holds {held:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    watch_stop.store(true, Ordering::Relaxed);
    for w in watchers {
        w.await.unwrap();
    }

    let history = run.history.lock().unwrap().clone();
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    let (mut acked, mut unknown) = (0, 0);
    for (k, h) in &history {
        acked += h.iter().filter(|o| o.ret == Ret::Done).count();
        unknown += h.iter().filter(|o| o.ret == Ret::Unknown).count();
        // The search recurses once per operation: give it a deep stack.
        let owned = h.clone();
        let t = Instant::now();
        let verdict = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || linearizable::check_within(&owned, 200_000))
            .unwrap()
            .join()
            .unwrap();
        let unknown_here = h.iter().filter(|o| o.ret == Ret::Unknown).count();
        eprintln!(
            "{}: {} ops, {unknown_here} unknown, {:?} in {:?}",
            key(*k),
            h.len(),
            verdict_name(&verdict),
            t.elapsed()
        );
        if verdict != linearizable::Verdict::Linearizable {
            // Kept for a look: one operation per line.
            let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fault-history-{}.txt", key(*k)));
            let lines: Vec<String> = h.iter().map(|o| format!("{o:?}")).collect();
            let _ = std::fs::write(&file, lines.join("\n"));
            eprintln!("history of {} in {}", key(*k), file.display());
        }
        match verdict {
            linearizable::Verdict::Linearizable => {}
            linearizable::Verdict::Not(prefix) => {
                anomalies.push(format!("{}: {} of {} ops linearize; history: {h:?}", key(*k), prefix.len(), h.len()))
            }
            linearizable::Verdict::Unknown => undecided.push(key(*k)),
        }
    }
    eprintln!("unknown outcomes: {:?}", run.unknown_why.lock().unwrap());
    eprintln!(
        "fault suite ({:?} timings): {secs} s, {ops} operations ({acked} writes acknowledged, {unknown} unknown), \
         faults {:?}, recovery ms {:?}, anomalies {}",
        timings(),
        faults.injected,
        faults.recovery_ms,
        anomalies.len()
    );
    assert!(anomalies.is_empty(), "not linearizable:\n{}", anomalies.join("\n"));
    assert!(undecided.is_empty(), "the checker gave up on {undecided:?}");
    assert!(faults.injected.values().sum::<u32>() > 0, "no fault was injected");
    drop(procs);
    if std::env::var_os("MNEMA_FAULT_KEEP").is_some() {
        let _ = dir.keep();
    }
}
