//! Committed writes per second of a 3-core cluster on loopback, by number of concurrent
//! writers (256-byte values). Each write returns only once a majority has it on disk and
//! the writing node has applied it. One writer runs on the leader, then on a follower
//! (forwarded); many writers are spread over all three nodes, so two thirds of their
//! writes are forwarded from a follower.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mnema::Txn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let cluster = Arc::new(rt.block_on(common::cluster(3)));
    let seq = Arc::new(AtomicU64::new(0));
    let mut g = c.benchmark_group("write_throughput");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    // One writer on the leader: the latency floor (leader fsync ∥ follower fsync + one RTT).
    let leader = cluster.nodes.iter().position(|n| n.is_leader()).expect("leader");
    for (label, node) in [("leader", leader), ("follower", (leader + 1) % 3)] {
        g.bench_function(format!("3_cores_1_writer_on_{label}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let cluster = cluster.clone();
                let seq = seq.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let k = seq.fetch_add(1, Ordering::Relaxed);
                        cluster.nodes[node]
                            .transact(Txn::new().put("kv", k.to_be_bytes(), vec![0xab; 256]))
                            .await
                            .expect("write");
                    }
                    start.elapsed()
                }
            })
        });
    }
    for writers in [64usize, 256] {
        g.bench_function(format!("3_cores_{writers}_writers"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let cluster = cluster.clone();
                let seq = seq.clone();
                async move {
                    let per = iters.div_ceil(writers as u64);
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..writers)
                        .map(|w| {
                            let cluster = cluster.clone();
                            let seq = seq.clone();
                            tokio::spawn(async move {
                                let node = &cluster.nodes[w % cluster.nodes.len()];
                                for _ in 0..per {
                                    let k = seq.fetch_add(1, Ordering::Relaxed);
                                    node.transact(Txn::new().put("kv", k.to_be_bytes(), vec![0xab; 256]))
                                        .await
                                        .expect("write");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("writer");
                    }
                    // Report time per write as if exactly `iters` were done.
                    start.elapsed().mul_f64(iters as f64 / (per * writers as u64) as f64)
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
