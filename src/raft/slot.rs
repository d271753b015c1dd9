//! The slot holding this core's running Raft instance. A core replaces its instance when it
//! joins or leaves a cluster (its Raft state is wiped and started again), so the gRPC
//! service, the write path and the status read it from here rather than keep one.

use super::types::{LogId, Raft};
use crate::error::{Error, Result};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// This core's current Raft instance (none before start and after shutdown), whether it
/// gives votes, and when a leader last reached it.
pub struct RaftSlot {
    raft: RwLock<Option<Raft>>,
    refuse_votes: AtomicBool,
    /// Milliseconds after `epoch` when a leader's append or snapshot was last accepted (or
    /// this node last led): what `runtime::campaign` measures silence by.
    contact_ms: AtomicU64,
    /// How many times [`RaftSlot::touch`] was called.
    contacts: AtomicU64,
    /// Milliseconds after `epoch` before which this core does not campaign: it granted
    /// another core's pre-vote and gives that candidate the first chance.
    defer_ms: AtomicU64,
    epoch: Instant,
    /// Reads the last log id of the current instance's log store (set with the instance).
    last_log: RwLock<Option<LastLog>>,
    /// Bumped by [`RaftSlot::replacing`]: which instance's history is current.
    instance: AtomicU64,
}

/// Reads a log store's last log id.
pub type LastLog = std::sync::Arc<dyn Fn() -> Result<Option<LogId>> + Send + Sync>;

impl Default for RaftSlot {
    fn default() -> Self {
        RaftSlot {
            raft: RwLock::new(None),
            refuse_votes: AtomicBool::new(false),
            contact_ms: AtomicU64::new(0),
            contacts: AtomicU64::new(0),
            defer_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            last_log: RwLock::new(None),
            instance: AtomicU64::new(0),
        }
    }
}

impl RaftSlot {
    /// The running instance; [`Error::Shutdown`] when there is none.
    pub fn get(&self) -> Result<Raft> {
        self.raft.read().map_err(|_| Error::Shutdown)?.clone().ok_or(Error::Shutdown)
    }

    /// Puts `raft` in the slot (`None`: empties it, and lets go of its log store's reader,
    /// so that nothing here keeps the store open), returning what was there.
    pub fn set(&self, raft: Option<Raft>) -> Result<Option<Raft>> {
        if raft.is_none() {
            *self.last_log.write().map_err(|_| Error::Shutdown)? = None;
        }
        let mut slot = self.raft.write().map_err(|_| Error::Shutdown)?;
        Ok(std::mem::replace(&mut *slot, raft))
    }

    /// A number that changes when the instance in the slot is replaced by one with another
    /// history (the core's Raft state wiped on join, leave or rebuild): what serves the old
    /// history (a replication stream) ends when it sees it change.
    pub fn instance(&self) -> u64 {
        self.instance.load(Ordering::SeqCst)
    }

    /// Says the instance is about to be replaced (before it is shut down and its state
    /// wiped), so [`RaftSlot::instance`] changes first.
    pub fn replacing(&self) {
        self.instance.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets how the last log id of the current instance's log is read.
    pub fn set_last_log(&self, read: LastLog) -> Result<()> {
        *self.last_log.write().map_err(|_| Error::Shutdown)? = Some(read);
        Ok(())
    }

    /// The last log id of the current instance's log ([`Error::Shutdown`] before one runs).
    pub fn last_log_id(&self) -> Result<Option<LogId>> {
        let read = self.last_log.read().map_err(|_| Error::Shutdown)?.clone().ok_or(Error::Shutdown)?;
        read()
    }

    /// Records that a leader reached this core now (or that it leads).
    pub fn touch(&self) {
        self.contact_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.contacts.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a leader reached this core (or it led) within `lease` of now.
    pub fn leader_heard_within(&self, lease: Duration) -> bool {
        self.last_contact().0.elapsed() <= lease
    }

    /// Keeps this core from campaigning for `for_` from now (it granted another core's
    /// pre-vote: two followers that both pass a pre-vote and campaign together would split
    /// the vote and wait for another round).
    pub fn defer_campaign(&self, for_: Duration) {
        let until = (self.epoch.elapsed() + for_).as_millis() as u64;
        self.defer_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Until when this core does not campaign (see [`RaftSlot::defer_campaign`]).
    pub fn campaign_deferred_until(&self) -> Instant {
        self.epoch + Duration::from_millis(self.defer_ms.load(Ordering::Relaxed))
    }

    /// When [`RaftSlot::touch`] was last called (when the slot was made, if never), and how
    /// many times it was.
    pub fn last_contact(&self) -> (Instant, u64) {
        let at = self.epoch + Duration::from_millis(self.contact_ms.load(Ordering::Relaxed));
        (at, self.contacts.load(Ordering::Relaxed))
    }

    /// Whether this core refuses vote requests: it has no Raft state of its own and is not
    /// a member again yet (a new data dir, a lost volume, a rebuild).
    pub fn refuses_votes(&self) -> bool {
        self.refuse_votes.load(Ordering::SeqCst)
    }

    /// Sets whether this core refuses vote requests; while it does, it does not campaign
    /// either (`runtime::campaign` checks: a member that forgot its state must not become a
    /// candidate of its old membership, whose higher terms would unseat the leader that
    /// re-admits it), and answers no pre-vote with a grant.
    pub fn set_refuse_votes(&self, refuse: bool) {
        self.refuse_votes.store(refuse, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferral_holds_the_campaign_back_and_only_ever_grows() {
        let slot = RaftSlot::default();
        let before = slot.campaign_deferred_until();
        slot.defer_campaign(Duration::from_millis(500));
        let long = slot.campaign_deferred_until();
        assert!(long >= before + Duration::from_millis(499), "deferred by the given time");
        slot.defer_campaign(Duration::from_millis(10));
        assert_eq!(slot.campaign_deferred_until(), long, "a shorter deferral does not shorten a longer one");
    }
}
