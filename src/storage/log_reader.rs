//! Reading Raft log entries back from the `log` column family: openraft's log reader and
//! the replication stream both use [`read`].

use super::db::{CF_LOG, Db};
use crate::error::{Error, Result};
use crate::raft::types::Entry;
use crate::raft::wire::decode_entry;

/// The key of the entry at `index`.
pub fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Entries from `from` on, in index order, while `keep(index)` holds. Each entry must sit
/// under its own index; the first missing index ends the read (the caller checks the
/// count when it needs every entry of a range).
pub fn read(db: &Db, from: u64, mut keep: impl FnMut(u64) -> bool) -> Result<Vec<Entry>> {
    let cf = db.cf(CF_LOG)?;
    let mut out = Vec::new();
    let mut expected = from;
    for item in db.raw().iterator_cf(cf, rocksdb::IteratorMode::From(&key(from), rocksdb::Direction::Forward)) {
        let (k, v) = item.map_err(|e| db.err("read log", e))?;
        let index = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| Error::corrupt("log key", "not 8 bytes"))?);
        if !keep(index) || index != expected {
            break;
        }
        let entry = decode_entry(&v)?;
        if entry.log_id.index != index {
            return Err(Error::corrupt(
                "log entry",
                format!("entry under key {index} has index {}", entry.log_id.index),
            ));
        }
        out.push(entry);
        expected = index + 1;
    }
    Ok(out)
}

/// Every entry of `from..=to`, or [`Error::NotRetained`] when the log no longer holds
/// them all.
pub fn read_range(db: &Db, from: u64, to: u64) -> Result<Vec<Entry>> {
    let out = read(db, from, |i| i <= to)?;
    if out.len() as u64 != to.saturating_sub(from) + 1 {
        return Err(Error::NotRetained { from: from + out.len() as u64 });
    }
    Ok(out)
}
