//! A consistent read of the replicated records: a RocksDB snapshot of the `data` column
//! family with the applied log id and membership written in the same batches, so the
//! records are exactly the state at that index. Snapshot building (Raft), the replication
//! stream's bootstrap and export all read through it, concurrently with applies.

use super::db::{CF_DATA, Db};
use super::meta::{self, MetaKey};
use crate::error::Result;
use crate::raft::types::{LogId, StoredMembership};

/// The replicated records as of one applied index.
pub struct DataSnapshot<'a> {
    db: &'a Db,
    snap: rocksdb::Snapshot<'a>,
}

impl<'a> DataSnapshot<'a> {
    /// Takes the snapshot now.
    pub fn take(db: &'a Db) -> Self {
        DataSnapshot { db, snap: db.raw().snapshot() }
    }

    /// The last applied log id the records include (`None`: nothing applied yet).
    pub fn applied(&self) -> Result<Option<LogId>> {
        Ok(meta::get_at::<Option<LogId>>(self.db, &self.snap, MetaKey::Applied)?.flatten())
    }

    /// The index of [`DataSnapshot::applied`] (0 when nothing was applied).
    pub fn applied_index(&self) -> Result<u64> {
        Ok(self.applied()?.map(|l| l.index).unwrap_or(0))
    }

    /// The last applied membership.
    pub fn membership(&self) -> Result<StoredMembership> {
        Ok(meta::get_at(self.db, &self.snap, MetaKey::Membership)?.unwrap_or_default())
    }

    /// Calls `each` with the stored key and value of every record whose key starts with
    /// `prefix`, in key order, until it returns `Ok(false)` or an error.
    pub fn for_each_with_prefix(&self, prefix: &[u8], mut each: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.db.scan(self.db.cf(CF_DATA)?, prefix, Some(&self.snap), |k, v| Ok(k.starts_with(prefix) && each(k, v)?))
    }

    /// The catalog at this snapshot's index: every replicated table's declaration, by name.
    pub fn catalog(&self) -> Result<std::collections::BTreeMap<String, crate::engine::Declaration>> {
        let mut out = std::collections::BTreeMap::new();
        self.for_each_with_prefix(&crate::engine::keys::table_prefix(crate::engine::catalog::TABLE), |_, v| {
            let decl = crate::engine::catalog::decode_record(v)?;
            out.insert(decl.name.clone(), decl);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `each` with every record's stored key and value (layout in `engine::keys`),
    /// in key order, until it returns `Ok(false)` or an error.
    pub fn for_each_record(&self, each: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.db.scan(self.db.cf(CF_DATA)?, b"", Some(&self.snap), each)
    }
}
