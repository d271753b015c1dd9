//! [`FlatMap`]: the hashed tables' records, flat and persistent.
//!
//! A point read is what a broker does most (a session, a client's status, a config, the
//! exact filter of a route match), so sets and bags are laid out for it: a linear-hashing
//! table whose buckets hold their records inline. A key of up to [`Key::INLINE`] bytes
//! sits in the bucket itself, beside its full hash and its value (a set's value pointer,
//! a bag's `Values`), so a read walks the top array, a middle node and a page (in cache
//! for a table of millions) to the bucket, its one likely miss, and compares the key
//! where it finds the hash; the persistent hash map this replaces walked three or four
//! trie nodes and then followed a pointer to each key it compared.
//!
//! **Layout.** Buckets are found by the low bits of the key's hash (linear hashing: the
//! table grows one bucket at a time, splitting the next bucket in order whenever the
//! records outnumber [`LOAD`] per bucket, so no insert rehashes the whole table). Their
//! slots live in pages of [`FAN`] slots, [`FAN`] pages to a middle node, under one top
//! array. A bucket is one shared slice of entries (hash, key, value), replaced whole when
//! it changes.
//!
//! **Persistence.** Cloning a map copies a few words and one reference; a change copies
//! what it touches that a published copy shares (the top array, one middle node, one
//! page, one bucket) and mutates in place what it already owns. Copying a node takes a
//! reference on each of its children, a cache miss each where the child is cold, which
//! is why the nodes are small (a 512-slot page cost an apply twice the old map's time).
//! So the single writer changes its working copy while readers keep every published copy
//! intact, as the engine's memory requires (see `engine::memory`).
//!
//! **Bulk.** [`FlatMap::from_records`] builds a map of many records at once, sized for
//! them, each bucket allocated once: a restart's and a bootstrap's load.
//!
//! **What it does not do.** Buckets are never merged: a table keeps the buckets of its
//! largest size until cleared (4 bytes per record at most). Iteration is in hash order.

use super::{Blob, KeyHasher};
use std::hash::BuildHasher;
use std::sync::Arc;

/// Records per bucket, on average, before the table grows by one bucket.
pub const LOAD: usize = 4;
/// Slots per page, and pages per middle node (a power of two).
pub const FAN: usize = 64;
const FAN_BITS: u32 = FAN.trailing_zeros();

/// A key as a bucket holds it: inline when short, else shared.
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; Key::INLINE] },
    Shared(Blob),
}

impl Key {
    /// The longest key held inline (a 24-byte `Key`, as large as a shared one with its tag).
    pub const INLINE: usize = 22;

    fn new(key: &[u8], shared: Option<&Blob>) -> Key {
        if key.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline { len: key.len() as u8, bytes }
        } else {
            Key::Shared(shared.cloned().unwrap_or_else(|| Blob::from(key)))
        }
    }

    /// The key's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Shared(b) => b,
        }
    }

    /// The key as a [`Blob`]: a long key's own (shared), a short key's copied into one.
    pub fn to_blob(&self) -> Blob {
        match self {
            Key::Inline { .. } => Blob::from(self.as_bytes()),
            Key::Shared(b) => b.clone(),
        }
    }
}

impl From<&[u8]> for Key {
    /// A short key copied inline, a long one into a [`Blob`] of its own.
    fn from(key: &[u8]) -> Key {
        Key::new(key, None)
    }
}

impl From<Blob> for Key {
    /// A short key copied inline (the `Blob` dropped), a long one shared.
    fn from(key: Blob) -> Key {
        if key.len() <= Self::INLINE { Key::new(&key, None) } else { Key::Shared(key) }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_bytes())
    }
}

#[derive(Clone, Debug)]
struct Entry<V> {
    hash: u64,
    key: Key,
    value: V,
}

type Bucket<V> = Arc<[Entry<V>]>;
/// [`FAN`] buckets' slots.
type Page<V> = Arc<[Bucket<V>]>;
/// [`FAN`] pages.
type Mid<V> = Arc<[Page<V>]>;

/// A persistent hash map from byte keys to values (a set's [`Blob`]s, a bag's value sets);
/// see the module's docs.
#[derive(Clone)]
pub struct FlatMap<V = Blob> {
    /// The middle nodes; bucket `a`'s slot is `top[a / FAN²][a / FAN % FAN][a % FAN]`.
    top: Arc<[Mid<V>]>,
    /// Buckets in use (the slots past them are empty and unused).
    buckets: usize,
    /// Linear hashing's level: bucket addresses take `level` low bits of the hash, or
    /// `level + 1` below `split`.
    level: u32,
    /// The next bucket to split.
    split: usize,
    len: usize,
    hasher: KeyHasher,
}

impl<V: Clone> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap { top: Arc::from([empty_mid()]), buckets: 1, level: 0, split: 0, len: 0, hasher: KeyHasher::default() }
    }
}

impl<V: Clone + std::fmt::Debug> std::fmt::Debug for FlatMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.to_vec(), v))).finish()
    }
}

/// A middle node of empty pages: one shared empty page (itself of one shared empty
/// bucket), copied where first changed.
fn empty_mid<V>() -> Mid<V> {
    let bucket: Bucket<V> = Arc::from([]);
    let page: Page<V> = (0..FAN).map(|_| bucket.clone()).collect();
    (0..FAN).map(|_| page.clone()).collect()
}

/// The top array holding `buckets` in address order, the last page and middle node
/// filled up with empty buckets.
fn assemble<V>(buckets: Vec<Bucket<V>>) -> Arc<[Mid<V>]> {
    let empty: Bucket<V> = Arc::from([]);
    let mut pages: Vec<Page<V>> = Vec::with_capacity(buckets.len().div_ceil(FAN));
    let mut page: Vec<Bucket<V>> = Vec::with_capacity(FAN);
    for b in buckets {
        page.push(b);
        if page.len() == FAN {
            pages.push(std::mem::replace(&mut page, Vec::with_capacity(FAN)).into());
        }
    }
    if !page.is_empty() || pages.is_empty() {
        page.resize(FAN, empty.clone());
        pages.push(page.into());
    }
    let empty_page: Page<V> = (0..FAN).map(|_| empty.clone()).collect();
    pages
        .chunks(FAN)
        .map(|c| c.iter().cloned().chain(std::iter::repeat_n(empty_page.clone(), FAN - c.len())).collect())
        .collect()
}

/// The buckets whose records `slots` holds, bucket `i`'s from `starts[i] - starts[0]` to
/// `starts[i + 1] - starts[0]`; of a key given twice, the later value is kept.
fn buckets_of<V>(slots: &mut [Option<Entry<V>>], starts: &[usize]) -> Vec<Bucket<V>> {
    let base = starts.first().copied().unwrap_or(0);
    starts
        .windows(2)
        .map(|w| {
            let mut bucket: Vec<Entry<V>> = Vec::with_capacity(w[1] - w[0]);
            for e in slots[w[0] - base..w[1] - base].iter_mut().filter_map(Option::take) {
                match bucket.iter_mut().find(|b| b.hash == e.hash && b.key.as_bytes() == e.key.as_bytes()) {
                    Some(same) => same.value = e.value,
                    None => bucket.push(e),
                }
            }
            bucket.into()
        })
        .collect()
}

impl<V: Clone> FlatMap<V> {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A map of `records` built in one pass, as if each were inserted in turn (a key given
    /// twice keeps its later value): the table sized for them at once, the records placed
    /// by bucket with a counting sort (no comparison sort), each bucket allocated once at
    /// its final size, no split; a large load's buckets built on two threads. What a
    /// restart's and a bootstrap's load use.
    pub fn from_records<K: Into<Key>>(records: impl IntoIterator<Item = (K, V)>) -> Self
    where
        V: Send + Sync,
    {
        /// Fewer records build faster than a thread starts.
        const TWO_THREADS: usize = 100_000;
        let hasher = KeyHasher::default();
        let all: Vec<Entry<V>> = records
            .into_iter()
            .map(|(k, value)| {
                let key = k.into();
                Entry { hash: hasher.hash_one(key.as_bytes()), key, value }
            })
            .collect();
        let n = all.len();
        let buckets = n.div_ceil(LOAD).max(1);
        let level = buckets.ilog2();
        let mut map = FlatMap { top: Arc::from([]), buckets, level, split: buckets - (1 << level), len: 0, hasher };
        // Where each bucket's records start among all of them, in address order.
        let mut starts = vec![0usize; buckets + 1];
        for e in &all {
            starts[map.address(e.hash) + 1] += 1;
        }
        for a in 0..buckets {
            starts[a + 1] += starts[a];
        }
        // Each record to its bucket's place, in the order given (so of a key given twice,
        // the later comes later).
        let mut slots: Vec<Option<Entry<V>>> = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        let mut next = starts[..buckets].to_vec();
        for e in all {
            let a = map.address(e.hash);
            slots[next[a]] = Some(e);
            next[a] += 1;
        }
        let out: Vec<Bucket<V>> = if n < TWO_THREADS {
            buckets_of(&mut slots, &starts)
        } else {
            let mid = buckets / 2;
            let (low, high) = slots.split_at_mut(starts[mid]);
            let (low_starts, high_starts) = (&starts[..=mid], &starts[mid..]);
            let (high, mut out) =
                super::beside::beside(|| buckets_of(high, high_starts), || buckets_of(low, low_starts));
            out.extend(high);
            out
        };
        map.len = out.iter().map(|b| b.len()).sum();
        map.top = assemble(out);
        map
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn address(&self, hash: u64) -> usize {
        let a = (hash & ((1u64 << self.level) - 1)) as usize;
        if a < self.split { (hash & ((1u64 << (self.level + 1)) - 1)) as usize } else { a }
    }

    #[inline]
    fn bucket(&self, address: usize) -> &Bucket<V> {
        &self.top[address >> (2 * FAN_BITS)][(address >> FAN_BITS) & (FAN - 1)][address & (FAN - 1)]
    }

    /// The bucket at `address`, owned by this copy (the top array, its middle node and its
    /// page are copied first where a published copy shares them).
    fn bucket_mut(&mut self, address: usize) -> &mut Bucket<V> {
        let top = owned_slice(&mut self.top);
        let mid = owned_slice(&mut top[address >> (2 * FAN_BITS)]);
        let page = owned_slice(&mut mid[(address >> FAN_BITS) & (FAN - 1)]);
        &mut page[address & (FAN - 1)]
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let hash = self.hash(key);
        self.bucket(self.address(hash)).iter().find(|e| e.hash == hash && e.key.as_bytes() == key).map(|e| &e.value)
    }

    /// The value under `key`, to change in place (its bucket is copied first if a
    /// published copy shares it).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let hash = self.hash(key);
        let address = self.address(hash);
        let at = self.bucket(address).iter().position(|e| e.hash == hash && e.key.as_bytes() == key)?;
        Some(&mut owned_slice(self.bucket_mut(address))[at].value)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced. `shared` is the key as a
    /// [`Blob`] when the caller holds one (a long key is then shared, not copied).
    pub fn insert(&mut self, key: &[u8], shared: Option<&Blob>, value: V) -> Option<V> {
        let hash = self.hash(key);
        let address = self.address(hash);
        let bucket = self.bucket_mut(address);
        if let Some(at) = bucket.iter().position(|e| e.hash == hash && e.key.as_bytes() == key) {
            return Some(std::mem::replace(&mut owned_slice(bucket)[at].value, value));
        }
        let mut entries = Vec::with_capacity(bucket.len() + 1);
        entries.extend_from_slice(bucket);
        entries.push(Entry { hash, key: Key::new(key, shared), value });
        *bucket = entries.into();
        self.len += 1;
        if self.len > LOAD * self.buckets {
            self.grow();
        }
        None
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = self.hash(key);
        let address = self.address(hash);
        let at = self.bucket(address).iter().position(|e| e.hash == hash && e.key.as_bytes() == key)?;
        let bucket = self.bucket_mut(address);
        let mut entries = bucket.to_vec();
        let gone = entries.remove(at);
        *bucket = entries.into();
        self.len -= 1;
        Some(gone.value)
    }

    /// Every value, in hash order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        let hasher = self.hasher;
        *self = FlatMap { hasher, ..FlatMap::default() };
    }

    /// Every key and its value, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> + '_ {
        self.top
            .iter()
            .flat_map(|m| m.iter())
            .flat_map(|p| p.iter())
            .take(self.buckets)
            .flat_map(|b| b.iter())
            .map(|e| (e.key.as_bytes(), &e.value))
    }

    /// Adds one bucket: splits bucket `split` between itself and the new one by the next
    /// bit of its records' hashes.
    fn grow(&mut self) {
        let (from, to) = (self.split, self.buckets);
        if to >> (2 * FAN_BITS) == self.top.len() {
            let mut top = self.top.to_vec();
            top.push(empty_mid());
            self.top = top.into();
        }
        let bit = 1u64 << self.level;
        let (stay, go): (Vec<Entry<V>>, Vec<Entry<V>>) = self.bucket(from).iter().cloned().partition(|e| e.hash & bit == 0);
        *self.bucket_mut(from) = stay.into();
        *self.bucket_mut(to) = go.into();
        self.buckets += 1;
        self.split += 1;
        if self.split == 1 << self.level {
            self.level += 1;
            self.split = 0;
        }
    }
}

/// `slice`, owned by the caller: copied (each element cloned) if shared.
fn owned_slice<T: Clone>(slice: &mut Arc<[T]>) -> &mut [T] {
    if Arc::get_mut(slice).is_none() {
        *slice = slice.iter().cloned().collect();
    }
    Arc::get_mut(slice).expect("just made unique")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Put(Vec<u8>, u8),
        Delete(Vec<u8>),
        /// Keep the map as it is now, to check later that no change reached it.
        Keep,
        Clear,
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Short keys (inline) and long ones (shared), from a small space so that puts
        // replace and deletes hit.
        prop_oneof![
            (0u16..600).prop_map(|i| i.to_be_bytes().to_vec()),
            (0u16..200).prop_map(|i| [&[b'k'; 30][..], &i.to_be_bytes()].concat()),
            Just(Vec::new()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            120 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            50 => key().prop_map(Op::Delete),
            10 => Just(Op::Keep),
            1 => Just(Op::Clear),
        ]
    }

    fn check(map: &FlatMap, model: &BTreeMap<Vec<u8>, u8>) -> Result<(), TestCaseError> {
        prop_assert_eq!(map.len(), model.len());
        let mut all: Vec<(Vec<u8>, u8)> = map.iter().map(|(k, v)| (k.to_vec(), v[0])).collect();
        all.sort();
        let expected: Vec<(Vec<u8>, u8)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prop_assert_eq!(all, expected);
        for (k, v) in model {
            prop_assert_eq!(map.get(k).map(|b| b[0]), Some(*v));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every operation answers as a `BTreeMap` would, through growth past many pages'
        /// worth of splits, and a copy kept before later changes still reads as it was.
        #[test]
        fn answers_as_an_ordered_map_and_copies_never_change(ops in prop::collection::vec(op(), 1..3000)) {
            let mut map = FlatMap::default();
            let mut model = BTreeMap::new();
            let mut kept: Vec<(FlatMap, BTreeMap<Vec<u8>, u8>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let old = map.insert(&k, None, Blob::from(&[v][..]));
                        prop_assert_eq!(old.map(|b| b[0]), model.insert(k, v));
                    }
                    Op::Delete(k) => prop_assert_eq!(map.remove(&k).map(|b| b[0]), model.remove(&k)),
                    Op::Keep => kept.push((map.clone(), model.clone())),
                    Op::Clear => {
                        map.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            check(&map, &model)?;
            for (map, model) in &kept {
                check(map, model)?;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A map built in one pass from records answers as one that inserted them in turn
        /// (a key given twice keeps its later value), and goes on growing and changing
        /// alike.
        #[test]
        fn built_in_one_pass_answers_as_inserted_in_turn(
            records in prop::collection::vec((key(), any::<u8>()), 0..5000),
            after in prop::collection::vec(op(), 0..300),
        ) {
            let mut built = FlatMap::from_records(records.iter().map(|(k, v)| (Blob::from(&k[..]), Blob::from(&[*v][..]))));
            let mut model = BTreeMap::new();
            let mut inserted = FlatMap::default();
            for (k, v) in &records {
                inserted.insert(k, None, Blob::from(&[*v][..]));
                model.insert(k.clone(), *v);
            }
            check(&built, &model)?;
            check(&inserted, &model)?;
            for op in after {
                match op {
                    Op::Put(k, v) => {
                        prop_assert_eq!(built.insert(&k, None, Blob::from(&[v][..])).map(|b| b[0]), model.insert(k, v));
                    }
                    Op::Delete(k) => prop_assert_eq!(built.remove(&k).map(|b| b[0]), model.remove(&k)),
                    Op::Keep | Op::Clear => {}
                }
            }
            check(&built, &model)?;
        }
    }

    #[test]
    fn built_in_one_pass_fills_the_pages_it_needs() {
        for n in [0usize, 1, 4, 5, FAN * LOAD, FAN * LOAD + 1, FAN * FAN * LOAD + 3] {
            let map = FlatMap::from_records((0..n as u32).map(|i| (Blob::from(&i.to_le_bytes()[..]), Blob::from(&b"v"[..]))));
            assert_eq!(map.len(), n);
            assert_eq!(map.buckets, n.div_ceil(LOAD).max(1), "{n} records");
            assert_eq!(map.top.len(), map.buckets.div_ceil(FAN * FAN), "{n} records");
            assert!((0..n as u32).all(|i| map.get(&i.to_le_bytes()).is_some()), "{n} records");
            assert_eq!(map.iter().count(), n);
        }
    }

    /// A load large enough to build its buckets on two threads answers as the records
    /// inserted in turn, keys given twice (in either half of the table) included.
    #[test]
    fn a_large_load_built_on_two_threads_keeps_every_later_value() {
        let n = 300_000u32;
        let mut records: Vec<(Blob, Blob)> =
            (0..n).map(|i| (Blob::from(&i.to_le_bytes()[..]), Blob::from(&i.to_be_bytes()[..]))).collect();
        records.extend((0..n).step_by(1000).map(|i| (Blob::from(&i.to_le_bytes()[..]), Blob::from(&b"later"[..]))));
        let map = FlatMap::from_records(records);
        assert_eq!(map.len(), n as usize);
        for i in 0..n {
            let want = if i % 1000 == 0 { b"later".to_vec() } else { i.to_be_bytes().to_vec() };
            assert_eq!(map.get(&i.to_le_bytes()).map(|v| v.to_vec()), Some(want), "key {i}");
        }
    }

    #[test]
    fn grows_one_bucket_at_a_time_past_many_middle_nodes() {
        let mut map = FlatMap::default();
        let n = (FAN * FAN * LOAD * 2 + 100) as u32;
        for i in 0..n {
            map.insert(&i.to_le_bytes(), None, Blob::from(&i.to_be_bytes()[..]));
            assert!(map.len() <= LOAD * map.buckets, "grew late");
            assert!(map.buckets <= map.len().div_ceil(LOAD) + 1, "grew early");
        }
        assert_eq!(map.top.len(), 3, "past two middle nodes");
        for i in 0..n {
            assert_eq!(map.get(&i.to_le_bytes()).map(|v| v[..].to_vec()), Some(i.to_be_bytes().to_vec()));
        }
        assert_eq!(map.get(b"absent"), None);
    }

    #[test]
    fn long_keys_share_the_callers_blob_and_short_ones_sit_inline() {
        let mut map = FlatMap::default();
        let long: Blob = Blob::from(&[7u8; 40][..]);
        map.insert(&long, Some(&long), Blob::from(&b"v"[..]));
        assert_eq!(Arc::strong_count(&long), 2, "the map holds the caller's key");
        let short: Blob = Blob::from(&b"short"[..]);
        map.insert(&short, Some(&short), Blob::from(&b"v"[..]));
        assert_eq!(Arc::strong_count(&short), 1, "a short key is copied inline");
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }
}
