//! Secondary indexes of in-memory tables: what a read asks of one ([`IndexRange`]), what
//! it finds ([`IndexHit`]), and the index itself ([`SecondaryIndex`]).
//!
//! An index is a persistent ordered set of `(index key, record key, value)` entries, one
//! per index key its [`Extractor`] computes for a record (a bag: for each of a key's
//! values). It is part of the [`MemTable`](super::memory::MemTable) it indexes, changed by
//! the same ops in the same apply and published with it, so a reader sees a table and its
//! indexes at one applied index; it is rebuilt from the records whenever the table is
//! loaded (start, snapshot install, replicant bootstrap). Nothing of it is on disc.

use super::Blob;
use super::table::Extractor;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// One record found through an index: the index key that led to it, and the record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexHit {
    /// The index key (as the extractor computed it).
    pub index_key: Blob,
    /// The record's key.
    pub key: Blob,
    /// The record's value (for a bag: the value that gave this index key).
    pub value: Blob,
}

/// Which entries of an index to read: index keys within `start`..`end`, in index-key order
/// (then record key, then value), after the cursor `after` if set, at most `limit`.
///
/// Pages: read with a limit, then again with [`IndexRange::after`] the last hit, until a
/// page comes back shorter than the limit.
///
/// ```
/// use mnema::IndexRange;
/// use std::ops::Bound;
/// // Deadlines up to and including `now`, 500 at a time.
/// let now: u64 = 1_700_000_000_000;
/// let due = IndexRange::up_to(now.to_be_bytes()).limit(500);
/// assert_eq!(due.end, Bound::Included(now.to_be_bytes().to_vec()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRange {
    /// The lowest index key.
    pub start: Bound<Vec<u8>>,
    /// The highest index key.
    pub end: Bound<Vec<u8>>,
    /// At most this many hits (`None`: all).
    pub limit: Option<usize>,
    /// Only entries after this one: `(index key, record key, value)` of a previous hit.
    pub after: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
}

impl Default for IndexRange {
    fn default() -> Self {
        IndexRange { start: Bound::Unbounded, end: Bound::Unbounded, limit: None, after: None }
    }
}

impl IndexRange {
    /// Every entry.
    pub fn all() -> Self {
        Self::default()
    }

    /// The entries whose index key is `key`.
    pub fn exact(key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        IndexRange { start: Bound::Included(key.clone()), end: Bound::Included(key), ..Self::default() }
    }

    /// The entries whose index key is within `start`..`end`.
    pub fn between(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        IndexRange { start, end, ..Self::default() }
    }

    /// The entries whose index key is at most `end`.
    pub fn up_to(end: impl Into<Vec<u8>>) -> Self {
        IndexRange { end: Bound::Included(end.into()), ..Self::default() }
    }

    /// At most `n` hits.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Only the entries after `hit` (the last of the previous page).
    pub fn after(mut self, hit: &IndexHit) -> Self {
        self.after = Some((hit.index_key.to_vec(), hit.key.to_vec(), hit.value.to_vec()));
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    ikey: Blob,
    key: Blob,
    value: Blob,
}

impl Entry {
    /// The smallest entry whose index key is `ikey`.
    fn first_of(ikey: &[u8]) -> Entry {
        let empty: Blob = Blob::from(&[][..]);
        Entry { ikey: Blob::from(ikey), key: empty.clone(), value: empty }
    }

    /// The smallest entry whose index key is greater than `ikey` (`ikey` followed by a 0
    /// byte is the smallest byte string greater than it).
    fn first_after(ikey: &[u8]) -> Entry {
        let mut next = Vec::with_capacity(ikey.len() + 1);
        next.extend_from_slice(ikey);
        next.push(0);
        Self::first_of(&next)
    }
}

/// One index of a table, with the code that computes its keys.
#[derive(Clone)]
pub struct SecondaryIndex {
    name: std::sync::Arc<str>,
    extractor: Extractor,
    entries: imbl::OrdSet<Entry>,
}

impl std::fmt::Debug for SecondaryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecondaryIndex({}: {:?}, {} entries)", self.name, self.extractor, self.entries.len())
    }
}

impl SecondaryIndex {
    /// An empty index named `name`, computed by `extractor`.
    pub fn new(name: &str, extractor: Extractor) -> Self {
        SecondaryIndex { name: name.into(), extractor, entries: imbl::OrdSet::new() }
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the entries of the record `key` → `value`. A record the extractor refuses gets
    /// none (the catalog refuses such writes before they are applied; this covers records
    /// stored before the index existed).
    pub fn insert(&mut self, key: &Blob, value: &Blob) {
        if let Ok(ikeys) = self.extractor.keys(key, value) {
            for ikey in ikeys {
                self.entries.insert(Entry { ikey: Blob::from(ikey), key: key.clone(), value: value.clone() });
            }
        }
    }

    /// Removes the entries of the record `key` → `value`.
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        if let Ok(ikeys) = self.extractor.keys(key, value) {
            for ikey in ikeys {
                self.entries.remove(&Entry { ikey: Blob::from(ikey), key: Blob::from(key), value: Blob::from(value) });
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries = imbl::OrdSet::new();
    }

    /// Calls `found` with every entry `range` selects, in order, until it returns `false`
    /// or `range.limit` entries were given.
    pub fn range(&self, range: &IndexRange, mut found: impl FnMut(&Blob, &Blob, &Blob) -> bool) {
        let lower = match &range.start {
            Bound::Unbounded => None,
            Bound::Included(k) => Some(Entry::first_of(k)),
            Bound::Excluded(k) => Some(Entry::first_after(k)),
        };
        let upper = match &range.end {
            Bound::Unbounded => None,
            Bound::Included(k) => Some(Entry::first_after(k)),
            Bound::Excluded(k) => Some(Entry::first_of(k)),
        };
        let after = range.after.as_ref().map(|(i, k, v)| Entry {
            ikey: Blob::from(&i[..]),
            key: Blob::from(&k[..]),
            value: Blob::from(&v[..]),
        });
        // Entries from `lo` on (exclusive when the cursor is the lower bound), below `hi`.
        let (lo, exclusive) = match (lower, after) {
            (Some(l), Some(a)) if a >= l => (Some(a), true),
            (Some(l), _) => (Some(l), false),
            (None, Some(a)) => (Some(a), true),
            (None, None) => (None, false),
        };
        if let (Some(lo), Some(hi)) = (&lo, &upper)
            && lo >= hi
        {
            return;
        }
        let start = match lo {
            None => Bound::Unbounded,
            Some(e) if exclusive => Bound::Excluded(e),
            Some(e) => Bound::Included(e),
        };
        let end = match upper {
            None => Bound::Unbounded,
            Some(e) => Bound::Excluded(e),
        };
        let limit = range.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return;
        }
        let mut given = 0usize;
        for e in self.entries.range((start, end)) {
            if !found(&e.ikey, &e.key, &e.value) {
                return;
            }
            given += 1;
            if given >= limit {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::table::IndexKeys;

    /// Each comma-separated part of the value is an index key.
    fn parts(_k: &[u8], v: &[u8], out: &mut IndexKeys) -> Result<(), String> {
        if v == b"bad" {
            return Err("bad".into());
        }
        v.split(|b| *b == b',').filter(|p| !p.is_empty()).for_each(|p| out.push(p));
        Ok(())
    }

    fn hits(ix: &SecondaryIndex, range: &IndexRange) -> Vec<(String, String)> {
        let mut out = Vec::new();
        ix.range(range, |i, k, _| {
            out.push((String::from_utf8_lossy(i).into_owned(), String::from_utf8_lossy(k).into_owned()));
            true
        });
        out
    }

    #[test]
    fn bounds_limits_and_cursors_select_exactly_their_entries() {
        let mut ix = SecondaryIndex::new("parts", Extractor::new("parts", parts));
        for (k, v) in [("r1", "a,b"), ("r2", "b"), ("r3", "c,a"), ("r4", "bad"), ("r5", "")] {
            ix.insert(&Blob::from(k.as_bytes()), &Blob::from(v.as_bytes()));
        }
        assert_eq!(ix.len(), 5, "a refused record and an empty one have no entries");
        let s = |x: &str| x.to_string();
        assert_eq!(hits(&ix, &IndexRange::exact("b")), vec![(s("b"), s("r1")), (s("b"), s("r2"))]);
        assert_eq!(hits(&ix, &IndexRange::exact("z")), vec![]);
        let mid = IndexRange::between(Bound::Excluded(b"a".to_vec()), Bound::Included(b"b".to_vec()));
        assert_eq!(hits(&ix, &mid).len(), 2);
        assert_eq!(hits(&ix, &IndexRange::up_to("a")).len(), 2);
        let reversed = IndexRange::between(Bound::Included(b"c".to_vec()), Bound::Excluded(b"a".to_vec()));
        assert!(hits(&ix, &reversed).is_empty(), "an empty range, not a panic");
        // Pages of two concatenate to the whole index.
        let mut all = Vec::new();
        let mut page = IndexRange::all().limit(2);
        loop {
            let mut got: Vec<IndexHit> = Vec::new();
            ix.range(&page, |i, k, v| {
                got.push(IndexHit { index_key: i.clone(), key: k.clone(), value: v.clone() });
                true
            });
            all.extend(got.iter().map(|h| h.key.to_vec()));
            match got.last() {
                Some(last) if got.len() == 2 => page = page.after(last),
                _ => break,
            }
        }
        assert_eq!(all, [b"r1", b"r3", b"r1", b"r2", b"r3"].map(|k| k.to_vec()));
        ix.remove(b"r1", b"a,b");
        assert_eq!(hits(&ix, &IndexRange::all()).len(), 3);
    }

    mod against_a_scan {
        use crate::engine::apply::{MemoryOnly, apply_txn};
        use crate::engine::memory::MemState;
        use crate::engine::table::IndexKeys;
        use crate::engine::{Catalog, Extractor, IndexHit, IndexRange, Kind, Scope, Storage, TableDef, Txn};
        use proptest::prelude::*;
        use std::ops::Bound;

        fn parts(_k: &[u8], v: &[u8], out: &mut IndexKeys) -> Result<(), String> {
            if v == b"bad" {
                return Err("bad".into());
            }
            v.split(|b| *b == b',').filter(|p| !p.is_empty()).for_each(|p| out.push(p));
            Ok(())
        }

        /// The first byte of the key, and every part of the value prefixed by it.
        fn mixed(k: &[u8], v: &[u8], out: &mut IndexKeys) -> Result<(), String> {
            if let Some(b) = k.first() {
                out.push([*b]);
            }
            v.split(|b| *b == b',').for_each(|p| out.push([k, p].concat()));
            Ok(())
        }

        const TABLES: [&str; 3] = ["s", "o", "b"];

        fn catalog() -> Catalog {
            let idx = |t: TableDef| {
                t.with_index("parts", Extractor::new("parts", parts)).with_index("mixed", Extractor::new("mixed", mixed))
            };
            Catalog::new(vec![
                idx(TableDef::replicated("s", Kind::Set, Storage::Ram)),
                idx(TableDef::replicated("o", Kind::OrderedSet, Storage::Disc)),
                idx(TableDef::replicated("b", Kind::Bag, Storage::Ram)),
            ])
            .unwrap()
        }

        #[derive(Clone, Debug)]
        enum Step {
            Put(usize, u8, &'static str),
            Delete(usize, u8),
            DeleteObject(u8, &'static str),
            Clear(usize),
            /// A put and a put of a refused value in one transaction: rejected whole.
            Rejected(usize, u8),
            /// A put behind a condition that does not hold.
            Conflicted(usize, u8),
            PutIfAbsent(usize, u8, &'static str),
        }

        fn value() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["a", "b", "a,b", "c,a", "", "b,c,d", "bad"])
        }

        fn step() -> impl Strategy<Value = Step> {
            let t = 0..3usize;
            let k = 0..6u8;
            prop_oneof![
                4 => (t.clone(), k.clone(), value()).prop_map(|(t, k, v)| Step::Put(t, k, v)),
                2 => (t.clone(), k.clone()).prop_map(|(t, k)| Step::Delete(t, k)),
                2 => (k.clone(), value()).prop_map(|(k, v)| Step::DeleteObject(k, v)),
                1 => t.clone().prop_map(Step::Clear),
                1 => (t.clone(), k.clone()).prop_map(|(t, k)| Step::Rejected(t, k)),
                1 => (t.clone(), k.clone()).prop_map(|(t, k)| Step::Conflicted(t, k)),
                1 => (0..2usize, k, value()).prop_map(|(t, k, v)| Step::PutIfAbsent(t, k, v)),
            ]
        }

        fn txn(s: &Step) -> Txn {
            let key = |k: &u8| vec![b'k', b'0' + k];
            match s {
                Step::Put(t, k, v) => Txn::new().put(TABLES[*t], key(k), *v),
                Step::Delete(t, k) => Txn::new().delete(TABLES[*t], key(k)),
                Step::DeleteObject(k, v) => Txn::new().delete_object("b", key(k), *v),
                Step::Clear(t) => Txn::new().clear(TABLES[*t]),
                Step::Rejected(t, k) => Txn::new().put(TABLES[*t], key(k), "z").put(TABLES[*t], key(&9), "bad"),
                Step::Conflicted(t, k) => {
                    let t = TABLES[*t % 2];
                    Txn::new().require_value(t, key(k), "never stored").put(t, key(k), "y")
                }
                Step::PutIfAbsent(t, k, v) => Txn::new().put_if_absent(TABLES[*t], key(k), *v),
            }
        }

        /// What the index must hold: every record's extracted keys, computed from a scan.
        fn scanned(state: &MemState, table: usize, extract: crate::engine::table::ExtractFn) -> Vec<IndexHit> {
            let mut out = Vec::new();
            state.tables[table].for_each(|k, v| {
                let mut keys = IndexKeys::default();
                if extract(k, v, &mut keys).is_ok() {
                    for i in keys.into_sorted() {
                        out.push(IndexHit { index_key: i.into(), key: k.clone(), value: v.clone() });
                    }
                }
            });
            out.sort();
            out
        }

        fn in_range(h: &IndexHit, r: &IndexRange) -> bool {
            let lo = match &r.start {
                Bound::Unbounded => true,
                Bound::Included(b) => h.index_key[..] >= b[..],
                Bound::Excluded(b) => h.index_key[..] > b[..],
            };
            let hi = match &r.end {
                Bound::Unbounded => true,
                Bound::Included(b) => h.index_key[..] <= b[..],
                Bound::Excluded(b) => h.index_key[..] < b[..],
            };
            lo && hi
        }

        fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
            let key = prop::sample::select(vec![&b""[..], b"a", b"b", b"c", b"k1", b"k3b", b"z"]).prop_map(|k| k.to_vec());
            prop_oneof![
                Just(Bound::Unbounded),
                key.clone().prop_map(Bound::Included),
                key.prop_map(Bound::Excluded),
            ]
        }

        proptest! {
            #[test]
            fn every_index_answers_as_a_scan_after_any_ops(
                steps in prop::collection::vec(step(), 1..60),
                ranges in prop::collection::vec((bound(), bound(), proptest::option::of(0..5usize)), 1..6),
            ) {
                let cat = catalog();
                let mut state = MemState::empty(&cat);
                for s in &steps {
                    apply_txn(Scope::Replicated, &mut state, &mut MemoryOnly, &txn(s)).unwrap();
                    for (t, name) in TABLES.iter().enumerate() {
                        for (pos, extract) in [(0, parts as crate::engine::table::ExtractFn), (1, mixed)] {
                            let want = scanned(&state, t, extract);
                            prop_assert_eq!(state.tables[t].index_hits(pos, &IndexRange::all()), want, "table {} index {} after {:?}", name, pos, s);
                        }
                    }
                }
                for t in 0..3 {
                    let all = scanned(&state, t, parts);
                    for (start, end, limit) in &ranges {
                        let r = IndexRange { start: start.clone(), end: end.clone(), limit: *limit, after: None };
                        let mut want: Vec<IndexHit> = all.iter().filter(|h| in_range(h, &r)).cloned().collect();
                        if let Some(n) = limit { want.truncate(*n); }
                        prop_assert_eq!(state.tables[t].index_hits(0, &r), want);
                        // Pages of 2 concatenate to the unlimited answer.
                        let whole = state.tables[t].index_hits(0, &IndexRange { limit: None, ..r.clone() });
                        let mut paged = Vec::new();
                        let mut page = IndexRange { limit: Some(2), ..r.clone() };
                        loop {
                            let got = state.tables[t].index_hits(0, &page);
                            paged.extend(got.iter().cloned());
                            match got.last() { Some(last) if got.len() == 2 => page = page.after(last), _ => break }
                        }
                        prop_assert_eq!(paged, whole);
                    }
                }
            }
        }
    }
}
