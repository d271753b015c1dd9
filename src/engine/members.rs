//! Membership events: what a node sees happen to its cluster's members ([`MemberEvent`])
//! and the hub its watchers subscribe to ([`MemberFeed`]).
//!
//! Changes of the Raft membership are log entries: every core applies them, and every
//! replicant receives them, in log order, and reports what each changed. Liveness (a core
//! this node cannot reach, and reaches again), replicants connecting to this core and the
//! leader this node knows are best-effort: seen from this node, when it sees them.

use tokio::sync::broadcast;

/// Something that happened to the cluster's membership or to one of its nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// A core was added to the membership (first as a learner, `voter: false`), by the
    /// log entry at `index`.
    Joined {
        /// The node.
        name: String,
        /// Whether it votes.
        voter: bool,
        /// The membership entry's index.
        index: u64,
    },
    /// A learner became a voter, by the log entry at `index`.
    Promoted {
        /// The node.
        name: String,
        /// The membership entry's index.
        index: u64,
    },
    /// A core was removed from the membership (`force-leave`, autoclean, or its own
    /// `leave`), by the log entry at `index`.
    Removed {
        /// The node.
        name: String,
        /// The membership entry's index.
        index: u64,
    },
    /// This node left its cluster (`Node::leave`) and is a cluster of one now.
    Left {
        /// This node.
        name: String,
    },
    /// Best-effort: this node has not reached the core for a while (it may be down, or cut
    /// off from this node only).
    Down {
        /// The node.
        name: String,
    },
    /// Best-effort: the core answers this node again.
    Up {
        /// The node.
        name: String,
    },
    /// Best-effort: a replicant started streaming from this core.
    ReplicantConnected {
        /// The replicant.
        name: String,
    },
    /// Best-effort: a replicant's stream from this core ended.
    ReplicantDisconnected {
        /// The replicant.
        name: String,
    },
    /// Best-effort: the leader this node knows changed (`None`: none known now).
    LeaderChanged {
        /// The leader's name.
        leader: Option<String>,
    },
    /// The watcher fell behind: this many events went past it unseen.
    Missed {
        /// How many.
        events: u64,
    },
}

/// Events buffered for a slow watcher before it misses some.
const CAPACITY: usize = 1024;

/// Where a node's membership events go: any number of watchers, none waited for.
#[derive(Debug)]
pub struct MemberFeed {
    tx: broadcast::Sender<MemberEvent>,
}

impl Default for MemberFeed {
    fn default() -> Self {
        MemberFeed { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl MemberFeed {
    /// Hands `event` to every watcher (none: it goes nowhere).
    pub fn send(&self, event: MemberEvent) {
        let _ = self.tx.send(event);
    }

    /// A new watcher's receiver.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.tx.subscribe()
    }
}

/// A membership as the events compare it: `(name, voter)` of every node, by name.
pub type Members = Vec<(String, bool)>;

/// The events that take the membership from `before` to `after` (the entry at `index`).
pub fn membership_changes(before: &Members, after: &Members, index: u64) -> Vec<MemberEvent> {
    let mut out = Vec::new();
    for (name, voter) in after {
        match before.iter().find(|(n, _)| n == name) {
            None => out.push(MemberEvent::Joined { name: name.clone(), voter: *voter, index }),
            Some((_, false)) if *voter => out.push(MemberEvent::Promoted { name: name.clone(), index }),
            Some(_) => {}
        }
    }
    for (name, _) in before {
        if !after.iter().any(|(n, _)| n == name) {
            out.push(MemberEvent::Removed { name: name.clone(), index });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_promotions_and_removals_are_told_apart() {
        let m = |v: &[(&str, bool)]| v.iter().map(|(n, b)| (n.to_string(), *b)).collect::<Members>();
        let before = m(&[("a", true), ("b", true), ("c", false)]);
        let after = m(&[("a", true), ("c", true), ("d", false)]);
        assert_eq!(
            membership_changes(&before, &after, 9),
            vec![
                MemberEvent::Promoted { name: "c".into(), index: 9 },
                MemberEvent::Joined { name: "d".into(), voter: false, index: 9 },
                MemberEvent::Removed { name: "b".into(), index: 9 },
            ]
        );
        assert!(membership_changes(&after, &after, 10).is_empty());
    }
}
