//! Routes: matching topics against 1,000,000 routes (90% exact filters, 10% wildcard), and
//! route add + delete through Raft with group commit.
//!
//! - `match_routes/decoded`: `node.routes().match_routes(topic)` (validates the topic,
//!   looks up the exact filter, walks the wildcard trie, decodes each destination).
//! - `match_routes/visit`: `node.routes().for_each_match(topic, ..)`, the publish path:
//!   destinations borrowed from the table, nothing allocated or sorted.
//! - `match_routes/raw`: `for_each_match` (mnema::testing::routes_raw) on a held view, destinations left
//!   encoded (what a broker's publish path needs).
//!   Topics alternate between one that hits an exact filter and one that hits wildcard
//!   filters (`w/<j>/+/x`, `w/<j>/#`).
//! - `route_churn`: 256 tasks spread over the 3 cores each add a route then delete it;
//!   the figure is per route operation (two per task iteration).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mnema::schema::routes::Dest;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const EXACT: u64 = 900_000;
const WILD: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let cluster = Arc::new(rt.block_on(common::cluster(3)));
    rt.block_on(async {
        let last = common::load_routes(&cluster.nodes[cluster.leader()], EXACT + WILD).await;
        for n in &cluster.nodes {
            n.wait_applied(last, Duration::from_secs(120)).await.expect("apply");
        }
    });
    let node = cluster.nodes.iter().find(|n| !n.is_leader()).expect("a follower");
    let ix = node.runtime().table_ix(mnema::schema::ROUTES).expect("routes");
    let topics = common::route_topics(EXACT + WILD);
    // Every topic matches: exact ones one route, wildcard ones two (`+/x` and `#`).
    let total: usize = topics.iter().take(2).map(|t| node.routes().match_routes(t).expect("match").len()).sum();
    assert_eq!(total, 3, "the topics do not match the routes as intended");

    let mut g = c.benchmark_group("match_routes");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("decoded_1m_routes", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            node.routes().match_routes(&topics[i]).expect("match")
        })
    });
    g.bench_function("visit_1m_routes", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            let mut n = 0usize;
            node.routes().for_each_match(&topics[i], |_, _| n += 1).expect("match");
            n
        })
    });
    let view = node.runtime().view();
    g.bench_function("raw_1m_routes", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            let mut n = 0usize;
            mnema::testing::routes_raw::for_each_match(&view, ix, &topics[i], |_, _| n += 1).expect("match");
            n
        })
    });
    drop(view);
    g.finish();

    let mut g = c.benchmark_group("route_churn");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    let seq = Arc::new(AtomicU64::new(0));
    g.bench_function("add_delete_256_tasks", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cluster, seq) = (cluster.clone(), seq.clone());
            async move {
                let tasks = 256u64;
                let per = iters.div_ceil(2 * tasks).max(1);
                let start = Instant::now();
                let handles: Vec<_> = (0..tasks)
                    .map(|t| {
                        let (cluster, seq) = (cluster.clone(), seq.clone());
                        tokio::spawn(async move {
                            let node = &cluster.nodes[(t % 3) as usize];
                            let dest = Dest::Node(format!("churn{t}"));
                            for _ in 0..per {
                                let filter = format!("c/{}/+", seq.fetch_add(1, Ordering::Relaxed));
                                node.routes().add(&filter, &dest).await.expect("add");
                                node.routes().delete(&filter, &dest).await.expect("delete");
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("task");
                }
                start.elapsed().mul_f64(iters as f64 / (per * 2 * tasks) as f64)
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
