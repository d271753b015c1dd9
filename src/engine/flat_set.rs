//! [`FlatSet`]: a set's records, flat and persistent, short keys and values inline.
//!
//! A point read is what a broker does most (a session, a client's status, a config), so a
//! set is a [`Table`] (see `engine::flat_table`: linear hashing, pages of bucket slots,
//! copy on write) whose buckets are [`Packed`]: each record's hash, key and value one after
//! another in the bucket's one allocation (see `engine::packed_bucket`). A read walks the
//! top array, a middle node and a page (in cache for a table of millions) to the bucket,
//! its one likely miss, and finds the value beside the key: a record of an 8-byte key and
//! a 32-byte value takes 48 bytes of its bucket and no allocation of its own.
//!
//! A change builds the record's bucket anew (a few short records, and a reference taken on
//! each long part) and keeps the old one, which a published copy may still be reading, in
//! the [`Replaced`] it returns.

use super::Blob;
use super::flat_map::Key;
use super::flat_table::{Bucket, Table};
use super::packed_bucket::{Builder, NewRecord, Packed, PackedBucket, Replaced, ValueRef, rebuilt, record_size};

impl Bucket for PackedBucket {
    fn empty() -> Self {
        Packed::empty()
    }

    fn record_count(&self) -> usize {
        self.count()
    }

    fn split(&self, bit: u64) -> (Self, Self) {
        let (mut stay, mut go) = (Builder::default(), Builder::default());
        for r in self.records() {
            if u64::from(r.hash) & bit == 0 { stay.copy(&r) } else { go.copy(&r) }
        }
        (stay.finish(), go.finish())
    }
}

/// A persistent hash map from byte keys to byte values, each record inline in its bucket
/// where short; see the module's docs.
#[derive(Clone, Default)]
pub struct FlatSet {
    table: Table<PackedBucket>,
}

impl std::fmt::Debug for FlatSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.to_vec(), v.to_vec()))).finish()
    }
}

impl FlatSet {
    /// Keys held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// A set of `records` built in one pass, as if each were inserted in turn (a key given
    /// twice keeps its later value), each bucket allocated once at its final size
    /// ([`Table::build`]); a long key or value is shared with the record's, not copied.
    /// What a restart's and a bootstrap's load use.
    pub fn from_records(records: &[(Key, Blob)]) -> Self {
        let all: Vec<&(Key, Blob)> = records.iter().collect();
        let table = Table::build(all, |r| r.0.as_bytes(), |slots| {
            let size: usize = slots.iter().flatten().map(|(_, (k, v))| record_size(k.as_bytes().len(), v.len())).sum();
            let mut b = Builder::with_capacity(size);
            for (i, slot) in slots.iter().enumerate() {
                let Some((hash, (key, value))) = slot else { continue };
                // A key given again later: the later one is the record.
                if slots[i + 1..].iter().flatten().any(|(h, (k, _))| h == hash && k.as_bytes() == key.as_bytes()) {
                    continue;
                }
                let key_blob = match key {
                    Key::Shared(b) => Some(b),
                    Key::Inline { .. } => None,
                };
                b.push(&NewRecord { hash: *hash as u32, key: key.as_bytes(), key_blob, value, value_blob: Some(value) });
            }
            b.finish()
        });
        FlatSet { table }
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        let hash = self.table.hash(key);
        self.table.bucket_of(hash).find(hash as u32, key).map(|r| r.value)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the record it replaced. `key_blob` and `value_blob`
    /// are the key and the value as [`Blob`]s where the caller holds them (a long one is
    /// then shared, not copied).
    pub fn insert(&mut self, key: &[u8], key_blob: Option<&Blob>, value: &[u8], value_blob: Option<&Blob>) -> Option<Replaced> {
        let hash = self.table.hash(key);
        let slot = self.table.bucket_of_mut(hash);
        let new = NewRecord { hash: hash as u32, key, key_blob, value, value_blob };
        let at = slot.find(hash as u32, key).map(|r| r.start());
        let next = rebuilt(slot, at, Some(&new));
        let old = std::mem::replace(slot, next);
        match at {
            Some(start) => Some(Replaced::new(old, start)),
            None => {
                self.table.added();
                None
            }
        }
    }

    /// Removes `key`; returns its record.
    pub fn remove(&mut self, key: &[u8]) -> Option<Replaced> {
        let hash = self.table.hash(key);
        let start = self.table.bucket_of(hash).find(hash as u32, key)?.start();
        let slot = self.table.bucket_of_mut(hash);
        let next = rebuilt(slot, Some(start), None);
        let gone = Replaced::new(std::mem::replace(slot, next), start);
        self.table.removed();
        Some(gone)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Every key and its value, in hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], ValueRef<'_>)> + '_ {
        self.table.buckets().flat_map(|b| b.records()).map(|r| (r.key, r.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::flat_table::LOAD;
    use crate::engine::packed_bucket::{KEY_INLINE, VALUE_INLINE};
    use proptest::prelude::*;
    use std::sync::Arc;

    use crate::engine::flat_table::model::{self, Driven, Model};

    impl Driven for FlatSet {
        fn put(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<u8>> {
            // The value's `Blob` given: a long one is shared, not copied.
            let blob = Blob::from(value);
            self.insert(key, None, value, Some(&blob)).map(|o| o.value().to_vec())
        }
        fn delete(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            self.remove(key).map(|o| o.value().to_vec())
        }
        fn clear(&mut self) {
            FlatSet::clear(self)
        }
        fn count(&self) -> usize {
            self.len()
        }
        fn value(&self, key: &[u8]) -> Option<Vec<u8>> {
            let bytes = self.get(key).map(|v| v.to_vec());
            // The value as a `Blob` (shared where held by reference) reads the same.
            assert_eq!(self.get(key).map(|v| v.to_blob().to_vec()), bytes);
            bytes
        }
        fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
        }
    }

    fn key() -> impl Strategy<Value = Vec<u8>> + Clone {
        // Short keys (inline), keys at the inline bound and long ones (by reference).
        prop_oneof![
            (0u16..600).prop_map(|i| i.to_be_bytes().to_vec()),
            (0u16..100).prop_map(|i| [&[b'k'; KEY_INLINE - 2][..], &i.to_be_bytes()].concat()),
            (0u16..100).prop_map(|i| [&[b'l'; KEY_INLINE - 1][..], &i.to_be_bytes()].concat()),
            Just(Vec::new()),
        ]
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            Just(Vec::new()),
            any::<u8>().prop_map(|b| vec![b; VALUE_INLINE]),
            any::<u8>().prop_map(|b| vec![b; VALUE_INLINE + 1]),
            (any::<u8>(), 0usize..400).prop_map(|(b, n)| vec![b; n]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every operation answers as a `BTreeMap` would (the value replaced or removed
        /// too), with keys and values inline, at the bounds and by reference, through
        /// growth past many splits; a copy kept before later changes still reads as it was.
        #[test]
        fn answers_as_an_ordered_map_and_copies_never_change(ops in prop::collection::vec(model::op(key(), value()), 1..3000)) {
            model::run(FlatSet::default(), Model::new(), ops)?;
        }

        /// A set built in one pass answers as one that inserted the records in turn (a key
        /// given twice keeps its later value), and goes on changing alike.
        #[test]
        fn built_in_one_pass_answers_as_inserted_in_turn(
            records in prop::collection::vec((key(), value()), 0..3000),
            after in prop::collection::vec(model::op(key(), value()), 0..300),
        ) {
            let keyed: Vec<(Key, Blob)> = records.iter().map(|(k, v)| (Key::from(&k[..]), Blob::from(&v[..]))).collect();
            let model: Model = records.into_iter().collect();
            model::run(FlatSet::from_records(&keyed), model, after)?;
        }
    }

    /// A long value is the caller's `Blob`, shared by every copy of the table and by
    /// what a reader takes out; each is released when the last holder goes, so nothing
    /// leaks and nothing is freed early. A short one is copied inline.
    #[test]
    fn long_values_are_shared_and_released_with_the_last_copy() {
        let long = Blob::from(&[7u8; VALUE_INLINE + 1][..]);
        let key = Blob::from(&[9u8; KEY_INLINE + 1][..]);
        let mut set = FlatSet::default();
        set.insert(&key, Some(&key), &long, Some(&long));
        assert_eq!((Arc::strong_count(&long), Arc::strong_count(&key)), (2, 2), "the bucket holds the caller's blobs");
        let short = Blob::from(&b"short"[..]);
        set.insert(b"s", None, &short, Some(&short));
        assert_eq!(Arc::strong_count(&short), 1, "a short value is copied inline");

        let copy = set.clone();
        let taken = set.get(&key).map(|v| v.to_blob());
        assert!(taken.as_ref().is_some_and(|t| Arc::ptr_eq(t, &long)), "a reader shares the value");
        // Growth copies and splits buckets many times over.
        for i in 0..(LOAD as u32 * 300) {
            set.insert(&i.to_be_bytes(), None, b"v", None);
        }
        assert_eq!(Arc::strong_count(&long), 4, "the caller's, a bucket in each copy (split apart by now), the reader's");
        let replaced = set.insert(&key, Some(&key), b"now short", None);
        assert_eq!(replaced.as_ref().map(|r| r.value().to_vec()), Some(long.to_vec()));
        drop(replaced);
        assert_eq!(Arc::strong_count(&long), 3, "replaced: the caller's, the copy's, the reader's");
        drop((set, taken));
        assert_eq!(Arc::strong_count(&long), 2);
        assert_eq!(copy.get(&key).map(|v| v.to_vec()), Some(long.to_vec()), "the copy reads as it was");
        drop(copy);
        assert_eq!((Arc::strong_count(&long), Arc::strong_count(&key)), (1, 1), "released with the last copy");
    }

    #[test]
    fn a_large_load_built_on_two_threads_keeps_every_later_value() {
        let n = 300_000u32;
        let mut records: Vec<(Key, Blob)> =
            (0..n).map(|i| (Key::from(&i.to_le_bytes()[..]), Blob::from(&i.to_be_bytes()[..]))).collect();
        records.extend((0..n).step_by(1000).map(|i| (Key::from(&i.to_le_bytes()[..]), Blob::from(&b"later"[..]))));
        let set = FlatSet::from_records(&records);
        assert_eq!(set.len(), n as usize);
        for i in 0..n {
            let want = if i % 1000 == 0 { b"later".to_vec() } else { i.to_be_bytes().to_vec() };
            assert_eq!(set.get(&i.to_le_bytes()).map(|v| v.to_vec()), Some(want), "key {i}");
        }
    }

    /// What the layout promises a broker's common record: an 8-byte key and a 32-byte
    /// value take 48 bytes of their bucket, and no allocation of their own.
    #[test]
    fn a_short_record_takes_its_bytes_and_a_header() {
        assert_eq!(record_size(8, 32), 48);
        assert_eq!(record_size(KEY_INLINE + 1, VALUE_INLINE + 1), 8 + 16 + 16);
    }
}
