//! Timestamps per stage of one traced write: where the latency of a durable write goes.
//!
//! The peer harness's `stages` cell writes one transaction at a time on the leader of an
//! in-process cluster, brackets each with [`begin`] and [`end`], and prints the median time
//! between consecutive stages. Between the two, the write path marks each stage the first
//! time the traced write reaches it ([`mark`], [`mark_node`]): nodes are told apart by
//! their Raft id, the leader being the node whose proposer took the write, and follower
//! stages are those of the first follower to reach them (the one a majority of three
//! waits for).
//!
//! Off (the default, and whenever no trace is open) a mark costs one relaxed atomic load.
//! One trace at a time per process: the harness's writes are sequential.

// Traces are opened and read by the harness only (feature `test-util`); the marks are
// compiled in everywhere.
#![cfg_attr(not(feature = "test-util"), allow(dead_code))]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A point on the path of one write, in the order a write on the leader reaches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// The proposer hands the write's batch to Raft (after the caller's queue and task hop).
    Proposed,
    /// The leader's log store is given the entry.
    LeaderAppend,
    /// The leader's log sync covering the entry is done (the callback is called).
    LeaderSynced,
    /// The leader's network sends an `AppendEntries` holding the entry.
    Sent,
    /// A follower's Raft service has decoded that request.
    FollowerReceived,
    /// A follower's log store is given the entry.
    FollowerAppend,
    /// A follower's log sync covering the entry is done.
    FollowerSynced,
    /// A follower's Raft service encodes its reply.
    FollowerReplied,
    /// The leader's network has the reply.
    ReplyReceived,
    /// The leader's Raft saves a commit index at or past the entry.
    Committed,
    /// The leader's state machine starts applying the entry.
    ApplyStart,
    /// The leader's state machine has published the entry.
    Applied,
    /// The proposer's call into Raft returns with the outcome.
    Returned,
}

/// Every stage, in order.
pub const STAGES: [Stage; 13] = [
    Stage::Proposed,
    Stage::LeaderAppend,
    Stage::LeaderSynced,
    Stage::Sent,
    Stage::FollowerReceived,
    Stage::FollowerAppend,
    Stage::FollowerSynced,
    Stage::FollowerReplied,
    Stage::ReplyReceived,
    Stage::Committed,
    Stage::ApplyStart,
    Stage::Applied,
    Stage::Returned,
];

impl Stage {
    /// The stage this one follows on the path (`None`: the trace's [`begin`]). The
    /// leader's sync runs beside the replication to the followers: both follow its append.
    pub fn after(self) -> Option<Stage> {
        use Stage::*;
        match self {
            Proposed => None,
            LeaderAppend => Some(Proposed),
            LeaderSynced | Sent => Some(LeaderAppend),
            FollowerReceived => Some(Sent),
            FollowerAppend => Some(FollowerReceived),
            FollowerSynced => Some(FollowerAppend),
            FollowerReplied => Some(FollowerSynced),
            ReplyReceived => Some(FollowerReplied),
            Committed => Some(ReplyReceived),
            ApplyStart => Some(Committed),
            Applied => Some(ApplyStart),
            Returned => Some(Applied),
        }
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Proposed => "proposer",
            Stage::LeaderAppend => "raft core to leader append",
            Stage::LeaderSynced => "(beside) leader append + fsync",
            Stage::Sent => "leader append to send",
            Stage::FollowerReceived => "send to follower decode",
            Stage::FollowerAppend => "follower raft core to append",
            Stage::FollowerSynced => "follower append + fsync",
            Stage::FollowerReplied => "follower reply",
            Stage::ReplyReceived => "reply to leader",
            Stage::Committed => "commit",
            Stage::ApplyStart => "to apply (and the leader's sync)",
            Stage::Applied => "apply",
            Stage::Returned => "to proposer",
        }
    }
}

const NONE: u64 = u64::MAX;

struct Trace {
    on: AtomicBool,
    begin: AtomicU64,
    /// The traced entry's index, once the leader's log store has it.
    index: AtomicU64,
    leader: AtomicU64,
    at: [AtomicU64; STAGES.len()],
}

static TRACE: Trace = Trace {
    on: AtomicBool::new(false),
    begin: AtomicU64::new(0),
    index: AtomicU64::new(NONE),
    leader: AtomicU64::new(NONE),
    at: [const { AtomicU64::new(0) }; STAGES.len()],
};

fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn record(stage: Stage) {
    let _ = TRACE.at[stage as usize].compare_exchange(0, now(), Ordering::AcqRel, Ordering::Relaxed);
}

/// Opens a trace for the next write (the previous one is dropped).
pub fn begin() {
    TRACE.on.store(false, Ordering::SeqCst);
    TRACE.index.store(NONE, Ordering::SeqCst);
    TRACE.leader.store(NONE, Ordering::SeqCst);
    TRACE.at.iter().for_each(|a| a.store(0, Ordering::SeqCst));
    TRACE.begin.store(now(), Ordering::SeqCst);
    TRACE.on.store(true, Ordering::SeqCst);
}

/// Closes the trace: for each stage the time from [`begin`] (`None`: not reached), and the
/// time from `begin` to this call (the caller has its outcome).
pub fn end() -> (Vec<Option<Duration>>, Duration) {
    let end = now();
    TRACE.on.store(false, Ordering::SeqCst);
    let begin = TRACE.begin.load(Ordering::SeqCst);
    let at = TRACE
        .at
        .iter()
        .map(|a| match a.load(Ordering::SeqCst) {
            0 => None,
            t => Some(Duration::from_nanos(t.saturating_sub(begin))),
        })
        .collect();
    (at, Duration::from_nanos(end.saturating_sub(begin)))
}

#[inline]
fn on() -> bool {
    TRACE.on.load(Ordering::Relaxed)
}

/// The proposer of `node` hands the traced write to Raft: `node` is the leader.
#[inline]
pub fn proposed(node: u64) {
    if on() && TRACE.leader.compare_exchange(NONE, node, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        record(Stage::Proposed);
    }
}

/// A stage reached by the request or reply carrying entries `first..=last` (nothing when
/// the traced entry is not among them).
#[inline]
pub fn mark(stage: Stage, first: u64, last: u64) {
    if on() {
        let i = TRACE.index.load(Ordering::Acquire);
        if i != NONE && (first..=last).contains(&i) {
            record(stage);
        }
    }
}

/// `node`'s log store is given entries `first..=last`: on the leader, the first such call
/// after the proposer's names the traced entry.
#[inline]
pub fn appended(node: u64, first: u64, last: u64) {
    if on() {
        if node == TRACE.leader.load(Ordering::Acquire) {
            if TRACE.index.compare_exchange(NONE, last, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                record(Stage::LeaderAppend);
            }
        } else {
            mark(Stage::FollowerAppend, first, last);
        }
    }
}

/// `node`'s log sync covering entries up to `last` is done.
#[inline]
pub fn synced(node: u64, last: u64) {
    if on() {
        let i = TRACE.index.load(Ordering::Acquire);
        if i != NONE && last >= i {
            record(if node == TRACE.leader.load(Ordering::Acquire) { Stage::LeaderSynced } else { Stage::FollowerSynced });
        }
    }
}

/// A stage of the leader (`node`) reached for entries up to `last`.
#[inline]
pub fn mark_node(stage: Stage, node: u64, first: u64, last: u64) {
    if on() && node == TRACE.leader.load(Ordering::Acquire) {
        mark(stage, first, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the process-wide trace, so tests running in parallel cannot race.
    #[test]
    fn a_trace_records_each_stage_once_and_only_for_the_traced_entry() {
        proposed(1);
        assert!(end().0.iter().all(Option::is_none), "no trace open: nothing recorded");
        begin();
        proposed(1);
        appended(2, 7, 7); // a follower's append before the leader named an entry
        appended(1, 9, 10);
        appended(1, 11, 11);
        mark(Stage::Sent, 1, 8);
        mark(Stage::Sent, 10, 10);
        appended(2, 9, 10);
        synced(2, 10);
        synced(1, 10);
        mark_node(Stage::Committed, 2, 10, 10);
        mark_node(Stage::ApplyStart, 1, 1, 11);
        let (at, total) = end();
        let reached = |s: Stage| at[s as usize].is_some();
        for s in [
            Stage::Proposed,
            Stage::LeaderAppend,
            Stage::Sent,
            Stage::FollowerAppend,
            Stage::FollowerSynced,
            Stage::LeaderSynced,
            Stage::ApplyStart,
        ] {
            assert!(reached(s), "{s:?} reached");
        }
        assert!(!reached(Stage::Committed), "only the leader's commit counts");
        assert!(at.iter().flatten().all(|d| *d <= total));
        let first_sent = at[Stage::Sent as usize];
        mark(Stage::Sent, 10, 10);
        assert_eq!(end().0[Stage::Sent as usize], first_sent, "closed: not recorded again");
    }
}
