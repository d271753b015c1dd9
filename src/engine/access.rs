//! [`Tables`]: what the typed table modules (`schema`) need of a node, so that they run on
//! whatever implements it: a core or a replicant (`Node`), a remote node over gRPC
//! (`Client`), or the runtime inside the crate.

use super::{Blob, Committed, IndexHit, IndexRange, KeyRange, OpResult, Txn};
use crate::error::Result;
use std::future::Future;

/// Reads and writes of declared tables, as a node offers them.
///
/// On a [`Node`](crate::Node) reads are local (its own copy, lock-free for tables in
/// memory: the futures are ready at once); on a [`Client`](crate::Client) they are calls to
/// the node it talks to. Writes of replicated tables go through Raft and return once the
/// node that took them applied them.
pub trait Tables {
    /// The node's name (`name@host`; a `Client`: the address it talks to): recorded by
    /// tables that say who changed what.
    fn node_name(&self) -> &str;

    /// Writes a transaction of replicated tables.
    fn transact(&self, txn: Txn) -> impl Future<Output = Result<Committed>> + Send;

    /// Writes a transaction of local tables, on this node only.
    fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>>;

    /// The values under `key` in `table` (at most one for sets).
    fn get(&self, table: &str, key: &[u8]) -> impl Future<Output = Result<Vec<Blob>>> + Send;

    /// Records of a set or ordered set whose keys start with `prefix`, in key order.
    fn prefix(&self, table: &str, prefix: &[u8]) -> impl Future<Output = Result<Vec<(Blob, Blob)>>> + Send;

    /// The page of `table`'s records `range` selects, in its order (see [`KeyRange`]).
    fn range(&self, table: &str, range: KeyRange) -> impl Future<Output = Result<Vec<(Blob, Blob)>>> + Send;

    /// How many records `table` holds (a bag: key-value pairs).
    fn count(&self, table: &str) -> impl Future<Output = Result<u64>> + Send;

    /// Every record of `table`.
    fn dump(&self, table: &str) -> impl Future<Output = Result<Vec<(Blob, Blob)>>> + Send;

    /// The records `range` selects through `table`'s secondary index `index`, in index
    /// order ([`Error::UnknownIndex`](crate::Error::UnknownIndex) if it has none of that name).
    fn index(&self, table: &str, index: &str, range: IndexRange)
    -> impl Future<Output = Result<Vec<IndexHit>>> + Send;
}
