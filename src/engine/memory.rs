//! In-memory copies of `ram` and `disc` tables, readable without locks.
//!
//! The copies are persistent (structure-sharing) maps. The single writer (the apply loop,
//! or the local-table writer) mutates a working [`MemState`] and publishes it with one
//! atomic pointer swap per batch, so a reader sees every transaction whole or not at all,
//! never blocks the writer, and never takes a lock: [`MemStore::load`] is a pointer load.

use super::catalog::{Catalog, TableIx};
use super::flat_map::{FlatMap, Key};
use super::flat_set::FlatSet;
use super::packed_bucket::ValueRef;
use super::index::SecondaryIndex;
use super::requests::Requests;
use super::table::{Index, Kind, ShardId, TableDef};
use super::topic_trie::{TopicTrie, is_wildcard};
use arc_swap::ArcSwap;
use std::sync::Arc;

pub use super::Blob;


/// One table's records, and the secondary indexes kept with them.
#[derive(Clone, Debug)]
pub struct MemTable {
    records: Records,
    indexes: Vec<SecondaryIndex>,
    /// A bag's recent values, shared by the records that repeat them.
    recent: Recent,
}

/// The records of one table, by kind.
#[derive(Clone, Debug)]
pub enum Records {
    /// A set: flat, short keys and values inline (see `engine::flat_set`).
    Set(FlatSet),
    Ordered(imbl::OrdMap<Blob, Blob>),
    Bag(FlatMap<Values>),
    /// A bag keyed by topic filters, with the trie of its wildcard keys.
    TopicBag(FlatMap<Values>, TopicTrie<Values>),
    /// A `disc_only` table on a core: nothing in memory.
    None,
}

impl MemTable {
    fn empty(def: &TableDef, in_memory: bool) -> Self {
        let records = match (in_memory, def.kind, def.index) {
            (false, _, _) => Records::None,
            (true, Kind::Bag, Index::Topic) => Records::TopicBag(Default::default(), TopicTrie::default()),
            (true, Kind::Set, _) => Records::Set(Default::default()),
            (true, Kind::OrderedSet, _) => Records::Ordered(Default::default()),
            (true, Kind::Bag, _) => Records::Bag(Default::default()),
        };
        let indexes =
            if in_memory { def.indexes.iter().map(|i| SecondaryIndex::new(&i.name, i.extractor, def.kind == Kind::Bag)).collect() } else { Vec::new() };
        MemTable { records, indexes, recent: Recent::default() }
    }

    /// The records, by kind.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Whether the records are held here (not a `disc_only` table on a core).
    pub fn is_held(&self) -> bool {
        !matches!(self.records, Records::None)
    }

    /// Whether this is an ordered set held here.
    pub fn is_ordered(&self) -> bool {
        matches!(self.records, Records::Ordered(_))
    }

    /// The secondary index at `position` of the table's declaration.
    #[cfg(any(test, feature = "test-util"))]
    pub fn index(&self, position: usize) -> Option<&SecondaryIndex> {
        self.indexes.get(position)
    }

    /// The secondary index named `name`.
    pub fn index_named(&self, name: &str) -> Option<&SecondaryIndex> {
        self.indexes.iter().find(|i| i.name() == name)
    }

    /// The hits `range` selects in the secondary index at `position` (none if there is
    /// no such index).
    pub fn index_hits(&self, position: usize, range: &super::index::IndexRange) -> Vec<super::index::IndexHit> {
        let mut out = Vec::new();
        if let Some(ix) = self.indexes.get(position) {
            ix.range(range, |i, k, v| {
                // A set's entry leaves the value to the table (always there: one state).
                let value = match v {
                    Some(v) => Some(Blob::from(v)),
                    None => self.get_one(k).map(ValueRef::to_blob),
                };
                if let Some(value) = value {
                    out.push(super::index::IndexHit { index_key: i.into(), key: k.into(), value });
                }
                true
            });
        }
        out
    }

    /// The wildcard index of a topic-keyed table.
    #[cfg(any(test, feature = "test-util"))]
    pub fn topic_trie(&self) -> Option<&TopicTrie<Values>> {
        match &self.records {
            Records::TopicBag(_, t) => Some(t),
            _ => None,
        }
    }

    /// The values stored under `key` (at most one for sets).
    pub fn get(&self, key: &[u8]) -> Vec<Blob> {
        match &self.records {
            Records::Set(m) => m.get(key).map(ValueRef::to_blob).into_iter().collect(),
            Records::Ordered(m) => m.get(key).cloned().into_iter().collect(),
            Records::Bag(m) | Records::TopicBag(m, _) => {
                m.get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
            }
            Records::None => Vec::new(),
        }
    }

    /// The one value of a set key (a bag's smallest), borrowed: its bytes without
    /// allocating, or [`ValueRef::to_blob`].
    pub fn get_one(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        match &self.records {
            Records::Set(m) => m.get(key),
            Records::Ordered(m) => m.get(key).map(ValueRef::from),
            Records::Bag(m) | Records::TopicBag(m, _) => m.get(key).and_then(|s| s.first()).map(ValueRef::from),
            Records::None => None,
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.records {
            Records::Set(m) => m.contains_key(key),
            Records::Ordered(m) => m.contains_key(key),
            Records::Bag(m) | Records::TopicBag(m, _) => m.contains_key(key),
            Records::None => false,
        }
    }

    /// Number of records (bag: key-value pairs).
    pub fn len(&self) -> usize {
        match &self.records {
            Records::Set(m) => m.len(),
            Records::Ordered(m) => m.len(),
            Records::Bag(m) | Records::TopicBag(m, _) => m.values().map(|s| s.len()).sum(),
            Records::None => 0,
        }
    }

    #[cfg(any(test, feature = "test-util", feature = "fuzzing"))]
    pub fn is_empty(&self) -> bool {
        match &self.records {
            // A bag drops a key with its last value.
            Records::Bag(m) | Records::TopicBag(m, _) => m.is_empty(),
            _ => self.len() == 0,
        }
    }

    /// Every record; ordered tables in key order, others in an unspecified order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], ValueRef<'_>)) {
        match &self.records {
            Records::Set(m) => m.iter().for_each(|(k, v)| f(k, v)),
            Records::Ordered(m) => m.iter().for_each(|(k, v)| f(k, v.into())),
            Records::Bag(m) | Records::TopicBag(m, _) => m.iter().for_each(|(k, s)| s.iter().for_each(|v| f(k, v.into()))),
            Records::None => {}
        }
    }

    /// The page of records `r` selects, in its order (see [`KeyRange`](super::KeyRange)).
    /// An ordered set reads its range; a hashed table selects from a pass over its records.
    /// Nothing for a table not held here.
    pub fn range_read(&self, r: &super::KeyRange) -> Vec<(Blob, Blob)> {
        use std::ops::Bound;
        if r.is_empty() || r.limit == Some(0) {
            return Vec::new();
        }
        match &self.records {
            Records::Ordered(m) => {
                let to_blob = |b: &Bound<Vec<u8>>| match b {
                    Bound::Unbounded => Bound::Unbounded,
                    Bound::Included(k) => Bound::Included(Blob::from(&k[..])),
                    Bound::Excluded(k) => Bound::Excluded(Blob::from(&k[..])),
                };
                let (mut lo, mut hi) = (to_blob(&r.start), to_blob(&r.end));
                // The cursor narrows the side the read moves away from.
                if let Some((k, _)) = &r.after {
                    let cursor = Bound::Excluded(Blob::from(&k[..]));
                    let key_of = |b: &Bound<Blob>| match b {
                        Bound::Included(x) | Bound::Excluded(x) => Some(x.clone()),
                        Bound::Unbounded => None,
                    };
                    if r.reverse {
                        if key_of(&hi).is_none_or(|h| h[..] >= k[..]) {
                            hi = cursor;
                        }
                    } else if key_of(&lo).is_none_or(|l| l[..] <= k[..]) {
                        lo = cursor;
                    }
                }
                let (lo_k, hi_k) = (&lo, &hi);
                let empty = match (lo_k, hi_k) {
                    (Bound::Included(a), Bound::Included(b)) => a > b,
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a >= b,
                    _ => false,
                };
                if empty {
                    return Vec::new();
                }
                let limit = r.limit.unwrap_or(usize::MAX);
                let take = |(k, v): (&Blob, &Blob)| (k.clone(), v.clone());
                let iter = m.range((lo, hi));
                let page: Vec<(Blob, Blob)> = if r.reverse {
                    iter.rev().filter(|(k, v)| r.past_cursor(k, v, false)).take(limit).map(take).collect()
                } else {
                    iter.filter(|(k, v)| r.past_cursor(k, v, false)).take(limit).map(take).collect()
                };
                page
            }
            Records::None => Vec::new(),
            _ => {
                let by_value = matches!(self.records, Records::Bag(_) | Records::TopicBag(..));
                let mut within = Vec::new();
                self.for_each(|k, v| {
                    if r.contains_key(k) && r.past_cursor(k, &v, by_value) {
                        within.push((Blob::from(k), v.to_blob()));
                    }
                });
                r.select(within.into_iter(), by_value)
            }
        }
    }

    /// Records of an ordered table with keys in `[from, to)` (`to = None`: to the end).
    pub fn range(&self, from: &[u8], to: Option<&[u8]>) -> Vec<(Blob, Blob)> {
        use std::ops::Bound;
        match &self.records {
            Records::Ordered(m) => {
                let from: Blob = Arc::from(from);
                let hi = match to {
                    Some(t) => Bound::Excluded(Arc::from(t)),
                    None => Bound::Unbounded,
                };
                if let Bound::Excluded(hi) = &hi
                    && *hi <= from
                {
                    return Vec::new();
                }
                m.range((Bound::Included(from), hi)).map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.put_keyed(key, value, None);
    }

    /// [`MemTable::put`], with the new record's index keys when the caller computed them
    /// already (one list per index, as [`Catalog::check_keyed`](super::Catalog::check_keyed) does).
    /// Returns the key and value as stored (shared, not copied, by whoever keeps them
    /// too), or `None` for a table not held here.
    pub fn put_keyed(&mut self, key: &[u8], value: &[u8], keys: Option<super::catalog::NewKeys>) -> Option<(Blob, Blob)> {
        let value: Blob = match self.records {
            Records::Bag(_) | Records::TopicBag(..) => self.recent.share(value),
            _ => Arc::from(value),
        };
        let key: Blob = Arc::from(key);
        // The record replaced: a set's keeps its old bucket until the indexes have read it.
        let (mut replaced, mut replaced_ordered) = (None, None);
        let added = match &mut self.records {
            Records::Set(m) => {
                replaced = m.insert(&key, Some(&key), &value, Some(&value));
                true
            }
            Records::Ordered(m) => {
                replaced_ordered = m.insert(key.clone(), value.clone());
                true
            }
            Records::Bag(m) => bag_put(m, &key, &value),
            Records::TopicBag(m, trie) => {
                let added = bag_put(m, &key, &value);
                if added
                    && is_wildcard(&key)
                    && let Some(values) = m.get(&key)
                {
                    // The trie holds the filter's values too (and the key, shared with
                    // the table where the table does not hold it inline).
                    trie.set(&key, values.clone());
                }
                added
            }
            Records::None => return None,
        };
        let old: Option<&[u8]> = replaced.as_ref().map(|r| r.value().bytes()).or(replaced_ordered.as_deref());
        let mut keys = keys.filter(|k| k.len() == self.indexes.len()).map(Vec::into_iter);
        for ix in &mut self.indexes {
            let new_keys = keys.as_mut().and_then(Iterator::next);
            match &self.records {
                Records::Set(_) | Records::Ordered(_) => ix.replace(&key, old, &value, new_keys),
                _ if added => ix.insert(&key, &value, new_keys),
                _ => {}
            }
        }
        Some((key, value))
    }

    pub fn delete(&mut self, key: &[u8]) {
        let gone: Vec<Blob> = match &mut self.records {
            Records::Set(m) => {
                // The old bucket, kept until the indexes have read the value.
                if let Some(gone) = m.remove(key) {
                    for ix in &mut self.indexes {
                        ix.remove(key, gone.value().bytes());
                    }
                }
                return;
            }
            Records::Ordered(m) => m.remove(key).into_iter().collect(),
            Records::Bag(m) => m.remove(key).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
            Records::TopicBag(m, trie) => match m.remove(key) {
                Some(s) => {
                    if is_wildcard(key) {
                        trie.remove(key);
                    }
                    s.iter().cloned().collect()
                }
                None => Vec::new(),
            },
            Records::None => return,
        };
        for ix in &mut self.indexes {
            for v in &gone {
                ix.remove(key, v);
            }
        }
    }

    pub fn delete_object(&mut self, key: &[u8], value: &[u8]) {
        let (m, trie) = match &mut self.records {
            Records::Bag(m) => (m, None),
            Records::TopicBag(m, t) => (m, Some(t)),
            _ => return,
        };
        let (removed, now_empty) = match m.get_mut(key) {
            Some(set) => {
                let removed = set.remove(value);
                (removed, set.is_empty())
            }
            None => (false, false),
        };
        if now_empty {
            m.remove(key);
        }
        // The trie holds the filter's values too: drop the filter with its last value,
        // else give it what is left.
        if removed
            && let Some(t) = trie
            && is_wildcard(key)
        {
            if now_empty {
                t.remove(key);
            } else if let Some(values) = m.get(key) {
                t.set(&Blob::from(key), values.clone());
            }
        }
        if removed {
            for ix in &mut self.indexes {
                ix.remove(key, value);
            }
        }
    }

    /// Adds `records` (this table's, as stored: key and value; any order) as
    /// [`MemTable::put`] of each in turn would, built in bulk where the table is empty: a
    /// set's or a bag's map in one pass (`FlatSet::from_records`, `FlatMap::from_records`),
    /// a bag's values grouped per key first. What a restart's load from RocksDB and a
    /// bootstrap's snapshot use; their keys come as [`Key`]s, so a short one is never
    /// allocated on its own.
    pub fn load(&mut self, mut records: Vec<(Key, Blob)>) {
        let bulk = match &self.records {
            Records::Set(m) => m.is_empty(),
            Records::Bag(m) | Records::TopicBag(m, _) => m.is_empty(),
            Records::Ordered(_) | Records::None => false,
        };
        if !bulk {
            for (k, v) in records {
                self.put(k.as_bytes(), &v);
            }
            return;
        }
        let by_key = |a: &(Key, Blob), b: &(Key, Blob)| a.0.as_bytes().cmp(b.0.as_bytes());
        if matches!(self.records, Records::Set(_)) {
            // One record per key, the later one kept, as puts in turn would.
            if !records.is_sorted_by(|a, b| by_key(a, b).is_lt()) {
                records.reverse();
                records.sort_by(by_key);
                records.dedup_by(|later, earlier| later.0.as_bytes() == earlier.0.as_bytes());
            }
            let map = beside_indexes(&mut self.indexes, &records, || FlatSet::from_records(&records));
            self.records = Records::Set(map);
            return;
        }
        // A bag: values shared as `put` shares them, then grouped by key, each once.
        for (_, v) in records.iter_mut() {
            *v = self.recent.share(v);
        }
        let whole = |a: &(Key, Blob), b: &(Key, Blob)| by_key(a, b).then_with(|| a.1.cmp(&b.1));
        if !records.is_sorted_by(|a, b| whole(a, b).is_lt()) {
            records.sort_by(whole);
            records.dedup_by(|a, b| whole(a, b).is_eq());
        }
        let MemTable { records: held, indexes, .. } = self;
        let map = beside_indexes(indexes, &records, || {
            let mut grouped: Vec<(Key, Values)> = Vec::new();
            let mut rest = records.iter().peekable();
            while let Some((key, first)) = rest.next() {
                let mut values = vec![first.clone()];
                while let Some((_, v)) = rest.next_if(|(k, _)| k.as_bytes() == key.as_bytes()) {
                    values.push(v.clone());
                }
                grouped.push((key.clone(), Values::from_sorted(values)));
            }
            if let Records::TopicBag(_, trie) = held {
                for (k, values) in &grouped {
                    if is_wildcard(k.as_bytes()) {
                        trie.set(&k.to_blob(), values.clone());
                    }
                }
            }
            FlatMap::from_records(grouped)
        });
        if let Records::Bag(m) | Records::TopicBag(m, _) = held {
            *m = map;
        }
    }

    pub fn clear(&mut self) {
        match &mut self.records {
            Records::Set(m) => m.clear(),
            Records::Ordered(m) => m.clear(),
            Records::Bag(m) => m.clear(),
            Records::TopicBag(m, t) => {
                m.clear();
                t.clear();
            }
            Records::None => {}
        }
        self.indexes.iter_mut().for_each(SecondaryIndex::clear);
    }
}

/// Runs `build` while `indexes` take in `records` (each key once), on a thread of their own
/// when there are enough records for it to pay: a load's two halves that share nothing
/// (the table's map and its indexes), on two cores.
fn beside_indexes<R: Send>(indexes: &mut [SecondaryIndex], records: &[(Key, Blob)], build: impl FnOnce() -> R + Send) -> R {
    /// Fewer records load faster than a thread starts.
    const ASIDE: usize = 20_000;
    let take = |indexes: &mut [SecondaryIndex]| indexes.iter_mut().for_each(|ix| ix.load(records));
    if indexes.is_empty() || records.len() < ASIDE {
        take(indexes);
        return build();
    }
    super::beside::beside(|| take(indexes), build).1
}

/// Adds `value` under `key`; returns whether it was new.
fn bag_put(m: &mut FlatMap<Values>, key: &Blob, value: &Blob) -> bool {
    match m.get(key) {
        // Already there: nothing to copy.
        Some(values) if values.contains(value) => false,
        Some(_) => m.get_mut(key).is_some_and(|values| values.insert(value)),
        None => {
            m.insert(key, Some(key), Values::One(value.clone()));
            true
        }
    }
}

/// The values of one bag key, in byte order.
///
/// Most bag keys hold one value (a route's destination) or a handful (a client's proxy
/// subscriptions). One value is held as it is, with no allocation of its own; a handful
/// are one shared sorted slice, copied on change (one allocation per key). Beyond
/// [`Values::FEW`] values they move to a persistent ordered set, whose changes stay
/// logarithmic; an `OrdSet` for every key cost ~1 KiB of node even for one value.
#[derive(Clone, Debug)]
pub enum Values {
    One(Blob),
    Few(Arc<[Blob]>),
    Many(imbl::OrdSet<Blob>),
}

impl Values {
    /// The most values kept as a slice.
    pub const FEW: usize = 16;

    /// The values, in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &Blob> + '_ {
        let (few, many) = match self {
            Values::One(v) => (Some(std::slice::from_ref(v).iter()), None),
            Values::Few(v) => (Some(v.iter()), None),
            Values::Many(s) => (None, Some(s.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// `values`, sorted and each once, as held.
    fn from_sorted(mut values: Vec<Blob>) -> Values {
        match values.len() {
            1 => Values::One(values.remove(0)),
            n if n <= Self::FEW => Values::Few(values.into()),
            _ => Values::Many(values.into_iter().collect()),
        }
    }

    /// Whether `value` is one of them.
    pub fn contains(&self, value: &[u8]) -> bool {
        match self {
            Values::One(v) => v[..] == *value,
            Values::Few(v) => v.binary_search_by(|b| (**b).cmp(value)).is_ok(),
            Values::Many(s) => s.contains(value),
        }
    }

    /// The smallest value.
    pub fn first(&self) -> Option<&Blob> {
        match self {
            Values::One(v) => Some(v),
            Values::Few(v) => v.first(),
            Values::Many(s) => s.get_min(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::One(_) => 1,
            Values::Few(v) => v.len(),
            Values::Many(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `value`; returns whether it was new.
    fn insert(&mut self, value: &Blob) -> bool {
        match self {
            Values::One(v) => {
                if v[..] == value[..] {
                    return false;
                }
                let pair = if v[..] < value[..] { [v.clone(), value.clone()] } else { [value.clone(), v.clone()] };
                *self = Values::Few(Arc::from(pair));
                true
            }
            Values::Few(v) => {
                let Err(at) = v.binary_search_by(|b| (**b).cmp(&**value)) else { return false };
                if v.len() < Self::FEW {
                    let mut next = v.to_vec();
                    next.insert(at, value.clone());
                    *v = next.into();
                } else {
                    let mut set: imbl::OrdSet<Blob> = v.iter().cloned().collect();
                    set.insert(value.clone());
                    *self = Values::Many(set);
                }
                true
            }
            Values::Many(s) => s.insert(value.clone()).is_none(),
        }
    }

    /// Removes `value`; returns whether it was there. The last value's removal leaves
    /// an empty slice (the caller drops the key).
    fn remove(&mut self, value: &[u8]) -> bool {
        match self {
            Values::One(v) => {
                if v[..] != *value {
                    return false;
                }
                *self = Values::Few(Arc::from([]));
                true
            }
            Values::Few(v) => match v.binary_search_by(|b| (**b).cmp(value)) {
                Ok(at) => {
                    let mut next = v.to_vec();
                    next.remove(at);
                    *self = match next.len() {
                        1 => Values::One(next[0].clone()),
                        _ => Values::Few(next.into()),
                    };
                    true
                }
                Err(_) => false,
            },
            Values::Many(s) => {
                let removed = s.remove(value).is_some();
                if s.len() <= Self::FEW / 2 {
                    *self = Values::Few(s.iter().cloned().collect::<Vec<_>>().into());
                }
                removed
            }
        }
    }
}

/// Bag values met lately, shared instead of copied: a bag's values repeat across its keys
/// (every route to one node has the same destination), so a value equal to a recent one
/// is one more reference, not one more allocation. Holds at most [`Recent::SLOTS`] short
/// values.
#[derive(Clone, Debug, Default)]
struct Recent {
    slots: [Option<Blob>; Recent::SLOTS],
    next: usize,
}

impl Recent {
    const SLOTS: usize = 8;
    /// Longer values are not looked for (they rarely repeat, and comparing costs).
    const LONGEST: usize = 96;

    fn share(&mut self, value: &[u8]) -> Blob {
        if value.len() > Self::LONGEST {
            return Arc::from(value);
        }
        if let Some(b) = self.slots.iter().flatten().find(|b| b[..] == *value) {
            return b.clone();
        }
        let b: Blob = Arc::from(value);
        self.slots[self.next % Self::SLOTS] = Some(b.clone());
        self.next = self.next.wrapping_add(1);
        b
    }
}

/// Which tables a node holds in memory: a core, those not `disc_only` (the others are
/// read from RocksDB); a replicant, every table of the shards it follows (it has no disc
/// copy) and nothing of the others.
#[derive(Clone, Debug, Default)]
pub struct Holding {
    all_in_memory: bool,
    /// `None`: every shard.
    shards: Option<Arc<[ShardId]>>,
}

impl Holding {
    /// A core's.
    pub fn core() -> Self {
        Holding::default()
    }

    /// A replicant's following `shards` (empty: all).
    pub fn replicant(shards: &[ShardId]) -> Self {
        Holding { all_in_memory: true, shards: (!shards.is_empty()).then(|| shards.into()) }
    }

    /// Whether the node follows `shard`.
    pub fn follows(&self, shard: ShardId) -> bool {
        self.shards.as_ref().is_none_or(|s| s.contains(&shard))
    }

    /// Whether `def`'s records are held in memory here.
    pub fn in_memory(&self, def: &TableDef) -> bool {
        if self.all_in_memory { self.follows(def.shard) } else { def.in_memory() }
    }
}

/// All in-memory tables at one applied index, with the catalog they were applied under.
#[derive(Clone, Debug)]
pub struct MemState {
    /// The last Raft log index whose effects this state includes (0: none).
    pub applied: u64,
    /// The tables, in the positions of `tables`.
    pub catalog: Arc<Catalog>,
    pub tables: Vec<MemTable>,
    /// Request ids applied (replicated tables only): see `engine::requests`.
    pub requests: Requests,
    /// Which tables this node holds.
    pub holding: Holding,
}

impl MemState {
    /// `catalog`'s tables, empty, held as `holding` says.
    pub fn with_holding(catalog: Arc<Catalog>, holding: Holding) -> Self {
        let tables = catalog.defs().iter().map(|d| MemTable::empty(d, holding.in_memory(d))).collect();
        MemState { applied: 0, catalog, tables, requests: Requests::default(), holding }
    }

    /// Tables as a core holds them: `disc_only` tables are not in memory.
    #[cfg(any(test, feature = "test-util"))]
    pub fn empty(catalog: &Catalog) -> Self {
        Self::with_holding(Arc::new(catalog.clone()), Holding::core())
    }

    /// Every table in memory, `disc_only` ones included (a replicant has no disc).
    #[cfg(any(test, feature = "test-util"))]
    pub fn empty_all_in_memory(catalog: &Catalog) -> Self {
        Self::with_holding(Arc::new(catalog.clone()), Holding::replicant(&[]))
    }

    pub fn table(&self, ix: TableIx) -> &MemTable {
        &self.tables[ix]
    }

    /// Adds table `def` (its name must be new), empty.
    pub fn add_table(&mut self, def: TableDef) {
        self.tables.push(MemTable::empty(&def, self.holding.in_memory(&def)));
        self.catalog = Arc::new(self.catalog.created(def));
    }

    /// Removes the table at `ix` with its records.
    pub fn drop_table(&mut self, ix: TableIx) {
        self.tables.remove(ix);
        self.catalog = Arc::new(self.catalog.dropped(ix));
    }
}

/// The published state: one writer stores, any number of readers load.
#[derive(Debug)]
pub struct MemStore {
    current: ArcSwap<MemState>,
}

impl MemStore {
    pub fn new(state: MemState) -> Self {
        MemStore { current: ArcSwap::from_pointee(state) }
    }

    /// A consistent view of every table; hold it as long as needed, it never changes.
    pub fn load(&self) -> arc_swap::Guard<Arc<MemState>> {
        self.current.load()
    }

    /// A full handle on the current state (for long scans or snapshots).
    pub fn snapshot(&self) -> Arc<MemState> {
        self.current.load_full()
    }

    pub fn publish(&self, state: MemState) {
        self.current.store(Arc::new(state));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::table::{Storage, TableDef};

    #[test]
    fn published_views_are_immutable() {
        let cat = Catalog::new(vec![
            TableDef::replicated("s", Kind::Set, Storage::Ram),
            TableDef::replicated("b", Kind::Bag, Storage::Ram),
            TableDef::replicated("o", Kind::OrderedSet, Storage::Disc),
        ])
        .unwrap();
        let store = MemStore::new(MemState::empty(&cat));
        let before = store.snapshot();
        let mut w = (*before).clone();
        w.tables[0].put(b"k", b"v");
        w.tables[1].put(b"k", b"a");
        w.tables[1].put(b"k", b"b");
        w.tables[1].put(b"k", b"a");
        for k in [b"c", b"a", b"b"] {
            w.tables[2].put(k, b"x");
        }
        w.applied = 3;
        store.publish(w);
        assert!(before.tables[0].get(b"k").is_empty(), "old view changed");
        let now = store.load();
        assert_eq!(now.applied, 3);
        assert_eq!(now.tables[0].get_one(b"k").map(|v| v.bytes()), Some(&b"v"[..]));
        assert_eq!(now.tables[1].len(), 2, "bag keeps distinct values only");
        let keys: Vec<_> = now.tables[2].range(b"a", Some(b"c")).into_iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, vec![b'a', b'b']);
        let mut w = (**now).clone();
        w.tables[1].delete_object(b"k", b"a");
        w.tables[1].delete_object(b"k", b"b");
        assert!(!w.tables[1].contains(b"k"), "empty bag key removed");
    }

    /// Readers that load views while the writer applies and publishes see every entry
    /// whole: each entry `i` sets ten keys of a set to `i`, adds `i` to ten keys of a bag
    /// and adds 40 new keys to both (so both tables grow, splitting buckets and adding
    /// pages and middle nodes, under the readers). A view applied up to `i` holds exactly
    /// what entries `1..=i` wrote, however long the reader keeps it.
    #[test]
    fn readers_see_only_whole_entries_while_the_tables_grow() {
        const ENTRIES: u64 = 1500;
        let cat = Catalog::new(vec![
            TableDef::replicated("s", Kind::Set, Storage::Ram),
            TableDef::replicated("b", Kind::Bag, Storage::Ram),
        ])
        .unwrap();
        let store = Arc::new(MemStore::new(MemState::empty(&cat)));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let check = |view: &MemState| {
            let i = view.applied;
            let (set, bag) = (&view.tables[0], &view.tables[1]);
            for g in 0..10u8 {
                let want = (i > 0).then(|| i.to_be_bytes().to_vec());
                assert_eq!(set.get_one(&[b'g', g]).map(|v| v.to_vec()), want, "set key {g} at {i}");
                assert_eq!(bag.get(&[b'g', g]).len() as u64, i, "bag key {g} at {i}");
            }
            assert_eq!(set.len() as u64, 10 * u64::from(i > 0) + 40 * i, "set at {i}");
            assert_eq!(bag.len() as u64, 10 * i + 40 * i, "bag at {i}");
            i
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mut seen, mut kept) = (0u64, Vec::new());
                    while !done.load(std::sync::atomic::Ordering::Acquire) {
                        let view = store.snapshot();
                        let at = check(&view);
                        assert!(at >= seen, "went back from {seen} to {at}");
                        seen = at;
                        if kept.len() < 20 && at % 97 == 0 {
                            kept.push(view);
                        }
                    }
                    // Views kept while the writer went on still read as they were.
                    kept.iter().for_each(|v| {
                        check(v);
                    });
                    seen
                })
            })
            .collect();
        let mut w = (**store.load()).clone();
        for i in 1..=ENTRIES {
            for g in 0..10u8 {
                w.tables[0].put(&[b'g', g], &i.to_be_bytes());
                w.tables[1].put(&[b'g', g], &i.to_be_bytes());
            }
            for j in 0..40u64 {
                let k = format!("fill-{i}-{j}-and-long-enough-to-be-shared");
                w.tables[0].put(k.as_bytes(), b"x");
                w.tables[1].put(k.as_bytes(), b"x");
            }
            w.applied = i;
            store.publish(w.clone());
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        for r in readers {
            r.join().expect("a reader saw a torn view");
        }
        assert_eq!(check(&store.load()), ENTRIES);
    }

    mod bulk_load {
        use super::*;
        use crate::engine::index::IndexRange;
        use crate::engine::{Extractor, IndexKeys};
        use proptest::prelude::*;

        fn first_byte(_k: &[u8], v: &[u8], out: &mut IndexKeys) -> Result<(), String> {
            if let Some(b) = v.first() {
                out.push([*b]);
            }
            Ok(())
        }

        /// A set and a bag with an index each, a topic-keyed bag and an ordered set.
        fn tables() -> Catalog {
            let ix = Extractor::new("first", first_byte);
            Catalog::new(vec![
                TableDef::replicated("s", Kind::Set, Storage::Ram).with_index("first", ix),
                TableDef::replicated("b", Kind::Bag, Storage::Ram).with_index("first", ix),
                TableDef::replicated("t", Kind::Bag, Storage::Ram).with_topic_index(),
                TableDef::replicated("o", Kind::OrderedSet, Storage::Ram),
            ])
            .unwrap()
        }

        fn key() -> impl Strategy<Value = Vec<u8>> {
            // Topic filters and names over a few words (wildcards among them), short and
            // long (inline and shared keys).
            let word = prop_oneof![Just("a"), Just("b"), Just("+"), Just("#"), Just("a-rather-long-level-name")];
            prop::collection::vec(word, 1..4).prop_map(|w| w.join("/").into_bytes())
        }

        /// Everything a reader can ask of a table, in a form to compare.
        fn read_all(t: &MemTable, keys: &[Vec<u8>]) -> Vec<String> {
            let mut out = Vec::new();
            let mut records = Vec::new();
            t.for_each(|k, v| records.push((k.to_vec(), v.to_vec())));
            records.sort();
            out.push(format!("len {} records {records:?}", t.len()));
            for k in keys {
                out.push(format!("{k:?}: {:?} {:?} {}", t.get(k), t.get_one(k), t.contains(k)));
            }
            if t.index_named("first").is_some() {
                out.push(format!("{:?}", t.index_hits(0, &IndexRange::all())));
            }
            if let Records::TopicBag(_, trie) = t.records() {
                for topic in ["a", "a/b", "b/a/a", "a/a-rather-long-level-name/b"] {
                    let mut found = Vec::new();
                    trie.matches(topic.as_bytes(), |f, vs| found.push((f.to_vec(), vs.iter().cloned().collect::<Vec<_>>())));
                    found.sort();
                    out.push(format!("{topic}: {found:?}"));
                }
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// A restart's and a bootstrap's load (every record at once, in any order)
            /// gives the tables that putting the records one by one gives: records,
            /// lookups, secondary index and topic trie alike; and both go on alike after.
            #[test]
            fn a_bulk_load_gives_the_tables_puts_in_turn_give(
                records in prop::collection::vec((0usize..4, key(), prop::collection::vec(0u8..4, 0..3)), 0..400),
                shuffle in any::<u64>(),
                after in prop::collection::vec((0usize..4, key(), prop::collection::vec(0u8..4, 0..3)), 0..20),
            ) {
                let cat = tables();
                let mut one_by_one = MemState::empty(&cat);
                for (t, k, v) in &records {
                    one_by_one.tables[*t].put(k, v);
                }
                // Any order: the stream's or RocksDB's, shuffled.
                let mut order: Vec<_> = records.to_vec();
                let mut x = shuffle | 1;
                for i in (1..order.len()).rev() {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    order.swap(i, (x >> 33) as usize % (i + 1));
                }
                // A set keeps a key's later value: give the bulk load the same last word.
                let last: std::collections::HashMap<(usize, Vec<u8>), Vec<u8>> =
                    records.iter().filter(|(t, ..)| *t == 0 || *t == 3).map(|(t, k, v)| ((*t, k.clone()), v.clone())).collect();
                let mut bulk = MemState::empty(&cat);
                for t in 0..4 {
                    let mine: Vec<(Key, Blob)> = order
                        .iter()
                        .filter(|(u, ..)| *u == t)
                        .filter(|(u, k, v)| !(*u == 0 || *u == 3) || last.get(&(*u, k.clone())) == Some(v))
                        .map(|(_, k, v)| (Key::from(&k[..]), Blob::from(&v[..])))
                        .collect();
                    bulk.tables[t].load(mine);
                }
                let keys: Vec<Vec<u8>> = records.iter().chain(&after).map(|(_, k, _)| k.clone()).collect();
                for t in 0..4 {
                    prop_assert_eq!(read_all(&bulk.tables[t], &keys), read_all(&one_by_one.tables[t], &keys), "table {}", t);
                }
                for (t, k, v) in &after {
                    for state in [&mut bulk, &mut one_by_one] {
                        if v.first() == Some(&0) {
                            state.tables[*t].delete(k);
                        } else {
                            state.tables[*t].put(k, v);
                        }
                    }
                }
                for t in 0..4 {
                    prop_assert_eq!(read_all(&bulk.tables[t], &keys), read_all(&one_by_one.tables[t], &keys), "table {} after", t);
                }
            }
        }

        /// Past the size where the indexes are built on a thread of their own, the tables
        /// still equal those of puts in turn.
        #[test]
        fn a_large_bulk_load_builds_its_indexes_aside_alike() {
            let cat = tables();
            let (mut bulk, mut one_by_one) = (MemState::empty(&cat), MemState::empty(&cat));
            let n = 30_000u32;
            let record = |i: u32| (Blob::from(&i.to_be_bytes()[..]), Blob::from(&[(i % 7) as u8, (i % 3) as u8][..]));
            for t in [0, 1] {
                for i in 0..n {
                    let (k, v) = record(i);
                    one_by_one.tables[t].put(&k, &v);
                    // A bag's key holds two values.
                    one_by_one.tables[t].put(&k, b"second");
                }
                let mut records: Vec<(Key, Blob)> = (0..n).map(|i| (Key::from(record(i).0), record(i).1)).collect();
                records.extend((0..n).map(|i| (Key::from(record(i).0), Blob::from(&b"second"[..]))));
                bulk.tables[t].load(records);
                let keys: Vec<Vec<u8>> = (0..n).step_by(97).map(|i| i.to_be_bytes().to_vec()).collect();
                assert_eq!(read_all(&bulk.tables[t], &keys), read_all(&one_by_one.tables[t], &keys), "table {t}");
            }
            assert!(bulk.tables[1].index(0).is_some_and(|ix| ix.len() == 2 * n as usize));
        }

        /// A set given one key twice keeps the later value, in bulk as in turn.
        #[test]
        fn a_bulk_load_keeps_a_keys_later_value() {
            let cat = tables();
            let mut state = MemState::empty(&cat);
            let b = |s: &str| Blob::from(s.as_bytes());
            state.tables[0].load(vec![(b("k").into(), b("first")), (b("a").into(), b("x")), (b("k").into(), b("second"))]);
            assert_eq!(state.tables[0].get_one(b"k").map(|v| v.to_vec()), Some(b"second".to_vec()));
            assert_eq!(state.tables[0].len(), 2);
            let hits = state.tables[0].index_hits(0, &IndexRange::all());
            assert_eq!(hits.len(), 2, "the index holds the kept value only: {hits:?}");
        }
    }

    /// A bag key's values stay a sorted set without duplicates whether held alone, kept
    /// as a slice or, past `Values::FEW`, as an ordered set, and move back when they shrink.
    #[test]
    fn bag_values_behave_as_a_set_across_every_representation() {
        // Fixed pseudo-random walks of inserts and deletes: over 40 values (to pass
        // `Values::FEW`), and over 3 (to go between one value, a few and none often).
        for (distinct, steps) in [(40u64, 2000), (3, 300)] {
            let cat = Catalog::new(vec![TableDef::replicated("b", Kind::Bag, crate::engine::Storage::Ram)]).unwrap();
            let mut w = MemState::empty(&cat);
            let mut model = std::collections::BTreeSet::new();
            let mut x = 7u64;
            let (mut peak, mut shrank_to_one, mut emptied) = (0, false, false);
            for step in 0..steps {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = format!("v{:02}", (x >> 33) % distinct);
                let before = model.len();
                if step % 3 == 2 {
                    w.tables[0].delete_object(b"k", v.as_bytes());
                    model.remove(&v);
                } else {
                    w.tables[0].put(b"k", v.as_bytes());
                    model.insert(v);
                }
                shrank_to_one |= before == 2 && model.len() == 1;
                emptied |= before == 1 && model.is_empty();
                let got: Vec<String> =
                    w.tables[0].get(b"k").iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
                assert_eq!(got, model.iter().cloned().collect::<Vec<_>>(), "step {step}");
                assert_eq!(w.tables[0].len(), model.len());
                assert_eq!(w.tables[0].contains(b"k"), !model.is_empty());
                assert_eq!(w.tables[0].get_one(b"k").map(|b| b.to_vec()), model.first().map(|v| v.clone().into_bytes()));
                peak = peak.max(model.len());
            }
            if distinct > Values::FEW as u64 {
                assert!(peak > Values::FEW, "the walk never left the slice representation");
            } else {
                assert!(shrank_to_one && emptied, "the walk never went from two values to one and from one to none");
            }
        }
    }

    /// Records of a bag that repeat a value share one copy of it.
    #[test]
    fn repeated_bag_values_are_shared_not_copied() {
        let cat = Catalog::new(vec![TableDef::replicated("b", Kind::Bag, crate::engine::Storage::Ram)]).unwrap();
        let mut w = MemState::empty(&cat);
        for i in 0..100u32 {
            w.tables[0].put(&i.to_be_bytes(), format!("node{}", i % 3).as_bytes());
        }
        let (a, b) = (w.tables[0].get_one(&0u32.to_be_bytes()).unwrap(), w.tables[0].get_one(&3u32.to_be_bytes()).unwrap());
        assert!(Arc::ptr_eq(&a.to_blob(), &b.to_blob()), "two records with one value hold one copy");
        let long = vec![b'x'; Recent::LONGEST + 1];
        w.tables[0].put(b"l1", &long);
        w.tables[0].put(b"l2", &long);
        assert_eq!(w.tables[0].get_one(b"l2").map(|b| b.to_vec()), Some(long));
    }

    mod range_reads {
        use super::super::*;
        use crate::engine::table::{Storage, TableDef};
        use crate::engine::{Catalog, KeyRange};
        use proptest::prelude::*;
        use std::collections::BTreeSet;
        use std::ops::Bound;

        fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
            crate::engine::range::tests::bound_over(10)
        }

        proptest! {
            /// Every kind of table answers a range read as its sorted records would, and
            /// pages concatenate to the whole range, both ways.
            #[test]
            fn range_reads_answer_as_the_sorted_records(
                records in prop::collection::vec((0u8..10, 0u8..3), 0..40),
                start in bound(),
                end in bound(),
                page in 1usize..6,
                reverse in any::<bool>(),
                kind in prop::sample::select(vec![Kind::Set, Kind::OrderedSet, Kind::Bag]),
            ) {
                let cat = Catalog::new(vec![TableDef::replicated("t", kind, Storage::Ram)]).unwrap();
                let mut state = MemState::empty(&cat);
                let mut model: BTreeSet<(Vec<u8>, Vec<u8>)> = BTreeSet::new();
                for (k, v) in &records {
                    let (k, v) = (vec![b'a' + k], vec![*v]);
                    state.tables[0].put(&k, &v);
                    if kind != Kind::Bag {
                        model.retain(|(mk, _)| *mk != k);
                    }
                    model.insert((k, v));
                }
                let r = KeyRange { start, end, limit: None, reverse, after: None };
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().filter(|(k, _)| r.contains_key(k)).cloned().collect();
                if reverse { want.reverse(); }
                let plain = |v: Vec<(Blob, Blob)>| v.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect::<Vec<_>>();
                prop_assert_eq!(plain(state.tables[0].range_read(&r)), want.clone());
                let mut got = Vec::new();
                let mut p = KeyRange { limit: Some(page), ..r.clone() };
                loop {
                    let part = state.tables[0].range_read(&p);
                    got.extend(plain(part.clone()));
                    match part.last() {
                        Some(last) if part.len() == page => p = p.after(last),
                        _ => break,
                    }
                }
                prop_assert_eq!(got, want);
            }
        }
    }
}
