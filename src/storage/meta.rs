//! Every key of the `meta` column family, and how its values are encoded. Nothing else
//! names a meta key.
//!
//! | key             | written by            | value                                   |
//! |-----------------|-----------------------|-----------------------------------------|
//! | `vote`          | log store (synced)    | the last vote                           |
//! | `last_purged`   | log store (synced)    | the last purged log id                  |
//! | `committed`     | log store             | the commit index as last saved          |
//! | `sm_applied`    | state machine (apply) | the last applied log id, with the data  |
//! | `sm_membership` | state machine (apply) | the last applied membership             |
//! | `snapshot`      | state machine         | the current snapshot file and its meta  |
//! | `installing`    | state machine         | a snapshot install under way            |

use super::db::{CF_META, Db};
use crate::codec;
use crate::error::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version byte in front of every meta value.
const VERSION: u8 = 1;

/// A key of the `meta` column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    Vote,
    LastPurged,
    Committed,
    Applied,
    Membership,
    Snapshot,
    Installing,
}

impl MetaKey {
    /// The keys the log store owns (wiped with the log).
    pub const LOG: [MetaKey; 3] = [MetaKey::Vote, MetaKey::LastPurged, MetaKey::Committed];
    /// The keys the state machine owns (wiped with the data).
    pub const STATE: [MetaKey; 4] = [MetaKey::Applied, MetaKey::Membership, MetaKey::Snapshot, MetaKey::Installing];

    /// The key's bytes in RocksDB.
    pub fn name(self) -> &'static str {
        match self {
            MetaKey::Vote => "vote",
            MetaKey::LastPurged => "last_purged",
            MetaKey::Committed => "committed",
            MetaKey::Applied => "sm_applied",
            MetaKey::Membership => "sm_membership",
            MetaKey::Snapshot => "snapshot",
            MetaKey::Installing => "installing",
        }
    }
}

/// Decodes a stored meta value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    codec::decode_versioned("meta value", VERSION, bytes)
}

/// Encodes a meta value for storing.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    codec::encode_versioned(VERSION, value)
}

/// Reads `key` now.
pub fn get<T: DeserializeOwned>(db: &Db, key: MetaKey) -> Result<Option<T>> {
    let raw = db.raw().get_cf(db.cf(CF_META)?, key.name()).map_err(|e| db.err("read meta", e))?;
    raw.map(|b| decode(&b)).transpose()
}

/// Reads `key` as it was in `snap`.
pub fn get_at<T: DeserializeOwned>(db: &Db, snap: &rocksdb::Snapshot<'_>, key: MetaKey) -> Result<Option<T>> {
    let raw = snap.get_cf(db.cf(CF_META)?, key.name()).map_err(|e| db.err("read meta", e))?;
    raw.map(|b| decode(&b)).transpose()
}

/// Adds the write of `key` to `wb`.
pub fn put<T: Serialize>(db: &Db, wb: &mut rocksdb::WriteBatch, key: MetaKey, value: &T) -> Result<()> {
    wb.put_cf(db.cf(CF_META)?, key.name(), encode(value)?);
    Ok(())
}

/// Adds the deletion of `key` to `wb`.
pub fn delete(db: &Db, wb: &mut rocksdb::WriteBatch, key: MetaKey) -> Result<()> {
    wb.delete_cf(db.cf(CF_META)?, key.name());
    Ok(())
}
