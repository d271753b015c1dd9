//! Applying transactions to the in-memory tables, with the on-disk side behind [`Sink`].
//!
//! Cores pass a sink that fills a RocksDB write batch (`storage::apply::DiscWriter`);
//! replicants pass [`MemoryOnly`], since they hold every table in memory and persist
//! nothing. Both run this same code, so both make the same decision for every entry.

use super::catalog::{self, TableIx};
use super::declaration::Declaration;
use super::flat_map::Key;
use super::feed::{Change as FeedChange, ChangeOp};
use super::keys::{split_record, split_table};
use super::memory::MemState;
use super::requests::{self, Change, Seen};
use super::table::{Scope, TableDef};
use super::txn::{Batch, BatchOutcome, Op, OpResult, Txn, TxnOutcome};
use super::Blob;
use crate::error::Result;
use std::sync::Arc;

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
    /// Changes to records the engine keeps beside the tables (applied requests, the
    /// catalog), in the same write as the tables'.
    fn raw(&mut self, changes: Vec<Change>);
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
    fn raw(&mut self, _: Vec<Change>) {}
}

/// Applies `txn` to `mem` and `sink`, under the catalog of `mem`.
///
/// A transaction that fails the catalog check is rejected whole, identically on every node.
/// An `Err` is a storage failure, or a table created with code this node does not have
/// ([`Error::Unregistered`](crate::Error::Unregistered)): not a property of the
/// transaction, and this node cannot go on applying the log.
pub fn apply_txn<S: Sink>(scope: Scope, mem: &mut MemState, sink: &mut S, txn: &Txn) -> Result<TxnOutcome> {
    apply_txn_fed(scope, mem, sink, txn, &mut Vec::new())
}

/// [`apply_txn`], which also appends what the transaction changed to `feed` (nothing if it
/// was not applied): the change feed's input, from the keys and values it stores anyway.
pub fn apply_txn_fed<S: Sink>(
    scope: Scope,
    mem: &mut MemState,
    sink: &mut S,
    txn: &Txn,
    feed: &mut Vec<FeedChange>,
) -> Result<TxnOutcome> {
    if txn.changes_catalog() {
        if scope != Scope::Replicated {
            return Ok(TxnOutcome::Rejected("tables are created and dropped through the log only".into()));
        }
        return apply_catalog_change(mem, sink, txn, feed);
    }
    let catalog = mem.catalog.clone();
    let mut checked = match catalog.check_keyed(txn, scope) {
        Ok(t) => t,
        Err(e) => return Ok(TxnOutcome::Rejected(e.to_string())),
    };
    let tables: Vec<TableIx> = checked.iter().map(|(ix, _)| *ix).collect();
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
    for (op, (ix, keys)) in txn.ops.iter().zip(checked.drain(..)) {
        let def = catalog.def(ix);
        let on_disc = def.on_disc();
        let table = &mut mem.tables[ix];
        let change = |key: Blob, op: ChangeOp| FeedChange { table: catalog.name_arc(ix), key, op };
        let result = match op {
            Op::Put { key, value, .. } => {
                let (k, v) = stored(table.put_keyed(key, value, keys), key, value);
                if on_disc {
                    sink.put(def, key, value);
                }
                feed.push(change(k, ChangeOp::Put(v)));
                OpResult::Done
            }
            Op::Delete { key, .. } => {
                table.delete(key);
                if on_disc {
                    sink.delete(def, key);
                }
                feed.push(change(Blob::from(&key[..]), ChangeOp::Delete));
                OpResult::Done
            }
            Op::DeleteObject { key, value, .. } => {
                table.delete_object(key, value);
                if on_disc {
                    sink.delete_object(def, key, value);
                }
                feed.push(change(Blob::from(&key[..]), ChangeOp::DeleteObject(Blob::from(&value[..]))));
                OpResult::Done
            }
            Op::Clear { .. } => {
                table.clear();
                if on_disc {
                    sink.clear(def);
                }
                feed.push(change(Blob::from(&[][..]), ChangeOp::Clear));
                OpResult::Done
            }
            // Catalog changes never get here: the check above refuses them in a transaction
            // of records.
            Op::Require { .. } | Op::CreateTable { .. } | Op::DropTable { .. } => OpResult::Done,
            Op::PutIfAbsent { key, value, .. } => {
                let exists = if table.is_held() { table.contains(key) } else { sink.contains(def, key)? };
                if exists {
                    OpResult::Exists
                } else {
                    let (k, v) = stored(table.put_keyed(key, value, keys), key, value);
                    if on_disc {
                        sink.put(def, key, value);
                    }
                    feed.push(change(k, ChangeOp::Put(v)));
                    OpResult::Inserted
                }
            }
        };
        results.push(result);
    }
    Ok(TxnOutcome::Applied(results))
}

/// The key and value a put stored in memory, shared with the feed (made here for a table
/// not held in memory).
fn stored(held: Option<(Blob, Blob)>, key: &[u8], value: &[u8]) -> (Blob, Blob) {
    held.unwrap_or_else(|| (Blob::from(key), Blob::from(value)))
}

/// Creates or drops one table: the catalog in `mem` changes, and the `$catalog` record
/// with it in the same write (a drop deletes the table's records too).
fn apply_catalog_change<S: Sink>(
    mem: &mut MemState,
    sink: &mut S,
    txn: &Txn,
    feed: &mut Vec<FeedChange>,
) -> Result<TxnOutcome> {
    let table_change = |name: &str, op| FeedChange { table: Arc::from(name), key: Blob::from(&[][..]), op };
    let [op] = txn.ops.as_slice() else {
        return Ok(TxnOutcome::Rejected("a table is created or dropped by a transaction of that op alone".into()));
    };
    match op {
        Op::CreateTable { declaration } => {
            if let Err(e) = declaration.validate() {
                return Ok(TxnOutcome::Rejected(e.to_string()));
            }
            if let Ok(ix) = mem.catalog.lookup(&declaration.name) {
                let have = Declaration::of(mem.catalog.def(ix));
                if have == *declaration {
                    return Ok(TxnOutcome::Applied(vec![OpResult::Exists]));
                }
                return Ok(TxnOutcome::Rejected(format!(
                    "table `{}` exists as {}, not {}",
                    declaration.name,
                    have.shown(),
                    declaration.shown()
                )));
            }
            let def = mem.catalog.registry().resolve(declaration)?;
            sink.raw(vec![Change::Put(catalog::record_key(&def.name), catalog::encode_record(declaration)?)]);
            feed.push(table_change(&def.name, ChangeOp::Created));
            mem.add_table(def);
            Ok(TxnOutcome::Applied(vec![OpResult::Inserted]))
        }
        Op::DropTable { table } => {
            let Ok(ix) = mem.catalog.lookup(table) else {
                return Ok(TxnOutcome::Rejected(format!("unknown table `{table}`")));
            };
            let def = mem.catalog.def(ix).clone();
            if def.on_disc() {
                sink.clear(&def);
            }
            sink.raw(vec![Change::Delete(catalog::record_key(table))]);
            feed.push(table_change(table, ChangeOp::Dropped));
            mem.drop_table(ix);
            Ok(TxnOutcome::Applied(vec![OpResult::Done]))
        }
        _ => Ok(TxnOutcome::Rejected("a table is created or dropped by a transaction of that op alone".into())),
    }
}

/// Applies the batch of log entry `index`: each proposer's transactions in order, unless
/// that proposer's request id was applied before (then its stored outcome is the answer
/// and nothing changes). A batch whose parts do not cover its transactions (a damaged
/// entry) changes nothing: every transaction is `Rejected`, the same on every node.
///
/// What the applied transactions changed is appended to `feed`.
pub fn apply_batch<S: Sink>(
    mem: &mut MemState,
    sink: &mut S,
    batch: &Batch,
    index: u64,
    feed: &mut Vec<FeedChange>,
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
            part.outcomes.push(apply_txn_fed(Scope::Replicated, mem, sink, txn, feed)?);
        }
        if let Some(id) = request {
            let mut changes = Vec::new();
            mem.requests.record(id, index, &part, &mut changes)?;
            sink.raw(changes);
        }
        outcome.outcomes.extend(part.outcomes);
    }
    Ok(outcome)
}

/// Loads stored records (RocksDB key and value, as in `engine::keys`) into a state, in
/// bulk: a restart's load from RocksDB and a replicant's bootstrap from a snapshot. A
/// catalog record adds its table at once (resolved with the catalog's code); a table's
/// records are held until [`Loader::finish`] builds each table from all of its records
/// in one pass ([`MemTable::load`](super::memory::MemTable::load)), which gives the tables
/// that loading the records one by one would.
pub struct Loader {
    state: MemState,
    /// Each table's records so far, by the table's position.
    /// Keys as [`Key`]s: a short one inline, never allocated on its own.
    pending: Vec<Vec<(Key, super::Blob)>>,
    /// Table records taken (into `pending`).
    records: usize,
}

impl Loader {
    /// A load into `state` (its tables empty, or holding what loading adds to).
    pub fn new(state: MemState) -> Self {
        Loader { state, pending: Vec::new(), records: 0 }
    }

    /// Loads one stored record: a request id into the applied-request table, a catalog
    /// record's table into the catalog at once, a table's record for [`Loader::finish`].
    /// Returns the name of a table the catalog lacks instead of loading its record.
    /// Catalog records must come before their tables' records.
    pub fn record<'k>(&mut self, raw_key: &'k [u8], value: &[u8]) -> Result<Option<&'k str>> {
        let state = &mut self.state;
        let (name, rest) = split_table(raw_key)?;
        if name == requests::TABLE {
            state.requests.load(rest, value)?;
            return Ok(None);
        }
        if name == catalog::TABLE {
            add_catalog_record(state, rest, value)?;
            return Ok(None);
        }
        let Ok(ix) = state.catalog.lookup(name) else { return Ok(Some(name)) };
        if state.tables[ix].is_held() {
            let (key, value) = split_record(state.catalog.def(ix).kind, rest, value)?;
            if self.pending.len() <= ix {
                self.pending.resize_with(state.tables.len(), Vec::new);
            }
            self.pending[ix].push((Key::from(key), value.into()));
            self.records += 1;
        }
        Ok(None)
    }

    /// Table records taken so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The state with every record loaded.
    pub fn finish(mut self) -> MemState {
        for (ix, records) in self.pending.into_iter().enumerate() {
            if !records.is_empty() {
                self.state.tables[ix].load(records);
            }
        }
        self.state
    }
}

/// Adds the table a stored catalog record (`name` → declaration) declares, resolved with
/// the catalog's code; a table already there must be declared alike.
fn add_catalog_record(state: &mut MemState, name: &[u8], value: &[u8]) -> Result<()> {
    let decl = catalog::decode_record(value)?;
    if decl.name.as_bytes() != name {
        return Err(crate::error::Error::corrupt("catalog record", "key and declared name differ"));
    }
    match state.catalog.lookup(&decl.name) {
        Ok(ix) if Declaration::of(state.catalog.def(ix)) == decl => {}
        Ok(_) => return Err(crate::error::Error::corrupt("catalog record", format!("`{}` twice", decl.name))),
        Err(_) => {
            let def = state.catalog.registry().resolve(&decl)?;
            state.add_table(def);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Catalog, Kind, Storage};

    #[test]
    fn a_failed_condition_changes_nothing() {
        let cat = Catalog::new(vec![TableDef::replicated("s", Kind::Set, Storage::Ram)]).unwrap();
        let mut mem = MemState::empty(&cat);
        let run =
            |mem: &mut MemState, txn: Txn| apply_txn(Scope::Replicated, mem, &mut MemoryOnly, &txn).unwrap();
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
        let out = apply_batch(&mut mem, &mut MemoryOnly, &first, 1, &mut Vec::new()).unwrap();
        assert_eq!(out.outcomes, vec![TxnOutcome::Applied(vec![OpResult::Inserted])]);
        // The same request again, merged with a new one from another proposer.
        let other = Batch::new(vec![Txn::new().put_if_absent("s", "a", "2"), Txn::new().put("s", "b", "x")], id(2));
        let (merged, lens) = Batch::merge(vec![first, other]);
        let out = apply_batch(&mut mem, &mut MemoryOnly, &merged, 2, &mut Vec::new()).unwrap();
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
        let out = apply_batch(&mut mem, &mut MemoryOnly, &damaged, 3, &mut Vec::new()).unwrap();
        assert!(out.outcomes.iter().all(|o| matches!(o, TxnOutcome::Rejected(_))));
    }

    /// A table is created and dropped by log entries applied the same way on every node:
    /// an identical create again is a no-op, a different one is rejected, a drop takes the
    /// records with it, and a declaration naming code this node lacks stops the apply.
    #[test]
    fn tables_are_created_and_dropped_by_transactions_of_their_own() {
        use crate::engine::{Extractor, IndexKeys, ValueRule};
        fn digits(_: &[u8], v: &[u8]) -> std::result::Result<(), String> {
            if v.iter().all(u8::is_ascii_digit) { Ok(()) } else { Err("not digits".into()) }
        }
        fn first(_: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
            out.push(&v[..v.len().min(1)]);
            Ok(())
        }
        let ruled = TableDef::replicated("n", Kind::Set, Storage::Disc)
            .with_rule(ValueRule::new("digits", digits))
            .with_index("first", Extractor::new("first", first));
        let registry = std::sync::Arc::new(crate::engine::registry::Registry::of_tables(std::slice::from_ref(&ruled)).unwrap());
        let mut mem = MemState::empty(&Catalog::empty(registry));
        let run = |mem: &mut MemState, txn: Txn| apply_txn(Scope::Replicated, mem, &mut MemoryOnly, &txn);
        let created = run(&mut mem, Txn::new().create_table(&ruled)).unwrap();
        assert_eq!(created, TxnOutcome::Applied(vec![OpResult::Inserted]));
        assert_eq!(run(&mut mem, Txn::new().create_table(&ruled)).unwrap(), TxnOutcome::Applied(vec![OpResult::Exists]));
        let other = TableDef::replicated("n", Kind::Bag, Storage::Disc);
        assert!(matches!(run(&mut mem, Txn::new().create_table(&other)).unwrap(), TxnOutcome::Rejected(_)));
        // The created table checks and indexes records with the registered code.
        assert!(matches!(run(&mut mem, Txn::new().put("n", "k", "x1")).unwrap(), TxnOutcome::Rejected(_)));
        assert!(matches!(run(&mut mem, Txn::new().put("n", "k", "12")).unwrap(), TxnOutcome::Applied(_)));
        assert_eq!(mem.tables[0].index_hits(0, &crate::engine::IndexRange::exact("1")).len(), 1);
        let mixed = Txn::new().create_table(&TableDef::replicated("m", Kind::Set, Storage::Ram)).put("n", "k", "1");
        assert!(matches!(run(&mut mem, mixed).unwrap(), TxnOutcome::Rejected(_)), "catalog ops go alone");
        assert_eq!(run(&mut mem, Txn::new().drop_table("n")).unwrap(), TxnOutcome::Applied(vec![OpResult::Done]));
        assert!(mem.catalog.is_empty() && mem.tables.is_empty());
        assert!(matches!(run(&mut mem, Txn::new().drop_table("n")).unwrap(), TxnOutcome::Rejected(_)));
        assert!(matches!(run(&mut mem, Txn::new().put("n", "k", "12")).unwrap(), TxnOutcome::Rejected(_)));
        // Code this node does not have: not a rejection (other nodes may have it) but an
        // error that stops this node's apply.
        let unknown = TableDef::replicated("u", Kind::Set, Storage::Disc).with_rule(ValueRule::new("other", digits));
        assert!(matches!(
            run(&mut mem, Txn::new().create_table(&unknown)),
            Err(crate::error::Error::Unregistered { .. })
        ));
        assert!(mem.catalog.lookup("u").is_err(), "nothing of it was applied");
    }
}
