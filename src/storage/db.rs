//! The node's RocksDB instance: one DB, four column families, one WAL.
//!
//! | cf      | holds                                                        |
//! |---------|--------------------------------------------------------------|
//! | `log`   | Raft log entries by index (u64 BE)                           |
//! | `meta`  | vote, purge point, applied state, snapshot pointer           |
//! | `data`  | records of replicated tables (layout in `engine::keys`)      |
//! | `local` | records of local `disc` tables                               |
//!
//! One WAL for all of them means a synced log append also makes every earlier state
//! machine write durable: the state machine itself never has to fsync.

use crate::error::{Error, Result};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, WriteOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const CF_LOG: &str = "log";
pub const CF_META: &str = "meta";
pub const CF_DATA: &str = "data";
pub const CF_LOCAL: &str = "local";
const CFS: [&str; 4] = [CF_LOG, CF_META, CF_DATA, CF_LOCAL];

/// A handle on the node's DB, cheap to clone. RocksDB closes when the last handle goes;
/// [`Db::closed`] says when.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    // Fields drop in order: the DB is closed before the closing signal goes out.
    db: DB,
    closed: tokio::sync::watch::Sender<()>,
    events: Events,
    /// Where the store is (named by a damage found without a file in RocksDB's words).
    path: std::path::PathBuf,
    /// The first damage a read or write of the open store found (see [`Db::err`]).
    damage: tokio::sync::watch::Sender<Option<Error>>,
}

/// Counts of the store's maintenance events, for metrics.
#[derive(Default)]
pub struct Events {
    snapshots_built: AtomicU64,
    snapshots_installed: AtomicU64,
    purges: AtomicU64,
    purged_upto: AtomicU64,
}

impl Events {
    pub(crate) fn snapshot_built(&self) {
        self.snapshots_built.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot_installed(&self) {
        self.snapshots_installed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn purged(&self, upto: u64) {
        self.purges.fetch_add(1, Ordering::Relaxed);
        self.purged_upto.fetch_max(upto, Ordering::Relaxed);
    }

    pub fn snapshots_built(&self) -> u64 {
        self.snapshots_built.load(Ordering::Relaxed)
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }

    pub fn purges(&self) -> u64 {
        self.purges.load(Ordering::Relaxed)
    }

    pub fn purged_upto(&self) -> u64 {
        self.purged_upto.load(Ordering::Relaxed)
    }
}

/// RocksDB's integer properties reported as metrics (`rocksdb.<name>`).
const INT_PROPERTIES: [&str; 9] = [
    "estimate-num-keys",
    "estimate-live-data-size",
    "total-sst-files-size",
    "cur-size-all-mem-tables",
    "num-running-compactions",
    "num-running-flushes",
    "background-errors",
    "estimate-pending-compaction-bytes",
    "actual-delayed-write-rate",
];

/// Resolves once RocksDB is closed (every [`Db`] handle dropped).
pub struct Closed(tokio::sync::watch::Receiver<()>);

impl Closed {
    /// Waits until the DB is closed.
    pub async fn wait(mut self) {
        while self.0.changed().await.is_ok() {}
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

/// The error of a failed RocksDB call. Damage RocksDB finds on a read (a block whose
/// checksum does not match) comes as a `Corruption` status, which names the file where it
/// can: that is [`Error::DamagedState`], never a plain storage error to retry.
pub fn storage_err(context: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    match text.strip_prefix("Corruption: ") {
        Some(detail) => {
            let file = detail.split(" in ").nth(1).and_then(|rest| rest.split(" offset").next()).unwrap_or_default();
            Error::DamagedState { file: file.trim().into(), reason: format!("{context}: {text}") }
        }
        None => Error::Storage(format!("{context}: {text}")),
    }
}

/// RocksDB writes an `OPTIONS-*` file beside the store and never reads it back when
/// opened with explicit options: a damaged one would be replaced silently. It is part of
/// the store, so it must parse (options this build does not know are allowed: a newer
/// RocksDB may have written them).
fn check_options_file(path: &Path) -> Result<()> {
    let Some(file) = newest_options_file(path) else { return Ok(()) };
    let env = rocksdb::Env::new().map_err(|e| storage_err("RocksDB environment", e))?;
    match Options::load_latest(path, env, true, rocksdb::Cache::new_lru_cache(1 << 20)) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::DamagedState { file, reason: e.to_string() }),
    }
}

/// The newest `OPTIONS-*` file of the store at `path`, if it has one.
fn newest_options_file(path: &Path) -> Option<std::path::PathBuf> {
    let files = std::fs::read_dir(path).ok().into_iter().flatten().flatten().map(|e| e.path());
    files.filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("OPTIONS-"))).max()
}

/// The bytes of the WAL files of the store at `path` (what an open replays, at most).
pub fn wal_bytes(path: &Path) -> u64 {
    let files = std::fs::read_dir(path).into_iter().flatten().flatten();
    files.filter(|e| e.path().extension().is_some_and(|x| x == "log")).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}

impl Db {
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        // Damage inside the WAL (synced data) is an error at open, not a silent cut at the
        // first bad record (the default, point-in-time recovery); only an incomplete record
        // at the very end, a write torn by a crash, is dropped. A tail cut or zeroed on disk
        // reads the same as a torn write: `RAFT_MARK` (raft_mark.rs) catches that.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        opts.set_max_log_file_size(4 << 20);
        // Flushes and compactions write their files to disk 1 MiB at a time instead of all
        // at their end (a 64 MiB memtable flush otherwise ends in one 64 MiB fsync that the
        // WAL syncs acknowledging writes can queue behind; RocksDB's tuning guide suggests
        // it for the same reason).
        opts.set_bytes_per_sync(1 << 20);
        // A WAL file is deleted once every column family has flushed what it holds, and the
        // small ones (`meta`, `local`) fill their memtables slowly: by default the WAL
        // could grow to 4 × all memtables (2.5 GiB here) before RocksDB flushes them, and
        // a start after a crash replays all of it (460 MB of WAL files after one harness
        // run). At 256 MiB RocksDB flushes the column families holding the oldest file.
        opts.set_max_total_wal_size(256 << 20);
        let mut cfs = Vec::with_capacity(CFS.len());
        for name in CFS.iter().copied() {
            // A Raft snapshot holds a RocksDB snapshot while it is built; when it lets go,
            // RocksDB rewrites every file of the last level written since, only to zero
            // the sequence numbers it kept (compaction reason `BottommostFiles`): 66 MB of
            // log and 52 MB of data per core in the harness, on the disk the WAL needs,
            // after every snapshot. A file must now be an hour old for that; most of the
            // log's are gone by then.
            let mut o = Options::default()
                .get_options_from_string("bottommost_file_compaction_delay=3600")
                .map_err(|e| storage_err("RocksDB options", e))?;
            if name == CF_LOG {
                // Entries are appended in index order and deleted from the front.
                o.set_max_write_buffer_number(4);
            }
            cfs.push(ColumnFamilyDescriptor::new(name, o));
        }
        check_options_file(path)?;
        let t0 = std::time::Instant::now();
        // Listed for the debug line only: no directory read on a start that does not log it.
        let wal_bytes = tracing::enabled!(tracing::Level::DEBUG).then(|| wal_bytes(path));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| match e.kind() {
            rocksdb::ErrorKind::Corruption => Error::DamagedState { file: path.to_path_buf(), reason: e.to_string() },
            _ => storage_err(&format!("open {}", path.display()), e),
        })?;
        tracing::debug!(open_ms = t0.elapsed().as_millis() as u64, ?wal_bytes, path = %path.display(), "RocksDB opened");
        Ok(Db {
            inner: Arc::new(Inner {
                db,
                closed: tokio::sync::watch::channel(()).0,
                events: Events::default(),
                path: path.to_path_buf(),
                damage: tokio::sync::watch::channel(None).0,
            }),
        })
    }

    /// The error of a failed RocksDB call on this store, as [`storage_err`] makes it, with
    /// one more job: damage found while the store is open (a `Corruption` status: a block
    /// whose checksum does not match) is recorded, so that the node stops its Raft on it
    /// ([`Db::damage`]) instead of serving from a store it can no longer read. Every call
    /// of the storage module on an open store maps its errors here.
    pub fn err(&self, context: &str, e: rocksdb::Error) -> Error {
        let err = match e.kind() {
            rocksdb::ErrorKind::Corruption => match storage_err(context, &e) {
                Error::DamagedState { file, reason } if file.as_os_str().is_empty() => {
                    Error::DamagedState { file: self.inner.path.clone(), reason }
                }
                damaged @ Error::DamagedState { .. } => damaged,
                other => Error::DamagedState { file: self.inner.path.clone(), reason: other.to_string() },
            },
            _ => storage_err(context, &e),
        };
        if matches!(err, Error::DamagedState { .. }) {
            self.inner.damage.send_if_modified(|first| first.is_none() && first.replace(err.clone()).is_none());
        }
        err
    }

    /// The first damage found in this open store (`None` until then), as a watch.
    pub fn damage(&self) -> tokio::sync::watch::Receiver<Option<Error>> {
        self.inner.damage.subscribe()
    }

    /// A signal that resolves once the DB is closed; it does not keep the DB open.
    pub fn closed(&self) -> Closed {
        Closed(self.inner.closed.subscribe())
    }

    /// Snapshot and purge counts since the DB was opened.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// RocksDB's integer properties, each summed over the column families.
    pub fn int_properties(&self) -> Vec<(&'static str, u64)> {
        INT_PROPERTIES
            .iter()
            .map(|p| {
                let name = format!("rocksdb.{p}");
                let sum = CFS
                    .iter()
                    .filter_map(|cf| self.inner.db.cf_handle(cf))
                    .filter_map(|cf| self.inner.db.property_int_value_cf(&cf, name.as_str()).ok().flatten())
                    .sum();
                (*p, sum)
            })
            .collect()
    }

    pub fn raw(&self) -> &DB {
        &self.inner.db
    }

    /// The handle of a column family this module created.
    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.inner.db.cf_handle(name).ok_or_else(|| Error::Storage(format!("column family `{name}` missing")))
    }

    /// Calls `each(key, value)` with every record of `cf` from `from` on (from the first
    /// for an empty `from`), in key order, as of `snap` when given, until `each` returns
    /// `Ok(false)` or an error. The bulk read of a load, a bootstrap's snapshot and an
    /// export: keys and values are borrowed from RocksDB's blocks (not two allocations per
    /// record, as an iterator's items are), the blocks passed are not kept in the block
    /// cache (each is read once), and files are read ahead.
    pub fn scan(
        &self,
        cf: &ColumnFamily,
        from: &[u8],
        snap: Option<&rocksdb::Snapshot<'_>>,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        if let Some(snap) = snap {
            opts.set_snapshot(snap);
        }
        let mut it = self.inner.db.raw_iterator_cf_opt(cf, opts);
        // Every key sorts at or after the empty one: an empty `from` seeks to the first.
        it.seek(from);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !each(k, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(|e| self.err("scan records", e))
    }

    pub fn sync_opts() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }

    /// Writes not synced here: a later synced write (or [`Db::sync_wal`]) makes them durable.
    pub fn lazy_opts() -> WriteOptions {
        WriteOptions::default()
    }

    pub fn sync_wal(&self) -> Result<()> {
        self.inner.db.flush_wal(true).map_err(|e| self.err("sync wal", e))
    }

    /// Writes every column family's memtables to table files (and waits for them), so the
    /// next open has no WAL to replay. A clean stop calls it: replaying the WAL rebuilds
    /// the memtables record by record and then flushes them anyway, which took 415 ms of
    /// a 1.3 s restart with 91 MB of WAL (`BENCHMARKS.md`).
    pub fn flush_all(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = CFS.iter().map(|name| self.cf(name)).collect::<Result<_>>()?;
        let mut opts = rocksdb::FlushOptions::default();
        opts.set_wait(true);
        self.inner.db.flush_cfs_opt(&cfs, &opts).map_err(|e| self.err("flush memtables", e))
    }

    /// Online, consistent copy of the whole DB into `dir` (hard links where possible).
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        let cp = rocksdb::checkpoint::Checkpoint::new(&self.inner.db).map_err(|e| self.err("checkpoint", e))?;
        cp.create_checkpoint(dir).map_err(|e| self.err("checkpoint", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corruption_status_is_damaged_state_naming_its_file() {
        let status = "Corruption: block checksum mismatch: stored = 1, computed = 2, type = 4  in /d/db/000010.sst offset 4086 size 4052";
        match storage_err("scan catalog", status) {
            Error::DamagedState { file, .. } => assert_eq!(file, std::path::PathBuf::from("/d/db/000010.sst")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(storage_err("write", "IO error: No space left on device"), Error::Storage(_)));
    }

    /// No column family rewrites its fresh last-level files when a snapshot is released
    /// (RocksDB's `BottommostFiles` compactions, after every Raft snapshot): the option
    /// RocksDB writes back in its `OPTIONS` file holds for each of them.
    #[test]
    fn every_column_family_delays_rewriting_fresh_last_level_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path()).expect("open");
        drop(db);
        let newest = newest_options_file(dir.path()).expect("an OPTIONS file");
        let text = std::fs::read_to_string(&newest).expect("read OPTIONS");
        for cf in CFS {
            let section = text.split("[CFOptions ").find(|s| s.starts_with(&format!("\"{cf}\""))).expect("section");
            let section = section.split("[TableOptions").next().unwrap_or(section);
            assert!(section.contains("bottommost_file_compaction_delay=3600"), "column family {cf}");
        }
    }
}
