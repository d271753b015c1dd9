//! Applying transactions to the in-memory tables, with the on-disk side behind [`Sink`].
//!
//! Cores pass a sink that fills a RocksDB write batch (`storage::apply::DiscWriter`);
//! replicants pass [`MemoryOnly`], since they hold every table in memory and persist
//! nothing. Both run this same code, so both make the same decision for every entry.

use super::catalog::Catalog;
use super::keys::{split_record, split_table};
use super::memory::MemState;
use super::requests::{self, Change, Seen};
use super::table::{Scope, TableDef};
use super::txn::{Batch, BatchOutcome, Op, OpResult, Txn, TxnOutcome};
use crate::error::Result;

/// Where the changes of tables stored on disc go, in the order they are made.
pub trait Sink {
    fn put(&mut self, def: &TableDef, key: &[u8], value: &[u8]);
    fn delete(&mut self, def: &TableDef, key: &[u8]);
    fn delete_object(&mut self, def: &TableDef, key: &[u8], value: &[u8]);
    fn clear(&mut self, def: &TableDef);
    /// Whether a key of a table not held in memory is present, counting pending writes.
    fn contains(&self, def: &TableDef, key: &[u8]) -> Result<bool>;
    /// The value of a set key of a table not held in memory, counting pending writes.
    fn value(&self, def: &TableDef, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Changes to the applied-request records.
    fn requests(&mut self, changes: Vec<Change>);
}

/// The sink of a node that keeps everything in memory only (a replicant).
pub struct MemoryOnly;

impl Sink for MemoryOnly {
    fn put(&mut self, _: &TableDef, _: &[u8], _: &[u8]) {}
    fn delete(&mut self, _: &TableDef, _: &[u8]) {}
    fn delete_object(&mut self, _: &TableDef, _: &[u8], _: &[u8]) {}
    fn clear(&mut self, _: &TableDef) {}
    fn contains(&self, _: &TableDef, _: &[u8]) -> Result<bool> {
        Ok(false)
    }
    fn value(&self, _: &TableDef, _: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn requests(&mut self, _: Vec<Change>) {}
}

/// Applies `txn` to `mem` and `sink`.
///
/// A transaction that fails the catalog check is rejected whole, identically on every node.
/// An `Err` is a storage failure, not a property of the transaction.
pub fn apply_txn<S: Sink>(
    catalog: &Catalog,
    scope: Scope,
    mem: &mut MemState,
    sink: &mut S,
    txn: &Txn,
) -> Result<TxnOutcome> {
    let tables = match catalog.check(txn, scope) {
        Ok(t) => t,
        Err(e) => return Ok(TxnOutcome::Rejected(e.to_string())),
    };
    // Conditions first: a transaction whose condition fails changes nothing.
    for (op, ix) in txn.ops.iter().zip(&tables) {
        if let Op::Require { key, value, .. } = op {
            let def = catalog.def(*ix);
            let t = &mem.tables[*ix];
            let current: Option<Vec<u8>> =
                if t.is_held() { t.get_one(key).map(|v| v.to_vec()) } else { sink.value(def, key)? };
            if current.as_deref() != value.as_deref() {
                let want = if value.is_some() { "the expected value" } else { "absent" };
                return Ok(TxnOutcome::Conflict(format!(
                    "`{}` key {} is not {want}",
                    def.name,
                    String::from_utf8_lossy(&key[..key.len().min(64)])
                )));
            }
        }
    }
    let mut results = Vec::with_capacity(txn.ops.len());
    for (op, ix) in txn.ops.iter().zip(tables) {
        let def = catalog.def(ix);
        let on_disc = def.on_disc();
        let table = &mut mem.tables[ix];
        let result = match op {
            Op::Put { key, value, .. } => {
                table.put(key, value);
                if on_disc {
                    sink.put(def, key, value);
                }
                OpResult::Done
            }
            Op::Delete { key, .. } => {
                table.delete(key);
                if on_disc {
                    sink.delete(def, key);
                }
                OpResult::Done
            }
            Op::DeleteObject { key, value, .. } => {
                table.delete_object(key, value);
                if on_disc {
                    sink.delete_object(def, key, value);
                }
                OpResult::Done
            }
            Op::Clear { .. } => {
                table.clear();
                if on_disc {
                    sink.clear(def);
                }
                OpResult::Done
            }
            Op::Require { .. } => OpResult::Done,
            Op::PutIfAbsent { key, value, .. } => {
                let exists = if table.is_held() { table.contains(key) } else { sink.contains(def, key)? };
                if exists {
                    OpResult::Exists
                } else {
                    table.put(key, value);
                    if on_disc {
                        sink.put(def, key, value);
                    }
                    OpResult::Inserted
                }
            }
        };
        results.push(result);
    }
    Ok(TxnOutcome::Applied(results))
}

/// Applies the batch of log entry `index`: each proposer's transactions in order, unless
/// that proposer's request id was applied before (then its stored outcome is the answer
/// and nothing changes). A batch whose parts do not cover its transactions (a damaged
/// entry) changes nothing: every transaction is `Rejected`, the same on every node.
pub fn apply_batch<S: Sink>(
    catalog: &Catalog,
    mem: &mut MemState,
    sink: &mut S,
    batch: &Batch,
    index: u64,
) -> Result<BatchOutcome> {
    let parts = match batch.parts() {
        Ok(p) => p,
        Err(reason) => {
            return Ok(BatchOutcome { outcomes: batch.txns.iter().map(|_| TxnOutcome::Rejected(reason.clone())).collect() });
        }
    };
    let mut outcome = BatchOutcome { outcomes: Vec::with_capacity(batch.txns.len()) };
    for (request, range) in parts {
        let txns = &batch.txns[range];
        if let Some(id) = request {
            match mem.requests.check(id) {
                Seen::New => {}
                Seen::Done(done) if done.outcomes.len() == txns.len() => {
                    outcome.outcomes.extend(done.outcomes);
                    continue;
                }
                Seen::Done(done) => {
                    let reason = format!(
                        "request {}/{} was applied before with {} transactions, not {}: not applied again",
                        id.client,
                        id.seq,
                        done.outcomes.len(),
                        txns.len()
                    );
                    outcome.outcomes.extend(txns.iter().map(|_| TxnOutcome::Rejected(reason.clone())));
                    continue;
                }
                Seen::Expired => {
                    let reason = format!(
                        "request {}/{} is older than the last {} this client sent: outcome unknown, not applied again",
                        id.client,
                        id.seq,
                        requests::WINDOW
                    );
                    outcome.outcomes.extend(txns.iter().map(|_| TxnOutcome::Rejected(reason.clone())));
                    continue;
                }
            }
        }
        let mut part = BatchOutcome { outcomes: Vec::with_capacity(txns.len()) };
        for txn in txns {
            part.outcomes.push(apply_txn(catalog, Scope::Replicated, mem, sink, txn)?);
        }
        if let Some(id) = request {
            let mut changes = Vec::new();
            mem.requests.record(id, index, &part, &mut changes)?;
            sink.requests(changes);
        }
        outcome.outcomes.extend(part.outcomes);
    }
    Ok(outcome)
}

/// Loads one stored record (RocksDB key and value, as in `engine::keys`) into `state`.
/// Returns the name of a table `catalog` does not declare instead of loading it.
pub fn load_record<'k>(
    catalog: &Catalog,
    state: &mut MemState,
    raw_key: &'k [u8],
    value: &[u8],
) -> Result<Option<&'k str>> {
    let (name, rest) = split_table(raw_key)?;
    if name == requests::TABLE {
        state.requests.load(rest, value)?;
        return Ok(None);
    }
    let Ok(ix) = catalog.lookup(name) else { return Ok(Some(name)) };
    let def = catalog.def(ix);
    if state.tables[ix].is_held() {
        let (key, value) = split_record(def.kind, rest, value)?;
        state.tables[ix].put(key, value);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, Storage};

    #[test]
    fn a_failed_condition_changes_nothing() {
        let cat = Catalog::new(vec![TableDef::replicated("s", Kind::Set, Storage::Ram)]).unwrap();
        let mut mem = MemState::empty(&cat);
        let run =
            |mem: &mut MemState, txn: Txn| apply_txn(&cat, Scope::Replicated, mem, &mut MemoryOnly, &txn).unwrap();
        let first = Txn::new().require_absent("s", "id1").put("s", "id1", "a").put("s", "other", "x");
        assert!(matches!(run(&mut mem, first.clone()), TxnOutcome::Applied(_)));
        // The condition sits first, but is checked before any op: nothing of it applies.
        let again = Txn::new().put("s", "other", "y").require_absent("s", "id1");
        assert!(matches!(run(&mut mem, again), TxnOutcome::Conflict(_)));
        assert_eq!(mem.tables[0].get_one(b"other").map(|v| v.to_vec()), Some(b"x".to_vec()));
        let cas = Txn::new().require_value("s", "id1", "a").put("s", "id1", "b");
        assert!(matches!(run(&mut mem, cas.clone()), TxnOutcome::Applied(_)));
        assert!(matches!(run(&mut mem, cas), TxnOutcome::Conflict(_)), "compare-and-set on a stale value");
    }

    /// A leader merges batches of several proposers into one entry; a part resent after an
    /// unknown outcome is answered from its first application, the others apply.
    #[test]
    fn each_part_of_a_merged_batch_applies_once_under_its_own_id() {
        use crate::engine::{Batch, RequestId};
        let cat = Catalog::new(vec![TableDef::replicated("s", Kind::Set, Storage::Ram)]).unwrap();
        let mut mem = MemState::empty(&cat);
        let id = |seq| Some(RequestId { client: 7, seq });
        let first = Batch::new(vec![Txn::new().put_if_absent("s", "a", "1")], id(1));
        let out = apply_batch(&cat, &mut mem, &mut MemoryOnly, &first, 1).unwrap();
        assert_eq!(out.outcomes, vec![TxnOutcome::Applied(vec![OpResult::Inserted])]);
        // The same request again, merged with a new one from another proposer.
        let other = Batch::new(vec![Txn::new().put_if_absent("s", "a", "2"), Txn::new().put("s", "b", "x")], id(2));
        let (merged, lens) = Batch::merge(vec![first, other]);
        let out = apply_batch(&cat, &mut mem, &mut MemoryOnly, &merged, 2).unwrap();
        let pieces = out.split(&lens).unwrap();
        assert_eq!(pieces[0].outcomes, vec![TxnOutcome::Applied(vec![OpResult::Inserted])], "answered, not applied again");
        assert_eq!(
            pieces[1].outcomes,
            vec![TxnOutcome::Applied(vec![OpResult::Exists]), TxnOutcome::Applied(vec![OpResult::Done])]
        );
        assert_eq!(mem.tables[0].get_one(b"a").map(|v| v.to_vec()), Some(b"1".to_vec()));
        // Parts that do not cover the transactions: nothing applies, on any node.
        let mut damaged = merged.clone();
        damaged.txns.pop();
        let out = apply_batch(&cat, &mut mem, &mut MemoryOnly, &damaged, 3).unwrap();
        assert!(out.outcomes.iter().all(|o| matches!(o, TxnOutcome::Rejected(_))));
    }
}
