//! [`Tables`]: what the typed table modules (`schema`) need of a node, so that they run on
//! whatever implements it: a core or a replicant (`Node`), or the runtime inside the crate.

use super::{Blob, Committed, OpResult, Txn};
use crate::error::Result;
use std::future::Future;

/// Reads and writes of declared tables, as a node offers them.
///
/// Reads are local (a node's own copy, lock-free for tables in memory); writes of
/// replicated tables go through Raft and return once this node applied them.
pub trait Tables {
    /// The node's name (`name@host`): recorded by tables that say who changed what.
    fn node_name(&self) -> &str;

    /// Writes a transaction of replicated tables.
    fn transact(&self, txn: Txn) -> impl Future<Output = Result<Committed>> + Send;

    /// Writes a transaction of local tables, on this node only.
    fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>>;

    /// The values under `key` in `table` (at most one for sets).
    fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>>;

    /// Records of a set or ordered set whose keys start with `prefix`.
    fn prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Blob, Blob)>>;

    /// Every record of `table`.
    fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>>;
}
