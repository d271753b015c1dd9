//! The leader's own entries that Raft counts before this core has synced them.
//!
//! A leader's log store reports its own appends to Raft as soon as they are in the WAL,
//! before the WAL sync (see `storage::log_store`): replication to the followers and the leader's
//! fsync then run side by side instead of one after the other. Raft may therefore count
//! the leader in a majority for an entry only the followers hold durably. This record
//! keeps that from ever showing: nothing of an entry is visible until this core has synced
//! it too, so what is visible is always on a majority's disks, the leader's among them.
//!
//! - The state machine applies entries only up to [`Unsynced::bound`] (it waits, see
//!   [`Unsynced::wait`]): reads, watches, replicants and the writer's acknowledgement all
//!   follow the applied index.
//! - The network tells followers a commit index no higher than the bound
//!   (`raft::network`), so no follower applies what the leader could still lose.
//!
//! Why the entries are then on a majority: Raft commits an entry once a majority reports
//! it appended; the leader may count itself early, so the others of that majority, which
//! report only synced appends, hold it durably; once the leader has synced it too, a
//! majority of the voters holds it durably.
//!
//! Written by the log store (an early append and the sync that covers it) and read by the
//! state machine and the network; one per Raft instance.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::watch;

/// The highest index up to which everything this core appended is synced, or why syncs
/// stopped.
pub type Bound = Result<u64, String>;

#[derive(Debug)]
pub struct Unsynced {
    pending: Mutex<Pending>,
    /// The highest index synced, and why syncs stopped (once they did: what was synced
    /// before stays applicable).
    bound: watch::Sender<(u64, Option<String>)>,
}

#[derive(Debug, Default)]
struct Pending {
    next_seq: u64,
    /// Early appends not yet covered by a completed sync: (sequence, first index), oldest
    /// first.
    appends: VecDeque<(u64, u64)>,
    failed: Option<String>,
}

impl Pending {
    fn bound(&self) -> (u64, Option<String>) {
        let synced = self.appends.front().map_or(u64::MAX, |&(_, first)| first.saturating_sub(1));
        (synced, self.failed.clone())
    }
}

impl Default for Unsynced {
    fn default() -> Self {
        Unsynced { pending: Mutex::new(Pending::default()), bound: watch::channel((u64::MAX, None)).0 }
    }
}

impl Unsynced {
    fn update<T>(&self, f: impl FnOnce(&mut Pending) -> T) -> T {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut p);
        let bound = p.bound();
        self.bound.send_if_modified(|b| {
            let changed = *b != bound;
            *b = bound;
            changed
        });
        out
    }

    /// Records an append of entries from `first` on, reported to Raft before its sync;
    /// returns the sequence number to pass to [`Unsynced::synced`] once a sync covers it.
    pub fn appended(&self, first: u64) -> u64 {
        self.update(|p| {
            p.next_seq += 1;
            p.appends.push_back((p.next_seq, first));
            p.next_seq
        })
    }

    /// A sync that began after the early append `seq` (and every earlier one) completed.
    pub fn synced(&self, seq: u64) {
        self.update(|p| {
            // A failure is final: what was not synced before it never becomes visible.
            while p.failed.is_none() && p.appends.front().is_some_and(|&(s, _)| s <= seq) {
                p.appends.pop_front();
            }
        });
    }

    /// Syncs stopped (a failed sync, or the sync thread ended): nothing more becomes visible.
    pub fn failed(&self, error: String) {
        self.update(|p| {
            p.failed.get_or_insert(error);
        });
    }

    /// The highest index everything of which this core has synced; an error once syncs
    /// stopped.
    pub fn bound(&self) -> Bound {
        match &*self.bound.borrow() {
            (_, Some(e)) => Err(e.clone()),
            (b, None) => Ok(*b),
        }
    }

    /// Waits until everything up to `index` is synced here.
    pub async fn wait(&self, index: u64) -> Result<(), String> {
        let mut rx = self.bound.subscribe();
        let seen = rx.wait_for(|(b, failed)| *b >= index || failed.is_some()).await;
        match seen {
            // Synced before syncs stopped (a sync thread that ended at a clean stop): it
            // is on this core's disk, and applies.
            Ok(state) if state.0 >= index => Ok(()),
            Ok(state) => Err(state.1.clone().unwrap_or_default()),
            Err(_) => Err("the log's sync record is gone".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_stops_before_the_oldest_unsynced_append() {
        let u = Unsynced::default();
        assert_eq!(u.bound(), Ok(u64::MAX), "nothing pending: no bound");
        let a = u.appended(10);
        let b = u.appended(12);
        assert_eq!(u.bound(), Ok(9));
        u.synced(a);
        assert_eq!(u.bound(), Ok(11));
        let c = u.appended(14);
        u.synced(b);
        assert_eq!(u.bound(), Ok(13));
        u.synced(c);
        assert_eq!(u.bound(), Ok(u64::MAX));
    }

    #[tokio::test]
    async fn a_failed_sync_ends_every_wait_with_its_error() {
        let u = std::sync::Arc::new(Unsynced::default());
        let seq = u.appended(5);
        assert_eq!(u.wait(4).await, Ok(()), "below the bound: no wait");
        let waiter = tokio::spawn({
            let u = u.clone();
            async move { u.wait(5).await }
        });
        u.failed("disk gone".into());
        assert_eq!(waiter.await.expect("join"), Err("disk gone".to_string()));
        u.synced(seq);
        assert!(u.bound().is_err(), "a failure is final");
        assert_eq!(u.wait(5).await, Err("disk gone".to_string()), "nothing unsynced becomes visible after it");
        assert_eq!(u.wait(4).await, Ok(()), "what was synced before it stays applicable");
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_sync_covering_it_does() {
        let u = std::sync::Arc::new(Unsynced::default());
        let seq = u.appended(7);
        let waiter = tokio::spawn({
            let u = u.clone();
            async move { u.wait(8).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        u.synced(seq);
        assert_eq!(waiter.await.expect("join"), Ok(()));
    }
}
