//! [`TableHandle`]: a table resolved once, for readers on the hot path.

use super::Runtime;
use crate::engine::memory::{MemStore, MemTable};
use crate::engine::{Blob, Catalog, IndexHit, IndexRange, KeyRange, Kind, Scope, TableDef, TableIx};
use crate::error::{Error, Result};
use crate::storage::records;
use std::sync::{Arc, Weak};

/// A table of a running node, looked up once: its reads skip the name lookup, the table's
/// definition checks and the `Vec` of [`Node::get`](crate::Node::get).
///
/// Reads are local and lock-free, as every local read is: an in-memory table is read from
/// the node's current copy (one atomic load, then the map); a `disc_only` table on a core
/// from RocksDB. A handle is cheap to clone and does not keep its node open:
/// [`Node::shutdown`](crate::Node::shutdown) does not wait for handles. After the node shut
/// down, an in-memory table's handle reads its last state; a `disc_only` one answers
/// [`Error::Shutdown`].
///
/// ```no_run
/// # async fn f(node: mnema::Node) -> mnema::Result<()> {
/// let sessions = node.table("sessions")?;
/// if let Some(value) = sessions.get_one(b"client-1")? {
///     println!("{} bytes", value.len());
/// }
/// // Without taking a reference count on the value:
/// let len = sessions.with_one(b"client-1", |v| v.map(<[u8]>::len))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TableHandle {
    def: TableDef,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// A table held in memory: the node's copy of its scope, and its position under the
    /// catalog it was found in (a replicated table is found again by name once tables were
    /// created or dropped since).
    Memory { mem: Arc<MemStore>, catalog: Arc<Catalog>, ix: Option<TableIx> },
    /// RocksDB, reached through the node while it runs.
    Disc(Weak<Runtime>),
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHandle").field("table", &self.def.name).finish()
    }
}

impl TableHandle {
    pub(crate) fn new(rt: &Arc<Runtime>, table: &str) -> Result<TableHandle> {
        let (def, source) = match rt.place(table)? {
            super::Place::Memory(view, ix) => {
                let mem = if view.catalog.def(ix).scope == Scope::Local { rt.local.clone() } else { rt.mem.clone() };
                (view.catalog.def(ix).clone(), Source::Memory { mem, catalog: view.catalog.clone(), ix: Some(ix) })
            }
            super::Place::Disc(def) => (def, Source::Disc(Arc::downgrade(rt))),
            super::Place::Pending(def) => {
                let source = Source::Memory { mem: rt.mem.clone(), catalog: rt.mem.load().catalog.clone(), ix: None };
                (def.clone(), source)
            }
        };
        Ok(TableHandle { def, source })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The table's definition.
    pub fn def(&self) -> &TableDef {
        &self.def
    }

    /// Calls `read` with the table in the node's current copy (`None`: not created yet, or
    /// dropped since; a dropped table this node does not declare is
    /// [`Error::UnknownTable`]).
    fn with_memory<R>(
        &self,
        mem: &MemStore,
        catalog: &Arc<Catalog>,
        ix: Option<TableIx>,
        read: impl FnOnce(Option<&MemTable>) -> R,
    ) -> Result<R> {
        let view = mem.load();
        if Arc::ptr_eq(&view.catalog, catalog) {
            return Ok(read(ix.map(|ix| view.table(ix))));
        }
        match view.catalog.lookup(&self.def.name) {
            Ok(ix) => Ok(read(Some(view.table(ix)))),
            Err(_) if ix.is_none() => Ok(read(None)),
            Err(e) => Err(e),
        }
    }

    /// The value under `key` (a set or ordered set; a bag is refused with
    /// [`Error::InvalidTxn`]: it may hold many values under one key).
    ///
    /// A set holds a short value (up to 128 bytes) inline, so this copies it into a new
    /// `Blob`; on a hot path, [`Self::with_one`] lends the bytes without a copy.
    pub fn get_one(&self, key: &[u8]) -> Result<Option<Blob>> {
        refuse_bag(&self.def)?;
        match &self.source {
            Source::Memory { mem, catalog, ix } => {
                self.with_memory(mem, catalog, *ix, |t| t.and_then(|t| t.get_one(key).map(|v| v.to_blob())))
            }
            Source::Disc(rt) => Ok(disc(rt, &self.def, key)?.pop()),
        }
    }

    /// Calls `f` with the value under `key`, borrowed from the node's copy (no copy, no
    /// reference count taken for in-memory tables). A bag is refused as in [`Self::get_one`].
    pub fn with_one<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> Result<R> {
        refuse_bag(&self.def)?;
        match &self.source {
            Source::Memory { mem, catalog, ix } => {
                self.with_memory(mem, catalog, *ix, |t| f(t.and_then(|t| t.get_one(key)).map(|v| v.bytes())))
            }
            Source::Disc(rt) => Ok(f(disc(rt, &self.def, key)?.first().map(|b| &b[..]))),
        }
    }

    /// The records `range` selects through the table's index `index`, in index order
    /// ([`Error::UnknownIndex`] if the table has no such index).
    pub fn index(&self, index: &str, range: &IndexRange) -> Result<Vec<IndexHit>> {
        let position = index_position(&self.def, index)?;
        match &self.source {
            Source::Memory { mem, catalog, ix } => self.with_memory(mem, catalog, *ix, |t| {
                t.map(|t| t.index_hits(position, range)).unwrap_or_default()
            }),
            // Indexes are refused on tables not held in memory.
            Source::Disc(_) => Ok(Vec::new()),
        }
    }

    /// The page of the table's records `range` selects, in its order (see
    /// [`KeyRange`]).
    pub fn range(&self, range: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
        match &self.source {
            Source::Memory { mem, catalog, ix } => {
                self.with_memory(mem, catalog, *ix, |t| t.map(|t| t.range_read(range)).unwrap_or_default())
            }
            Source::Disc(rt) => rt.upgrade().ok_or(Error::Shutdown)?.range(&self.def.name, range),
        }
    }

    /// How many records the table holds (a bag: key-value pairs).
    pub fn count(&self) -> Result<u64> {
        match &self.source {
            Source::Memory { mem, catalog, ix } => {
                self.with_memory(mem, catalog, *ix, |t| t.map(|t| t.len() as u64).unwrap_or(0))
            }
            Source::Disc(rt) => rt.upgrade().ok_or(Error::Shutdown)?.count(&self.def.name),
        }
    }

    /// Every value under `key`: at most one for a set or ordered set, all of a bag's.
    pub fn get(&self, key: &[u8]) -> Result<Vec<Blob>> {
        match &self.source {
            Source::Memory { mem, catalog, ix } => {
                self.with_memory(mem, catalog, *ix, |t| t.map(|t| t.get(key)).unwrap_or_default())
            }
            Source::Disc(rt) => disc(rt, &self.def, key),
        }
    }
}

/// Refuses a one-value read of a bag ([`Error::InvalidTxn`]): it may hold many values
/// under one key.
pub(crate) fn refuse_bag(def: &TableDef) -> Result<()> {
    if def.kind == Kind::Bag {
        return Err(Error::InvalidTxn(format!("`{}` is a bag: it may hold many values under one key; use get", def.name)));
    }
    Ok(())
}

/// The position of `index` among `def`'s indexes ([`Error::UnknownIndex`] if it has none
/// of that name).
pub(crate) fn index_position(def: &TableDef, index: &str) -> Result<usize> {
    def.index_position(index).ok_or_else(|| Error::UnknownIndex { table: def.name.clone(), index: index.to_string() })
}

/// A `disc_only` table's values under `key`, from RocksDB while the node runs.
fn disc(rt: &Weak<Runtime>, def: &TableDef, key: &[u8]) -> Result<Vec<Blob>> {
    let rt = rt.upgrade().ok_or(Error::Shutdown)?;
    records::get(&rt.db, def, key)
}
