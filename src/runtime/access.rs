//! The runtime as [`crate::engine::Tables`]: the schema modules' one interface, over a
//! `Node`, a `Client` or the runtime itself.

use super::Runtime;
use crate::engine::memory::Blob;
use crate::engine::{
    Committed, IndexHit, IndexRange, OpResult, Txn,
};
use crate::error::Result;

impl crate::engine::Tables for Runtime {
    fn node_name(&self) -> &str {
        self.name()
    }

    fn transact(&self, txn: Txn) -> impl std::future::Future<Output = Result<Committed>> + Send {
        Runtime::transact(self, txn)
    }

    fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        Runtime::transact_local(self, txn)
    }

    fn get(&self, table: &str, key: &[u8]) -> impl std::future::Future<Output = Result<Vec<Blob>>> + Send {
        std::future::ready(Runtime::get(self, table, key))
    }

    fn prefix(
        &self,
        table: &str,
        prefix: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::prefix(self, table, prefix))
    }

    fn dump(&self, table: &str) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::dump(self, table))
    }

    fn range(
        &self,
        table: &str,
        range: crate::engine::KeyRange,
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(Runtime::range(self, table, &range))
    }

    fn count(&self, table: &str) -> impl std::future::Future<Output = Result<u64>> + Send {
        std::future::ready(Runtime::count(self, table))
    }

    fn index(
        &self,
        table: &str,
        index: &str,
        range: IndexRange,
    ) -> impl std::future::Future<Output = Result<Vec<IndexHit>>> + Send {
        std::future::ready(Runtime::index(self, table, index, &range))
    }
}
