//! Paged, ordered reads of a table: which records ([`KeyRange`]: key bounds, a limit, a
//! cursor, a direction) and how a table held in memory answers them.
//!
//! Records come in `(key, value)` order (a set has one value per key; a bag's values of one
//! key come in value order), or the reverse. A page ends after `limit` records; the next
//! page starts after the last record of the previous one ([`KeyRange::after`]), so pages
//! read while the table changes concatenate without a record missed or repeated among those
//! that stayed throughout.
//!
//! An ordered set reads its range directly; a set or bag (hashed) and a bag on disc (whose
//! stored keys do not sort by key) select the page from a pass over the table: O(records)
//! per page.

use super::Blob;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// Which records of a table to read, in key order: keys within `start`..`end`, after the
/// cursor `after` if set, at most `limit`, ascending or (`reverse`) descending.
///
/// ```
/// use mnema::KeyRange;
/// // The first page of keys starting with `client-`, 100 at a time.
/// let page = KeyRange::prefix("client-").limit(100);
/// assert_eq!(page.limit, Some(100));
/// let last_ten = KeyRange::all().reverse().limit(10);
/// assert!(last_ten.reverse);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    /// The lowest key.
    pub start: Bound<Vec<u8>>,
    /// The highest key.
    pub end: Bound<Vec<u8>>,
    /// At most this many records (`None`: all).
    pub limit: Option<usize>,
    /// Descending order.
    pub reverse: bool,
    /// Only records after this one in the read's order: `(key, value)` of the last record
    /// of the previous page.
    pub after: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for KeyRange {
    fn default() -> Self {
        KeyRange { start: Bound::Unbounded, end: Bound::Unbounded, limit: None, reverse: false, after: None }
    }
}

impl KeyRange {
    /// Every record.
    pub fn all() -> Self {
        Self::default()
    }

    /// The records whose key is within `start`..`end`.
    pub fn between(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        KeyRange { start, end, ..Self::default() }
    }

    /// The records whose key starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let prefix = prefix.into();
        let end = match super::keys::prefix_end(&prefix) {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        KeyRange { start: Bound::Included(prefix), end, ..Self::default() }
    }

    /// At most `n` records.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// In descending order.
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// Only the records after `record` (the last of the previous page) in the read's order.
    pub fn after(mut self, record: &(Blob, Blob)) -> Self {
        self.after = Some((record.0.to_vec(), record.1.to_vec()));
        self
    }

    /// Whether `key` is within the bounds.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        let lo = match &self.start {
            Bound::Unbounded => true,
            Bound::Included(s) => key >= &s[..],
            Bound::Excluded(s) => key > &s[..],
        };
        let hi = match &self.end {
            Bound::Unbounded => true,
            Bound::Included(e) => key <= &e[..],
            Bound::Excluded(e) => key < &e[..],
        };
        lo && hi
    }

    /// Whether the record `(key, value)` comes after the cursor in the read's order (every
    /// record does without a cursor). `by_value`: the table holds many values per key (a
    /// bag); a set's cursor is its key alone (the value may have changed since).
    pub fn past_cursor(&self, key: &[u8], value: &[u8], by_value: bool) -> bool {
        match &self.after {
            None => true,
            Some((k, v)) => {
                let ord = if by_value { (key, value).cmp(&(&k[..], &v[..])) } else { key.cmp(&k[..]) };
                if self.reverse { ord.is_lt() } else { ord.is_gt() }
            }
        }
    }

    /// Whether the bounds leave no key (a start above the end).
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s >= e,
            _ => false,
        }
    }

    /// The page `records` (in any order) give: those within the bounds and past the
    /// cursor, in the read's order, at most `limit`. O(records), plus sorting the page.
    pub fn select(&self, records: impl Iterator<Item = (Blob, Blob)>, by_value: bool) -> Vec<(Blob, Blob)> {
        let mut out: Vec<(Blob, Blob)> =
            records.filter(|(k, v)| self.contains_key(k) && self.past_cursor(k, v, by_value)).collect();
        let order = |a: &(Blob, Blob), b: &(Blob, Blob)| {
            let o = (&a.0[..], &a.1[..]).cmp(&(&b.0[..], &b.1[..]));
            if self.reverse { o.reverse() } else { o }
        };
        if let Some(n) = self.limit
            && n < out.len()
        {
            if n == 0 {
                return Vec::new();
            }
            out.select_nth_unstable_by(n - 1, order);
            out.truncate(n);
        }
        out.sort_unstable_by(order);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A bound of a range read over the one-letter keys `a`, `b`, … (`keys` of them).
    pub(crate) fn bound_over(keys: u8) -> impl Strategy<Value = Bound<Vec<u8>>> {
        let key = (0u8..keys).prop_map(|k| vec![b'a' + k]);
        prop_oneof![Just(Bound::Unbounded), key.clone().prop_map(Bound::Included), key.prop_map(Bound::Excluded)]
    }

    fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
        bound_over(6)
    }

    proptest! {
        /// Pages from `select` concatenate to the whole range in order, both ways.
        #[test]
        fn pages_concatenate_to_the_sorted_range(
            records in prop::collection::btree_set((0u8..8, 0u8..3), 0..30),
            start in bound(),
            end in bound(),
            page in 1usize..5,
            reverse in any::<bool>(),
        ) {
            let recs: Vec<(Blob, Blob)> =
                records.iter().map(|(k, v)| (Blob::from(&[b'a' + k][..]), Blob::from(&[*v][..]))).collect();
            let r = KeyRange { start, end, limit: None, reverse, after: None };
            let mut want: Vec<(Blob, Blob)> = recs.iter().filter(|(k, _)| r.contains_key(k)).cloned().collect();
            if reverse { want.reverse(); }
            prop_assert_eq!(r.select(recs.iter().cloned(), true), want.clone());
            let mut got = Vec::new();
            let mut p = KeyRange { limit: Some(page), ..r.clone() };
            loop {
                let part = p.select(recs.iter().cloned(), true);
                got.extend(part.iter().cloned());
                match part.last() {
                    Some(last) if part.len() == page => p = p.after(last),
                    _ => break,
                }
            }
            prop_assert_eq!(got, want);
        }
    }
}
