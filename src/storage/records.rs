//! Reading table records straight from RocksDB, for `disc_only` tables.

use super::db::{CF_DATA, CF_LOCAL, Db};
use crate::engine::keys::{bag_key_prefix, prefix_end, record_key, split_record, table_prefix};
use crate::engine::{Blob, KeyRange, Kind, Scope, TableDef};
use crate::error::Result;

fn cf_of(def: &TableDef) -> &'static str {
    match def.scope {
        Scope::Local => CF_LOCAL,
        Scope::Replicated => CF_DATA,
    }
}

/// Calls `f(rest of key, value)` for every record whose key starts with `prefix`.
fn scan_prefix(db: &Db, def: &TableDef, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
    for item in db.raw().prefix_iterator_cf(db.cf(cf_of(def))?, prefix) {
        let (k, v) = item.map_err(|e| db.err("scan", e))?;
        if !k.starts_with(prefix) {
            break;
        }
        f(&k[prefix.len()..], &v)?;
    }
    Ok(())
}

/// The values under `key`.
pub fn get(db: &Db, def: &TableDef, key: &[u8]) -> Result<Vec<Blob>> {
    if def.kind == Kind::Bag {
        let mut out = Vec::new();
        scan_prefix(db, def, &bag_key_prefix(&def.name, key), |value, _| {
            out.push(Blob::from(value));
            Ok(())
        })?;
        return Ok(out);
    }
    let v = db
        .raw()
        .get_cf(db.cf(cf_of(def))?, record_key(&def.name, def.kind, key, b""))
        .map_err(|e| db.err("read", e))?;
    Ok(v.map(|v| Blob::from(v.as_slice())).into_iter().collect())
}

/// Every record of the table, in key order.
pub fn dump(db: &Db, def: &TableDef) -> Result<Vec<(Blob, Blob)>> {
    let mut out = Vec::new();
    scan_prefix(db, def, &table_prefix(&def.name), |rest, stored| {
        let (key, value) = split_record(def.kind, rest, stored)?;
        out.push((Blob::from(key), Blob::from(value)));
        Ok(())
    })?;
    Ok(out)
}

/// Records of a set or ordered set whose keys start with `prefix`, in key order.
pub fn prefix(db: &Db, def: &TableDef, key_prefix: &[u8]) -> Result<Vec<(Blob, Blob)>> {
    let mut out = Vec::new();
    let mut p = table_prefix(&def.name);
    p.extend_from_slice(key_prefix);
    scan_prefix(db, def, &p, |rest, stored| {
        let mut key = key_prefix.to_vec();
        key.extend_from_slice(rest);
        out.push((Blob::from(key), Blob::from(stored)));
        Ok(())
    })?;
    Ok(out)
}

/// How many records the table holds (a pass over its keys).
pub fn count(db: &Db, def: &TableDef) -> Result<u64> {
    let mut n = 0u64;
    scan_prefix(db, def, &table_prefix(&def.name), |_, _| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// The page of records `r` selects (see [`KeyRange`]): a set or ordered set read by
/// seeking in RocksDB, forward or backward; a bag (its stored keys sort by key length
/// first) selected from a pass over its records.
pub fn range(db: &Db, def: &TableDef, r: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
    use rocksdb::{Direction, IteratorMode};
    use std::ops::Bound;
    if r.is_empty() || r.limit == Some(0) {
        return Ok(Vec::new());
    }
    if def.kind == Kind::Bag {
        return Ok(r.select(dump(db, def)?.into_iter(), true));
    }
    let prefix = table_prefix(&def.name);
    let stored = |key: &[u8]| record_key(&def.name, def.kind, key, b"");
    // Seek to the bound the read starts from, or to the cursor when it is further in.
    let cursor = r.after.as_ref().map(|(k, _)| &k[..]);
    let from = if r.reverse {
        let end = match &r.end {
            Bound::Included(e) | Bound::Excluded(e) => Some(&e[..]),
            Bound::Unbounded => None,
        };
        match (end, cursor) {
            (Some(e), Some(c)) => stored(e.min(c)),
            (Some(k), None) | (None, Some(k)) => stored(k),
            (None, None) => prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]),
        }
    } else {
        let start = match &r.start {
            Bound::Included(s) | Bound::Excluded(s) => Some(&s[..]),
            Bound::Unbounded => None,
        };
        match (start, cursor) {
            (Some(s), Some(c)) => stored(s.max(c)),
            (Some(k), None) | (None, Some(k)) => stored(k),
            (None, None) => prefix.clone(),
        }
    };
    let mode = IteratorMode::From(&from, if r.reverse { Direction::Reverse } else { Direction::Forward });
    let limit = r.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for item in db.raw().iterator_cf(db.cf(cf_of(def))?, mode) {
        let (k, v) = item.map_err(|e| db.err("range", e))?;
        let Some(key) = k.strip_prefix(&prefix[..]) else { break };
        // Past the range in the read's direction: done; before it (an excluded bound): skip.
        let beyond = if r.reverse {
            match &r.start {
                Bound::Included(s) => key < &s[..],
                Bound::Excluded(s) => key <= &s[..],
                Bound::Unbounded => false,
            }
        } else {
            match &r.end {
                Bound::Included(e) => key > &e[..],
                Bound::Excluded(e) => key >= &e[..],
                Bound::Unbounded => false,
            }
        };
        if beyond {
            break;
        }
        if !r.contains_key(key) || !r.past_cursor(key, &v, false) {
            continue;
        }
        out.push((Blob::from(key), Blob::from(&v[..])));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
