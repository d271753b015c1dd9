//! A replicant's link to the cores as the rest of the node sees it: the state of its
//! stream, the core it follows, the leader and commit index that core last reported.
//! `replication::replicant` writes it; the write path (the leader to forward to) and the
//! status read it.

pub use crate::status::ReplicantState;
use std::collections::VecDeque;
use std::time::Instant;
use tokio::sync::watch;

/// How many recent state changes the status keeps.
const TRANSITIONS_KEPT: usize = 32;

/// What the replicant's link to the cores looks like now.
#[derive(Clone, Debug)]
pub struct LinkStatus {
    pub state: ReplicantState,
    /// Core streamed from: (name, address).
    pub upstream: Option<(String, String)>,
    /// Leader as the upstream core last said: (name, address).
    pub leader: Option<(String, String)>,
    /// Commit index as the upstream core last said.
    pub committed: u64,
    /// When the oldest known-committed entry not yet applied became known.
    pub behind_since: Option<Instant>,
    pub bootstraps: u64,
    pub resumes: u64,
    /// Recent states, oldest first: `state@core`.
    pub transitions: VecDeque<String>,
    /// Why the last stream failed, or a core was passed over, since it was last normal.
    pub last_error: Option<crate::error::Error>,
}

impl LinkStatus {
    /// The id of the leader the upstream core last named (ids derive from node names).
    pub fn leader_id(&self) -> Option<crate::raft::types::NodeId> {
        let (name, _) = self.leader.as_ref()?;
        Some(crate::name::NodeName::parse("leader", name).ok()?.node_id())
    }
}

impl Default for LinkStatus {
    fn default() -> Self {
        LinkStatus {
            state: ReplicantState::Connecting,
            upstream: None,
            leader: None,
            committed: 0,
            behind_since: None,
            bootstraps: 0,
            resumes: 0,
            transitions: VecDeque::new(),
            last_error: None,
        }
    }
}

/// The replicant's link, shared with the node (status, leader for forwarded writes).
pub struct Link {
    pub status: watch::Sender<LinkStatus>,
    /// The cluster id of the first core followed: cores of another cluster are ignored.
    pub(crate) cluster: std::sync::Mutex<Option<String>>,
    /// The membership as of what this replicant applied, `(name, voter)`: the next stream
    /// tells the watchers of the members what changed since.
    pub(crate) members: std::sync::Mutex<Option<crate::engine::members::Members>>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            status: watch::channel(LinkStatus::default()).0,
            cluster: std::sync::Mutex::new(None),
            members: std::sync::Mutex::new(None),
        }
    }
}

impl Link {
    pub fn leader(&self) -> Option<(String, String)> {
        self.status.borrow().leader.clone()
    }

    /// The status as `cluster status` shows it, given what this replicant applied.
    pub fn report(&self, applied: u64) -> crate::status::ReplicantStatus {
        let s = self.status.borrow();
        crate::status::ReplicantStatus {
            state: s.state,
            upstream: s.upstream.as_ref().map(|u| u.0.clone()),
            lag_entries: s.committed.saturating_sub(applied),
            lag_ms: s.behind_since.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0),
            bootstraps: s.bootstraps,
            resumes: s.resumes,
            transitions: s.transitions.iter().cloned().collect(),
            last_error: s.last_error.clone(),
            shards: Vec::new(),
        }
    }

    /// Records why a stream failed or a core was passed over.
    pub(crate) fn set_error(&self, e: &crate::error::Error) {
        self.status.send_modify(|s| s.last_error = Some(e.clone()));
    }

    pub(crate) fn set_state(&self, state: ReplicantState, upstream: Option<&(String, String)>) {
        self.status.send_modify(|s| {
            if state == ReplicantState::Normal {
                s.last_error = None;
            }
            if s.state != state || s.upstream.as_ref() != upstream {
                s.state = state;
                s.upstream = upstream.cloned();
                let at = upstream.map(|u| u.0.as_str()).unwrap_or("-");
                s.transitions.push_back(format!("{}@{at}", state.as_str()));
                while s.transitions.len() > TRANSITIONS_KEPT {
                    s.transitions.pop_front();
                }
            }
        });
    }
}
