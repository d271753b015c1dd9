//! `RAFT_MARK`: a second record of how far this core's Raft state had come, kept outside
//! RocksDB so that a regression of RocksDB's own state can be seen.
//!
//! RocksDB recovers its WAL with `TolerateCorruptedTailRecords` (see `db.rs`): damage in the
//! middle of the WAL is an error at open, but a WAL cut short or zeroed at its end reads
//! like a torn write after a crash and is dropped silently, and a volume restored from an
//! old copy opens without complaint. Raft's safety rests on a member never forgetting its
//! vote or entries a majority counted on, so this file records, in a place RocksDB does not
//! recover:
//!
//! - the **vote**, written (and fsynced) each time Raft saves one, after RocksDB has it;
//! - a **durable applied index**: an applied index whose state RocksDB had synced, written
//!   at most once a second by a thread of the log store's, after the log's sync thread
//!   reports it synced (it lags, never leads), and at a clean stop, after a last WAL sync,
//!   the last applied index (`MarkWriter::stopped_at`).
//!
//! At open, [`check`] compares them with what RocksDB holds: a vote or applied index that
//! went back means lost synced data, and the node refuses to start
//! ([`Error::DamagedState`]) instead of taking part in elections as a member that forgot.
//! The file is replaced atomically (write aside, fsync, rename, fsync the dir) and carries
//! a CRC-32, so a torn or damaged mark is itself refused, never trusted or ignored.

use crate::error::{Error, Result};
use crate::raft::types::Vote;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FILE: &str = "RAFT_MARK";
const VERSION: u8 = 1;
/// The durable applied index is rewritten at most this often.
const APPLIED_EVERY: Duration = Duration::from_secs(1);

/// What the mark records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The last vote saved.
    pub vote: Option<Vote>,
    /// An applied index whose state RocksDB had synced.
    pub applied: u64,
}

/// Where the mark of the data dir `data_dir` lives.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the mark; `None` if there is none (a data dir from before marks, or a new one).
pub fn read(data_dir: &Path) -> Result<Option<Mark>> {
    let p = path(data_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    decode(&bytes).map(Some).map_err(|reason| Error::DamagedState { file: p, reason })
}

/// Decodes a mark file's bytes (CRC-32 checked); an error says why, never a panic.
pub fn decode(bytes: &[u8]) -> std::result::Result<Mark, String> {
    if bytes.len() < 4 {
        return Err(format!("{} bytes, too short for a mark", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != want {
        return Err("checksum mismatch".into());
    }
    crate::codec::decode_versioned("raft mark", VERSION, body).map_err(|e| e.to_string())
}

fn encode(mark: &Mark) -> Result<Vec<u8>> {
    let mut bytes = crate::codec::encode_versioned(VERSION, mark)?;
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// Replaces the mark atomically and durably.
fn write(data_dir: &Path, mark: &Mark) -> Result<()> {
    super::identity::write_atomically(&path(data_dir), &encode(mark)?)
}

/// Removes the mark (the Raft state was wiped on purpose: leave, join, rebuild).
pub fn remove(data_dir: &Path) -> Result<()> {
    let p = path(data_dir);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// Checks RocksDB's Raft state (`vote`, `applied`: what the store at `db_dir` holds) against
/// the mark of `data_dir`. A data dir without a mark passes.
pub fn check(data_dir: &Path, db_dir: &Path, vote: Option<&Vote>, applied: u64) -> Result<()> {
    let Some(mark) = read(data_dir)? else { return Ok(()) };
    let regressed = |what: String| Error::DamagedState {
        file: db_dir.to_path_buf(),
        reason: format!("{what} (recorded in {}): synced Raft state was lost", path(data_dir).display()),
    };
    if mark.applied > applied {
        return Err(regressed(format!("applied index went back from {} to {applied}", mark.applied)));
    }
    if let Some(marked) = &mark.vote {
        match vote {
            None => return Err(regressed(format!("the vote {marked} is gone"))),
            // Votes only ever grow: anything not at least the mark is a loss.
            Some(v) => match v.partial_cmp(marked) {
                Some(std::cmp::Ordering::Less) | None => {
                    return Err(regressed(format!("the vote went back from {marked} to {v}")));
                }
                Some(_) => {}
            },
        }
    }
    Ok(())
}

/// Keeps the mark of one data dir up to date: one per node, shared by its log stores.
///
/// [`reset`](Self::reset) starts a new epoch; writes made for an older epoch (a log store of
/// a Raft instance that was wiped, whose threads may still run) are ignored, so a wiped
/// state is never marked with the progress of the state before it.
#[derive(Debug)]
pub struct MarkWriter {
    data_dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    mark: Mark,
    /// When the applied index was last written.
    written: Option<Instant>,
    /// A durable applied index not written yet (rate-limited); [`MarkWriter::flush`] writes it.
    pending: u64,
    epoch: u64,
}

impl MarkWriter {
    /// A writer starting from the mark on disk (or an empty one).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let mark = read(data_dir)?.unwrap_or_default();
        Ok(MarkWriter {
            data_dir: data_dir.to_path_buf(),
            state: Mutex::new(State { mark, written: None, pending: 0, epoch: 0 }),
        })
    }

    /// The current epoch, for a log store about to write through this writer.
    pub fn epoch(&self) -> u64 {
        self.state.lock().map(|s| s.epoch).unwrap_or(u64::MAX)
    }

    /// Records `vote`, which RocksDB already holds durably.
    pub fn vote(&self, epoch: u64, vote: &Vote) -> Result<()> {
        let mut st = self.state.lock().map_err(|_| Error::Shutdown)?;
        if st.epoch != epoch || st.mark.vote.as_ref() == Some(vote) {
            return Ok(());
        }
        st.mark.vote = Some(*vote);
        write(&self.data_dir, &st.mark)
    }

    /// Records that the state at `applied` is synced: written at once if the last write is a
    /// second old, else kept for the next call or [`flush`](Self::flush).
    pub fn durable_applied(&self, epoch: u64, applied: u64) -> Result<()> {
        let mut st = self.state.lock().map_err(|_| Error::Shutdown)?;
        if st.epoch != epoch {
            return Ok(());
        }
        st.pending = st.pending.max(applied);
        if st.written.is_some_and(|t| t.elapsed() < APPLIED_EVERY) {
            return Ok(());
        }
        Self::write_pending(&self.data_dir, &mut st)
    }

    /// Writes a durable applied index held back by the rate limit (the mark's thread calls
    /// it when idle, so the mark does not stay behind after the last write).
    pub fn flush(&self, epoch: u64) -> Result<()> {
        let mut st = self.state.lock().map_err(|_| Error::Shutdown)?;
        if st.epoch != epoch {
            return Ok(());
        }
        Self::write_pending(&self.data_dir, &mut st)
    }

    /// At a clean stop, once Raft has stopped and the WAL is synced: records `applied`, the
    /// last applied index, at once (no rate limit), so that losing any of what the stop
    /// left synced (a WAL cut short) is seen at the next open.
    pub fn stopped_at(&self, applied: u64) -> Result<()> {
        let mut st = self.state.lock().map_err(|_| Error::Shutdown)?;
        st.pending = st.pending.max(applied);
        Self::write_pending(&self.data_dir, &mut st)
    }

    fn write_pending(data_dir: &Path, st: &mut State) -> Result<()> {
        if st.pending <= st.mark.applied {
            return Ok(());
        }
        st.mark.applied = st.pending;
        st.written = Some(Instant::now());
        write(data_dir, &st.mark)
    }

    /// Forgets everything and starts a new epoch: the Raft state was wiped on purpose.
    pub fn reset(&self) -> Result<()> {
        let mut st = self.state.lock().map_err(|_| Error::Shutdown)?;
        *st = State { mark: Mark::default(), written: None, pending: 0, epoch: st.epoch + 1 };
        remove(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote as V;

    #[test]
    fn a_regressed_applied_index_or_vote_is_refused_and_progress_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let w = MarkWriter::open(dir.path()).unwrap();
        check(dir.path(), &db, None, 0).unwrap();
        let e = w.epoch();
        w.vote(e, &V::new_committed(3, 2)).unwrap();
        w.durable_applied(e, 40).unwrap();
        // Rate-limited: the second update within a second is held back until a flush.
        w.durable_applied(e, 50).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().applied, 40);
        w.flush(e).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().applied, 50);
        check(dir.path(), &db, Some(&V::new_committed(3, 2)), 50).unwrap();
        check(dir.path(), &db, Some(&V::new(4, 1)), 51).unwrap();
        for (vote, applied) in [(Some(V::new_committed(3, 2)), 49), (None, 50), (Some(V::new(2, 2)), 50)] {
            match check(dir.path(), &db, vote.as_ref(), applied) {
                Err(Error::DamagedState { file, .. }) => assert_eq!(file, db),
                other => panic!("{vote:?}/{applied}: {other:?}"),
            }
        }
        w.reset().unwrap();
        check(dir.path(), &db, None, 0).unwrap();
        // A log store of the wiped state, still syncing, writes nothing.
        w.durable_applied(e, 90).unwrap();
        w.flush(e).unwrap();
        w.vote(e, &V::new_committed(9, 2)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_damaged_mark_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        MarkWriter::open(dir.path()).unwrap().durable_applied(0, 7).unwrap();
        let p = path(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        match read(dir.path()) {
            Err(Error::DamagedState { file, .. }) => assert_eq!(file, p),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, [1u8]).unwrap();
        assert!(matches!(read(dir.path()), Err(Error::DamagedState { .. })));
    }
}
