//! Replicants: how far behind a replicant is under a sustained write load, and how long a
//! new replicant takes to bootstrap a large table.
//!
//! - `replication_lag`: writers on the leader at about half the cluster's maximum rate
//!   (measured first, in the same run). For each write, lag = when the replicant applied
//!   its index − when the write was acknowledged. The same is measured for a follower
//!   core (which gets entries through Raft) as the peer. Percentiles are printed; the
//!   criterion figure is the mean replicant lag per write in the steady state (the last
//!   150 ms of each run are reported apart: their commit reaches followers only with the
//!   next Raft heartbeat, since no later entry carries it).
//! - `replicant_bootstrap`: a replicant started against 1,000,000 records (32-byte values)
//!   until it is in state `normal`, serving all of them locally.

mod common;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use mnema::{Node, Txn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records (index, when) each time `node`'s applied index moves, until `stop`.
fn watch_applied(node: &Node, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(u64, Instant)>> {
    let mut rx = node.runtime().applied_watch();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if tokio::time::timeout(Duration::from_millis(50), rx.changed()).await.is_ok_and(|r| r.is_ok()) {
                seen.push((*rx.borrow_and_update(), Instant::now()));
            }
        }
        seen
    })
}

/// Lag of each acked write: first time `seen` reaches its index, minus its ack time.
fn lags(acks: &[(u64, Instant)], seen: &[(u64, Instant)]) -> Vec<f64> {
    let mut out: Vec<f64> = acks
        .iter()
        .filter_map(|(i, t)| {
            let pos = seen.partition_point(|(j, _)| j < i);
            seen.get(pos).map(|(_, at)| at.saturating_duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Writes from `writers` tasks on `node` for `secs`, each pacing itself to `rate / writers`
/// writes per second (`rate = 0`: as fast as possible). Returns (index, ack time) per write.
async fn load(node: Arc<Node>, writers: usize, rate: f64, secs: f64, seq: Arc<AtomicU64>) -> Vec<(u64, Instant)> {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (node, seq, acks) = (node.clone(), seq.clone(), acks.clone());
            tokio::spawn(async move {
                let gap = if rate > 0.0 { Duration::from_secs_f64(writers as f64 / rate) } else { Duration::ZERO };
                let mut next = Instant::now();
                while Instant::now() < end {
                    if !gap.is_zero() {
                        tokio::time::sleep_until(next.into()).await;
                        next += gap;
                    }
                    let k = seq.fetch_add(1, Ordering::Relaxed);
                    let c = node.transact(Txn::new().put("kv", k.to_be_bytes(), vec![0xab; 256])).await.expect("write");
                    if let Ok(mut a) = acks.lock() {
                        a.push((c.index, Instant::now()));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    let mut a = acks.lock().map(|a| a.clone()).unwrap_or_default();
    a.sort();
    a
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut cluster = rt.block_on(common::cluster(3));
    let replicant = rt.block_on(async {
        let r = cluster.replicant(4).await;
        common::wait_normal(&r).await;
        r
    });
    let leader_ix = cluster.nodes.iter().position(|n| n.is_leader()).expect("leader");
    let follower_ix = (leader_ix + 1) % 3;
    let seq = Arc::new(AtomicU64::new(0));
    let nodes: Vec<Arc<Node>> = cluster.nodes.drain(..).map(Arc::new).collect();
    let leader = nodes[leader_ix].clone();

    // The cluster's maximum with 256 writers on the leader, then half of it.
    let max = rt.block_on(load(leader.clone(), 256, 0.0, 4.0, seq.clone())).len() as f64 / 4.0;
    let target = max / 2.0;
    let mut g = c.benchmark_group("replication_lag");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(20));
    let replicant = Arc::new(replicant);
    g.bench_function("replicant_at_half_max_load", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (leader, replicant, follower, seq) =
                (leader.clone(), replicant.clone(), nodes[follower_ix].clone(), seq.clone());
            async move {
                let stop = Arc::new(AtomicBool::new(false));
                let rep = watch_applied(&replicant, stop.clone());
                let fol = watch_applied(&follower, stop.clone());
                let acks = load(leader, 128, target, 2.0, seq).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                stop.store(true, Ordering::Relaxed);
                let (rep, fol) = (rep.await.expect("watch"), fol.await.expect("watch"));
                // The last writes of a run reach followers with the next Raft heartbeat
                // (nothing follows them): count the steady state, report the tail apart.
                let cut = acks.last().map(|(_, t)| *t - Duration::from_millis(150));
                let steady: Vec<_> = acks.iter().copied().filter(|(_, t)| cut.is_none_or(|c| *t < c)).collect();
                let (r, f) = (lags(&steady, &rep), lags(&steady, &fol));
                let all = lags(&acks, &rep);
                println!(
                    "  {} writes at {:.0}/s (max {:.0}/s), upstream {}: replicant lag p50 {:.2} ms p99 {:.2} ms \
                     max {:.2} ms | follower core p50 {:.2} ms p99 {:.2} ms | ratio replicant/follower p50 {:.2} \
                     p99 {:.2} | incl. the last 150 ms: replicant p99 {:.2} ms",
                    acks.len(),
                    acks.len() as f64 / 2.0,
                    max,
                    replicant.replicant_status().and_then(|s| s.upstream).unwrap_or_default(),
                    pct(&r, 0.5),
                    pct(&r, 0.99),
                    pct(&r, 1.0),
                    pct(&f, 0.5),
                    pct(&f, 0.99),
                    pct(&r, 0.5) / pct(&f, 0.5),
                    pct(&r, 0.99) / pct(&f, 0.99),
                    pct(&all, 0.99),
                );
                let mean = r.iter().sum::<f64>() / r.len().max(1) as f64;
                Duration::from_secs_f64(mean / 1000.0 * iters as f64)
            }
        })
    });
    g.finish();

    // 1,000,000 records, then a fresh replicant per sample.
    rt.block_on(async {
        let mut k = 0u64;
        for _ in 0..1000 {
            let mut txn = Txn::new();
            for _ in 0..1000 {
                txn = txn.put("kv", format!("boot{k:08}"), vec![0x5a; 32]);
                k += 1;
            }
            leader.transact(txn).await.expect("load");
        }
    });
    let mut g = c.benchmark_group("replicant_bootstrap");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(60));
    let n = Arc::new(AtomicU64::new(10));
    let cluster = Arc::new(cluster);
    g.bench_function("1m_records", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cluster, n) = (cluster.clone(), n.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let r = cluster.replicant(n.fetch_add(1, Ordering::Relaxed) as u16 % 3 + 5).await;
                    common::wait_normal(&r).await;
                    total += start.elapsed();
                    assert!(r.dump("kv").expect("dump").len() >= 1_000_000);
                    r.shutdown().await.expect("shutdown");
                }
                total
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
