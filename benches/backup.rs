//! Export and import of 200,000 records (64-byte values) on a 3-core cluster: records per
//! second for `export_file` (one RocksDB snapshot to a JSON file) and for `import_file`
//! (check the whole file, then batches through Raft into a second cluster).

mod common;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mnema::Txn;
use mnema::backup::import;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: u64 = 200_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let src = rt.block_on(common::cluster(3));
    rt.block_on(async {
        let leader = &src.nodes[src.leader()];
        for chunk in 0..RECORDS / 1000 {
            let mut txn = Txn::new();
            for i in 0..1000 {
                txn = txn.put("kv", format!("key{:08}", chunk * 1000 + i), vec![0xa5u8; 64]);
            }
            leader.transact(txn).await.expect("load");
        }
    });
    let file = src.dir.path().join("bench-export.json");
    let mut g = c.benchmark_group("backup");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(10));
    let node = &src.nodes[0];
    // The import reads this file whether or not the export bench runs (`-- import`).
    // `Node::export`: the path a broker calls (and `mnema ctl data export` reaches).
    rt.block_on(node.export(&file)).expect("export");
    g.bench_function("export_200k_records", |b| b.iter(|| rt.block_on(node.export(&file)).expect("export")));
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!("  export file: {:.1} MiB for {RECORDS} records", bytes as f64 / 1048576.0);
    let dst = rt.block_on(common::cluster(3));
    let catalog = Arc::new(mnema::engine::Catalog::new(common::tables()).expect("catalog"));
    let checked = Instant::now();
    import::check_file(&file, &catalog).expect("check");
    println!("  checking the file alone: {:?}", checked.elapsed());
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("import_200k_records", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (file, target) = (file.clone(), &dst.nodes[1]);
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    // `Node::import`: the path a broker calls.
                    target.import(&file, import::Mode::Replace).await.expect("import");
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
