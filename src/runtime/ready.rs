//! Readiness: whether a node should receive traffic, one definition for `Node::wait_ready`
//! and the operator's `/ready`.
//!
//! A core is ready when it knows a leader and has applied the commit index it knows; a
//! replicant when it streams (`normal`); either only once the tables it declares are in the
//! log (it creates them at start: `runtime::catalog`).

use super::Runtime;
use crate::error::{Error, Result};
use std::time::{Duration, Instant};

impl Runtime {
    /// `Ok` when this node is ready, else why not (in words).
    pub fn readiness(&self) -> std::result::Result<(), String> {
        let s = self.node_status();
        if let Some(r) = &s.replicant {
            if r.state != crate::ReplicantState::Normal {
                return Err(format!("replicant state {}", r.state.as_str()));
            }
        } else {
            if s.leader.is_none() {
                return Err("no leader known".into());
            }
            if s.applied_index < s.committed {
                return Err(format!("applied {} of {} committed", s.applied_index, s.committed));
            }
        }
        let missing = self.missing_declared();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|d| d.name.as_str()).collect();
            return Err(format!("declared tables not created yet: {}", names.join(", ")));
        }
        Ok(())
    }

    /// Waits until this node is ready, at most `timeout` ([`Error::Timeout`] with the
    /// reason it is not). Woken by what changes readiness: the applied index, the leader
    /// (Raft's metrics on a core, the link on a replicant).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut applied = self.applied_watch();
        loop {
            let mut leader = self.leader_changes();
            let why = match self.readiness() {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("{} to be ready ({why})", self.name()),
                    ms: timeout.as_millis() as u64,
                });
            }
            // Status parts without a notification (the commit index learned from a
            // heartbeat) are looked at again at least every 50 ms.
            let wait = left.min(Duration::from_millis(50));
            tokio::select! {
                _ = tokio::time::timeout(wait, applied.changed()) => {}
                _ = leader.wait(wait) => {}
                _ = self.stopped() => return Err(Error::Shutdown),
            }
        }
    }
}
