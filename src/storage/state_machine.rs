//! The Raft state machine (openraft's `RaftStateMachine`): replicated tables in memory and
//! in RocksDB, and snapshots as files.
//!
//! Each `apply` call writes all its entries' changes plus the new applied log id in one
//! RocksDB write batch (not synced: the log is the durable record, and a synced log append
//! or purge syncs the shared WAL), then publishes the new in-memory state with one pointer
//! swap. So the tables on disk always match the applied id stored beside them.
//!
//! Installing a snapshot is crash-safe: the file is verified whole first, then an
//! `installing` marker is written; a restart that finds the marker redoes the install.

use super::apply::{DiscWriter, adopt_declared, load_memory};
use super::db::{CF_DATA, Db};
use crate::engine::apply::apply_batch;
use crate::engine::memory::{Holding, MemState, MemStore};
use crate::engine::snapshot_format::{SnapshotReader, SnapshotWriter};
use crate::engine::feed::FeedRing;
use crate::engine::members::{MemberFeed, membership_changes};
use crate::raft::types::members_of;
use crate::engine::{BatchOutcome, NodeSchema};
use crate::error::{Error, Result};
use crate::raft::unsynced::Unsynced;
use crate::stages::{self, Stage};
use crate::raft::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// Where the current snapshot is, and what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotPointer {
    meta: SnapshotMeta,
    file: String,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::error(e.to_string())).into()
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, openraft::AnyError::error(e.to_string())).into()
}

use super::meta::{self, MetaKey};

/// Resolves once every piece of one state machine is gone: the machine itself (openraft's
/// state machine task owns it) and each snapshot builder it handed out (openraft runs
/// those in tasks of their own). `Raft::shutdown` does not wait for either, so whoever
/// wipes what a state machine writes (`runtime::raft_setup::reset_raft`) waits for this
/// first: a late apply or snapshot of the old instance would otherwise land in the data
/// of the new one.
pub struct Gone(watch::Receiver<bool>);

impl Gone {
    /// Waits until every piece is dropped.
    pub async fn wait(mut self) {
        // The sender goes with the last piece: an error means it is gone too.
        let _ = self.0.wait_for(|gone| *gone).await;
    }
}

/// Held by a state machine and each of its snapshot builders; its drop (with the last of
/// them) tells [`Gone`].
struct Alive(watch::Sender<bool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

pub struct StateMachine {
    /// Dropped with the last piece of this state machine (see [`Gone`]).
    alive: Arc<Alive>,
    db: Db,
    schema: Arc<NodeSchema>,
    mem: Arc<MemStore>,
    /// The change feed: what each applied entry changed, for watchers.
    feed: Arc<FeedRing>,
    /// Membership events, for watchers of the members.
    members: Arc<MemberFeed>,
    applied_tx: Arc<watch::Sender<u64>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_dir: PathBuf,
    receiving: Option<PathBuf>,
    /// This core's Raft id, for the write path's stage trace (0 until set).
    node: u64,
    /// What of the log this core has not synced yet: entries are applied only once synced
    /// here (see `raft::unsynced`).
    unsynced: Arc<Unsynced>,
}

impl StateMachine {
    /// Opens the state machine of `db`, finishing an interrupted snapshot install and
    /// loading the in-memory tables. `mem` and `applied_tx` are shared with the node.
    pub fn open(
        db: Db,
        schema: Arc<NodeSchema>,
        snapshot_dir: PathBuf,
        mem: Arc<MemStore>,
        feed: Arc<FeedRing>,
        members: Arc<MemberFeed>,
        applied_tx: Arc<watch::Sender<u64>>,
    ) -> Result<Self> {
        std::fs::create_dir_all(&snapshot_dir).map_err(|e| Error::io(&snapshot_dir, e))?;
        if let Some(p) = meta::get::<SnapshotPointer>(&db, MetaKey::Installing)? {
            tracing::warn!(file = %p.file, "finishing a snapshot install interrupted by a crash");
            load_snapshot_file(&db, &snapshot_dir.join(&p.file), &p)?;
        }
        let last_applied: Option<LogId> = meta::get(&db, MetaKey::Applied)?.flatten();
        let membership: StoredMembership = meta::get(&db, MetaKey::Membership)?.unwrap_or_default();
        let index = last_applied.map(|l| l.index).unwrap_or(0);
        let state = load_state(&db, &schema, index)?;
        mem.publish(state);
        // What was applied before this start is not known change by change.
        feed.reset(index);
        applied_tx.send_replace(index);
        Ok(StateMachine {
            alive: Arc::new(Alive(watch::channel(false).0)),
            db,
            schema,
            mem,
            feed,
            members,
            applied_tx,
            last_applied,
            membership,
            snapshot_dir,
            receiving: None,
            node: 0,
            unsynced: Arc::default(),
        })
    }

    /// What resolves once this state machine and every snapshot builder it handed out
    /// are dropped.
    pub fn gone(&self) -> Gone {
        Gone(self.alive.0.subscribe())
    }

    /// Shares the record of `node`'s log store of what it has not synced yet, and names
    /// the core in the write path's stage trace.
    pub fn with_log(mut self, node: u64, unsynced: Arc<Unsynced>) -> Self {
        self.node = node;
        self.unsynced = unsynced;
        self
    }

    /// The index of the last entry applied.
    pub fn applied_index(&self) -> u64 {
        self.last_applied.map(|l| l.index).unwrap_or(0)
    }

    /// Deletes every replicated record, the applied state and the snapshots: the node is
    /// about to join another cluster and take its data from there.
    pub fn wipe(db: &Db, snapshot_dir: &Path) -> Result<()> {
        let mut wb = WriteBatch::default();
        let cf = db.cf(CF_DATA)?;
        wb.delete_range_cf(cf, &[0u8][..], &[0xffu8; 8][..]);
        for k in MetaKey::STATE {
            meta::delete(db, &mut wb, k)?;
        }
        db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| db.err("wipe state", e))?;
        if snapshot_dir.exists() {
            std::fs::remove_dir_all(snapshot_dir).map_err(|e| Error::io(snapshot_dir, e))?;
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<BatchOutcome>> {
        let (first, last) = crate::raft::wire::span(&entries);
        stages::mark_node(Stage::ApplyStart, self.node, first, last);
        let mut work: MemState = (*self.mem.snapshot()).clone();
        let cf = self.db.cf(CF_DATA)?;
        let mut disc = DiscWriter::new(&self.db, cf);
        let mut replies = Vec::with_capacity(entries.len());
        let mut fed = Vec::with_capacity(entries.len());
        let mut member_events = Vec::new();
        for entry in entries {
            let mut reply = BatchOutcome::default();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    let mut changes = Vec::new();
                    reply = apply_batch(&mut work, &mut disc, batch, entry.log_id.index, &mut changes)?;
                    fed.push((entry.log_id.index, changes));
                }
                EntryPayload::Membership(m) => {
                    let before = members_of(self.membership.membership());
                    member_events.extend(membership_changes(&before, &members_of(m), entry.log_id.index));
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            self.last_applied = Some(entry.log_id);
            work.applied = entry.log_id.index;
            replies.push(reply);
        }
        let mut wb = disc.batch;
        meta::put(&self.db, &mut wb, MetaKey::Applied, &self.last_applied)?;
        meta::put(&self.db, &mut wb, MetaKey::Membership, &self.membership)?;
        self.db.raw().write_opt(wb, &Db::lazy_opts()).map_err(|e| self.db.err("apply", e))?;
        let index = work.applied;
        self.mem.publish(work);
        // After the state: a watcher that sees an event can read the state it made.
        self.feed.push(fed, index);
        member_events.into_iter().for_each(|e| self.members.send(e));
        self.applied_tx.send_replace(index);
        stages::mark_node(Stage::Applied, self.node, first, last);
        Ok(replies)
    }

    fn current_pointer(&self) -> Result<Option<SnapshotPointer>> {
        meta::get(&self.db, MetaKey::Snapshot)
    }
}

/// The replicated tables in memory at applied index `index`, from the records (the catalog
/// records first). A store written before the catalog was in the log (table records, no
/// catalog record) adopts the node's declared tables as its catalog once, on disc too.
fn load_state(db: &Db, schema: &NodeSchema, index: u64) -> Result<MemState> {
    let catalog = Arc::new(schema.empty_catalog());
    let t0 = std::time::Instant::now();
    let loaded = load_memory(db, db.cf(CF_DATA)?, catalog.clone(), Holding::core(), index)?;
    tracing::info!(
        applied = index,
        records = loaded.records,
        ms = t0.elapsed().as_millis() as u64,
        "loaded the replicated tables from RocksDB"
    );
    if !loaded.state.catalog.is_empty() || loaded.unknown.is_empty() {
        return Ok(loaded.state);
    }
    tracing::warn!(
        tables = ?loaded.unknown,
        "a store without a catalog: its tables become the declared ones (an upgrade from a build before tables were created through the log)"
    );
    adopt_declared(db, &schema.replicated)?;
    Ok(load_memory(db, db.cf(CF_DATA)?, catalog, Holding::core(), index)?.state)
}

/// Replaces every replicated record with the snapshot's, then records the snapshot's
/// applied state and clears the `installing` marker in one synced write.
fn load_snapshot_file(db: &Db, path: &Path, p: &SnapshotPointer) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = SnapshotReader::new(std::io::BufReader::with_capacity(1 << 20, file))?;
    let cf = db.cf(CF_DATA)?;
    let mut wb = WriteBatch::default();
    wb.delete_range_cf(cf, &[0u8][..], &[0xffu8; 8][..]);
    while let Some((k, v)) = reader.next_record()? {
        wb.put_cf(cf, k, v);
        if wb.len() >= 10_000 {
            db.raw()
                .write_opt(std::mem::take(&mut wb), &Db::lazy_opts())
                .map_err(|e| db.err("install snapshot", e))?;
        }
    }
    meta::put(db, &mut wb, MetaKey::Applied, &p.meta.last_log_id)?;
    meta::put(db, &mut wb, MetaKey::Membership, &p.meta.last_membership)?;
    meta::put(db, &mut wb, MetaKey::Snapshot, p)?;
    meta::delete(db, &mut wb, MetaKey::Installing)?;
    db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| db.err("install snapshot", e))
}

/// Removes snapshot files other than `keep` (and unfinished ones).
fn remove_other_snapshots(dir: &Path, keep: &str) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name != keep && name.ends_with(".snap") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Builds a snapshot from a RocksDB snapshot: consistent, and concurrent with applies.
pub struct SnapshotBuilder {
    /// Its state machine's (see [`Gone`]).
    _alive: Arc<Alive>,
    db: Db,
    snapshot_dir: PathBuf,
}

fn build_snapshot_file(db: &Db, dir: &Path) -> Result<SnapshotPointer> {
    let snap = super::data_snapshot::DataSnapshot::take(db);
    let last_log_id = snap.applied()?;
    let last_membership = snap.membership()?;
    let (term, index) = last_log_id.map(|l| (l.leader_id.term, l.index)).unwrap_or((0, 0));
    let snapshot_id = format!("{term}-{index}-{}", unique_suffix());
    let file = format!("{snapshot_id}.snap");
    let tmp = dir.join(format!("{snapshot_id}.building"));
    let out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let out = super::synced_file::SyncingWriter::new(out);
    let mut w = SnapshotWriter::new(std::io::BufWriter::with_capacity(1 << 20, out)).map_err(|e| Error::io(&tmp, e))?;
    snap.for_each_record(|k, v| {
        w.record(k, v).map_err(|e| Error::io(&tmp, e))?;
        Ok(true)
    })?;
    let (buf, _count) = w.finish().map_err(|e| Error::io(&tmp, e))?;
    let f = buf.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
    f.finish().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, dir.join(&file)).map_err(|e| Error::io(&tmp, e))?;
    super::identity::sync_dir(dir)?;
    Ok(SnapshotPointer { meta: SnapshotMeta { last_log_id, last_membership, snapshot_id }, file })
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (db, dir) = (self.db.clone(), self.snapshot_dir.clone());
        let pointer = tokio::task::spawn_blocking(move || -> Result<SnapshotPointer> {
            let p = build_snapshot_file(&db, &dir)?;
            let mut wb = WriteBatch::default();
            meta::put(&db, &mut wb, MetaKey::Snapshot, &p)?;
            db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| db.err("snapshot pointer", e))?;
            remove_other_snapshots(&dir, &p.file);
            Ok(p)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let path = self.snapshot_dir.join(&pointer.file);
        let file = tokio::fs::File::open(&path).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        tracing::info!(id = %pointer.meta.snapshot_id, "built snapshot");
        self.db.events().snapshot_built();
        Ok(Snapshot { meta: pointer.meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            // Raft may have counted this core's own entries before it synced them.
            self.unsynced.wait(last.log_id.index).await.map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        self.apply_entries(entries).map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { _alive: self.alive.clone(), db: self.db.clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.snapshot_dir.join(format!("incoming-{}.part", unique_suffix()));
        let f = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        snapshot.flush().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        snapshot.sync_all().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        drop(snapshot);
        let incoming = self.receiving.take().ok_or_else(|| snap_err(ErrorVerb::Write, "no snapshot being received"))?;
        let (db, dir, schema) = (self.db.clone(), self.snapshot_dir.clone(), self.schema.clone());
        let pointer = SnapshotPointer { meta: meta.clone(), file: format!("{}.snap", meta.snapshot_id) };
        let state = tokio::task::spawn_blocking(move || -> Result<MemState> {
            // Verify the whole file before touching anything: a bad transfer changes nothing.
            let f = std::fs::File::open(&incoming).map_err(|e| Error::io(&incoming, e))?;
            let count = crate::engine::snapshot_format::verify(std::io::BufReader::with_capacity(1 << 20, f))?;
            let target = dir.join(&pointer.file);
            std::fs::rename(&incoming, &target).map_err(|e| Error::io(&target, e))?;
            super::identity::sync_dir(&dir)?;
            let mut wb = WriteBatch::default();
            meta::put(&db, &mut wb, MetaKey::Installing, &pointer)?;
            db.raw().write_opt(wb, &Db::sync_opts()).map_err(|e| db.err("install marker", e))?;
            load_snapshot_file(&db, &target, &pointer)?;
            remove_other_snapshots(&dir, &pointer.file);
            tracing::info!(id = %pointer.meta.snapshot_id, records = count, "installed snapshot");
            let index = pointer.meta.last_log_id.map(|l| l.index).unwrap_or(0);
            load_state(&db, &schema, index)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let index = state.applied;
        self.mem.publish(state);
        // The state was replaced: no change before the snapshot can be told.
        self.feed.reset(index);
        self.applied_tx.send_replace(index);
        self.db.events().snapshot_installed();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(p) = self.current_pointer().map_err(|e| snap_err(ErrorVerb::Read, e))? else {
            return Ok(None);
        };
        let path = self.snapshot_dir.join(&p.file);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot { meta: p.meta, snapshot: Box::new(file) })),
            // A data dir restored from a backup has no snapshot files: Raft builds one when needed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %p.file, "current snapshot file missing; a new one will be built");
                Ok(None)
            }
            Err(e) => Err(snap_err(ErrorVerb::Read, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::feed::RingLimits;
    use openraft::storage::RaftStateMachine;

    /// A reset waits on `Gone` before it wipes: it must not resolve while the state machine
    /// or any snapshot builder it handed out (openraft runs those in tasks of their own)
    /// could still write.
    #[tokio::test]
    async fn gone_waits_for_the_state_machine_and_every_snapshot_builder() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let schema = Arc::new(NodeSchema::new(crate::engine::declared::Declared::new(vec![]), "n@h").unwrap());
        let mem = Arc::new(MemStore::new(MemState::with_holding(Arc::new(schema.empty_catalog()), Holding::core())));
        let feed = Arc::new(FeedRing::new(RingLimits { entries: 16, bytes: 1 << 16 }, 0));
        let applied = Arc::new(watch::channel(0).0);
        let mut sm =
            StateMachine::open(db, schema, dir.path().join("snapshots"), mem, feed, Default::default(), applied)
                .unwrap();
        let gone = sm.gone();
        let builder = sm.get_snapshot_builder().await;
        drop(sm);
        assert!(!*gone.0.borrow(), "a snapshot builder of the state machine is still alive");
        drop(builder);
        let within = std::time::Duration::from_secs(5);
        tokio::time::timeout(within, gone.wait()).await.expect("gone once the last piece is dropped");
    }
}
