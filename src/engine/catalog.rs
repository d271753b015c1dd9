//! The catalog: the tables a node declared, looked up by name, and the checks a
//! transaction must pass before it is proposed and again when it is applied.

use super::table::{Kind, Scope, TableDef};
use super::txn::{DEFAULT_SHARD, Op, Txn};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Index of a table in its catalog; stable for the life of the process.
pub type TableIx = usize;

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    defs: Vec<TableDef>,
    by_name: HashMap<String, TableIx>,
}

impl Catalog {
    /// Builds a catalog; names must be unique, 1..=200 bytes, and not start with `$`.
    pub fn new(defs: Vec<TableDef>) -> Result<Self> {
        let mut by_name = HashMap::new();
        for (ix, d) in defs.iter().enumerate() {
            if d.name.is_empty() || d.name.len() > 200 {
                return Err(Error::InvalidTxn(format!("table name `{}` must be 1..=200 bytes", d.name)));
            }
            if d.name.starts_with('$') {
                return Err(Error::InvalidTxn(format!(
                    "table name `{}`: names starting with `$` are reserved",
                    d.name
                )));
            }
            if d.index == super::table::Index::Topic && (d.kind != Kind::Bag || !d.in_memory()) {
                return Err(Error::InvalidTxn(format!("table `{}`: a topic index needs an in-memory bag", d.name)));
            }
            if !d.indexes.is_empty() && !d.in_memory() {
                return Err(Error::InvalidTxn(format!(
                    "table `{}`: secondary indexes need a table held in memory, not disc_only",
                    d.name
                )));
            }
            for (i, index) in d.indexes.iter().enumerate() {
                if index.name.is_empty() || index.name.len() > 200 {
                    return Err(Error::InvalidTxn(format!(
                        "table `{}`: index name `{}` must be 1..=200 bytes",
                        d.name, index.name
                    )));
                }
                if d.indexes[..i].iter().any(|o| o.name == index.name) {
                    return Err(Error::InvalidTxn(format!("table `{}`: index `{}` declared twice", d.name, index.name)));
                }
            }
            if by_name.insert(d.name.clone(), ix).is_some() {
                return Err(Error::InvalidTxn(format!("table `{}` declared twice", d.name)));
            }
        }
        Ok(Catalog { defs, by_name })
    }

    /// What this catalog declares of its replicated tables, for comparison with other nodes.
    pub fn declarations(&self) -> Vec<super::declaration::Declaration> {
        super::declaration::declarations(&self.defs)
    }

    pub fn defs(&self) -> &[TableDef] {
        &self.defs
    }

    pub fn def(&self, ix: TableIx) -> &TableDef {
        &self.defs[ix]
    }

    pub fn lookup(&self, name: &str) -> Result<TableIx> {
        self.by_name.get(name).copied().ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    /// Checks every op of `txn` against `scope` and every record it puts against its
    /// table's [`ValueRule`](super::ValueRule); returns the table of each op.
    ///
    /// Run by the proposer (to fail fast) and by every node at apply time (where a failure
    /// rejects the whole transaction the same way everywhere), so no write path can store
    /// what a table's rule refuses.
    pub fn check(&self, txn: &Txn, scope: Scope) -> Result<Vec<TableIx>> {
        if txn.ops.is_empty() {
            return Err(Error::InvalidTxn("a transaction needs at least one op".into()));
        }
        // The shard comes from the tables, never from the caller: every table is in the
        // default shard, so a transaction claiming another is refused (a replicant
        // following a subset of shards would skip what every core applies).
        if txn.shard != DEFAULT_SHARD {
            return Err(Error::ShardMismatch {
                table: txn.ops[0].table().to_string(),
                shard: DEFAULT_SHARD,
                claimed: txn.shard,
            });
        }
        txn.ops
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
                        def.check_record(key, value).map_err(|reason| Error::invalid_value(&def.name, key, reason))?;
                        Ok(ix)
                    }
                    _ => Ok(ix),
                }
            })
            .collect()
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
        let out = crate::engine::apply::apply_txn(
            &c,
            Scope::Replicated,
            &mut mem,
            &mut crate::engine::apply::MemoryOnly,
            &txn,
        )
        .unwrap();
        assert!(matches!(out, crate::engine::TxnOutcome::Rejected(_)), "{out:?}");
        assert!(mem.tables[c.lookup("any").unwrap()].get_one(b"k").is_none(), "part of a rejected txn was applied");
    }
}
