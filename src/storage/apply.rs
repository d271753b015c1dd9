//! Applying one transaction to the working in-memory state and to a RocksDB write batch.
//!
//! Both sides see the same ops in the same order; nothing is written to RocksDB until the
//! caller writes the batch, so a transaction is all-or-nothing on disk as in memory.

use super::db::{Db, storage_err};
use crate::engine::keys::{bag_key_prefix, prefix_end, record_key, table_prefix};
use crate::engine::memory::MemState;
use crate::engine::{Catalog, Kind, Op, OpResult, Scope, TableDef, Txn, TxnOutcome};
use crate::error::Result;
use rocksdb::{ColumnFamily, WriteBatch};
use std::collections::{HashMap, HashSet};

/// Pending RocksDB writes of one apply call, readable for `put_if_absent` on `disc_only` tables.
pub struct DiscWriter<'a> {
    db: &'a Db,
    cf: &'a ColumnFamily,
    pub batch: WriteBatch,
    /// Record key → present after the pending writes.
    overlay: HashMap<Vec<u8>, bool>,
    cleared: HashSet<String>,
}

impl<'a> DiscWriter<'a> {
    pub fn new(db: &'a Db, cf: &'a ColumnFamily) -> Self {
        DiscWriter { db, cf, batch: WriteBatch::default(), overlay: HashMap::new(), cleared: HashSet::new() }
    }

    fn put(&mut self, def: &TableDef, key: &[u8], value: &[u8]) {
        let k = record_key(&def.name, def.kind, key, value);
        let stored: &[u8] = if def.kind == Kind::Bag { b"" } else { value };
        self.batch.put_cf(self.cf, &k, stored);
        if def.storage == crate::engine::Storage::DiscOnly {
            self.overlay.insert(k, true);
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
                self.overlay.insert(k, false);
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

    fn delete_prefix(&mut self, prefix: &[u8]) {
        match prefix_end(prefix) {
            Some(end) => self.batch.delete_range_cf(self.cf, prefix, &end[..]),
            // Unreachable for our layouts (the first byte is a length < 0xff), but stay correct.
            None => self.batch.delete_range_cf(self.cf, prefix, &[0xffu8; 16][..]),
        }
    }

    /// Whether a set key is present, counting the pending writes.
    fn contains(&self, def: &TableDef, key: &[u8]) -> Result<bool> {
        let k = record_key(&def.name, def.kind, key, b"");
        if let Some(present) = self.overlay.get(&k) {
            return Ok(*present);
        }
        if self.cleared.contains(&def.name) {
            return Ok(false);
        }
        Ok(self.db.raw().get_pinned_cf(self.cf, &k).map_err(|e| storage_err("read record", e))?.is_some())
    }
}

/// Applies `txn` to `mem` (tables held in memory) and `disc` (tables on disc).
///
/// A transaction that fails the catalog check is rejected whole, identically on every node.
/// An `Err` is a storage failure, not a property of the transaction.
pub fn apply_txn(
    catalog: &Catalog,
    scope: Scope,
    mem: &mut MemState,
    disc: &mut DiscWriter<'_>,
    txn: &Txn,
) -> Result<TxnOutcome> {
    let tables = match catalog.check(txn, scope) {
        Ok(t) => t,
        Err(e) => return Ok(TxnOutcome::Rejected(e.to_string())),
    };
    let mut results = Vec::with_capacity(txn.ops.len());
    for (op, ix) in txn.ops.iter().zip(tables) {
        let def = catalog.def(ix);
        let on_disc = def.on_disc();
        let table = &mut mem.tables[ix];
        let result = match op {
            Op::Put { key, value, .. } => {
                table.put(key, value);
                if on_disc {
                    disc.put(def, key, value);
                }
                OpResult::Done
            }
            Op::Delete { key, .. } => {
                table.delete(key);
                if on_disc {
                    disc.delete(def, key);
                }
                OpResult::Done
            }
            Op::DeleteObject { key, value, .. } => {
                table.delete_object(key, value);
                if on_disc {
                    disc.delete_object(def, key, value);
                }
                OpResult::Done
            }
            Op::Clear { .. } => {
                table.clear();
                if on_disc {
                    disc.clear(def);
                }
                OpResult::Done
            }
            Op::PutIfAbsent { key, value, .. } => {
                let exists = if def.in_memory() { table.contains(key) } else { disc.contains(def, key)? };
                if exists {
                    OpResult::Exists
                } else {
                    table.put(key, value);
                    if on_disc {
                        disc.put(def, key, value);
                    }
                    OpResult::Inserted
                }
            }
        };
        results.push(result);
    }
    Ok(TxnOutcome::Applied(results))
}

/// Loads every in-memory table of `catalog` from the records in `cf`.
pub fn load_memory(db: &Db, cf: &ColumnFamily, catalog: &Catalog, applied: u64) -> Result<MemState> {
    let mut state = MemState::empty(catalog);
    state.applied = applied;
    let mut unknown: HashSet<String> = HashSet::new();
    for item in db.raw().iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item.map_err(|e| storage_err("scan records", e))?;
        let (name, rest) = crate::engine::keys::split_table(&k)?;
        let ix = match catalog.lookup(name) {
            Ok(ix) => ix,
            Err(_) => {
                if unknown.insert(name.to_string()) {
                    tracing::warn!(
                        table = name,
                        "records of a table this node does not declare; left on disk, not loaded"
                    );
                }
                continue;
            }
        };
        let def = catalog.def(ix);
        if def.in_memory() {
            let (key, value) = crate::engine::keys::split_record(def.kind, rest, &v)?;
            state.tables[ix].put(key, value);
        }
    }
    Ok(state)
}
