//! Secondary indexes of in-memory tables: what a read asks of one ([`IndexRange`]), what
//! it finds ([`IndexHit`]), and the index itself ([`SecondaryIndex`]).
//!
//! An index is a persistent ordered set of `(index key, record key, value)` entries, one
//! per index key its [`Extractor`] computes for a record (a bag: for each of a key's
//! values), held packed (`engine::packed_set`: a leaf holds its entries' bytes one after
//! another, the beginning they share once, so a route's entry in `by_node` costs about its
//! filter and destination, not its node's name again and an allocation). It is part of
//! the [`MemTable`](super::memory::MemTable) it indexes, changed by
//! the same ops in the same apply and published with it, so a reader sees a table and its
//! indexes at one applied index; it is rebuilt from the records whenever the table is
//! loaded (start, snapshot install, replicant bootstrap). Nothing of it is on disc.

use super::Blob;
use super::packed_set::PackedSet;
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

/// One index entry, as one byte string that sorts as the tuple `(index key, record key,
/// value)` does: the index key with each 0 byte escaped as `00 FF` and ended by `00 00`,
/// then, for a set, the record key as it is; for a bag, the record key escaped and ended
/// the same way, then the value. A set's entries leave the value out (it is read from the
/// table when a hit is made), so an update whose index keys did not change leaves the index
/// alone; a bag's carry it, which tells a key's values apart. Entries of one index key
/// share their beginning, which the packed set holds once per leaf.
type Entry = Vec<u8>;

/// Appends `bytes` escaped and terminated (see [`Entry`]).
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The entry of `(ikey, key, value)`; `value` only for a bag's.
fn entry(ikey: &[u8], key: &[u8], value: Option<&[u8]>) -> Entry {
    let mut out = Vec::with_capacity(ikey.len() + key.len() + 4 + value.map_or(0, <[u8]>::len));
    entry_into(&mut out, ikey, key, value);
    out
}

/// Appends the entry of `(ikey, key, value)` to `out`.
fn entry_into(out: &mut Vec<u8>, ikey: &[u8], key: &[u8], value: Option<&[u8]>) {
    escape_into(out, ikey);
    match value {
        None => out.extend_from_slice(key),
        Some(v) => {
            escape_into(out, key);
            out.extend_from_slice(v);
        }
    }
}

/// The prefix of every entry whose index key is `ikey`, and (`after`) the smallest byte
/// string above all of them (and below every entry of a greater index key).
fn ikey_bound(ikey: &[u8], after: bool) -> Entry {
    let mut out = Vec::with_capacity(ikey.len() + 2);
    escape_into(&mut out, ikey);
    if after {
        // `00 00` ends this index key's entries; `00 01` is above them all, and below the
        // next index key (`00 FF` escapes a 0 byte, any other byte sorts above `00`).
        let last = out.len() - 1;
        out[last] = 1;
    }
    out
}

/// Splits an escaped, terminated part off the front of `bytes`: (its bytes, the rest).
fn unescape(bytes: &[u8]) -> Option<(std::borrow::Cow<'_, [u8]>, &[u8])> {
    let mut i = 0;
    let mut owned: Option<Vec<u8>> = None;
    loop {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(0), Some(0)) => {
                let part = match owned {
                    Some(v) => std::borrow::Cow::Owned(v),
                    None => std::borrow::Cow::Borrowed(&bytes[..i]),
                };
                return Some((part, &bytes[i + 2..]));
            }
            (Some(0), Some(0xFF)) => {
                let v = owned.get_or_insert_with(|| bytes[..i].to_vec());
                v.push(0);
                i += 2;
            }
            (Some(&b), _) if b != 0 => {
                if let Some(v) = owned.as_mut() {
                    v.push(b);
                }
                i += 1;
            }
            _ => return None,
        }
    }
}

/// One index of a table, with the code that computes its keys.
#[derive(Clone)]
pub struct SecondaryIndex {
    name: std::sync::Arc<str>,
    extractor: Extractor,
    /// Whether entries carry the value (a bag's).
    values: bool,
    entries: PackedSet,
}

impl std::fmt::Debug for SecondaryIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecondaryIndex({}: {:?}, {} entries)", self.name, self.extractor, self.entries.len())
    }
}

impl SecondaryIndex {
    /// An empty index named `name`, computed by `extractor`, of a bag (`values`: entries
    /// carry the value) or a set.
    pub fn new(name: &str, extractor: Extractor, values: bool) -> Self {
        SecondaryIndex { name: name.into(), extractor, values, entries: PackedSet::default() }
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of entries.
    #[cfg(any(test, feature = "test-util"))]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(any(test, feature = "test-util"))]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The index keys of a record (none for one the extractor refuses: the catalog
    /// refuses such writes before they are applied; this covers records stored before the
    /// index existed).
    fn keys(&self, key: &[u8], value: &[u8]) -> Vec<Vec<u8>> {
        self.extractor.keys(key, value).unwrap_or_default()
    }

    fn entry(&self, ikey: &[u8], key: &[u8], value: &[u8]) -> Entry {
        entry(ikey, key, self.values.then_some(value))
    }

    /// Adds the entries of the record `key` → `value` (its index keys `ikeys` when
    /// computed already).
    pub fn insert(&mut self, key: &[u8], value: &[u8], ikeys: Option<Vec<Vec<u8>>>) {
        for ikey in ikeys.unwrap_or_else(|| self.keys(key, value)) {
            let e = self.entry(&ikey, key, value);
            self.entries.insert(&e);
        }
    }

    /// Adds the entries of `records` (each key once), as [`SecondaryIndex::insert`] of each
    /// in turn would: when the index is empty (a restart's or a bootstrap's load), all
    /// computed into one buffer, sorted and packed in one pass, every leaf full.
    pub fn load<K: AsRef<[u8]>>(&mut self, records: &[(K, Blob)]) {
        if !self.entries.is_empty() {
            records.iter().for_each(|(k, v)| self.insert(k.as_ref(), v, None));
            return;
        }
        let mut buf = Vec::new();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(records.len());
        for (k, v) in records {
            let k = k.as_ref();
            for ikey in self.keys(k, v) {
                let start = buf.len();
                entry_into(&mut buf, &ikey, k, self.values.then_some(&v[..]));
                spans.push((start, buf.len()));
            }
        }
        spans.sort_unstable_by(|a, b| buf[a.0..a.1].cmp(&buf[b.0..b.1]));
        spans.dedup_by(|a, b| buf[a.0..a.1] == buf[b.0..b.1]);
        self.entries = PackedSet::from_sorted(spans.iter().map(|&(s, e)| &buf[s..e]));
    }

    /// Removes the entries of the record `key` → `value`.
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        for ikey in self.keys(key, value) {
            let e = self.entry(&ikey, key, value);
            self.entries.remove(&e);
        }
    }

    /// A set's record `key` changes from `old` to `new` (whose index keys are `ikeys` when
    /// computed already): only the index keys that differ change the index.
    pub fn replace(&mut self, key: &[u8], old: Option<&[u8]>, new: &[u8], ikeys: Option<Vec<Vec<u8>>>) {
        let before = old.map(|o| self.keys(key, o)).unwrap_or_default();
        let after = ikeys.unwrap_or_else(|| self.keys(key, new));
        // Both sorted: walk them together.
        let (mut i, mut j) = (0, 0);
        while i < before.len() || j < after.len() {
            let (b, a) = (before.get(i), after.get(j));
            if b.is_some() && b == a {
                i += 1;
                j += 1;
            } else if let Some(b) = b.filter(|b| a.is_none_or(|a| *b < a)) {
                let e = self.entry(b, key, new);
                self.entries.remove(&e);
                i += 1;
            } else if let Some(a) = a {
                let e = self.entry(a, key, new);
                self.entries.insert(&e);
                j += 1;
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Calls `found` with every entry `range` selects, in order, until it returns `false`
    /// or `range.limit` entries were given: its index key, record key, and (a bag's) value.
    pub fn range(&self, range: &IndexRange, mut found: impl FnMut(&[u8], &[u8], Option<&[u8]>) -> bool) {
        let lower = match &range.start {
            Bound::Unbounded => None,
            Bound::Included(k) => Some(ikey_bound(k, false)),
            Bound::Excluded(k) => Some(ikey_bound(k, true)),
        };
        let upper = match &range.end {
            Bound::Unbounded => None,
            Bound::Included(k) => Some(ikey_bound(k, true)),
            Bound::Excluded(k) => Some(ikey_bound(k, false)),
        };
        let after = range.after.as_ref().map(|(i, k, v)| self.entry(i, k, v));
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
        let start = match &lo {
            None => Bound::Unbounded,
            Some(e) if exclusive => Bound::Excluded(&e[..]),
            Some(e) => Bound::Included(&e[..]),
        };
        let end = match &upper {
            None => Bound::Unbounded,
            Some(e) => Bound::Excluded(&e[..]),
        };
        let limit = range.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return;
        }
        let mut given = 0usize;
        self.entries.range(start, end, |e| {
            // Entries are written here only; one that does not parse is passed over.
            let Some((ikey, rest)) = unescape(e) else { return true };
            let (key, value) = if self.values {
                let Some((key, value)) = unescape(rest) else { return true };
                (key, Some(value))
            } else {
                (std::borrow::Cow::Borrowed(rest), None)
            };
            if !found(&ikey, &key, value) {
                return false;
            }
            given += 1;
            given < limit
        });
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
        let mut ix = SecondaryIndex::new("parts", Extractor::new("parts", parts), true);
        for (k, v) in [("r1", "a,b"), ("r2", "b"), ("r3", "c,a"), ("r4", "bad"), ("r5", "")] {
            ix.insert(k.as_bytes(), v.as_bytes(), None);
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
                got.push(IndexHit { index_key: i.into(), key: k.into(), value: v.unwrap_or_default().into() });
                true
            });
            all.extend(got.iter().map(|h| h.key.to_vec()));
            match got.last() {
                Some(last) if got.len() == 2 => page = page.after(last),
                _ => break,
            }
        }
        assert_eq!(all, [b"r1", b"r3", b"r1", b"r2", b"r3"].map(|k| k.to_vec()));
        ix.remove(&Blob::from(&b"r1"[..]), &Blob::from(&b"a,b"[..]));
        assert_eq!(hits(&ix, &IndexRange::all()).len(), 3);
    }

    mod encoding {
        use super::super::{entry, ikey_bound, unescape};
        use proptest::prelude::*;

        fn bytes() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(prop_oneof![Just(0u8), Just(0xFFu8), Just(1u8), any::<u8>()], 0..6)
        }

        proptest! {
            /// Entries sort as their tuples do, parse back, and the index-key bounds take
            /// exactly the entries of that index key.
            #[test]
            fn entries_sort_as_their_tuples_and_bounds_take_exactly_one_index_key(
                a in (bytes(), bytes(), bytes()),
                b in (bytes(), bytes(), bytes()),
                bag in any::<bool>(),
            ) {
                let enc = |(i, k, v): &(Vec<u8>, Vec<u8>, Vec<u8>)| entry(i, k, bag.then_some(v.as_slice()));
                let tuple = |(i, k, v): &(Vec<u8>, Vec<u8>, Vec<u8>)| (i.clone(), k.clone(), if bag { v.clone() } else { vec![] });
                prop_assert_eq!(enc(&a).cmp(&enc(&b)), tuple(&a).cmp(&tuple(&b)));
                let e = enc(&a);
                let (ikey, rest) = unescape(&e).expect("parses");
                prop_assert_eq!(&ikey[..], &a.0[..]);
                if bag {
                    let (key, value) = unescape(rest).expect("parses");
                    prop_assert_eq!((&key[..], value), (&a.1[..], &a.2[..]));
                } else {
                    prop_assert_eq!(rest, &a.1[..]);
                }
                let (lo, hi) = (ikey_bound(&b.0, false), ikey_bound(&b.0, true));
                let within = lo <= e && e < hi;
                prop_assert_eq!(within, a.0 == b.0, "{:?} within the bounds of {:?}", a.0, b.0);
                if a.0 < b.0 { prop_assert!(e < lo); }
                if a.0 > b.0 { prop_assert!(e >= hi); }
            }
        }
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
                if extract(k, &v, &mut keys).is_ok() {
                    for i in keys.into_sorted() {
                        out.push(IndexHit { index_key: i.into(), key: k.into(), value: v.to_blob() });
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
