//! The catalog: a node's tables looked up by name, the code that checks and indexes their
//! records, and the checks a transaction must pass before it is proposed and again when it
//! is applied.
//!
//! A node has two: its local tables, fixed at start, and its replicated tables, which live
//! in the log: created and dropped by log entries (`Op::CreateTable`, `Op::DropTable`),
//! kept in the in-memory state beside the tables (`MemState::catalog`), persisted as the
//! reserved table [`TABLE`] in the apply's write batch (so snapshots, replicant bootstraps
//! and a restart carry it), identical on every node at every index.

use super::declaration::{Declaration, validate_table};
use super::registry::Registry;
use super::table::{Kind, Scope, ShardId, TableDef};
use super::txn::{Op, Txn};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Table names to positions; foldhash: looked up on every read by name.
type ByName = std::collections::HashMap<String, TableIx, super::KeyHasher>;

/// Index of a table in its catalog (positions change when a table is dropped).
pub type TableIx = usize;

/// A put's index keys, as its table's extractors computed them: one sorted list per index.
pub type NewKeys = Vec<Vec<Vec<u8>>>;

/// Reserved table name of the catalog's records: key the table's name, value its
/// [`Declaration`] (versioned bincode).
pub const TABLE: &str = "$catalog";
const RECORD_VERSION: u8 = 1;

/// A catalog record's value.
pub fn encode_record(decl: &Declaration) -> Result<Vec<u8>> {
    crate::codec::encode_versioned(RECORD_VERSION, decl)
}

/// A catalog record's value, read back.
pub fn decode_record(bytes: &[u8]) -> Result<Declaration> {
    crate::codec::decode_versioned("catalog record", RECORD_VERSION, bytes)
}

/// The RocksDB key of table `name`'s catalog record.
pub fn record_key(name: &str) -> Vec<u8> {
    super::keys::record_key(TABLE, Kind::Set, name.as_bytes(), b"")
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    defs: Vec<TableDef>,
    /// The tables' names, shared (each change in the feed names its table).
    names: Vec<Arc<str>>,
    by_name: ByName,
    registry: Arc<Registry>,
}

impl Catalog {
    /// Builds a catalog of `defs` with their own code; names must be unique, 1..=200 bytes,
    /// and not start with `$`.
    pub fn new(defs: Vec<TableDef>) -> Result<Self> {
        let registry = Arc::new(Registry::of_tables(&defs)?);
        Self::with_registry(defs, registry)
    }

    /// Builds a catalog of `defs` that resolves declarations with `registry`.
    pub fn with_registry(defs: Vec<TableDef>, registry: Arc<Registry>) -> Result<Self> {
        let mut by_name = ByName::default();
        for (ix, d) in defs.iter().enumerate() {
            validate_table(&d.name, d.kind, d.storage, d.index, d.indexes.iter().map(|i| i.name.as_str()))?;
            if by_name.insert(d.name.clone(), ix).is_some() {
                return Err(Error::InvalidTxn(format!("table `{}` declared twice", d.name)));
            }
        }
        let names = defs.iter().map(|d| Arc::from(d.name.as_str())).collect();
        Ok(Catalog { defs, names, by_name, registry })
    }

    /// An empty catalog that resolves declarations with `registry`.
    pub fn empty(registry: Arc<Registry>) -> Self {
        Catalog { defs: Vec::new(), names: Vec::new(), by_name: ByName::default(), registry }
    }

    /// The code this catalog resolves declarations with.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// What this catalog declares of its replicated tables, for comparison with other nodes.
    pub fn declarations(&self) -> Vec<Declaration> {
        super::declaration::declarations(&self.defs)
    }

    pub fn defs(&self) -> &[TableDef] {
        &self.defs
    }

    pub fn def(&self, ix: TableIx) -> &TableDef {
        &self.defs[ix]
    }

    #[cfg(any(test, feature = "test-util"))]
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The name of the table at `ix`, shared.
    pub fn name_arc(&self, ix: TableIx) -> Arc<str> {
        self.names[ix].clone()
    }

    pub fn lookup(&self, name: &str) -> Result<TableIx> {
        self.by_name.get(name).copied().ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    /// This catalog with `def` added last (its name must be new).
    pub fn created(&self, def: TableDef) -> Catalog {
        let mut next = self.clone();
        next.by_name.insert(def.name.clone(), next.defs.len());
        next.names.push(Arc::from(def.name.as_str()));
        next.defs.push(def);
        next
    }

    /// This catalog without the table at `ix`.
    pub fn dropped(&self, ix: TableIx) -> Catalog {
        let mut defs = self.defs.clone();
        defs.remove(ix);
        let mut names = self.names.clone();
        names.remove(ix);
        let by_name = defs.iter().enumerate().map(|(i, d)| (d.name.clone(), i)).collect();
        Catalog { defs, names, by_name, registry: self.registry.clone() }
    }

    /// The shard of `txn`: its tables' shard ([`Error::CrossShard`] if they are in two).
    /// Catalog changes, and transactions naming a table this catalog lacks, say nothing
    /// here ([`Catalog::check`] refuses what must be refused).
    pub fn shard_of(&self, txn: &Txn) -> Result<Option<ShardId>> {
        let mut first: Option<&TableDef> = None;
        for op in &txn.ops {
            if op.changes_catalog() {
                return Ok(None);
            }
            let Ok(ix) = self.lookup(op.table()) else { return Ok(None) };
            let def = &self.defs[ix];
            match first {
                None => first = Some(def),
                Some(f) if f.shard != def.shard => {
                    return Err(Error::CrossShard {
                        first: f.name.clone(),
                        first_shard: f.shard,
                        second: def.name.clone(),
                        second_shard: def.shard,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(first.map(|d| d.shard))
    }

    /// Checks every op of `txn` against `scope` and every record it puts against its
    /// table's [`ValueRule`](super::ValueRule) and index extractors; checks that its tables
    /// are in one shard, the one it says; returns the table of each op. Catalog changes
    /// are not for this check (see `engine::apply`).
    ///
    /// Run by the proposer (to fail fast) and by every node at apply time (where a failure
    /// rejects the whole transaction the same way everywhere), so no write path can store
    /// what a table's rule refuses, nor put a transaction in a shard its tables are not in.
    pub fn check(&self, txn: &Txn, scope: Scope) -> Result<Vec<TableIx>> {
        Ok(self.check_keyed(txn, scope)?.into_iter().map(|(ix, _)| ix).collect())
    }

    /// [`Catalog::check`], which also returns, for each op that puts a record in a table
    /// with secondary indexes, the index keys its extractors computed (one list per index),
    /// so that the apply that follows does not compute them again.
    pub fn check_keyed(&self, txn: &Txn, scope: Scope) -> Result<Vec<(TableIx, Option<NewKeys>)>> {
        if txn.ops.is_empty() {
            return Err(Error::InvalidTxn("a transaction needs at least one op".into()));
        }
        if txn.changes_catalog() {
            return Err(Error::InvalidTxn("a table is created or dropped by a transaction of that op alone".into()));
        }
        let tables = txn
            .ops
            .iter()
            .map(|op| {
                let ix = self.lookup(op.table())?;
                let def = &self.defs[ix];
                if def.scope != scope {
                    return Err(Error::InvalidTxn(format!(
                        "table `{}` is {:?}, not {scope:?}: local and replicated writes do not mix",
                        def.name, def.scope
                    )));
                }
                match op {
                    Op::DeleteObject { .. } if def.kind != Kind::Bag => {
                        Err(Error::InvalidTxn(format!("delete_object needs a bag; `{}` is {:?}", def.name, def.kind)))
                    }
                    Op::PutIfAbsent { .. } if def.kind == Kind::Bag => {
                        Err(Error::InvalidTxn(format!("put_if_absent needs a set; `{}` is a bag", def.name)))
                    }
                    Op::Require { .. } if def.kind == Kind::Bag => {
                        Err(Error::InvalidTxn(format!("require needs a set; `{}` is a bag", def.name)))
                    }
                    Op::Put { key, value, .. } | Op::PutIfAbsent { key, value, .. } => {
                        let refused = |reason| Error::invalid_value(&def.name, key, reason);
                        if let Some(rule) = &def.rule {
                            rule.check(key, value).map_err(refused)?;
                        }
                        if def.indexes.is_empty() {
                            return Ok((ix, None));
                        }
                        let keys = def
                            .indexes
                            .iter()
                            .map(|i| i.extractor.keys(key, value).map_err(|e| format!("index `{}`: {e}", i.name)))
                            .collect::<std::result::Result<Vec<_>, String>>()
                            .map_err(refused)?;
                        Ok((ix, Some(keys)))
                    }
                    _ => Ok((ix, None)),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        // The shard comes from the tables, never from the caller: a transaction claiming
        // another would be skipped by a replicant following a subset of shards.
        let shard = self.shard_of(txn)?.unwrap_or(txn.shard);
        if txn.shard != shard {
            return Err(Error::ShardMismatch { table: txn.ops[0].table().to_string(), shard, claimed: txn.shard });
        }
        Ok(tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Storage, ValueRule};

    fn digits(_key: &[u8], value: &[u8]) -> std::result::Result<(), String> {
        if value.iter().all(u8::is_ascii_digit) { Ok(()) } else { Err("not digits".into()) }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            TableDef::replicated("n", Kind::Set, Storage::Disc).with_rule(ValueRule::new("digits", digits)),
            TableDef::replicated("any", Kind::Set, Storage::Disc),
        ])
        .unwrap()
    }

    #[test]
    fn every_put_is_held_to_its_tables_rule_naming_table_and_key() {
        let c = catalog();
        assert!(c.check(&Txn::new().put("n", "k", "42").put("any", "k", "x"), Scope::Replicated).is_ok());
        for txn in [Txn::new().put("any", "k", "x").put("n", "bad", "4x2"), Txn::new().put_if_absent("n", "bad", "-")] {
            match c.check(&txn, Scope::Replicated) {
                Err(Error::InvalidValue { table, key, .. }) => {
                    assert_eq!(table, "n");
                    assert!(key.contains("bad"), "{key}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Deletes and conditions store nothing: no rule to meet.
        let txn = Txn::new().delete("n", "k").require_value("n", "k", "x").put("n", "k", "1");
        assert!(c.check(&txn, Scope::Replicated).is_ok());
    }

    #[test]
    fn a_transaction_refused_by_a_rule_is_rejected_whole_at_apply() {
        let c = catalog();
        let mut mem = crate::engine::memory::MemState::empty_all_in_memory(&c);
        let txn = Txn::new().put("any", "k", "x").put("n", "k", "nope");
        let out =
            crate::engine::apply::apply_txn(Scope::Replicated, &mut mem, &mut crate::engine::apply::MemoryOnly, &txn)
                .unwrap();
        assert!(matches!(out, crate::engine::TxnOutcome::Rejected(_)), "{out:?}");
        assert!(mem.tables[c.lookup("any").unwrap()].get_one(b"k").is_none(), "part of a rejected txn was applied");
    }

    #[test]
    fn a_transaction_stays_in_its_tables_shard() {
        let c = Catalog::new(vec![
            TableDef::replicated("a", Kind::Set, Storage::Disc).with_shard(1),
            TableDef::replicated("b", Kind::Set, Storage::Disc).with_shard(1),
            TableDef::replicated("c", Kind::Set, Storage::Disc).with_shard(2),
        ])
        .unwrap();
        let both = Txn::new().put("a", "k", "v").put("b", "k", "v");
        assert_eq!(c.shard_of(&both).unwrap(), Some(1));
        assert!(matches!(c.check(&both, Scope::Replicated), Err(Error::ShardMismatch { shard: 1, claimed: 0, .. })));
        assert!(c.check(&Txn { shard: 1, ..both }, Scope::Replicated).is_ok());
        let across = Txn { shard: 1, ..Txn::new().put("a", "k", "v").delete("c", "k") };
        match c.check(&across, Scope::Replicated) {
            Err(Error::CrossShard { first, first_shard: 1, second, second_shard: 2 }) => {
                assert_eq!((first.as_str(), second.as_str()), ("a", "c"))
            }
            other => panic!("{other:?}"),
        }
    }
}
