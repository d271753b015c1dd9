//! The RocksDB side of applying transactions: a [`Sink`] that fills one write batch.
//!
//! `engine::apply` drives memory and this sink with the same ops in the same order;
//! nothing is written to RocksDB until the caller writes the batch, so a transaction is
//! all-or-nothing on disk as in memory.

use super::db::Db;
use crate::engine::apply::{Loader, Sink};
use crate::engine::keys::{bag_key_prefix, prefix_end, record_key, table_prefix};
use crate::engine::memory::{Holding, MemState};
use crate::engine::requests::Change;
use crate::engine::{Catalog, Kind, TableDef};
use crate::error::Result;
use rocksdb::{ColumnFamily, WriteBatch};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Pending RocksDB writes of one apply call, readable for `put_if_absent` on `disc_only` tables.
pub struct DiscWriter<'a> {
    db: &'a Db,
    cf: &'a ColumnFamily,
    pub batch: WriteBatch,
    /// `disc_only` record key → its value after the pending writes (`None`: deleted).
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    cleared: HashSet<String>,
}

impl<'a> DiscWriter<'a> {
    pub fn new(db: &'a Db, cf: &'a ColumnFamily) -> Self {
        DiscWriter { db, cf, batch: WriteBatch::default(), overlay: HashMap::new(), cleared: HashSet::new() }
    }

    fn delete_prefix(&mut self, prefix: &[u8]) {
        match prefix_end(prefix) {
            Some(end) => self.batch.delete_range_cf(self.cf, prefix, &end[..]),
            // Unreachable for our layouts (the first byte is a length < 0xff), but stay correct.
            None => self.batch.delete_range_cf(self.cf, prefix, &[0xffu8; 16][..]),
        }
    }
}

impl Sink for DiscWriter<'_> {
    fn put(&mut self, def: &TableDef, key: &[u8], value: &[u8]) {
        let k = record_key(&def.name, def.kind, key, value);
        let stored: &[u8] = if def.kind == Kind::Bag { b"" } else { value };
        self.batch.put_cf(self.cf, &k, stored);
        if def.storage == crate::engine::Storage::DiscOnly {
            self.overlay.insert(k, Some(stored.to_vec()));
        }
    }

    fn delete(&mut self, def: &TableDef, key: &[u8]) {
        if def.kind == Kind::Bag {
            let p = bag_key_prefix(&def.name, key);
            self.delete_prefix(&p);
        } else {
            let k = record_key(&def.name, def.kind, key, b"");
            self.batch.delete_cf(self.cf, &k);
            if def.storage == crate::engine::Storage::DiscOnly {
                self.overlay.insert(k, None);
            }
        }
    }

    fn delete_object(&mut self, def: &TableDef, key: &[u8], value: &[u8]) {
        self.batch.delete_cf(self.cf, record_key(&def.name, def.kind, key, value));
    }

    fn clear(&mut self, def: &TableDef) {
        let prefix = table_prefix(&def.name);
        self.delete_prefix(&prefix);
        self.overlay.retain(|k, _| !k.starts_with(&prefix));
        self.cleared.insert(def.name.clone());
    }

    /// Whether a set key is present, counting the pending writes.
    fn contains(&self, def: &TableDef, key: &[u8]) -> Result<bool> {
        Ok(self.value(def, key)?.is_some())
    }

    /// A set key's value, counting the pending writes.
    fn value(&self, def: &TableDef, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = record_key(&def.name, def.kind, key, b"");
        if let Some(v) = self.overlay.get(&k) {
            return Ok(v.clone());
        }
        if self.cleared.contains(&def.name) {
            return Ok(None);
        }
        self.db.raw().get_cf(self.cf, &k).map_err(|e| self.db.err("read record", e))
    }

    fn raw(&mut self, changes: Vec<Change>) {
        for c in changes {
            match c {
                Change::Put(k, v) => self.batch.put_cf(self.cf, k, v),
                Change::Delete(k) => self.batch.delete_cf(self.cf, k),
                Change::DeleteRange(from, to) => self.batch.delete_range_cf(self.cf, from, to),
            }
        }
    }
}

/// What [`load_memory`] loaded.
pub struct Loaded {
    pub state: MemState,
    /// Tables with records but not in the catalog (left on disc, not loaded).
    pub unknown: BTreeSet<String>,
    /// Records loaded into the tables.
    pub records: usize,
}

/// Loads the tables held in memory from the records in `cf`: first the catalog records
/// (each adds its table to `catalog`, resolved with its code), then every table's.
pub fn load_memory(db: &Db, cf: &ColumnFamily, catalog: Arc<Catalog>, holding: Holding, applied: u64) -> Result<Loaded> {
    let mut state = MemState::with_holding(catalog, holding);
    state.applied = applied;
    let t0 = std::time::Instant::now();
    let mut loader = Loader::new(state);
    let catalog_prefix = table_prefix(crate::engine::catalog::TABLE);
    db.scan(cf, &catalog_prefix, None, |k, v| {
        if !k.starts_with(&catalog_prefix) {
            return Ok(false);
        }
        loader.record(k, v)?;
        Ok(true)
    })?;
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    db.scan(cf, b"", None, |k, v| {
        if k.starts_with(&catalog_prefix) {
            return Ok(true);
        }
        if let Some(name) = loader.record(k, v)?
            && unknown.insert(name.to_string())
        {
            tracing::warn!(table = name, "records of a table not in the catalog; left on disk, not loaded");
        }
        Ok(true)
    })?;
    let scanned = t0.elapsed();
    let records = loader.records();
    let state = loader.finish();
    tracing::debug!(scan_ms = scanned.as_millis() as u64, build_ms = (t0.elapsed() - scanned).as_millis() as u64, "loaded");
    Ok(Loaded { state, unknown, records })
}

/// The local tables as stored (`local` column family).
pub fn load_local(db: &Db, catalog: &Arc<Catalog>) -> Result<MemState> {
    Ok(load_memory(db, db.cf(super::db::CF_LOCAL)?, catalog.clone(), Holding::core(), 0)?.state)
}

/// Writes the catalog records of `defs` (synced): a store written before the catalog was
/// in the log holds its tables' records but no catalog; its tables were the ones every
/// node declared, which become its catalog.
pub fn adopt_declared(db: &Db, defs: &[TableDef]) -> Result<()> {
    let cf = db.cf(super::db::CF_DATA)?;
    let mut wb = WriteBatch::default();
    for def in defs {
        let decl = crate::engine::Declaration::of(def);
        wb.put_cf(cf, crate::engine::catalog::record_key(&def.name), crate::engine::catalog::encode_record(&decl)?);
    }
    db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| db.err("adopt the declared tables", e))
}

/// Applies `txn` of local tables to `work` and writes its disc side, synced: the one
/// write path of local tables.
pub fn apply_local(db: &Db, work: &mut MemState, txn: &crate::engine::Txn) -> Result<crate::engine::TxnOutcome> {
    let cf = db.cf(super::db::CF_LOCAL)?;
    let mut disc = DiscWriter::new(db, cf);
    let outcome = crate::engine::apply::apply_txn(crate::engine::Scope::Local, work, &mut disc, txn)?;
    if !disc.batch.is_empty() {
        db.raw().write_opt(disc.batch, &Db::sync_opts()).map_err(|e| db.err("local write", e))?;
    }
    Ok(outcome)
}
