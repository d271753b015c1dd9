//! The peer harness: mnema beside etcd and Mnesia on this machine, in one run, under the
//! same load shapes (BENCHMARKS.md has the command, the machine and a run's table).
//!
//! Systems (3 nodes each, loopback, fresh data dirs under one temp dir):
//! - **mnema, in process**: 3 cores in this process, as a linked broker runs them;
//! - **mnema over gRPC**: 3 `mnema start` processes, driven through [`mnema::Client`];
//! - **etcd**: 3 members of Debian's `etcd` (3.4, its defaults: fsync on), driven through
//!   `etcd-client`;
//! - **Mnesia**: 3 Erlang nodes with a `disc_copies` table on all three, driven by
//!   `benches/peers/mnesia_bench.escript` (it prints JSON lines that this harness reads).
//!
//! Writes: a closed loop per writer, 1 / 64 / 256 writers, distinct 8-byte keys, 256-byte
//! values, each cell `MNEMA_PEERS_SECS` seconds; writers spread over the three nodes, then
//! all on the leader (etcd, mnema) or on one node (Mnesia). Then point reads, session
//! open and take-over, route match on 1M routes (two mixes: the harness's, and a
//! multi-tenant one with 12% wildcards, `common::RouteMix`), a replicant's bootstrap and a core's
//! restart with those routes and 100k sessions, and memory per route and per session
//! (RSS growth of a fresh process holding one mnema core, `mnesia:table_info(T, memory)`).
//! Then the broker's lookups through secondary indexes against scans of the same tables
//! (`indexes`), sessions with and without their indexes, and a replicant following the
//! routes shard only against one following every shard (`shards`).
//!
//! Output: a table on stdout and `<target>/mnema-peers.json`.
//!
//! Settings (environment): `MNEMA_PEERS_SECS` (5), `MNEMA_PEERS_WRITERS` (`1,64,256`),
//! `MNEMA_PEERS_ROUTES` (1000000), `MNEMA_PEERS_SESSIONS` (100000), `MNEMA_PEERS_ONLY`
//! (comma-separated subset of
//! `floor,stages,inproc,grpc,etcd,mnesia,routes,sessions,memory,indexes,shards,watch`),
//! `MNEMA_PEERS_SCALE` (off; e.g. `1000000,5000000,10000000`: the scale curve, see
//! [`scale`]), `MNEMA_PEERS_KEEP` (set: keep the data dirs and the nodes' logs, and print where),
//! `MNEMA_PEERS_PERF` (a path prefix: `perf record` of the restart (and the shutdown
//! before it), the bootstrap and the 1M-record point reads into `<prefix>.restart.data`,
//! `<prefix>.shutdown.data`, `<prefix>.bootstrap.data` and `<prefix>.point_read.data`),
//! `MNEMA_PEERS_LOG` (a `tracing` filter for the in-process nodes' log and the harness's
//! own warnings about operations slower than 100 ms, or `MNEMA_PEERS_SLOW_MS`),
//! `MNEMA_PEERS_STACKS` (a file: when no
//! operation finishes for 400 ms, every thread's stack is appended to it, via gdb),
//! `MNEMA_PEERS_RAFT_TRANSPORT` (`grpc`: Raft between cores over gRPC instead of the
//! default frames; the `mnema start` processes read `MNEMA_RAFT__TRANSPORT` themselves),
//! `MNEMA_PEERS_CLIENT` (`grpc`: the `grpc` cells' `Client` sends each write as a gRPC
//! call, `Client::without_frames`; by default it takes frames, "mnema over the network").

mod common;

use mnema::schema::routes;
use mnema::schema::sessions;
use mnema::{Client, Txn};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One measured cell.
#[derive(Clone, Debug, Default, Serialize)]
struct Cell {
    system: String,
    bench: String,
    /// Where the load starts: `spread`, `leader`, `one_node`, or empty.
    placement: String,
    /// What a write waited for before it was acknowledged.
    durability: String,
    writers: usize,
    ops: u64,
    secs: f64,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Memory cells: bytes per record.
    bytes_per_record: f64,
}

struct Settings {
    secs: f64,
    writers: Vec<usize>,
    routes: u64,
    sessions: u64,
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Settings {
            secs: var("MNEMA_PEERS_SECS").and_then(|v| v.parse().ok()).unwrap_or(5.0),
            writers: var("MNEMA_PEERS_WRITERS")
                .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1, 64, 256]),
            routes: var("MNEMA_PEERS_ROUTES").and_then(|v| v.parse().ok()).unwrap_or(1_000_000),
            sessions: var("MNEMA_PEERS_SESSIONS").and_then(|v| v.parse().ok()).unwrap_or(100_000),
            only: var("MNEMA_PEERS_ONLY").map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
        }
    }

    fn runs(&self, what: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == what))
    }
}

const VALUE: usize = 256;
/// The table mnema's writes go to on every row: `messages` (durable, on disc only), the
/// broker's offline-message table, declared by `mnema start` and the test tables alike.
const WRITE_TABLE: &str = mnema::schema::MESSAGES;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-probe") {
        memory_probe(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--replicant-probe") {
        replicant_probe(&args[i + 1..]);
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let s = Settings::from_env();
    stall_watchdog();
    if let Ok(filter) = std::env::var("MNEMA_PEERS_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let work = tempfile::Builder::new().prefix("mnema-peers").tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut cells = Vec::new();
    if s.runs("floor") {
        cells.extend(rt.block_on(floor(work.path())));
    }
    if s.runs("stages") {
        cells.extend(rt.block_on(stages(&s)));
    }
    if s.runs("inproc") {
        cells.extend(rt.block_on(inproc(&s)));
    }
    if s.runs("grpc") {
        cells.extend(rt.block_on(grpc(&s, work.path())));
    }
    if s.runs("etcd") {
        cells.extend(rt.block_on(etcd(&s, work.path())));
    }
    if s.runs("watch") {
        cells.extend(rt.block_on(watches(&s)));
        cells.extend(rt.block_on(etcd_watches(&s, work.path())));
    }
    if s.runs("mnesia") {
        cells.extend(mnesia(&s, work.path()));
    }
    if s.runs("routes") {
        cells.extend(rt.block_on(route_match(&s)));
        cells.extend(rt.block_on(route_match_tenants(&s)));
    }
    if s.runs("sessions") {
        cells.extend(rt.block_on(session_load(&s)));
    }
    if s.runs("memory") {
        cells.extend(memory(&s));
    }
    if s.runs("indexes") {
        cells.extend(rt.block_on(indexes(&s)));
    }
    if s.runs("shards") {
        cells.extend(rt.block_on(shards(&s)));
    }
    if let Some(points) = std::env::var("MNEMA_PEERS_SCALE").ok().filter(|v| !v.is_empty()) {
        let points: Vec<u64> = points.split(',').filter_map(|p| p.trim().parse().ok()).collect();
        cells.extend(rt.block_on(scale(&s, &points)));
    }
    report(&cells);
    if std::env::var_os("MNEMA_PEERS_KEEP").is_some() {
        eprintln!("kept the data dirs and logs under {}", work.keep().display());
    }
}

// ---------------------------------------------------------------------------------------
// Load shapes

/// Latencies of one closed-loop cell.
struct Lats {
    us: Vec<u32>,
    elapsed: Duration,
}

impl Lats {
    fn cell(mut self, system: &str, bench: &str, placement: &str, durability: &str, writers: usize) -> Cell {
        self.us.sort_unstable();
        let n = self.us.len();
        let q = |f: f64| if n == 0 { 0.0 } else { f64::from(self.us[((f * n as f64) as usize).min(n - 1)]) };
        let secs = self.elapsed.as_secs_f64();
        Cell {
            system: system.into(),
            bench: bench.into(),
            placement: placement.into(),
            durability: durability.into(),
            writers,
            ops: n as u64,
            secs,
            ops_per_s: n as f64 / secs,
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: self.us.last().map(|&m| f64::from(m)).unwrap_or(0.0),
            bytes_per_record: 0.0,
        }
    }
}

/// An operation slower than this is logged (issue 21: none at steady load);
/// `MNEMA_PEERS_SLOW_MS` sets another bound, to see what lies below it.
fn slow() -> Duration {
    static SLOW: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SLOW.get_or_init(|| {
        let ms = std::env::var("MNEMA_PEERS_SLOW_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
        Duration::from_millis(ms)
    })
}

/// Operations finished by every closed loop so far (the stall watchdog reads it).
static DONE: AtomicU64 = AtomicU64::new(0);

/// With `MNEMA_PEERS_STACKS=<file>`: a thread that, when no closed-loop operation has
/// finished for 400 ms while some run, appends every thread's stack (gdb) to the file,
/// once per stall.
fn stall_watchdog() {
    let Some(file) = std::env::var_os("MNEMA_PEERS_STACKS") else { return };
    std::thread::spawn(move || {
        let pid = std::process::id().to_string();
        let (mut last, mut since, mut dumped) = (0, Instant::now(), false);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = DONE.load(Ordering::Relaxed);
            if now != last || RUNNING.load(Ordering::Relaxed) == 0 {
                (last, since, dumped) = (now, Instant::now(), false);
                continue;
            }
            if !dumped && since.elapsed() > Duration::from_millis(400) {
                dumped = true;
                let out = Command::new("gdb").args(["-batch", "-p", &pid, "-ex", "thread apply all bt 30"]).output();
                if let Ok(out) = out {
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&file) {
                        let _ = writeln!(f, "==== no operation finished for {:?}", since.elapsed());
                        let _ = f.write_all(&out.stdout);
                    }
                }
            }
        }
    });
}

/// Closed loops running now.
static RUNNING: AtomicU64 = AtomicU64::new(0);

/// Runs `writers` closed loops of `op(writer)` for `secs` and gathers every latency.
async fn closed_loop<F, Fut>(writers: usize, secs: f64, op: F) -> Lats
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    RUNNING.fetch_add(1, Ordering::Relaxed);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut us = Vec::with_capacity(4096);
                loop {
                    let t0 = Instant::now();
                    if t0 >= deadline {
                        break;
                    }
                    op(w).await;
                    let took = t0.elapsed();
                    if took > slow() {
                        tracing::warn!(
                            writer = w,
                            ms = took.as_millis() as u64,
                            "a slow operation (started {:?} into the cell)",
                            t0 - start
                        );
                    }
                    us.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                    DONE.fetch_add(1, Ordering::Relaxed);
                }
                us
            })
        })
        .collect();
    let mut us = Vec::new();
    for t in tasks {
        us.extend(t.await.expect("writer task"));
    }
    RUNNING.fetch_sub(1, Ordering::Relaxed);
    Lats { us, elapsed: start.elapsed() }
}

/// The write cells of one system: spread over its three nodes, then all on `leader`, at
/// each writer count. `write(node, key)` writes one new key through node `node`; `term`
/// reports the Raft term where it is known, to flag a cell an election ran through.
/// Returns the cells and how many keys were written (keys `0..n`, big-endian).
async fn write_cells<F, Fut>(
    s: &Settings,
    system: &str,
    leader: usize,
    term: impl Fn() -> Option<u64>,
    write: F,
) -> (Vec<Cell>, u64)
where
    F: Fn(usize, [u8; 8]) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let seq = Arc::new(AtomicU64::new(0));
    let mut cells = Vec::new();
    for placement in ["spread", "leader"] {
        for &writers in &s.writers {
            let (write, seq) = (write.clone(), seq.clone());
            let before = term();
            let lats = closed_loop(writers, s.secs, move |w| {
                write(if placement == "leader" { leader } else { w % 3 }, key(&seq))
            })
            .await;
            if term() != before {
                eprintln!("an election happened during this cell (term {before:?} -> {:?})", term());
            }
            let cell = lats.cell(system, "write", placement, "majority fsync", writers);
            eprintln!("{}", line(&cell));
            cells.push(cell);
        }
    }
    (cells, seq.load(Ordering::Relaxed))
}

fn key(seq: &AtomicU64) -> [u8; 8] {
    seq.fetch_add(1, Ordering::Relaxed).to_be_bytes()
}

/// Point reads on one thread for `secs`: how many `read(i)` calls finished.
fn read_rate(secs: f64, mut read: impl FnMut(u64)) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..1024 {
            read(n);
            n += 1;
        }
        if start.elapsed().as_secs_f64() >= secs {
            return (n, start.elapsed());
        }
    }
}

/// As [`read_rate`] for operations of milliseconds or more: at least 3 calls, then until
/// `secs` have passed.
fn slow_rate(secs: f64, mut op: impl FnMut(u64)) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    while n < 3 || start.elapsed().as_secs_f64() < secs {
        op(n);
        n += 1;
    }
    (n, start.elapsed())
}

fn rate_cell(system: &str, bench: &str, ops: u64, elapsed: Duration) -> Cell {
    Cell {
        system: system.into(),
        bench: bench.into(),
        writers: 1,
        ops,
        secs: elapsed.as_secs_f64(),
        ops_per_s: ops as f64 / elapsed.as_secs_f64(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// The floor: what one durable write cannot go below on this machine

/// A 4 KiB write + `fdatasync` of one file in the work dir, and a 64-byte round trip over
/// loopback TCP, each 2,000 times in a row: the 1-writer target is 2 × (fsync p50 + RTT p50).
async fn floor(work: &Path) -> Vec<Cell> {
    let path = work.join("fsync-probe");
    let fsync = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).expect("probe file");
        let block = vec![0x5au8; 4096];
        let mut us = Vec::with_capacity(2000);
        let start = Instant::now();
        for _ in 0..2000 {
            let t0 = Instant::now();
            f.write_all(&block).expect("write");
            f.sync_data().expect("fdatasync");
            us.push(t0.elapsed().as_micros() as u32);
        }
        Lats { us, elapsed: start.elapsed() }
    })
    .await
    .expect("fsync probe");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            while s.read_exact(&mut buf).await.is_ok() {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }
    });
    let rtt = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.set_nodelay(true).expect("nodelay");
        let mut buf = [0u8; 64];
        let mut us = Vec::with_capacity(2000);
        let start = Instant::now();
        for _ in 0..2000 {
            let t0 = Instant::now();
            c.write_all(&buf).await.expect("send");
            c.read_exact(&mut buf).await.expect("receive");
            us.push(t0.elapsed().as_micros() as u32);
        }
        Lats { us, elapsed: start.elapsed() }
    };
    let cells = vec![
        fsync.cell("this machine", "4 KiB write + fdatasync", "", "", 1),
        rtt.cell("this machine", "loopback TCP round trip", "", "", 1),
    ];
    for c in &cells {
        eprintln!("{}", line(c));
    }
    cells
}

// ---------------------------------------------------------------------------------------
// mnema in process

/// One write at a time on the leader of 3 in-process cores, each traced stage by stage
/// (`mnema::stages`): one cell per stage with the time from the stage it follows
/// (`Stage::after`; the leader's own sync runs beside the replication), then from the last
/// stage to the caller's wake-up.
async fn stages(s: &Settings) -> Vec<Cell> {
    use mnema::stages::{self, STAGES};
    let cluster = common::cluster(3).await;
    let leader = &cluster.nodes[cluster.leader()];
    let mut deltas: Vec<Vec<u32>> = vec![Vec::new(); STAGES.len() + 1];
    let mut totals = Vec::new();
    let mut missing = vec![0u64; STAGES.len()];
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed().as_secs_f64() < s.secs {
        i += 1;
        stages::begin();
        leader.transact(Txn::new().put(WRITE_TABLE, i.to_be_bytes(), vec![0xab; VALUE])).await.expect("write");
        let (at, total) = stages::end();
        let at_of = |s: Option<stages::Stage>| s.map_or(Some(Duration::ZERO), |s| at[s as usize]);
        for (k, stage) in STAGES.iter().enumerate() {
            match (at[k], at_of(stage.after())) {
                (Some(t), Some(from)) => deltas[k].push(t.saturating_sub(from).as_micros() as u32),
                _ => missing[k] += 1,
            }
        }
        if let Some(t) = at[STAGES.len() - 1] {
            deltas[STAGES.len()].push(total.saturating_sub(t).as_micros() as u32);
        }
        totals.push(total.as_micros() as u32);
    }
    let elapsed = start.elapsed();
    let mut cells = Vec::new();
    let mut sum_p50 = 0.0;
    for (k, us) in deltas.into_iter().enumerate() {
        let name = STAGES.get(k).map_or("to the caller", |s| s.name());
        if let Some(&m) = missing.get(k).filter(|&&m| m > 0) {
            eprintln!("stage {name}: not reached in {m} of {i} writes");
        }
        let c = Lats { us, elapsed }.cell("mnema in process", &format!("stage: {name}"), "leader", "", 1);
        if STAGES.get(k).is_none_or(|s| *s != stages::Stage::LeaderSynced) {
            sum_p50 += c.p50_us;
        }
        eprintln!("{}", line(&c));
        cells.push(c);
    }
    let whole = Lats { us: totals, elapsed }.cell("mnema in process", "stage: the whole write", "leader", "", 1);
    eprintln!("{}", line(&whole));
    eprintln!("{i} traced writes; the medians of the stages on the path add up to {sum_p50} µs");
    cells.push(whole);
    keep_or_drop(cluster.shutdown().await);
    cells
}

async fn inproc(s: &Settings) -> Vec<Cell> {
    let cluster = Arc::new(common::cluster(3).await);
    let leader = cluster.leader();
    let term = || cluster.nodes.iter().filter_map(|n| n.runtime().metrics().ok()).map(|m| m.current_term).max();
    let c = cluster.clone();
    let (mut cells, _) = write_cells(s, "mnema in process", leader, term, move |node, k| {
        let c = c.clone();
        async move {
            c.nodes[node].transact(Txn::new().put(WRITE_TABLE, k, vec![0xab; VALUE])).await.expect("write");
        }
    })
    .await;
    // Point reads from the local copy of a follower: `kv` (set, on disc and in memory).
    let node = &cluster.nodes[cluster.follower()];
    let mut txn = Txn::new();
    for i in 0..100_000u64 {
        txn = txn.put("kv", i.to_be_bytes(), vec![0xcd; VALUE]);
        if txn.ops.len() == 5000 {
            cluster.nodes[leader].transact(std::mem::take(&mut txn)).await.expect("fill kv");
        }
    }
    let done = cluster.nodes[leader].transact(txn.put("kv", b"last", b"x")).await.expect("fill kv");
    node.wait_applied(done.index, Duration::from_secs(60)).await.expect("applied");
    let (n, el) = read_rate(s.secs, |i| {
        let k = ((i * 7919) % 100_000).to_be_bytes();
        assert!(node.get_one("kv", &k).expect("read").is_some());
    });
    let cell = rate_cell("mnema in process", "point_read node.get_one", n, el);
    eprintln!("{}", line(&cell));
    cells.push(cell);
    // The same through a handle resolved once: by value (an Arc), then borrowed.
    let kv = node.table("kv").expect("kv handle");
    let (n, el) = read_rate(s.secs, |i| {
        let k = ((i * 7919) % 100_000).to_be_bytes();
        assert!(kv.get_one(&k).expect("read").is_some());
    });
    cells.push(rate_cell("mnema in process", "point_read table.get_one", n, el));
    let (n, el) = read_rate(s.secs, |i| {
        let k = ((i * 7919) % 100_000).to_be_bytes();
        assert_eq!(kv.with_one(&k, |v| v.map(<[u8]>::len)).expect("read"), Some(VALUE));
    });
    cells.push(rate_cell("mnema in process", "point_read table.with_one", n, el));
    // The size: 1M records more of an 8-byte key and a 32-byte value, random keys
    // among them (a multiplicative walk), borrowed through the handle.
    const MORE: u64 = 1_000_000;
    let last = common::load_kv(&cluster.nodes[leader], MORE).await;
    node.wait_applied(last, Duration::from_secs(120)).await.expect("applied");
    common::quiesce(&cluster.nodes).await;
    let profile = Profile::start("point_read");
    let (n, el) = read_rate(s.secs, |i| {
        let k = common::kv_key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % MORE);
        assert_eq!(kv.with_one(&k, |v| v.map(<[u8]>::len)).expect("read"), Some(32));
    });
    drop(profile);
    cells.push(rate_cell("mnema in process", "point_read table.with_one, 1M records", n, el));
    for c in &cells[cells.len() - 3..] {
        eprintln!("{}", line(c));
    }
    match Arc::try_unwrap(cluster) {
        Ok(c) => keep_or_drop(c.shutdown().await),
        Err(_) => eprintln!("cluster still shared at the end; left to drop"),
    }
    cells
}

/// Removes an in-process cluster's data dirs, or keeps them with `MNEMA_PEERS_KEEP`.
fn keep_or_drop(dir: tempfile::TempDir) {
    if std::env::var_os("MNEMA_PEERS_KEEP").is_some() {
        eprintln!("kept the in-process cores' data dirs under {}", dir.keep().display());
    }
}

// ---------------------------------------------------------------------------------------
// mnema over gRPC

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_file(path: &Path) -> (Stdio, Stdio) {
    let f = std::fs::File::create(path).expect("log file");
    (Stdio::from(f.try_clone().expect("log file")), Stdio::from(f))
}

async fn grpc(s: &Settings, work: &Path) -> Vec<Cell> {
    let dir = work.join("mnema");
    std::fs::create_dir_all(&dir).expect("dir");
    let base = mnema::testing::free_base(3);
    let name = |i: u16| format!("n{i}@127.0.0.1");
    let seeds: Vec<String> = (1..=3).map(|i| format!("\"{}\"", name(i))).collect();
    let _procs: Vec<Killed> = (1..=3u16)
        .map(|i| {
            let conf = dir.join(format!("n{i}.toml"));
            let text = format!(
                "[node]\nname = \"{}\"\ncookie = \"{}\"\ndata_dir = \"{}\"\nbase_port = {base}\n\
                 [cluster]\ndiscovery_strategy = \"static\"\nstatic.seeds = [{}]\n",
                name(i),
                mnema::testing::COOKIE,
                dir.join(format!("n{i}")).display(),
                seeds.join(", ")
            );
            std::fs::write(&conf, text).expect("config");
            let (out, err) = log_file(&dir.join(format!("n{i}.log")));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mnema"));
            // The harness's own settings are not the node's config.
            for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MNEMA_PEERS_")) {
                cmd.env_remove(k);
            }
            let child = cmd
                .args(["start", "--config"])
                .arg(&conf)
                .env("RUST_LOG", "warn")
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start mnema");
            Killed(child)
        })
        .collect();
    // `MNEMA_PEERS_CLIENT=grpc`: each write a gRPC call, as before clients took frames.
    let grpc_only = std::env::var("MNEMA_PEERS_CLIENT").is_ok_and(|v| v == "grpc");
    let clients: Vec<Client> = (1..=3u16)
        .map(|i| Client::new(&format!("127.0.0.1:{}", base + i), mnema::testing::COOKIE).expect("client"))
        .map(|c| if grpc_only { c.without_frames() } else { c })
        .collect();
    let mut leader = None;
    let start = Instant::now();
    while leader.is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "the mnema processes elected no leader in 60 s");
        for (i, c) in clients.iter().enumerate() {
            if let Ok(st) = c.clone().node_info().await
                && st.raft_role == Some(mnema::RaftRole::Leader)
            {
                leader = Some(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = leader.unwrap_or_default();
    let clients = Arc::new(clients);
    let c = clients.clone();
    let (mut cells, written) = write_cells(
        s,
        if grpc_only { "mnema over gRPC" } else { "mnema over the network" },
        leader,
        || None,
        move |node, k| {
            let mut client = c[node].clone();
            async move {
                client.transact(&Txn::new().put(WRITE_TABLE, k, vec![0xab; VALUE])).await.expect("write");
            }
        },
    )
    .await;
    // The same writes through `Client::pipeline`: one stream per node, every writer's
    // writes tagged on it, instead of a call each.
    let mut pipelines = Vec::new();
    for c in clients.iter() {
        pipelines.push(c.pipeline().await.expect("write stream"));
    }
    let pipelines = Arc::new(pipelines);
    let (piped, _) = write_cells(
        s,
        "mnema over gRPC, pipelined",
        leader,
        || None,
        move |node, k| {
            let p = pipelines.clone();
            async move {
                p[node].transact(&Txn::new().put(WRITE_TABLE, k, vec![0xab; VALUE])).await.expect("write");
            }
        },
    )
    .await;
    cells.extend(piped);
    // Point reads over gRPC from one follower (keys written above, read from its store).
    let follower = clients[(leader + 1) % 3].clone();
    let written = written.max(1);
    let lats = closed_loop(1, s.secs, move |_| {
        let mut c = follower.clone();
        let k = (rand_below(written)).to_be_bytes();
        async move {
            let r = c.read(WRITE_TABLE, Some(&k), 0).await.expect("read");
            assert!(!r.records.is_empty(), "a written key was not found");
        }
    })
    .await;
    let cell = lats.cell("mnema over gRPC", "point_read", "follower", "", 1);
    eprintln!("{}", line(&cell));
    cells.push(cell);
    cells
}

fn rand_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

// ---------------------------------------------------------------------------------------
// Change feeds

/// Writers of the watch cells, spread over the three cores (the "full load").
const WATCH_WRITERS: usize = 64;
/// Watcher counts of the watch cells.
const WATCHERS: [usize; 4] = [0, 1, 10, 100];

/// Watches of `messages` while 64 writers write to it, spread: write ops/s and p99 with 0,
/// 1, 10 and 100 watchers (spread over the three cores), and the changes delivered to them
/// per second, in process and over gRPC; then, at half the writers, the time from a write's
/// acknowledgement to its event on a follower core and on a replicant; and the ring's size.
async fn watches(s: &Settings) -> Vec<Cell> {
    let cluster = Arc::new(common::cluster(3).await);
    let mut cells = Vec::new();
    for over_grpc in [false, true] {
        let system = if over_grpc { "mnema watch over gRPC" } else { "mnema watch in process" };
        for &n in &WATCHERS {
            if over_grpc && n == 0 {
                continue;
            }
            let delivered = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for w in 0..n {
                let (node, delivered) = (w % 3, delivered.clone());
                let spec = mnema::WatchSpec::table(WRITE_TABLE);
                let mut watch = if over_grpc {
                    let addr = format!("127.0.0.1:{}", cluster.base + node as u16 + 1);
                    let mut c = Client::new(&addr, "test-cookie").expect("client");
                    c.watch(&spec).await.expect("watch over gRPC")
                } else {
                    cluster.nodes[node].watch(spec).expect("watch")
                };
                tasks.push(tokio::spawn(async move {
                    while let Some(e) = watch.next().await {
                        match e {
                            Ok(e) => delivered.fetch_add(e.changes.len() as u64, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("a watcher ended: {e}");
                                return;
                            }
                        };
                    }
                }));
            }
            let c = cluster.clone();
            let seq = Arc::new(AtomicU64::new(u64::MAX / 2));
            let t0 = Instant::now();
            let lats = closed_loop(WATCH_WRITERS, s.secs, move |w| {
                let (c, k) = (c.clone(), key(&seq));
                async move {
                    c.nodes[w % 3].transact(Txn::new().put(WRITE_TABLE, k, vec![0xab; VALUE])).await.expect("write");
                }
            })
            .await;
            let written = lats.us.len() as u64;
            drain(&delivered, written * n as u64).await;
            let elapsed = t0.elapsed();
            let cell =
                lats.cell(system, &format!("write with {n} watchers"), "spread", "majority fsync", WATCH_WRITERS);
            eprintln!("{}", line(&cell));
            cells.push(cell);
            if n > 0 {
                let got = delivered.load(Ordering::Relaxed);
                if got < written * n as u64 {
                    eprintln!("{system}: {got} of {} changes delivered in time", written * n as u64);
                }
                let mut cell = rate_cell(system, &format!("events delivered, {n} watchers"), got, elapsed);
                cell.writers = WATCH_WRITERS;
                eprintln!("{}", line(&cell));
                cells.push(cell);
            }
            tasks.iter().for_each(|t| t.abort());
        }
    }
    cells.extend(commit_to_event(s, &cluster).await);
    let (entries, bytes) = cluster.nodes[0].runtime().feed_size();
    eprintln!("feed ring after the watch cells: {entries} entries, {bytes} bytes");
    cells.push(Cell {
        system: "mnema in process".into(),
        bench: format!("feed ring bytes ({entries} entries)"),
        ops: bytes as u64,
        bytes_per_record: bytes as f64 / entries.max(1) as f64,
        ..Default::default()
    });
    match Arc::try_unwrap(cluster) {
        Ok(c) => keep_or_drop(c.shutdown().await),
        Err(_) => eprintln!("cluster still shared at the end; left to drop"),
    }
    cells
}

/// Waits (10 s at most) until the watchers counted `want` deliveries: the last events of
/// a cell reach them after its writes end.
async fn drain(delivered: &AtomicU64, want: u64) {
    let wait = Instant::now();
    while delivered.load(Ordering::Relaxed) < want && wait.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keys and when their event arrived.
type Arrivals = Vec<([u8; 8], Instant)>;

/// At half the watch cells' writers: from a write's acknowledgement to its event, on a
/// follower core and on a replicant (an event that arrives first counts as 0).
async fn commit_to_event(s: &Settings, cluster: &Arc<common::Bench>) -> Vec<Cell> {
    let replicant = cluster.replicant(4).await;
    common::wait_normal(&replicant).await;
    let acked: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 8], Instant>>> = Arc::default();
    let mut seen = Vec::new();
    let mut tasks = Vec::new();
    for node in [&cluster.nodes[cluster.follower()], &replicant] {
        let mut watch = node.watch(mnema::WatchSpec::table(WRITE_TABLE)).expect("watch");
        let got: Arc<std::sync::Mutex<Arrivals>> = Arc::default();
        seen.push(got.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(e)) = watch.next().await {
                let now = Instant::now();
                let mut g = got.lock().expect("lock");
                g.extend(e.changes.iter().filter_map(|c| <[u8; 8]>::try_from(c.key.as_ref()).ok()).map(|k| (k, now)));
            }
        }));
    }
    let (c, a) = (cluster.clone(), acked.clone());
    let seq = Arc::new(AtomicU64::new(u64::MAX / 4));
    let leader = cluster.leader();
    let lats = closed_loop(WATCH_WRITERS / 2, s.secs, move |w| {
        let (c, a, k) = (c.clone(), a.clone(), key(&seq));
        // Through the leader and its followers alike.
        let node = if w % 2 == 0 { leader } else { w % 3 };
        async move {
            c.nodes[node].transact(Txn::new().put(WRITE_TABLE, k, vec![0xab; VALUE])).await.expect("write");
            a.lock().expect("lock").insert(k, Instant::now());
        }
    })
    .await;
    let written = lats.us.len();
    let wait = Instant::now();
    while seen.iter().any(|g| g.lock().expect("lock").len() < written) && wait.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tasks.iter().for_each(|t| t.abort());
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let mut cells = Vec::new();
    for (place, got) in ["core", "replicant"].into_iter().zip(&seen) {
        let us: Vec<u32> = got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(k, at)| acked.get(k).map(|a| at.saturating_duration_since(*a).as_micros() as u32))
            .collect();
        let mut cell = Lats { us, elapsed: Duration::from_secs_f64(s.secs) }.cell(
            "mnema watch in process",
            "ack to event",
            place,
            "",
            WATCH_WRITERS / 2,
        );
        cell.ops_per_s = 0.0;
        eprintln!("{}", line(&cell));
        cells.push(cell);
    }
    drop(replicant.shutdown().await);
    cells
}

/// etcd's watch in the same shape: 64 writers spread, 1, 10 and 100 watchers of every key
/// (spread over the three members), write ops/s and p99 with them, and events delivered.
async fn etcd_watches(s: &Settings, work: &Path) -> Vec<Cell> {
    let (procs, clients, _) = start_etcd(&work.join("etcd-watch")).await;
    let kvs: Arc<Vec<etcd_client::KvClient>> = Arc::new(clients.iter().map(|c| c.kv_client()).collect());
    let mut cells = Vec::new();
    for &n in &WATCHERS {
        let delivered = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..n {
            let mut wc = clients[w % 3].watch_client();
            let mut stream =
                wc.watch(vec![0u8], Some(etcd_client::WatchOptions::new().with_from_key())).await.expect("etcd watch");
            let delivered = delivered.clone();
            tasks.push(tokio::spawn(async move {
                let _keep = wc;
                while let Ok(Some(r)) = stream.message().await {
                    delivered.fetch_add(r.events().len() as u64, Ordering::Relaxed);
                }
            }));
        }
        let k2 = kvs.clone();
        let seq = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let lats = closed_loop(WATCH_WRITERS, s.secs, move |w| {
            let mut kv = k2[w % 3].clone();
            let k = key(&seq);
            async move {
                kv.put(k.to_vec(), vec![0xab; VALUE], None).await.expect("etcd put");
            }
        })
        .await;
        let written = lats.us.len() as u64;
        drain(&delivered, written * n as u64).await;
        let elapsed = t0.elapsed();
        let cell =
            lats.cell("etcd watch", &format!("write with {n} watchers"), "spread", "majority fsync", WATCH_WRITERS);
        eprintln!("{}", line(&cell));
        cells.push(cell);
        if n > 0 {
            let got = delivered.load(Ordering::Relaxed);
            let mut cell = rate_cell("etcd watch", &format!("events delivered, {n} watchers"), got, elapsed);
            cell.writers = WATCH_WRITERS;
            eprintln!("{}", line(&cell));
            cells.push(cell);
        }
        tasks.iter().for_each(|t| t.abort());
    }
    drop(procs);
    cells
}

// ---------------------------------------------------------------------------------------
// etcd

/// Starts a three-member etcd cluster under `dir`; its processes (killed when dropped),
/// a client of each member, and the leader's position among them.
async fn start_etcd(dir: &Path) -> (Vec<Killed>, Vec<etcd_client::Client>, usize) {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).expect("dir");
    let base = mnema::testing::free_base(6);
    let client_url = |i: u16| format!("http://127.0.0.1:{}", base + i);
    let peer_url = |i: u16| format!("http://127.0.0.1:{}", base + 3 + i);
    let initial: Vec<String> = (1..=3).map(|i| format!("e{i}={}", peer_url(i))).collect();
    let procs: Vec<Killed> = (1..=3u16)
        .map(|i| {
            let (out, err) = log_file(&dir.join(format!("e{i}.log")));
            let child = Command::new("etcd")
                .args(["--name", &format!("e{i}"), "--data-dir"])
                .arg(dir.join(format!("e{i}")))
                .args(["--listen-client-urls", &client_url(i), "--advertise-client-urls", &client_url(i)])
                .args(["--listen-peer-urls", &peer_url(i), "--initial-advertise-peer-urls", &peer_url(i)])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start etcd: install Debian's etcd-server (BENCHMARKS.md)");
            Killed(child)
        })
        .collect();
    let mut clients = Vec::new();
    for i in 1..=3u16 {
        let start = Instant::now();
        loop {
            let c = etcd_client::Client::connect([client_url(i)], None).await;
            if let Ok(mut c) = c
                && c.put("probe", "x", None).await.is_ok()
            {
                clients.push(c);
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "etcd member {i} did not answer in 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut leader = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        let st = c.status().await.expect("etcd status");
        if st.header().map(|h| h.member_id()) == Some(st.leader()) {
            leader = i;
        }
    }
    (procs, clients, leader)
}

async fn etcd(s: &Settings, work: &Path) -> Vec<Cell> {
    let (_procs, clients, leader) = start_etcd(&work.join("etcd")).await;
    let kvs: Arc<Vec<etcd_client::KvClient>> = Arc::new(clients.iter().map(|c| c.kv_client()).collect());
    let k2 = kvs.clone();
    let (mut cells, written) = write_cells(
        s,
        "etcd",
        leader,
        || None,
        move |node, k| {
            let mut kv = k2[node].clone();
            async move {
                kv.put(k.to_vec(), vec![0xab; VALUE], None).await.expect("etcd put");
            }
        },
    )
    .await;
    let kv = kvs[(leader + 1) % 3].clone();
    let written = written.max(1);
    let lats = closed_loop(1, s.secs, move |_| {
        let mut kv = kv.clone();
        let k = rand_below(written).to_be_bytes().to_vec();
        async move {
            let r = kv.get(k, Some(etcd_client::GetOptions::new().with_serializable())).await.expect("etcd get");
            assert_eq!(r.kvs().len(), 1, "a written key was not found");
        }
    })
    .await;
    let cell = lats.cell("etcd", "point_read", "follower", "serializable", 1);
    eprintln!("{}", line(&cell));
    cells.push(cell);
    cells
}

// ---------------------------------------------------------------------------------------
// Mnesia

fn mnesia(s: &Settings, work: &Path) -> Vec<Cell> {
    let dir = work.join("mnesia");
    std::fs::create_dir_all(&dir).expect("dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/mnesia_bench.escript");
    let writers: Vec<String> = s.writers.iter().map(|w| w.to_string()).collect();
    let exact = s.routes * 9 / 10;
    let (_, err) = log_file(&dir.join("escript.log"));
    let out = Command::new("escript")
        .arg(&script)
        .arg(&dir)
        .arg(format!("{}", s.secs.ceil() as u64))
        .arg(writers.join(","))
        .arg(exact.to_string())
        .arg((s.routes - exact).to_string())
        .arg(s.sessions.to_string())
        .stderr(err)
        .output()
        .expect("run escript: install Debian's erlang-base and erlang-mnesia (BENCHMARKS.md)");
    if !out.status.success() {
        panic!("the Mnesia escript failed ({}); its log is {}", out.status, dir.join("escript.log").display());
    }
    let mut cells = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).expect("escript JSON line");
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        let t = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let bench = t("bench");
        let watchers = f("watchers") as usize;
        let cell = Cell {
            system: if bench.starts_with("watch_") { "Mnesia subscribe" } else { "Mnesia" }.into(),
            placement: t("placement"),
            durability: match t("durability").as_str() {
                "async" => "transaction, log not fsync'd".into(),
                "sync" => "sync_transaction + sync_log on all".into(),
                _ => String::new(),
            },
            writers: f("writers") as usize,
            // Memory cells count records; the others operations.
            ops: if bench.ends_with("_memory") { f("routes").max(f("sessions")) } else { f("ops") } as u64,
            secs: f("secs"),
            ops_per_s: f("ops_per_s"),
            p50_us: f("p50_us"),
            p99_us: f("p99_us"),
            max_us: f("max_us"),
            bytes_per_record: f("bytes_per_route").max(f("bytes_per_session")),
            bench: match bench.as_str() {
                "route_match" => "route_match raw".into(),
                "route_match_tenants" => "route_match raw tenants".into(),
                "point_read" => "point_read dirty_read".into(),
                "route_memory" => "memory per route".into(),
                "route_memory_tenants" => "memory per route tenants".into(),
                "session_memory" => "memory per session".into(),
                "watch_write" => format!("write with {watchers} watchers"),
                "watch_delivered" => format!("events delivered, {watchers} watchers"),
                _ => bench,
            },
        };
        eprintln!("{}", line(&cell));
        cells.push(cell);
    }
    cells
}

// ---------------------------------------------------------------------------------------
// Routes and sessions on mnema

async fn route_match(s: &Settings) -> Vec<Cell> {
    let (cluster, follower) = cluster_with_routes(s, common::RouteMix::Harness).await;
    let mut cells = match_cells(s, &cluster.nodes[follower], &common::route_topics(s.routes), "");
    cells.extend(restart_and_bootstrap(s, cluster).await);
    cells
}

/// The route match cells of [`RouteMix::Tenants`](common::RouteMix), on a cluster of their own.
async fn route_match_tenants(s: &Settings) -> Vec<Cell> {
    let mix = common::RouteMix::Tenants;
    let (cluster, follower) = cluster_with_routes(s, mix).await;
    let cells = match_cells(s, &cluster.nodes[follower], &mix.topics(s.routes), " tenants");
    drop(cluster.shutdown().await);
    cells
}

/// Three cores with `s.routes` routes of `mix` added through the leader, applied on a
/// follower (returned) and with RocksDB settled on every core.
async fn cluster_with_routes(s: &Settings, mix: common::RouteMix) -> (common::Bench, usize) {
    let cluster = common::cluster(3).await;
    let t0 = Instant::now();
    let last = common::load_route_mix(&cluster.nodes[cluster.leader()], s.routes, mix).await;
    eprintln!("loaded {} routes ({mix:?}) in {:.1} s", s.routes, t0.elapsed().as_secs_f64());
    let follower = cluster.follower();
    cluster.nodes[follower].wait_applied(last, Duration::from_secs(120)).await.expect("applied");
    eprintln!("RocksDB settled after {:.1} s", common::quiesce(&cluster.nodes).await.as_secs_f64());
    (cluster, follower)
}

/// Matches `topics` on `node` for a cell each: on a held view with the destinations left
/// encoded (`raw`), through the node's publish-path match (`visit`), and decoded and sorted
/// (`decoded`, what `match_routes` returns).
fn match_cells(s: &Settings, node: &mnema::Node, topics: &[String], mix: &str) -> Vec<Cell> {
    let ix = node.runtime().table_ix(mnema::schema::ROUTES).expect("routes");
    let mut cells = Vec::new();
    {
        let view = node.runtime().view();
        let mut found = 0usize;
        let (n, el) = read_rate(s.secs, |i| {
            mnema::testing::routes_raw::for_each_match(&view, ix, &topics[(i % 4096) as usize], |_, _| found += 1)
                .expect("match");
        });
        assert!(found as u64 >= n, "topics matched no route");
        cells.push(rate_cell("mnema in process", &format!("route_match raw{mix}"), n, el));
    }
    // The publish path: through the node's handle, destinations borrowed, nothing sorted.
    let mut found = 0usize;
    let (n, el) = read_rate(s.secs, |i| {
        node.routes().for_each_match(&topics[(i % 4096) as usize], |_, _| found += 1).expect("match");
    });
    assert!(found as u64 >= n, "topics matched no route");
    cells.push(rate_cell("mnema in process", &format!("route_match visit{mix}"), n, el));
    let (n, el) = read_rate(s.secs, |i| {
        let r = node.routes().match_routes(&topics[(i % 4096) as usize]).expect("match");
        assert!(!r.is_empty());
    });
    cells.push(rate_cell("mnema in process", &format!("route_match decoded{mix}"), n, el));
    for c in &cells {
        eprintln!("{}", line(c));
    }
    cells
}

/// `perf record` of this process while it lives, into `<MNEMA_PEERS_PERF>.<what>.data`
/// (nothing without that variable): a profile of one step of a cell (a restart, a
/// bootstrap) without the load before it.
struct Profile(Option<Child>);

impl Profile {
    fn start(what: &str) -> Profile {
        let Some(base) = std::env::var_os("MNEMA_PEERS_PERF") else { return Profile(None) };
        let out = format!("{}.{what}.data", base.to_string_lossy());
        let pid = std::process::id().to_string();
        let _ = std::fs::remove_file(&out);
        let child = Command::new("perf")
            .args(["record", "-F", "2000", "-g", "-p", &pid, "-o", &out])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                // perf creates its file once attached (within 5 s, or the profile misses
                // the step's start, which it says).
                let t0 = Instant::now();
                while !Path::new(&out).exists() && t0.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                eprintln!("perf recording {what} into {out} (attached: {})", Path::new(&out).exists());
                Profile(Some(c))
            }
            Err(e) => {
                eprintln!("MNEMA_PEERS_PERF is set but perf did not start: {e}");
                Profile(None)
            }
        }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // perf writes its file on SIGINT.
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

/// Shuts a follower down and starts it again on its data dir; returns the time from its
/// `Node::start` until it knows the leader and has applied the cluster's commit index
/// (bounded by `limit`).
async fn restart_follower(cluster: &mut common::Bench, limit: Duration) -> Duration {
    let node = cluster.nodes.remove(cluster.follower());
    let i = mnema::testing::number_of(node.name()).expect("a harness node name");
    let profile = Profile::start("shutdown");
    let stop = Instant::now();
    node.shutdown().await.expect("shutdown");
    eprintln!("restart: the core's shutdown took {:.2} s", stop.elapsed().as_secs_f64());
    drop(profile);
    let committed = cluster.nodes.iter().map(|n| n.status().committed).max().unwrap_or(0);
    let profile = Profile::start("restart");
    let t0 = Instant::now();
    let mut config = mnema::testing::config(cluster.dir.path(), cluster.base, i, 3);
    common::settings(&mut config);
    let node = mnema::Node::start(config, common::tables()).await.expect("restart");
    mnema::testing::wait_until("the restarted core to be ready", limit, || async {
        node.status().leader.is_some() && node.applied_index() >= committed
    })
    .await;
    let took = t0.elapsed();
    drop(profile);
    cluster.nodes.push(node);
    took
}

/// With the routes loaded, 100,000 sessions more; then the time a replicant takes from
/// start to streaming (`normal`), and a follower from restart to ready (it knows the
/// leader and has applied the leader's commit index).
async fn restart_and_bootstrap(s: &Settings, mut cluster: common::Bench) -> Vec<Cell> {
    let leader = cluster.leader();
    let per = s.sessions.div_ceil(256);
    let opens: Vec<_> = (0..256u64)
        .map(|w| {
            let node = cluster.nodes[leader].clone();
            tokio::spawn(async move {
                for i in w * per..(w + 1) * per {
                    sessions::open(&node, &format!("client-{i}"), node.name(), 7200, 1).await.expect("open");
                }
            })
        })
        .collect();
    for t in opens {
        t.await.expect("session task");
    }
    let records = format!("{} routes + {} sessions", s.routes, per * 256);
    let mut cells = Vec::new();
    let profile = Profile::start("bootstrap");
    let t0 = Instant::now();
    let replicant = cluster.replicant(4).await;
    common::wait_normal(&replicant).await;
    drop(profile);
    cells.push(Cell {
        system: "mnema in process".into(),
        bench: format!("replicant bootstrap, {records}"),
        secs: t0.elapsed().as_secs_f64(),
        ..Default::default()
    });
    drop(replicant.shutdown().await);
    cells.push(Cell {
        system: "mnema in process".into(),
        bench: format!("core restart to ready, {records}"),
        secs: restart_follower(&mut cluster, Duration::from_secs(120)).await.as_secs_f64(),
        ..Default::default()
    });
    for c in &cells {
        eprintln!("{:<18} {:<60} {:>8.2} s", c.system, c.bench, c.secs);
    }
    drop(cluster.shutdown().await);
    cells
}

async fn session_load(s: &Settings) -> Vec<Cell> {
    // Unindexed first, indexed second, then unindexed again: what runs later in the
    // process meets a warmer allocator, so the indexed rounds sit between two of them.
    let mut cells = session_rounds(s, unindexed_tables(), "mnema, sessions unindexed").await;
    cells.extend(session_rounds(s, common::tables(), "mnema in process").await);
    cells.extend(session_rounds(s, unindexed_tables(), "mnema, sessions unindexed (again)").await);
    cells
}

/// The test tables with `sessions` and `client_status` stripped of their secondary
/// indexes: what the session cells cost without them.
fn unindexed_tables() -> Vec<mnema::TableDef> {
    common::tables()
        .into_iter()
        .map(|mut t| {
            if t.name == mnema::schema::SESSIONS || t.name == mnema::schema::CLIENT_STATUS {
                t.indexes.clear();
            }
            t
        })
        .collect()
}

async fn session_rounds(s: &Settings, tables: Vec<mnema::TableDef>, system: &str) -> Vec<Cell> {
    let cluster = Arc::new(mnema::testing::Cluster::start_declaring(3, tables, common::settings).await);
    let workers = 256u64;
    let per = s.sessions / workers;
    let mut cells = Vec::new();
    for (round, what) in ["session_open", "session_takeover"].into_iter().enumerate() {
        let start = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let c = cluster.clone();
                tokio::spawn(async move {
                    let node = &c.nodes[((w + round as u64) % 3) as usize];
                    let mut us = Vec::with_capacity(per as usize);
                    for i in w * per..(w + 1) * per {
                        let t0 = Instant::now();
                        sessions::open(node, &format!("client-{i}"), node.name(), 7200, 1).await.expect("open");
                        us.push(t0.elapsed().as_micros() as u32);
                    }
                    us
                })
            })
            .collect();
        let mut us = Vec::new();
        for t in tasks {
            us.extend(t.await.expect("session task"));
        }
        let cell = Lats { us, elapsed: start.elapsed() }.cell(system, what, "spread", "majority fsync", 256);
        eprintln!("{}", line(&cell));
        cells.push(cell);
    }
    match Arc::try_unwrap(cluster) {
        Ok(c) => drop(c.shutdown().await),
        Err(_) => eprintln!("cluster still shared at the end; left to drop"),
    }
    cells
}

// ---------------------------------------------------------------------------------------
// Scale: how writes, reads, memory and restart grow with the records held

/// 3 in-process cores; `kv` grows to each of `points` records (8-byte keys, 32-byte values,
/// 5,000 per transaction); at each: 256 writers spread (new keys), point reads on a
/// follower (random held keys, through a handle), the process's RSS, and a follower's
/// restart to ready (it replays the log since its last snapshot).
async fn scale(s: &Settings, points: &[u64]) -> Vec<Cell> {
    let mut cluster = common::cluster(3).await;
    let mut held = 0u64;
    let mut cells = Vec::new();
    let written = Arc::new(AtomicU64::new(1 << 40));
    for &target in points {
        let leader = cluster.nodes[cluster.leader()].clone();
        let t0 = Instant::now();
        while held < target {
            let mut txn = Txn::new();
            for k in held..(held + 5000).min(target) {
                txn = txn.put("kv", k.to_be_bytes(), [0x5au8; 32]);
            }
            held = (held + 5000).min(target);
            leader.transact(txn).await.expect("load");
        }
        eprintln!("scale: {target} records held (loaded in {:.1} s)", t0.elapsed().as_secs_f64());
        let nodes = Arc::new(cluster.nodes.clone());
        let (n2, w2) = (nodes.clone(), written.clone());
        let lats = closed_loop(256, s.secs, move |w| {
            let (n, k) = (n2.clone(), key(&w2));
            async move {
                n[w % 3].transact(Txn::new().put("kv", k, [0x5au8; 32])).await.expect("write");
            }
        })
        .await;
        // The clones must go before a node can shut down.
        drop((nodes, leader));
        cells.push(lats.cell("mnema in process", &format!("scale {target}: write"), "spread", "majority fsync", 256));
        let f = cluster.follower();
        let kv = cluster.nodes[f].table("kv").expect("kv");
        let (n, el) = read_rate(s.secs, |i| {
            let k = ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % target).to_be_bytes();
            assert!(kv.with_one(&k, |v| v.is_some()).expect("read"), "a held key was not found");
        });
        cells.push(rate_cell("mnema in process", &format!("scale {target}: point_read"), n, el));
        cells.push(Cell {
            system: "mnema in process".into(),
            bench: format!("scale {target}: process RSS, 3 cores (bytes/record)"),
            ops: target,
            bytes_per_record: rss_bytes() as f64 / target as f64,
            ..Default::default()
        });
        cells.push(Cell {
            system: "mnema in process".into(),
            bench: format!("scale {target}: core restart to ready"),
            secs: restart_follower(&mut cluster, Duration::from_secs(600)).await.as_secs_f64(),
            ..Default::default()
        });
        cluster.wait_leader().await;
        for c in &cells[cells.len() - 4..] {
            eprintln!("{} | {:.0}/s | {:.0} B/record | {:.2} s", c.bench, c.ops_per_s, c.bytes_per_record, c.secs);
        }
    }
    drop(cluster.shutdown().await);
    cells
}

// ---------------------------------------------------------------------------------------
// Memory: a fresh process holding one core, RSS before and after the records

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The RSS after glibc's `malloc_trim(0)` hands the heap's free pages back to the system
/// (elsewhere, the RSS as it is).
fn trimmed_rss_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's `malloc_trim` takes a byte count and touches only free memory.
        unsafe {
            malloc_trim(0);
        }
    }
    rss_bytes()
}

/// `--memory-probe routes|routes-tenants|sessions|sessions-unindexed|kv N`: prints the RSS growth
/// per record of one core.
fn memory_probe(args: &[String]) {
    let what = args.first().map(String::as_str).unwrap_or("routes");
    let n: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let tables = if what == "sessions-unindexed" { unindexed_tables() } else { common::tables() };
        let cluster = mnema::testing::Cluster::start_declaring(1, tables, common::settings).await;
        let node = &cluster.nodes[0];
        // Warm the write path so its buffers are in the baseline.
        for i in 0..100u64 {
            node.transact(Txn::new().put("kv", i.to_be_bytes(), b"x")).await.expect("warm");
        }
        let before = rss_bytes();
        match what {
            "sessions" | "sessions-unindexed" => {
                let tasks: Vec<_> = (0..64u64)
                    .map(|w| {
                        let node = node.clone();
                        tokio::spawn(async move {
                            for i in (w..n).step_by(64) {
                                sessions::open(&node, &format!("client-{i}"), node.name(), 7200, 1)
                                    .await
                                    .expect("open");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
            }
            "routes-tenants" => {
                common::load_route_mix(node, n, common::RouteMix::Tenants).await;
            }
            "kv" => {
                // The issue's `kv` record: an 8-byte key and a 32-byte value.
                common::load_kv(node, n).await;
            }
            _ => {
                common::load_routes(node, n).await;
            }
        }
        let after = rss_bytes();
        // What of the growth is the allocator's free memory it keeps (glibc returns it to
        // the system only on `malloc_trim`): the load's transient buffers, not records.
        let after_trim = trimmed_rss_bytes();
        // RocksDB's share: its memtables (the Raft log's entries until flushed, and the
        // disc tables' records) and its block cache.
        let rocksdb: u64 = node
            .runtime()
            .store()
            .int_properties()
            .iter()
            .filter(|(name, _)| *name == "cur-size-all-mem-tables")
            .map(|(_, v)| *v)
            .sum();
        // The block cache (one for every column family) and the SST readers' index and
        // filter blocks.
        let db = node.runtime().store().raw();
        let cache = db.property_int_value("rocksdb.block-cache-usage").ok().flatten().unwrap_or(0);
        let readers = db.property_int_value("rocksdb.estimate-table-readers-mem").ok().flatten().unwrap_or(0);
        // The change feed's ring: its bound counts keys, values and 64 bytes per change.
        let (_, ring) = node.runtime().feed_size();
        println!(
            "{{\"what\":\"{what}\",\"records\":{n},\"rss_before\":{before},\"rss_after\":{after},\"rss_after_trim\":{after_trim},\"memtables\":{rocksdb},\"block_cache\":{cache},\"table_readers\":{readers},\"ring\":{ring}}}"
        );
        drop(cluster.shutdown().await);
    });
}

/// Runs this bench's executable with `args` (a probe) and reads the JSON line it prints:
/// a getter of its numbers (0 where absent), or `None` if it printed none.
fn probe(args: &[&str]) -> Option<impl Fn(&str) -> f64 + use<>> {
    let out = Command::new(std::env::current_exe().expect("this bench's path"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("a probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.lines().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    if v.is_none() {
        eprintln!("the probe {args:?} printed nothing ({})", out.status);
    }
    v.map(|v| move |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0))
}

fn memory(s: &Settings) -> Vec<Cell> {
    let mut cells = Vec::new();
    let runs = [
        ("routes", s.routes),
        ("routes-tenants", s.routes),
        ("sessions", s.sessions),
        ("sessions-unindexed", s.sessions),
        ("kv", s.routes),
    ];
    for (what, n) in runs {
        let Some(get) = probe(&["--memory-probe", what, &n.to_string()]) else { continue };
        let cell = Cell {
            system: "mnema, one core".into(),
            bench: match what {
                "sessions-unindexed" => "memory per session, unindexed".into(),
                "routes-tenants" => "memory per route tenants".into(),
                "kv" => "memory per kv record (8 + 32 bytes)".into(),
                _ => format!("memory per {}", what.trim_end_matches('s')),
            },
            ops: n,
            bytes_per_record: (get("rss_after") - get("rss_before")) / n as f64,
            ..Default::default()
        };
        eprintln!(
            "{what}: of those per record, RocksDB memtables {:.0}, block cache {:.0}, table readers {:.0}, \
             the feed's ring {:.0} as it counts; after malloc_trim {:.0} bytes per record",
            get("memtables") / n as f64,
            get("block_cache") / n as f64,
            get("table_readers") / n as f64,
            get("ring") / n as f64,
            (get("rss_after_trim") - get("rss_before")) / n as f64
        );
        eprintln!("{}", line(&cell));
        cells.push(cell);
    }
    cells
}

// ---------------------------------------------------------------------------------------
// Secondary indexes: the broker's lookups through an index against a scan of the table

const SESSIONS_T: mnema::engine::typed::Typed<String, sessions::Session> =
    mnema::engine::typed::Typed::new(mnema::schema::SESSIONS);

/// Puts `n` sessions `<prefix>-<i>` through `node`, 2,000 per transaction, each owned by
/// `owner-<i % owners>`; `expired_per_100` of every 100 disconnected and expired at `now`,
/// the others connected. Returns the last index.
async fn load_sessions(node: &mnema::Node, prefix: &str, n: u64, owners: u64, expired_per_100: u64, now: u64) -> u64 {
    common::load_batched(node, n, "load sessions", |txn, i| {
        let expired = i % 100 < expired_per_100;
        let client = format!("{prefix}-{i}");
        let s = sessions::Session {
            client_id: client.clone(),
            subscriptions: [("t/#".to_string(), 1u8)].into_iter().collect(),
            expiry_interval_s: if expired { 10 } else { 7200 },
            owner: format!("owner-{}", i % owners),
            connected: !expired,
            created_at_ms: now - 3_600_000,
            updated_at_ms: now - 60_000,
        };
        SESSIONS_T.put(txn, &client, &s).expect("session")
    })
    .await
}

/// A one-shot timing cell.
fn time_cell(system: &str, bench: &str, secs: f64) -> Cell {
    Cell { system: system.into(), bench: bench.into(), secs, ..Default::default() }
}

/// `owned_by` (100k sessions over 1k owners), the routes of one node among 1M (what
/// `purge_node` reads) and the expired sessions among 1M (1% expired; what a sweep reads):
/// each through its index and by scanning the table, on one core's copy.
async fn indexes(s: &Settings) -> Vec<Cell> {
    use mnema::IndexRange;
    const SYS: &str = "mnema in process";
    // No expiry sweep while the expired sessions are counted.
    let cluster = mnema::testing::Cluster::start_declaring(3, common::tables(), |c| {
        common::settings(c);
        c.node.expiry_sweep_interval = mnema::config::Interval::from_millis(3_600_000).expect("positive");
    })
    .await;
    let leader = cluster.nodes[cluster.leader()].clone();
    let node = cluster.nodes[cluster.follower()].clone();
    let now = mnema::schema::time::now_ms();
    let mut cells = Vec::new();

    let last = load_sessions(&leader, "owned", 100_000, 1_000, 0, now).await;
    node.wait_applied(last, Duration::from_secs(300)).await.expect("applied");
    let owner = |i: u64| format!("owner-{}", i.wrapping_mul(7919) % 1_000);
    let (n, el) = read_rate(s.secs, |i| {
        let owned = futures::executor::block_on(sessions::owned_by(&node, &owner(i))).expect("owned_by");
        assert_eq!(owned.len(), 100);
    });
    cells.push(rate_cell(SYS, "owned_by, 100k sessions / 1k owners: index", n, el));
    let (n, el) = slow_rate(s.secs.min(2.0), |i| {
        let all = SESSIONS_T.records(&node.dump(mnema::schema::SESSIONS).expect("dump")).expect("decode");
        let owned = all.into_iter().filter(|(_, s)| s.owner == owner(i)).count();
        assert_eq!(owned, 100);
    });
    cells.push(rate_cell(SYS, "owned_by, 100k sessions / 1k owners: scan", n, el));
    eprintln!("{}\n{}", line(&cells[0]), line(&cells[1]));

    // 1M routes to three nodes, and 1,000 to the node that goes away.
    common::load_routes(&leader, s.routes).await;
    let gone = routes::Dest::Node("gone@127.0.0.1".into());
    let mut txn = Txn::new();
    for i in 0..1_000 {
        txn = routes::add(txn, &format!("gone/{i}/+"), &gone).expect("route");
    }
    let last = leader.transact(txn).await.expect("routes").index;
    node.wait_applied(last, Duration::from_secs(300)).await.expect("applied");
    let view = node.runtime().view();
    let ix = view.catalog.lookup(mnema::schema::ROUTES).expect("routes");
    let (n, el) = slow_rate(s.secs, |_| {
        assert_eq!(
            mnema::testing::routes_raw::routes_of_node(&view, ix, "gone@127.0.0.1").expect("routes").len(),
            1_000
        );
    });
    cells.push(rate_cell(SYS, &format!("routes of a node, {} routes: index", s.routes), n, el));
    let (n, el) = slow_rate(s.secs.min(2.0), |_| {
        let mut found = 0;
        view.table(ix).for_each(|_, d| {
            if routes::decode_dest(&d).is_ok_and(|d| d.node() == "gone@127.0.0.1") {
                found += 1;
            }
        });
        assert_eq!(found, 1_000);
    });
    cells.push(rate_cell(SYS, &format!("routes of a node, {} routes: scan", s.routes), n, el));
    drop(view);
    let t0 = Instant::now();
    assert_eq!(node.routes().purge_node("gone@127.0.0.1").await.expect("purge"), 1_000);
    cells.push(time_cell(
        SYS,
        &format!("purge_node of 1,000 among {} routes (read + delete)", s.routes),
        t0.elapsed().as_secs_f64(),
    ));

    // 1M sessions, 1% expired: what one sweep must find.
    let total = 1_000_000u64;
    let t0 = Instant::now();
    let last = load_sessions(&leader, "sweep", total, 1_000, 1, now).await;
    node.wait_applied(last, Duration::from_secs(600)).await.expect("applied");
    eprintln!("loaded {total} sessions in {:.1} s", t0.elapsed().as_secs_f64());
    let due = IndexRange::up_to(now.to_be_bytes());
    let (n, el) = slow_rate(s.secs.min(2.0), |_| {
        let hits = node.index(mnema::schema::SESSIONS, sessions::BY_EXPIRY, &due).expect("index");
        assert_eq!(hits.len() as u64, total / 100);
    });
    cells.push(rate_cell(SYS, "expired sessions, 1.1M held / 1% expired: index", n, el));
    let t0 = Instant::now();
    let all = SESSIONS_T.records(&node.dump(mnema::schema::SESSIONS).expect("dump")).expect("decode");
    assert_eq!(all.iter().filter(|(_, s)| s.expired(now)).count() as u64, total / 100);
    cells.push(rate_cell(SYS, "expired sessions, 1.1M held / 1% expired: scan", 1, t0.elapsed()));
    drop(all);
    for c in &cells {
        eprintln!("{} | {:.1}/s | {:.3} s", c.bench, c.ops_per_s, c.secs);
    }
    drop((leader, node));
    drop(cluster.shutdown().await);
    cells
}

// ---------------------------------------------------------------------------------------
// Shards: a replicant following the routes shard only, against one following all

/// `--replicant-probe DIR BASE I SHARDS`: starts replicant `I` of the 3 cores at `BASE`
/// (data dir under `DIR`) following `SHARDS` (comma-separated, `all` for every shard),
/// waits until it streams, and prints the time that took and the process's RSS growth.
fn replicant_probe(args: &[String]) {
    let dir = PathBuf::from(&args[0]);
    let base: u16 = args[1].parse().expect("base");
    let i: u16 = args[2].parse().expect("node number");
    let shards: Vec<u16> = match args[3].as_str() {
        "all" => Vec::new(),
        list => list.split(',').map(|s| s.parse().expect("shard")).collect(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let before = rss_bytes();
        let mut cfg = mnema::testing::replicant_config(&dir, base, i, 3);
        common::settings(&mut cfg);
        cfg.replicant.shards = shards;
        let t0 = Instant::now();
        let node = mnema::Node::start(cfg, common::tables()).await.expect("replicant");
        common::wait_normal(&node).await;
        let secs = t0.elapsed().as_secs_f64();
        let records: u64 = node.tables().iter().filter_map(|t| t.records).sum();
        println!("{{\"secs\":{secs},\"rss_before\":{before},\"rss_after\":{},\"records\":{records}}}", rss_bytes());
        node.shutdown().await.expect("shutdown");
    });
}

/// 1M offline messages (256 bytes) and 100k routes on 3 cores; then a replicant in a
/// process of its own, following every shard, then one following the routes shard only:
/// each one's bootstrap time and RSS growth.
async fn shards(s: &Settings) -> Vec<Cell> {
    let cluster = common::cluster(3).await;
    let leader = cluster.nodes[cluster.leader()].clone();
    let messages = 1_000_000u64;
    let t0 = Instant::now();
    common::load_batched(&leader, messages, "messages", |txn, i| {
        txn.put(mnema::schema::MESSAGES, i.to_be_bytes(), [0x6du8; 256])
    })
    .await;
    common::load_routes(&leader, s.routes / 10).await;
    eprintln!("loaded {messages} messages and {} routes in {:.1} s", s.routes / 10, t0.elapsed().as_secs_f64());
    let mut cells = Vec::new();
    for (i, (label, shards)) in
        [("every shard", "all".to_string()), ("routes shard only", mnema::schema::shards::ROUTES.to_string())]
            .into_iter()
            .enumerate()
    {
        let dir = cluster.dir.path().display().to_string();
        let args = ["--replicant-probe", &dir, &cluster.base.to_string(), &(4 + i).to_string(), &shards];
        let Some(get) = probe(&args) else { continue };
        let what = format!("replicant, {label}: {messages} messages + {} routes", s.routes / 10);
        cells.push(Cell {
            system: "mnema, replicant process".into(),
            bench: format!("{what}: bootstrap"),
            secs: get("secs"),
            ops: get("records") as u64,
            ..Default::default()
        });
        cells.push(Cell {
            system: "mnema, replicant process".into(),
            bench: format!("{what}: RSS growth (bytes)"),
            ops: get("records") as u64,
            bytes_per_record: get("rss_after") - get("rss_before"),
            ..Default::default()
        });
    }
    for c in &cells {
        eprintln!("{} | {:.2} s | {} records | {:.0}", c.bench, c.secs, c.ops, c.bytes_per_record);
    }
    drop(leader);
    drop(cluster.shutdown().await);
    cells
}

// ---------------------------------------------------------------------------------------
// Report

fn line(c: &Cell) -> String {
    if c.bytes_per_record > 0.0 {
        return format!("{:<18} {:<28} {:>10.0} bytes/record", c.system, c.bench, c.bytes_per_record);
    }
    format!(
        "{:<18} {:<28} {:<9} {:>4} {:>12.0}/s  p50 {:>8.0} µs  p99 {:>8.0} µs  max {:>8.0} µs  {}",
        c.system, c.bench, c.placement, c.writers, c.ops_per_s, c.p50_us, c.p99_us, c.max_us, c.durability
    )
}

fn target_dir() -> PathBuf {
    // <target>/<profile>/deps/peers-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn report(cells: &[Cell]) {
    // mnema's ratio to each peer on the same bench, placement and writers.
    let peer_of = |c: &Cell, system: &str| {
        // The watch cells' peers: etcd's watch and Mnesia's subscribe.
        let system = match (c.bench.contains("watchers"), system) {
            (true, "etcd") => "etcd watch",
            (true, _) => "Mnesia subscribe",
            (false, s) => s,
        };
        cells
            .iter()
            .filter(|p| p.system == system && p.bench == c.bench && p.writers == c.writers)
            .filter(|p| {
                p.placement == c.placement
                    || (c.placement == "leader" && p.placement == "one_node")
                    || c.bench != "write"
            })
            .filter(|p| c.bench != "write" || system != "Mnesia" || p.durability.starts_with("transaction"))
            .map(|p| p.ops_per_s)
            .next()
    };
    println!(
        "\n| system | bench | placement | writers | ops/s | p50 µs | p99 µs | max µs | durability | × etcd | × Mnesia |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|");
    for c in cells.iter().filter(|c| c.bytes_per_record == 0.0 && c.ops > 0) {
        let ratio = |p: Option<f64>| match p {
            Some(p) if c.system.starts_with("mnema") && p > 0.0 => format!("{:.2}", c.ops_per_s / p),
            _ => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            c.system,
            c.bench,
            c.placement,
            c.writers,
            c.ops_per_s,
            c.p50_us,
            c.p99_us,
            c.max_us,
            c.durability,
            ratio(peer_of(c, "etcd")),
            ratio(peer_of(c, "Mnesia")),
        );
    }
    let times: Vec<_> = cells.iter().filter(|c| c.ops == 0 && c.secs > 0.0 && c.bytes_per_record == 0.0).collect();
    if !times.is_empty() {
        println!("\n| system | time to | seconds |");
        println!("|---|---|---:|");
        for c in times {
            println!("| {} | {} | {:.2} |", c.system, c.bench, c.secs);
        }
    }
    let mem: Vec<_> = cells.iter().filter(|c| c.bytes_per_record > 0.0).collect();
    if !mem.is_empty() {
        println!("\n| system | memory | records | bytes per record |");
        println!("|---|---|---:|---:|");
        for c in mem {
            println!("| {} | {} | {} | {:.0} |", c.system, c.bench, c.ops, c.bytes_per_record);
        }
    }
    let mut by_system: BTreeMap<&str, usize> = BTreeMap::new();
    for c in cells {
        *by_system.entry(&c.system).or_default() += 1;
    }
    let path = target_dir().join("mnema-peers.json");
    match serde_json::to_vec_pretty(cells) {
        Ok(json) => match std::fs::write(&path, json) {
            Ok(()) => println!("\n{} cells ({by_system:?}) written to {}", cells.len(), path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        },
        Err(e) => eprintln!("could not encode the cells: {e}"),
    }
}
