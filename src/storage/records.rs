//! Reading table records straight from RocksDB, for `disc_only` tables.

use super::db::{CF_DATA, CF_LOCAL, Db, storage_err};
use crate::engine::keys::{bag_key_prefix, record_key, split_record, table_prefix};
use crate::engine::{Blob, Kind, Scope, TableDef};
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
        let (k, v) = item.map_err(|e| storage_err("scan", e))?;
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
        .map_err(|e| storage_err("read", e))?;
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
