//! [`FlatMap`]: a bag's records (key to its [`Values`](super::memory::Values)), flat and
//! persistent; and [`Key`], a key as the flat tables hold it.
//!
//! A bucket of the [`Table`] (see `engine::flat_table` for the layout, the growth and the
//! persistence) is one shared slice of entries (hash, key, value), replaced whole when it
//! changes. A key of up to [`Key::INLINE`] bytes sits in the entry itself, so a read walks
//! the top array, a middle node and a page (in cache for a table of millions) to the
//! bucket, its one likely miss, and compares the key where it finds the hash. Sets keep
//! their values inline too, in packed buckets of their own (`engine::flat_set`).
//!
//! **What it does not do.** Buckets are never merged: a table keeps the buckets of its
//! largest size until cleared (4 bytes per record at most). Iteration is in hash order.

use super::Blob;
use super::flat_table::{Bucket, Table, owned_slice};
use std::sync::Arc;

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

type Entries<V> = Arc<[Entry<V>]>;

impl<V: Clone> Bucket for Entries<V> {
    fn empty() -> Self {
        Arc::from([])
    }

    fn record_count(&self) -> usize {
        self.len()
    }

    fn split(&self, bit: u64) -> (Self, Self) {
        let (stay, go): (Vec<Entry<V>>, Vec<Entry<V>>) = self.iter().cloned().partition(|e| e.hash & bit == 0);
        (stay.into(), go.into())
    }
}

/// A persistent hash map from byte keys to values (a bag's value sets); see the module's
/// docs.
#[derive(Clone)]
pub struct FlatMap<V> {
    table: Table<Entries<V>>,
}

impl<V: Clone> Default for FlatMap<V> {
    fn default() -> Self {
        FlatMap { table: Table::default() }
    }
}

impl<V: Clone + std::fmt::Debug> std::fmt::Debug for FlatMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.to_vec(), v))).finish()
    }
}

impl<V: Clone> FlatMap<V> {
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A map of `records` built in one pass, as if each were inserted in turn (a key given
    /// twice keeps its later value), each bucket allocated once at its final size
    /// ([`Table::build`]). What a restart's and a bootstrap's load use.
    pub fn from_records<K: Into<Key>>(records: impl IntoIterator<Item = (K, V)>) -> Self
    where
        V: Send + Sync,
    {
        let records: Vec<(Key, V)> = records.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let table = Table::build(records, |(k, _)| k.as_bytes(), |slots| {
            let mut bucket: Vec<Entry<V>> = Vec::with_capacity(slots.len());
            for (hash, (key, value)) in slots.iter_mut().filter_map(Option::take) {
                match bucket.iter_mut().find(|b| b.hash == hash && b.key.as_bytes() == key.as_bytes()) {
                    Some(same) => same.value = value,
                    None => bucket.push(Entry { hash, key, value }),
                }
            }
            bucket.into()
        });
        FlatMap { table }
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let hash = self.table.hash(key);
        self.table.bucket_of(hash).iter().find(|e| e.hash == hash && e.key.as_bytes() == key).map(|e| &e.value)
    }

    /// The value under `key`, to change in place (its bucket is copied first if a
    /// published copy shares it).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let hash = self.table.hash(key);
        let at = self.table.bucket_of(hash).iter().position(|e| e.hash == hash && e.key.as_bytes() == key)?;
        Some(&mut owned_slice(self.table.bucket_of_mut(hash))[at].value)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced. `shared` is the key as a
    /// [`Blob`] when the caller holds one (a long key is then shared, not copied).
    pub fn insert(&mut self, key: &[u8], shared: Option<&Blob>, value: V) -> Option<V> {
        let hash = self.table.hash(key);
        let bucket = self.table.bucket_of_mut(hash);
        if let Some(at) = bucket.iter().position(|e| e.hash == hash && e.key.as_bytes() == key) {
            return Some(std::mem::replace(&mut owned_slice(bucket)[at].value, value));
        }
        let mut entries = Vec::with_capacity(bucket.len() + 1);
        entries.extend_from_slice(bucket);
        entries.push(Entry { hash, key: Key::new(key, shared), value });
        *bucket = entries.into();
        self.table.added();
        None
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let hash = self.table.hash(key);
        let at = self.table.bucket_of(hash).iter().position(|e| e.hash == hash && e.key.as_bytes() == key)?;
        let bucket = self.table.bucket_of_mut(hash);
        let mut entries = bucket.to_vec();
        let gone = entries.remove(at);
        *bucket = entries.into();
        self.table.removed();
        Some(gone.value)
    }

    /// Every value, in hash order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Every key and its value, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> + '_ {
        self.table.buckets().flat_map(|b| b.iter()).map(|e| (e.key.as_bytes(), &e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::flat_table::{FAN, LOAD};
    use proptest::prelude::*;

    use crate::engine::flat_table::model::{self, Driven, Model};

    impl Driven for FlatMap<Blob> {
        fn put(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
            self.insert(key, None, Blob::from(value)).map(|b| b.to_vec())
        }
        fn delete(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            self.remove(key).map(|b| b.to_vec())
        }
        fn clear(&mut self) {
            FlatMap::clear(self)
        }
        fn count(&self) -> usize {
            self.table.len()
        }
        fn value(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.get(key).map(|b| b.to_vec())
        }
        fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
        }
    }

    fn key() -> impl Strategy<Value = Vec<u8>> + Clone {
        // Short keys (inline) and long ones (shared).
        prop_oneof![
            (0u16..600).prop_map(|i| i.to_be_bytes().to_vec()),
            (0u16..200).prop_map(|i| [&[b'k'; 30][..], &i.to_be_bytes()].concat()),
            Just(Vec::new()),
        ]
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        any::<u8>().prop_map(|b| vec![b])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every operation answers as a `BTreeMap` would, through growth past many pages'
        /// worth of splits, and a copy kept before later changes still reads as it was.
        #[test]
        fn answers_as_an_ordered_map_and_copies_never_change(ops in prop::collection::vec(model::op(key(), value()), 1..3000)) {
            model::run(FlatMap::default(), Model::new(), ops)?;
        }

        /// A map built in one pass from records answers as one that inserted them in turn
        /// (a key given twice keeps its later value), and goes on growing and changing
        /// alike.
        #[test]
        fn built_in_one_pass_answers_as_inserted_in_turn(
            records in prop::collection::vec((key(), value()), 0..5000),
            after in prop::collection::vec(model::op(key(), value()), 0..300),
        ) {
            let built = FlatMap::from_records(records.iter().map(|(k, v)| (Blob::from(&k[..]), Blob::from(&v[..]))));
            let mut inserted = FlatMap::default();
            let mut model = Model::new();
            for (k, v) in &records {
                inserted.put(k, v);
                model.insert(k.clone(), v.clone());
            }
            model::check(&inserted, &model)?;
            model::run(built, model, after)?;
        }
    }

    #[test]
    fn built_in_one_pass_fills_the_pages_it_needs() {
        for n in [0usize, 1, 4, 5, FAN * LOAD, FAN * LOAD + 1, FAN * FAN * LOAD + 3] {
            let map = FlatMap::from_records((0..n as u32).map(|i| (Blob::from(&i.to_le_bytes()[..]), Blob::from(&b"v"[..]))));
            assert_eq!(map.table.len(), n);
            assert_eq!(map.table.bucket_count(), n.div_ceil(LOAD).max(1), "{n} records");
            assert_eq!(map.table.middle_nodes(), map.table.bucket_count().div_ceil(FAN * FAN), "{n} records");
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
        assert_eq!(map.table.len(), n as usize);
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
            assert!(map.table.len() <= LOAD * map.table.bucket_count(), "grew late");
            assert!(map.table.bucket_count() <= map.table.len().div_ceil(LOAD) + 1, "grew early");
        }
        assert_eq!(map.table.middle_nodes(), 3, "past two middle nodes");
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
