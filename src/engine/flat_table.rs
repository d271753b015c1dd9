//! [`Table`]: the bucket array the flat tables share (a set's [`FlatSet`], a bag's
//! [`FlatMap`]), persistent and grown one bucket at a time.
//!
//! **Layout.** Buckets are found by the low bits of the key's hash (linear hashing: the
//! table grows one bucket at a time, splitting the next bucket in order whenever the
//! records outnumber [`LOAD`] per bucket, so no insert rehashes the whole table). Their
//! slots live in pages of [`FAN`] slots, [`FAN`] pages to a middle node, under one top
//! array. What a bucket holds, and how, is the [`Bucket`] type's: this module only finds,
//! copies, splits and builds buckets.
//!
//! **Persistence.** Cloning a table copies a few words and one reference; a change copies
//! what it touches that a published copy shares (the top array, one middle node, one
//! page) and mutates in place what it already owns. Copying a node takes a reference on
//! each of its children, a cache miss each where the child is cold, which is why the nodes
//! are small (a 512-slot page cost an apply twice the old map's time).
//!
//! **Hashes** are 32 bits (the low half of the hasher's), so a bucket can keep each of
//! its records' hash in 4 bytes. Past 2³² buckets (17 billion records) a split moves
//! nothing and the table stays correct, only slower.
//!
//! [`FlatSet`]: super::flat_set::FlatSet
//! [`FlatMap`]: super::flat_map::FlatMap

use super::KeyHasher;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Records per bucket, on average, before the table grows by one bucket.
pub const LOAD: usize = 4;
/// Slots per page, and pages per middle node (a power of two).
pub const FAN: usize = 64;
const FAN_BITS: u32 = FAN.trailing_zeros();

/// What a [`Table`] needs of its buckets.
pub trait Bucket: Clone {
    /// A bucket of no records.
    fn empty() -> Self;
    /// Records held.
    fn record_count(&self) -> usize;
    /// This bucket's records parted by `bit` of their hashes: those without it, those with it.
    fn split(&self, bit: u64) -> (Self, Self);
}

/// [`FAN`] buckets' slots.
type Page<B> = Arc<[B]>;
/// [`FAN`] pages.
type Mid<B> = Arc<[Page<B>]>;

/// The persistent bucket array of a flat table; see the module's docs.
#[derive(Clone)]
pub struct Table<B> {
    /// The middle nodes; bucket `a`'s slot is `top[a / FAN²][a / FAN % FAN][a % FAN]`.
    top: Arc<[Mid<B>]>,
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

impl<B: Bucket> Default for Table<B> {
    fn default() -> Self {
        Table { top: Arc::from([empty_mid()]), buckets: 1, level: 0, split: 0, len: 0, hasher: KeyHasher::default() }
    }
}

/// A middle node of empty pages: one shared empty page (itself of one shared empty
/// bucket), copied where first changed.
fn empty_mid<B: Bucket>() -> Mid<B> {
    let bucket = B::empty();
    let page: Page<B> = (0..FAN).map(|_| bucket.clone()).collect();
    (0..FAN).map(|_| page.clone()).collect()
}

/// The top array holding `buckets` in address order, the last page and middle node
/// filled up with empty buckets.
fn assemble<B: Bucket>(buckets: Vec<B>) -> Arc<[Mid<B>]> {
    let empty = B::empty();
    let mut pages: Vec<Page<B>> = Vec::with_capacity(buckets.len().div_ceil(FAN));
    let mut page: Vec<B> = Vec::with_capacity(FAN);
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
    let empty_page: Page<B> = (0..FAN).map(|_| empty.clone()).collect();
    pages
        .chunks(FAN)
        .map(|c| c.iter().cloned().chain(std::iter::repeat_n(empty_page.clone(), FAN - c.len())).collect())
        .collect()
}

impl<B: Bucket> Table<B> {
    /// Records held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buckets in use.
    #[cfg(test)]
    pub fn bucket_count(&self) -> usize {
        self.buckets
    }

    /// Middle nodes in use.
    #[cfg(test)]
    pub fn middle_nodes(&self) -> usize {
        self.top.len()
    }

    /// `key`'s hash (32 bits; see the module's docs).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key) & u64::from(u32::MAX)
    }

    #[inline]
    fn address(&self, hash: u64) -> usize {
        let a = (hash & ((1u64 << self.level) - 1)) as usize;
        if a < self.split { (hash & ((1u64 << (self.level + 1)) - 1)) as usize } else { a }
    }

    #[inline]
    fn bucket(&self, address: usize) -> &B {
        &self.top[address >> (2 * FAN_BITS)][(address >> FAN_BITS) & (FAN - 1)][address & (FAN - 1)]
    }

    /// The bucket of the records whose hash is `hash`.
    #[inline]
    pub fn bucket_of(&self, hash: u64) -> &B {
        self.bucket(self.address(hash))
    }

    /// The bucket at `address`, owned by this copy (the top array, its middle node and its
    /// page are copied first where a published copy shares them).
    fn bucket_mut(&mut self, address: usize) -> &mut B {
        let top = owned_slice(&mut self.top);
        let mid = owned_slice(&mut top[address >> (2 * FAN_BITS)]);
        let page = owned_slice(&mut mid[(address >> FAN_BITS) & (FAN - 1)]);
        &mut page[address & (FAN - 1)]
    }

    /// The slot of the bucket of the records whose hash is `hash`, owned by this copy (the
    /// bucket itself may still be shared: that is the bucket type's to copy).
    pub fn bucket_of_mut(&mut self, hash: u64) -> &mut B {
        self.bucket_mut(self.address(hash))
    }

    /// Counts a record added (its bucket already holds it), and grows the table by a
    /// bucket if the records now outnumber [`LOAD`] per bucket.
    pub fn added(&mut self) {
        self.len += 1;
        if self.len > LOAD * self.buckets {
            self.grow();
        }
    }

    /// Counts a record removed (its bucket no longer holds it).
    pub fn removed(&mut self) {
        self.len -= 1;
    }

    /// Removes every record.
    pub fn clear(&mut self) {
        let hasher = self.hasher;
        *self = Table { hasher, ..Table::default() };
    }

    /// The buckets in use, in address order.
    pub fn buckets(&self) -> impl Iterator<Item = &B> + '_ {
        self.top.iter().flat_map(|m| m.iter()).flat_map(|p| p.iter()).take(self.buckets)
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
        let (stay, go) = self.bucket(from).split(1u64 << self.level);
        *self.bucket_mut(from) = stay;
        *self.bucket_mut(to) = go;
        self.buckets += 1;
        self.split += 1;
        if self.split == 1 << self.level {
            self.level += 1;
            self.split = 0;
        }
    }

    /// A table of `records` built in one pass: sized for them at once, the records placed
    /// by bucket with a counting sort (no comparison sort), each bucket made once by
    /// `make` from its records (hash and record, in the order given), no split; a large
    /// load's buckets made on two threads.
    pub fn build<R: Send>(
        records: Vec<R>,
        key: impl Fn(&R) -> &[u8],
        make: impl Fn(&mut [Option<(u64, R)>]) -> B + Sync,
    ) -> Self
    where
        B: Send,
    {
        /// Fewer records build faster than a thread starts.
        const TWO_THREADS: usize = 100_000;
        let hasher = KeyHasher::default();
        let n = records.len();
        let buckets = n.div_ceil(LOAD).max(1);
        let level = buckets.ilog2();
        let mut table = Table { top: Arc::from([]), buckets, level, split: buckets - (1 << level), len: n, hasher };
        let hashed: Vec<(u64, R)> = records.into_iter().map(|r| (table.hash(key(&r)), r)).collect();
        // Where each bucket's records start among all of them, in address order.
        let mut starts = vec![0usize; buckets + 1];
        for (hash, _) in &hashed {
            starts[table.address(*hash) + 1] += 1;
        }
        for a in 0..buckets {
            starts[a + 1] += starts[a];
        }
        // Each record to its bucket's place, in the order given.
        let mut slots: Vec<Option<(u64, R)>> = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        let mut next = starts[..buckets].to_vec();
        for (hash, r) in hashed {
            let a = table.address(hash);
            slots[next[a]] = Some((hash, r));
            next[a] += 1;
        }
        let made = |slots: &mut [Option<(u64, R)>], starts: &[usize]| -> Vec<B> {
            let base = starts.first().copied().unwrap_or(0);
            starts.windows(2).map(|w| make(&mut slots[w[0] - base..w[1] - base])).collect()
        };
        let out: Vec<B> = if n < TWO_THREADS {
            made(&mut slots, &starts)
        } else {
            let mid = buckets / 2;
            let (low, high) = slots.split_at_mut(starts[mid]);
            let (low_starts, high_starts) = (&starts[..=mid], &starts[mid..]);
            let (high, mut out) = super::beside::beside(|| made(high, high_starts), || made(low, low_starts));
            out.extend(high);
            out
        };
        // A key given twice is one record.
        table.len = out.iter().map(Bucket::record_count).sum();
        table.top = assemble(out);
        table
    }
}

/// `slice`, owned by the caller: copied (each element cloned) if shared.
pub(super) fn owned_slice<T: Clone>(slice: &mut Arc<[T]>) -> &mut [T] {
    if Arc::get_mut(slice).is_none() {
        *slice = slice.iter().cloned().collect();
    }
    Arc::get_mut(slice).expect("just made unique")
}

/// The model both flat tables' property tests check them against: every operation
/// answers as a `BTreeMap` would, and a copy kept before later changes reads as it was.
#[cfg(test)]
pub(super) mod model {
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A flat table as the model drives it: keys to byte values.
    pub trait Driven: Clone {
        /// Sets `key`; the value it replaced.
        fn put(&mut self, key: &[u8], value: &[u8]) -> Option<Vec<u8>>;
        /// Removes `key`; its value.
        fn delete(&mut self, key: &[u8]) -> Option<Vec<u8>>;
        fn clear(&mut self);
        fn count(&self) -> usize;
        fn value(&self, key: &[u8]) -> Option<Vec<u8>>;
        /// Every record, in any order.
        fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
    }

    pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    #[derive(Clone, Debug)]
    pub enum Op {
        Put(Vec<u8>, Vec<u8>),
        Delete(Vec<u8>),
        /// Keep the table as it is now, to check later that no change reached it.
        Keep,
        Clear,
    }

    /// Operations on keys and values drawn from `key` and `value` (a small key space, so
    /// that puts replace and deletes hit).
    pub fn op(
        key: impl Strategy<Value = Vec<u8>> + Clone,
        value: impl Strategy<Value = Vec<u8>>,
    ) -> impl Strategy<Value = Op> {
        prop_oneof![
            120 => (key.clone(), value).prop_map(|(k, v)| Op::Put(k, v)),
            50 => key.prop_map(Op::Delete),
            10 => Just(Op::Keep),
            1 => Just(Op::Clear),
        ]
    }

    /// `table` answers as `model` does, record by record.
    pub fn check<T: Driven>(table: &T, model: &Model) -> Result<(), TestCaseError> {
        prop_assert_eq!(table.count(), model.len());
        let mut all = table.records();
        all.sort();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(all, expected);
        for (k, v) in model {
            prop_assert_eq!(table.value(k), Some(v.clone()));
        }
        Ok(())
    }

    /// Runs `ops` on `table` and on `model` (what `table` holds to begin with), checking
    /// each answer, then the end state and every copy kept on the way.
    pub fn run<T: Driven>(mut table: T, mut model: Model, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut kept: Vec<(T, Model)> = Vec::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let old = table.put(&k, &v);
                    prop_assert_eq!(old, model.insert(k, v));
                }
                Op::Delete(k) => prop_assert_eq!(table.delete(&k), model.remove(&k)),
                Op::Keep => kept.push((table.clone(), model.clone())),
                Op::Clear => {
                    table.clear();
                    model.clear();
                }
            }
            prop_assert_eq!(table.count(), model.len());
        }
        check(&table, &model)?;
        for (table, model) in &kept {
            check(table, model)?;
        }
        Ok(())
    }
}
