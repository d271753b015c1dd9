//! The Raft log in RocksDB (openraft's `RaftLogStorage`).
//!
//! Entries live in the `log` column family under their index (u64 big-endian, so key order
//! is index order). An append writes its entries in one `WriteBatch` without syncing, so
//! they are readable at once (replication reads them), and hands openraft's flush callback
//! to the sync thread. That thread syncs the WAL once for every callback queued meanwhile,
//! then reports them all durable: openraft's core never waits on a disk, and appends that
//! arrive during an fsync share the next one.

// openraft's trait methods return its `StorageError` by value; our helpers return it too
// rather than convert at every call site.
#![allow(clippy::result_large_err)]

use super::db::{CF_LOG, CF_META, Db};
use crate::codec;
use crate::raft::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::raft::wire::{decode_entry, encode_entry};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

const META_VERSION: u8 = 1;
const KEY_VOTE: &str = "vote";
const KEY_PURGED: &str = "last_purged";
const KEY_COMMITTED: &str = "committed";

#[derive(Clone, Debug)]
pub struct LogStore {
    db: Db,
    sync: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

fn logs_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, verb, e)
}

impl LogStore {
    /// A log store on `db`, with its sync thread (which ends when the last clone is dropped).
    pub fn new(db: Db) -> crate::error::Result<Self> {
        let (sync, pending) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
        let sync_db = db.clone();
        std::thread::Builder::new()
            .name("mnema-log-sync".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut done = vec![first];
                    done.extend(pending.try_iter());
                    let res = sync_db.sync_wal().map_err(|e| e.to_string());
                    for callback in done {
                        callback.log_io_completed(res.clone().map_err(std::io::Error::other));
                    }
                }
            })
            .map_err(|e| crate::error::Error::io("log sync thread", e))?;
        Ok(LogStore { db, sync })
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let raw = self.db.get_meta(key).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
        raw.map(|b| codec::decode_versioned("log meta", META_VERSION, &b))
            .transpose()
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, value: &T, sync: bool) -> Result<(), StorageError> {
        let w = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Store, ErrorVerb::Write, e);
        let bytes = codec::encode_versioned(META_VERSION, value).map_err(|e| w(&e))?;
        let cf = self.db.cf(CF_META).map_err(|e| w(&e))?;
        let opts = if sync { Db::sync_opts() } else { Db::lazy_opts() };
        self.db.raw().put_cf_opt(cf, key, bytes, &opts).map_err(|e| w(&e))
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Read, e))?;
        match self.db.raw().iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(|e| logs_err(ErrorVerb::Read, e))?;
                Ok(Some(decode_entry(&v).map_err(|e| logs_err(ErrorVerb::Read, e))?.log_id))
            }
        }
    }

    /// Deletes entries with index in `[from, to)` (`to = None`: to the end), synced.
    fn delete_range(&self, from: u64, to: Option<u64>) -> Result<(), StorageError> {
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Delete, e))?;
        let mut wb = WriteBatch::default();
        match to {
            Some(to) => wb.delete_range_cf(cf, from.to_be_bytes(), to.to_be_bytes()),
            None => {
                wb.delete_range_cf(cf, from.to_be_bytes(), u64::MAX.to_be_bytes());
                wb.delete_cf(cf, u64::MAX.to_be_bytes());
            }
        }
        self.db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| logs_err(ErrorVerb::Delete, e))
    }

    /// Removes every entry and the vote (used when a node leaves one cluster to join another).
    pub fn wipe(&self) -> crate::error::Result<()> {
        let cf_meta = self.db.cf(CF_META)?;
        let mut wb = WriteBatch::default();
        for k in [KEY_VOTE, KEY_PURGED, KEY_COMMITTED] {
            wb.delete_cf(cf_meta, k);
        }
        let cf = self.db.cf(CF_LOG)?;
        wb.delete_range_cf(cf, 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
        wb.delete_cf(cf, u64::MAX.to_be_bytes());
        self.db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| super::db::storage_err("wipe log", e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Read, e))?;
        let mut out = Vec::new();
        for item in self.db.raw().iterator_cf(cf, IteratorMode::From(&start.to_be_bytes(), Direction::Forward)) {
            let (k, v) = item.map_err(|e| logs_err(ErrorVerb::Read, e))?;
            let index = u64::from_be_bytes(
                k.as_ref().try_into().map_err(|_| logs_err(ErrorVerb::Read, "log key is not 8 bytes"))?,
            );
            if !range.contains(&index) {
                break;
            }
            let entry = decode_entry(&v).map_err(|e| logs_err(ErrorVerb::Read, e))?;
            if entry.log_id.index != index {
                return Err(logs_err(
                    ErrorVerb::Read,
                    format!("entry under key {index} has index {}", entry.log_id.index),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote, true)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-applying from the state machine's own point.
        self.put_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Write, e))?;
        let mut wb = WriteBatch::default();
        for entry in entries {
            let bytes = encode_entry(&entry).map_err(|e| logs_err(ErrorVerb::Write, e))?;
            wb.put_cf(cf, entry.log_id.index.to_be_bytes(), bytes);
        }
        if let Err(e) = self.db.raw().write_opt(wb, &Db::lazy_opts()) {
            let msg = e.to_string();
            callback.log_io_completed(Err(std::io::Error::other(e)));
            return Err(logs_err(ErrorVerb::Write, msg));
        }
        // Durable (and reported so) once the sync thread's next WAL sync completes.
        self.sync.send(callback).map_err(|_| logs_err(ErrorVerb::Write, "log sync thread is gone"))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.delete_range(log_id.index, None)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Entries about to go may be all that covers state-machine writes not yet in a
        // synced WAL segment: make those durable first.
        self.db.sync_wal().map_err(|e| logs_err(ErrorVerb::Delete, e))?;
        self.put_meta(KEY_PURGED, &log_id, true)?;
        self.delete_range(0, Some(log_id.index.saturating_add(1)))
    }
}
