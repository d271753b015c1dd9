//! Point reads per second from the in-memory copy, on a follower of a 3-core cluster
//! holding 100,000 records: through `Node::get` (returns owned handles), and through a
//! held `view()` (no allocation at all).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mnema::Txn;
use std::hint::black_box;
use std::time::Duration;

const RECORDS: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let cluster = rt.block_on(async {
        let cl = common::cluster(3).await;
        let mut last = 0;
        for chunk in 0..RECORDS / 1000 {
            let mut t = Txn::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                t = t.put("kv", i.to_be_bytes(), vec![0xcd; 256]);
            }
            last = cl.nodes[cl.leader()].transact(t).await.expect("load").index;
        }
        for n in &cl.nodes {
            n.wait_applied(last, Duration::from_secs(60)).await.expect("applied");
        }
        cl
    });
    let node = cluster.nodes.iter().find(|n| !n.is_leader()).expect("follower");
    let ix = node.runtime().table_ix("kv").expect("table");
    let mut g = c.benchmark_group("local_read");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    let mut i = 0u64;
    g.bench_function("node_get", |b| {
        b.iter(|| {
            i = (i + 7919) % RECORDS;
            black_box(node.get("kv", &i.to_be_bytes()).expect("get"))
        })
    });
    g.bench_function("view_get_one", |b| {
        let view = node.runtime().view();
        let table = view.table(ix);
        b.iter(|| {
            i = (i + 7919) % RECORDS;
            black_box(table.get_one(&i.to_be_bytes()).map(|v| v.len()))
        })
    });
    g.finish();
    rt.block_on(async {
        for n in cluster.nodes {
            n.shutdown().await.expect("shutdown");
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
