//! A set's in-memory records alone, 1M records of an 8-byte key and a 32-byte value:
//! `FlatMap` (what a set is held in) beside the persistent hash map it replaced (`imbl`),
//! for the two things the engine does with them:
//! - `get`: a point read of a random key;
//! - `apply`: what one applied batch costs, as the apply loop does it: copy the published
//!   map (a clone), then change 64 random records of it.
//!
//! No cluster runs, so nothing else competes for the cores or the cache.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mnema::engine::flat_map::FlatMap;
use mnema::engine::{Blob, KeyHasher};
use std::hint::black_box;
use std::time::Duration;

const RECORDS: u64 = 1_000_000;
const BATCH: u64 = 64;

type Imbl = imbl::GenericHashMap<Blob, Blob, KeyHasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A key spread over the records (a multiplicative walk, so consecutive reads miss).
fn key(i: u64) -> [u8; 8] {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % RECORDS).to_be_bytes()
}

fn bench(c: &mut Criterion) {
    let value: Blob = Blob::from(&[0xcd; 32][..]);
    let mut flat = FlatMap::default();
    let mut old = Imbl::default();
    for i in 0..RECORDS {
        let k = i.to_be_bytes();
        flat.insert(&k, None, value.clone());
        old.insert(Blob::from(&k[..]), value.clone());
    }
    let mut g = c.benchmark_group("memtable_set");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get/flat", |b| {
        b.iter(|| {
            i += 1;
            black_box(flat.get(&key(i)).map(|v| v.len()))
        })
    });
    g.bench_function("get/imbl", |b| {
        b.iter(|| {
            i += 1;
            black_box(old.get(&key(i)[..]).map(|v| v.len()))
        })
    });
    g.throughput(Throughput::Elements(BATCH));
    let fresh: Blob = Blob::from(&[0xef; 32][..]);
    g.bench_function("apply/flat", |b| {
        b.iter_batched(
            || flat.clone(),
            |mut next| {
                for _ in 0..BATCH {
                    i += 1;
                    next.insert(&key(i), None, fresh.clone());
                }
                next
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("apply/imbl", |b| {
        b.iter_batched(
            || old.clone(),
            |mut next| {
                for _ in 0..BATCH {
                    i += 1;
                    next.insert(Blob::from(&key(i)[..]), fresh.clone());
                }
                next
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
