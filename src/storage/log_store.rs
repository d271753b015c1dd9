//! The Raft log in RocksDB (openraft's `RaftLogStorage`).
//!
//! Entries live in the `log` column family under their index (u64 big-endian, so key order
//! is index order). An append writes its entries in one `WriteBatch` without syncing, so
//! they are readable at once (replication reads them), and hands openraft's flush callback
//! to the sync thread. That thread syncs the WAL once for every callback queued meanwhile,
//! then reports them all durable: appends that arrive during an fsync share the next one.
//!
//! The leader's own appends are reported at once, before their sync (openraft 0.9 runs an
//! append to its end before it replicates, so a leader that waited for its fsync would
//! send to the followers only after it, and their fsyncs would follow its own). The sync
//! still runs, and [`Unsynced`] keeps everything of those entries invisible until it is
//! done: see `raft::unsynced`. A follower's append, and any append holding a
//! membership change, is reported only once synced.

// openraft's trait methods return its `StorageError` by value; our helpers return it too
// rather than convert at every call site.
#![allow(clippy::result_large_err)]

use super::db::{CF_LOG, Db};
use super::meta::{self, MetaKey};
use super::raft_mark::MarkWriter;
use crate::raft::unsynced::Unsynced;
use crate::raft::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::raft::wire::{decode_entry, encode_entry, span};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{IteratorMode, WriteBatch};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// What the sync thread reports once a WAL sync covers an append (its last index).
enum SyncRequest {
    /// Calls openraft's callback.
    Flush(LogFlushed<TypeConfig>, u64),
    /// Marks the leader's early append with this sequence synced in [`Unsynced`].
    Early(u64, u64),
}

#[derive(Clone, Debug)]
pub struct LogStore {
    db: Db,
    sync: std::sync::mpsc::Sender<SyncRequest>,
    /// This core's Raft id: the leader whose appends need no sync before they are reported.
    node: u64,
    /// The vote this store saved last: the leader it names, when committed, is this core's
    /// Raft when that is `node`.
    vote: Option<Vote>,
    unsynced: std::sync::Arc<Unsynced>,
    pins: RetentionPins,
    committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// The data dir's `RAFT_MARK` (see `raft_mark`): the vote and a durable applied index,
    /// written for this store's epoch only.
    mark: std::sync::Arc<MarkWriter>,
    epoch: u64,
}

/// Test hook: holds the log syncs of chosen stores (their sync thread waits before each
/// WAL sync) until released. Stores are named by their RocksDB directory, unique to a
/// node in a test process (node ids repeat across the clusters of parallel tests).
#[cfg(feature = "test-util")]
pub mod sync_hold {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use std::sync::{Condvar, Mutex};

    static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    static RELEASED: Condvar = Condvar::new();

    /// Holds the log syncs of the store in `db` (`storage::layout::db` of a data dir)
    /// until [`release`].
    pub fn hold(db: &Path) {
        HELD.lock().unwrap_or_else(|e| e.into_inner()).insert(db.to_path_buf());
    }

    /// Lets the log syncs of the store in `db` run again.
    pub fn release(db: &Path) {
        HELD.lock().unwrap_or_else(|e| e.into_inner()).remove(db);
        RELEASED.notify_all();
    }

    pub(super) fn pass(db: &Path) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(db) {
            held = RELEASED.wait(held).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Entries a purge leaves in place for replication streams still reading them.
///
/// openraft decides what is purged (its `last_purged` moves as it says), but entries at or
/// after the lowest pin stay on disk until the pin moves on, so a replicant bootstrapping
/// from a snapshot can still read the entries after it. A pin more than
/// [`RetentionPins::MAX_HOLD`] entries behind a purge stops holding: that stream fails
/// and its replicant bootstraps again, rather than the log growing without bound.
#[derive(Clone, Debug, Default)]
pub struct RetentionPins {
    inner: std::sync::Arc<std::sync::Mutex<Pins>>,
}

#[derive(Debug, Default)]
struct Pins {
    next_id: u64,
    /// Pin id → first index it needs.
    held: std::collections::BTreeMap<u64, u64>,
}

/// Keeps entries from `index` on; moves forward with [`Pin::advance`], released on drop.
#[derive(Debug)]
pub struct Pin {
    pins: RetentionPins,
    id: u64,
}

impl Pin {
    pub fn advance(&self, index: u64) {
        if let Ok(mut p) = self.pins.inner.lock()
            && let Some(i) = p.held.get_mut(&self.id)
        {
            *i = (*i).max(index);
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pins.inner.lock() {
            p.held.remove(&self.id);
        }
    }
}

impl RetentionPins {
    pub const MAX_HOLD: u64 = 100_000;

    /// Pins entries from `index` on if they are all still on disk (or not yet written:
    /// `index > applied`). `None`: some are gone, the caller needs a snapshot.
    pub fn pin_if_retained(&self, db: &Db, index: u64, applied: u64) -> crate::error::Result<Option<Pin>> {
        let mut p = self.inner.lock().map_err(|_| crate::error::Error::Invariant("retention pins poisoned".into()))?;
        let cf = db.cf(CF_LOG)?;
        let first = match db.raw().iterator_cf(cf, IteratorMode::Start).next() {
            Some(item) => {
                let (k, _) = item.map_err(|e| db.err("read log", e))?;
                Some(u64::from_be_bytes(
                    k.as_ref().try_into().map_err(|_| crate::error::Error::corrupt("log key", "not 8 bytes"))?,
                ))
            }
            None => None,
        };
        let retained = match first {
            Some(f) => index >= f,
            None => index > applied,
        };
        if !retained {
            return Ok(None);
        }
        Ok(Some(Self::insert(&mut p, self.clone(), index)))
    }

    /// Pins entries from `index` on; the caller knows they are not purgeable yet.
    pub fn pin(&self, index: u64) -> crate::error::Result<Pin> {
        let mut p = self.inner.lock().map_err(|_| crate::error::Error::Invariant("retention pins poisoned".into()))?;
        Ok(Self::insert(&mut p, self.clone(), index))
    }

    fn insert(p: &mut Pins, pins: RetentionPins, index: u64) -> Pin {
        p.next_id += 1;
        p.held.insert(p.next_id, index);
        Pin { pins, id: p.next_id }
    }

    /// Runs `delete(upto)` with the highest index it may delete, pins held still.
    fn purge_with<T>(&self, upto: u64, delete: impl FnOnce(u64) -> T) -> T {
        let Ok(p) = self.inner.lock() else { return delete(upto) };
        let bound = match p.held.values().min() {
            Some(&pin) if upto.saturating_sub(pin) < Self::MAX_HOLD => upto.min(pin.saturating_sub(1)),
            Some(&pin) if pin <= upto => {
                tracing::warn!(
                    pin,
                    upto,
                    "a replication stream is too far behind to hold the log; it will re-bootstrap"
                );
                upto
            }
            _ => upto,
        };
        delete(bound)
    }
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}

fn logs_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    io_err(ErrorSubject::Logs, verb, e)
}

impl LogStore {
    /// A log store on `db`, with its sync thread (which ends when the last clone is dropped).
    /// `pins` hold entries for replication; `committed` follows the commit index; `applied`
    /// follows the state machine's applied index, and `mark` records the vote and the
    /// applied indexes that a WAL sync made durable.
    pub fn new(
        db: Db,
        node: u64,
        unsynced: std::sync::Arc<Unsynced>,
        pins: RetentionPins,
        committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
        applied: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
        mark: std::sync::Arc<MarkWriter>,
    ) -> crate::error::Result<Self> {
        let (sync, pending) = std::sync::mpsc::channel::<SyncRequest>();
        let vote = Self::stored_vote(&db)?;
        let sync_unsynced = unsynced.clone();
        let sync_db = db.clone();
        let epoch = mark.epoch();
        // The mark has its own thread: its write (a file, its fsync, a rename and the
        // directory's fsync) is never on a write's path. On ext4 a directory fsync commits
        // the journal and can wait for other files' dirty data (a memtable flush), for a
        // second or more on a busy disk; the WAL syncs that acknowledge writes go on
        // meanwhile. A mark written late is only a lower bound.
        let (durable, durable_rx) = std::sync::mpsc::channel::<u64>();
        let mark_writer = mark.clone();
        std::thread::Builder::new()
            .name("mnema-raft-mark".into())
            .spawn(move || {
                loop {
                    match durable_rx.recv_timeout(std::time::Duration::from_secs(1)) {
                        Ok(first) => {
                            let applied = durable_rx.try_iter().fold(first, u64::max);
                            if let Err(e) = mark_writer.durable_applied(epoch, applied) {
                                tracing::warn!(error = %e, "could not update RAFT_MARK");
                            }
                        }
                        // Idle: write what the mark's rate limit held back.
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(e) = mark_writer.flush(epoch) {
                                tracing::warn!(error = %e, "could not update RAFT_MARK");
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| crate::error::Error::io("RAFT_MARK thread", e))?;
        std::thread::Builder::new()
            .name("mnema-log-sync".into())
            .spawn(move || {
                while let Ok(first) = pending.recv() {
                    let mut done = vec![first];
                    done.extend(pending.try_iter());
                    #[cfg(feature = "test-util")]
                    sync_hold::pass(sync_db.raw().path());
                    // Applied before the sync began: its state's write is in the WAL the sync covers.
                    let applied = *applied.borrow();
                    let res = sync_db.sync_wal().map_err(|e| e.to_string());
                    let synced = res.is_ok();
                    let (mut last, mut early) = (0, None);
                    for request in done {
                        match request {
                            SyncRequest::Flush(callback, upto) => {
                                last = last.max(upto);
                                callback.log_io_completed(res.clone().map_err(std::io::Error::other));
                            }
                            SyncRequest::Early(seq, upto) => {
                                last = last.max(upto);
                                early = Some(seq);
                            }
                        }
                    }
                    match (&res, early) {
                        (Ok(()), Some(seq)) => sync_unsynced.synced(seq),
                        (Err(e), _) => sync_unsynced.failed(format!("log sync: {e}")),
                        (Ok(()), None) => {}
                    }
                    if synced {
                        crate::stages::synced(node, last);
                        let _ = durable.send(applied);
                    }
                }
                sync_unsynced.failed("the log's sync thread ended".into());
            })
            .map_err(|e| crate::error::Error::io("log sync thread", e))?;
        Ok(LogStore { db, sync, node, vote, unsynced, pins, committed, mark, epoch })
    }

    /// Whether `entries` are this core's own, appended as the leader of the vote it saved
    /// (so reported to Raft before their sync): no follower ever appends entries of that
    /// vote's leader, as it is the only one that makes them. A membership change is
    /// reported only once synced, as openraft acts on it as soon as it commits.
    fn leads(&self, entries: &[Entry]) -> bool {
        let Some(vote) = &self.vote else { return false };
        vote.committed
            && vote.leader_id.node_id == self.node
            && !entries.is_empty()
            && entries.iter().all(|e| {
                e.log_id.leader_id == vote.leader_id && !matches!(e.payload, openraft::EntryPayload::Membership(_))
            })
    }

    /// The vote `db` holds (for the open-time check against `RAFT_MARK`, before any log
    /// store, and its sync thread, exists).
    pub fn stored_vote(db: &Db) -> crate::error::Result<Option<Vote>> {
        meta::get(db, MetaKey::Vote)
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: MetaKey) -> Result<Option<T>, StorageError> {
        meta::get(&self.db, key).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    fn put_meta<T: serde::Serialize>(&self, key: MetaKey, value: &T, sync: bool) -> Result<(), StorageError> {
        let w = |e: &dyn std::fmt::Display| io_err(ErrorSubject::Store, ErrorVerb::Write, e);
        let mut wb = WriteBatch::default();
        meta::put(&self.db, &mut wb, key, value).map_err(|e| w(&e))?;
        let opts = if sync { Db::sync_opts() } else { Db::lazy_opts() };
        self.db.raw().write_opt(wb, &opts).map_err(|e| w(&self.db.err("write meta", e)))
    }

    /// The id of the last entry of this log (appended, synced or not; the last purged one
    /// when every entry was purged): what a pre-vote compares (`raft::pre_vote`).
    pub fn last_log_id(&self) -> crate::error::Result<Option<LogId>> {
        Ok(self.log_state().map_err(|e| crate::error::Error::Storage(e.to_string()))?.last_log_id)
    }

    /// The last purged log id, and the last log id (the last purged one when every entry
    /// was purged): what Raft reads at start and a pre-vote compares.
    fn log_state(&self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(MetaKey::LastPurged)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Read, e))?;
        match self.db.raw().iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(|e| logs_err(ErrorVerb::Read, self.db.err("read log", e)))?;
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
        self.db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| logs_err(ErrorVerb::Delete, self.db.err("purge log", e)))
    }

    /// Removes every entry and the vote (used when a node leaves one cluster to join another).
    pub fn wipe(&self) -> crate::error::Result<()> {
        let mut wb = WriteBatch::default();
        for k in MetaKey::LOG {
            meta::delete(&self.db, &mut wb, k)?;
        }
        let cf = self.db.cf(CF_LOG)?;
        wb.delete_range_cf(cf, 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
        wb.delete_cf(cf, u64::MAX.to_be_bytes());
        self.db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| self.db.err("wipe log", e))?;
        self.mark.reset()
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
        super::log_reader::read(&self.db, start, |i| range.contains(&i)).map_err(|e| logs_err(ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state()
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(MetaKey::Vote, vote, true)?;
        self.vote = Some(*vote);
        // Recorded outside RocksDB too, once RocksDB has it: a vote that later went back is seen.
        self.mark.vote(self.epoch, vote).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(MetaKey::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-applying from the state machine's own point.
        self.put_meta(MetaKey::Committed, &committed, false)?;
        let index = committed.map(|c| c.index).unwrap_or(0);
        crate::stages::mark_node(crate::stages::Stage::Committed, self.node, 0, index);
        self.committed.send_replace(index);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(MetaKey::Committed)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.db.cf(CF_LOG).map_err(|e| logs_err(ErrorVerb::Write, e))?;
        let entries: Vec<Entry> = entries.into_iter().collect();
        let early = self.leads(&entries);
        let (first, last) = span(&entries);
        let mut wb = WriteBatch::default();
        for entry in &entries {
            let bytes = encode_entry(entry).map_err(|e| logs_err(ErrorVerb::Write, e))?;
            wb.put_cf(cf, entry.log_id.index.to_be_bytes(), bytes);
        }
        if let Err(e) = self.db.raw().write_opt(wb, &Db::lazy_opts()) {
            let msg = self.db.err("append log", e.clone()).to_string();
            callback.log_io_completed(Err(std::io::Error::other(e)));
            return Err(logs_err(ErrorVerb::Write, msg));
        }
        crate::stages::appended(self.node, first, last);
        let gone = |_| logs_err(ErrorVerb::Write, "log sync thread is gone");
        if early {
            // Recorded before Raft hears of it: nothing shows it until the sync is done.
            let seq = self.unsynced.appended(first);
            self.sync.send(SyncRequest::Early(seq, last)).map_err(gone)?;
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        // Durable (and reported so) once the sync thread's next WAL sync completes.
        self.sync.send(SyncRequest::Flush(callback, last)).map_err(gone)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.delete_range(log_id.index, None)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Entries about to go may be all that covers state-machine writes not yet in a
        // synced WAL segment: make those durable first.
        self.db.sync_wal().map_err(|e| logs_err(ErrorVerb::Delete, e))?;
        self.put_meta(MetaKey::LastPurged, &log_id, true)?;
        // Entries between the pinned bound and `log_id` stay until a later purge.
        let out =
            self.pins.clone().purge_with(log_id.index, |upto| self.delete_range(0, Some(upto.saturating_add(1))));
        if out.is_ok() {
            self.db.events().purged(log_id.index);
        }
        out
    }
}
