//! The slot holding this core's running Raft instance. A core replaces its instance when it
//! joins or leaves a cluster (its Raft state is wiped and started again), so the gRPC
//! service, the write path and the status read it from here rather than keep one.

use super::types::Raft;
use crate::error::{Error, Result};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// This core's current Raft instance (none before start and after shutdown), and whether it
/// gives votes.
#[derive(Default)]
pub struct RaftSlot {
    raft: RwLock<Option<Raft>>,
    refuse_votes: AtomicBool,
}

impl RaftSlot {
    /// The running instance; [`Error::Shutdown`] when there is none.
    pub fn get(&self) -> Result<Raft> {
        self.raft.read().map_err(|_| Error::Shutdown)?.clone().ok_or(Error::Shutdown)
    }

    /// Puts `raft` in the slot (`None`: empties it), returning what was there.
    pub fn set(&self, raft: Option<Raft>) -> Result<Option<Raft>> {
        let mut slot = self.raft.write().map_err(|_| Error::Shutdown)?;
        Ok(std::mem::replace(&mut *slot, raft))
    }

    /// Whether this core refuses vote requests: it has no Raft state of its own and is not
    /// a member again yet (a new data dir, a lost volume, a rebuild).
    pub fn refuses_votes(&self) -> bool {
        self.refuse_votes.load(Ordering::SeqCst)
    }

    /// Sets whether this core refuses vote requests; while it does, it does not campaign
    /// either (a member that forgot its state must not become a candidate of its old
    /// membership, whose higher terms would unseat the leader that re-admits it).
    pub fn set_refuse_votes(&self, refuse: bool) {
        self.refuse_votes.store(refuse, Ordering::SeqCst);
        if let Ok(raft) = self.get() {
            raft.runtime_config().elect(!refuse);
        }
    }
}
