//! A set's in-memory records alone, 1M records of an 8-byte key and a 32-byte value:
//! `FlatSet` (what a set is held in: records packed in their buckets, values inline),
//! beside `FlatMap` of `Blob` values (the layout before it: entries of a key and a pointer
//! to the value) and the persistent hash map before that (`imbl`), for the two things the
//! engine does with them:
//! - `get`: a point read of a random key;
//! - `apply`: what one applied batch costs, as the apply loop does it: copy the published
//!   map (a clone), then change 64 random records of it.
//!
//! A secondary index's entries alone, as `by_node` holds 1M routes (`(node, filter,
//! destination)`, 3 nodes): `PackedSet` (what an index is held in) beside the persistent
//! ordered set of one allocation per entry it replaced, for `apply` (copy, then add 64
//! entries) and `range` (the first 100 entries of one node from a random filter on).
//!
//! And a topic-keyed bag's wildcard index alone (`TopicTrie`): `trie/<mix>` matches one
//! topic of the mix against the wildcard filters of 1M routes of that mix (`harness`: 100k
//! wildcard filters under one node of 50k children; `tenants`: 120k under 1,000 tenant
//! nodes), what a route match does besides the exact filter's lookup.
//!
//! No cluster runs, so nothing else competes for the cores or the cache.

mod common;

use common::RouteMix;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use mnema::engine::flat_map::{FlatMap, Key};
use mnema::engine::flat_set::FlatSet;
use mnema::engine::packed_set::PackedSet;
use mnema::engine::topic_trie::{TopicTrie, is_wildcard};
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
    let mut packed = FlatSet::default();
    let mut flat = FlatMap::default();
    let mut old = Imbl::default();
    for i in 0..RECORDS {
        let k = i.to_be_bytes();
        packed.insert(&k, None, &value, Some(&value));
        flat.insert(&k, None, value.clone());
        old.insert(Blob::from(&k[..]), value.clone());
    }
    let mut g = c.benchmark_group("memtable_set");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("get/packed", |b| {
        b.iter(|| {
            i += 1;
            black_box(packed.get(&key(i)).map(|v| v.len()))
        })
    });
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
    apply(&mut g, "apply/packed", &packed, |next| {
        i += 1;
        next.insert(&key(i), None, &fresh, Some(&fresh));
    });
    apply(&mut g, "apply/flat", &flat, |next| {
        i += 1;
        next.insert(&key(i), None, fresh.clone());
    });
    apply(&mut g, "apply/imbl", &old, |next| {
        i += 1;
        next.insert(Blob::from(&key(i)[..]), fresh.clone());
    });
    g.finish();
    // A restart's or a bootstrap's build of the same table from its records (in key order,
    // as a scan gives them).
    let records: Vec<(Blob, Blob)> =
        (0..RECORDS).map(|i| (Blob::from(&i.to_be_bytes()[..]), Blob::from(&[0xcd; 32][..]))).collect();
    let mut g = c.benchmark_group("memtable_load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS));
    let keyed: Vec<(Key, Blob)> = records.iter().map(|(k, v)| (Key::from(&k[..]), v.clone())).collect();
    g.bench_function("from_records/packed", |b| b.iter(|| FlatSet::from_records(&keyed)));
    g.bench_function("from_records/flat", |b| {
        b.iter_batched(|| records.clone(), FlatMap::from_records, BatchSize::LargeInput)
    });
    g.finish();
}

/// What one applied batch costs, as the apply loop does it: copy the published `map` (a
/// clone), then make [`BATCH`] changes to the copy (`change` makes one).
fn apply<M: Clone>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, map: &M, mut change: impl FnMut(&mut M)) {
    g.bench_function(name, |b| {
        b.iter_batched(
            || map.clone(),
            |mut next| {
                (0..BATCH).for_each(|_| change(&mut next));
                next
            },
            BatchSize::SmallInput,
        )
    });
}

/// The `i`-th entry of a `by_node`-like index: node, filter, destination, as the index
/// encodes them (each part ended by `00 00`).
fn index_entry(i: u64) -> Vec<u8> {
    let node = format!("b{}@127.0.0.1", i % 3);
    [
        node.as_bytes(),
        b"\0\0",
        RouteMix::Harness.filter(i % RECORDS, RECORDS).as_bytes(),
        b"\0\0",
        b"\x01",
        node.as_bytes(),
    ]
    .concat()
}

fn index(c: &mut Criterion) {
    let entries: Vec<Vec<u8>> = (0..RECORDS).map(index_entry).collect();
    let mut sorted: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    sorted.sort();
    let packed = PackedSet::from_sorted(sorted.iter().copied());
    let old: imbl::OrdSet<Blob> = entries.iter().map(|e| Blob::from(&e[..])).collect();
    let mut g = c.benchmark_group("index");
    g.measurement_time(Duration::from_secs(5));
    let mut i = RECORDS;
    g.throughput(Throughput::Elements(BATCH));
    apply(&mut g, "apply/packed", &packed, |next| {
        i += 1;
        next.insert(&index_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    });
    apply(&mut g, "apply/imbl", &old, |next| {
        i += 1;
        next.insert(Blob::from(index_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))));
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("range/packed", |b| {
        b.iter(|| {
            i += 1;
            let from = index_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % RECORDS);
            let mut n = 0usize;
            packed.range(std::ops::Bound::Included(&from[..]), std::ops::Bound::Unbounded, |e| {
                black_box(e.len());
                n += 1;
                n < 100
            });
            n
        })
    });
    g.bench_function("range/imbl", |b| {
        b.iter(|| {
            i += 1;
            let from: Blob = Blob::from(index_entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % RECORDS));
            old.range(from..).take(100).fold(0usize, |n, e| n + black_box(e.len()))
        })
    });
    g.finish();
}

/// The wildcard filters of 1M routes of each mix in a trie, and the mix's topics matched.
fn trie(c: &mut Criterion) {
    const ROUTES: u64 = 1_000_000;
    let dest: Blob = Blob::from(&b"b0@127.0.0.1"[..]);
    let mut g = c.benchmark_group("topic_trie");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    for (name, mix) in [("harness", RouteMix::Harness), ("tenants", RouteMix::Tenants)] {
        let mut t = TopicTrie::default();
        for i in 0..ROUTES {
            let f = mix.filter(i, ROUTES);
            if is_wildcard(f.as_bytes()) {
                t.set(&Blob::from(f.as_bytes()), dest.clone());
            }
        }
        let topics = mix.topics(ROUTES);
        let matched: usize = topics.iter().map(|tp| count(&t, tp)).sum();
        assert!(matched > topics.len() / 2, "{name}: the topics match too few filters ({matched})");
        let mut i = 0usize;
        g.bench_function(format!("match/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % topics.len();
                count(&t, &topics[i])
            })
        });
    }
    g.finish();
}

fn count(t: &TopicTrie<Blob>, topic: &str) -> usize {
    let mut n = 0usize;
    t.matches(topic.as_bytes(), |f, v| {
        black_box((f.len(), v.len()));
        n += 1
    });
    n
}

criterion_group!(benches, bench, index, trie);
criterion_main!(benches);
