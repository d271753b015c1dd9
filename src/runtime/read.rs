//! The read path: local reads of a node's tables, lock-free for tables held in memory.
//!
//! A table is found where this node keeps it ([`Place`]): its local tables (fixed at
//! start), or the replicated catalog of the state it has applied (tables come and go with
//! the log). A replicated table this node declares but the log has not created yet reads
//! as empty; a table of a shard a replicant does not follow is refused
//! ([`Error::ShardNotFollowed`]), never read as empty.

use crate::raft::types::{NodeInfo, RaftError};
use crate::rpc::client::status_error;
use crate::rpc::pb;
use std::time::{Duration, Instant};
use super::Runtime;
use crate::engine::memory::MemState;
use crate::engine::{Blob, IndexHit, IndexRange, KeyRange, TableDef, TableIx};
use crate::error::{Error, Result};
use crate::storage::records;
use std::sync::Arc;

/// Where a table's records are on this node.
pub(crate) enum Place<'a> {
    /// In memory: the state holding it (local or replicated) and its position there.
    Memory(arc_swap::Guard<Arc<MemState>>, TableIx),
    /// In RocksDB only (`disc_only` on a core).
    Disc(TableDef),
    /// Declared by this node, not yet created through the log: no records yet.
    Pending(&'a TableDef),
}

impl Place<'_> {
    /// The table's definition.
    pub(crate) fn def(&self) -> &TableDef {
        match self {
            Place::Memory(view, ix) => view.catalog.def(*ix),
            Place::Disc(def) => def,
            Place::Pending(def) => def,
        }
    }
}

impl Runtime {
    /// Where `table` is on this node.
    pub(crate) fn place(&self, table: &str) -> Result<Place<'_>> {
        if let Ok(ix) = self.schema.local.lookup(table) {
            let def = self.schema.local.def(ix);
            return Ok(if def.in_memory() { Place::Memory(self.local.load(), ix) } else { Place::Disc(def.clone()) });
        }
        let view = self.mem.load();
        match view.catalog.lookup(table) {
            Ok(ix) => {
                let def = view.catalog.def(ix);
                if !view.holding.follows(def.shard) {
                    return Err(Error::ShardNotFollowed {
                        node: self.name().to_string(),
                        table: table.to_string(),
                        shard: def.shard,
                    });
                }
                if view.table(ix).is_held() {
                    Ok(Place::Memory(view, ix))
                } else {
                    Ok(Place::Disc(def.clone()))
                }
            }
            Err(e) => match self.schema.declares(table) {
                Some(def) => Ok(Place::Pending(def)),
                None => Err(e),
            },
        }
    }

    /// The values under `key` in `table` (at most one for sets), read locally.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        match self.place(table)? {
            Place::Memory(view, ix) => Ok(view.table(ix).get(key)),
            Place::Disc(def) => records::get(&self.db, &def, key),
            Place::Pending(_) => Ok(Vec::new()),
        }
    }

    /// The value under `key` in a set or ordered set (a bag is refused), read locally.
    pub fn get_one(&self, table: &str, key: &[u8]) -> Result<Option<Blob>> {
        let place = self.place(table)?;
        super::handle::refuse_bag(place.def())?;
        match place {
            Place::Memory(view, ix) => Ok(view.table(ix).get_one(key).map(|v| v.to_blob())),
            Place::Disc(def) => Ok(records::get(&self.db, &def, key)?.pop()),
            Place::Pending(_) => Ok(None),
        }
    }

    /// Records of a set or ordered set whose keys start with `prefix`, read locally, in key
    /// order for ordered tables.
    pub fn prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Blob, Blob)>> {
        let place = self.place(table)?;
        if place.def().kind == crate::engine::Kind::Bag {
            return Err(Error::InvalidTxn(format!("prefix reads need a set; `{table}` is a bag")));
        }
        match place {
            Place::Memory(view, ix) => {
                let t = view.table(ix);
                if t.is_ordered() {
                    let end = crate::engine::keys::prefix_end(prefix);
                    return Ok(t.range(prefix, end.as_deref()));
                }
                let mut out = Vec::new();
                t.for_each(|k, v| {
                    if k.starts_with(prefix) {
                        out.push((Blob::from(k), v.to_blob()));
                    }
                });
                Ok(out)
            }
            Place::Disc(def) => records::prefix(&self.db, &def, prefix),
            Place::Pending(_) => Ok(Vec::new()),
        }
    }

    /// The records `range` selects through `table`'s secondary index `index`, read
    /// locally, in index order.
    pub fn index(&self, table: &str, index: &str, range: &IndexRange) -> Result<Vec<IndexHit>> {
        let place = self.place(table)?;
        let position = super::handle::index_position(place.def(), index)?;
        match place {
            Place::Memory(view, ix) => Ok(view.table(ix).index_hits(position, range)),
            // Indexes are refused on tables not held in memory.
            Place::Disc(_) | Place::Pending(_) => Ok(Vec::new()),
        }
    }

    /// The page of `table`'s records `range` selects, read locally, in its order (see
    /// [`KeyRange`]).
    pub fn range(&self, table: &str, range: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
        match self.place(table)? {
            Place::Memory(view, ix) => Ok(view.table(ix).range_read(range)),
            Place::Disc(def) => records::range(&self.db, &def, range),
            Place::Pending(_) => Ok(Vec::new()),
        }
    }

    /// How many records `table` holds here (a bag: key-value pairs). A `disc_only` table
    /// on a core is counted by a pass over its keys.
    pub fn count(&self, table: &str) -> Result<u64> {
        match self.place(table)? {
            Place::Memory(view, ix) => Ok(view.table(ix).len() as u64),
            Place::Disc(def) => records::count(&self.db, &def),
            Place::Pending(_) => Ok(0),
        }
    }

    /// Every record of `table`, read locally (ordered tables in key order).
    pub fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        match self.place(table)? {
            Place::Memory(view, ix) => {
                let mut out = Vec::new();
                view.table(ix).for_each(|k, v| out.push((Blob::from(k), v.to_blob())));
                Ok(out)
            }
            Place::Disc(def) => records::dump(&self.db, &def),
            Place::Pending(_) => Ok(Vec::new()),
        }
    }

    /// A consistent, lock-free view of every in-memory replicated table at one index.
    pub fn view(&self) -> arc_swap::Guard<Arc<MemState>> {
        self.mem.load()
    }

    /// The position of replicated table `table` in the current view
    /// ([`Error::UnknownTable`] if the log has not created it).
    pub fn table_ix(&self, table: &str) -> Result<TableIx> {
        self.mem.load().catalog.lookup(table)
    }
}

/// Linearizable reads: the leader's commit index confirmed by a quorum, and waiting for it.
impl Runtime {
    /// The index a linearizable read must wait for: the leader's commit index, confirmed
    /// by a quorum (openraft's read index). Asked of the leader from any other node.
    pub async fn read_index(&self) -> Result<u64> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        loop {
            let mut changes = self.leader_changes();
            let res = match self.leader()? {
                Some((id, _)) if id == self.cfg.node_id && !self.is_replicant() => self.read_index_as_leader().await,
                Some((_, leader)) => self.ask_read_index(&leader).await,
                None => Err(Error::NoLeader("no leader known".into())),
            };
            match res {
                Ok(i) => return Ok(i),
                Err(e @ (Error::NoLeader(_) | Error::Transport { .. } | Error::NotLeader { .. })) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    changes.wait(left.min(Duration::from_millis(100))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read index on this node, which must be the leader.
    pub async fn read_index_as_leader(&self) -> Result<u64> {
        if self.is_replicant() {
            return Err(Error::NotLeader { node: self.cfg.name.to_string(), leader: None });
        }
        match self.raft()?.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_node))
            }
            Err(RaftError::APIError(e)) => Err(Error::NoLeader(e.to_string())),
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    async fn ask_read_index(&self, leader: &NodeInfo) -> Result<u64> {
        let mut client = self.peers.cluster(&leader.addr)?;
        let reply = client.read_index(pb::Empty {}).await.map_err(|s| status_error(&leader.name, s))?;
        Ok(reply.into_inner().index)
    }

    /// Waits until this node has applied every write committed before the call: a read
    /// after it is linearizable.
    pub async fn barrier(&self) -> Result<()> {
        let index = self.read_index().await?;
        self.wait_applied(index, self.cfg.write_timeout()).await
    }
}
