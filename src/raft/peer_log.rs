//! What the Raft network logs of peers that do not answer.
//!
//! A peer that stops answering (paused, restarting, cut off) fails every heartbeat's call.
//! Its failures are logged at DEBUG while short (a peer starting, an election round), at
//! WARN once they have lasted [`WARN_AFTER`], then at most every [`REPEAT`] with the count
//! in between, and at INFO when the peer answers again. openraft's own ERROR lines about
//! the same calls are left out of `mnema start`'s log (`observe::is_peer_failure_noise`).

use super::types::NodeId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long calls to a peer fail before it is a warning.
pub const WARN_AFTER: Duration = Duration::from_secs(2);
/// How often a peer that still fails is told again.
pub const REPEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct PeerLog {
    failing: Mutex<HashMap<NodeId, Failing>>,
}

#[derive(Debug)]
struct Failing {
    since: Instant,
    warned: Option<Instant>,
    calls: u64,
}

impl PeerLog {
    /// A call to `peer` (`name`) failed with `error`.
    pub fn failed(&self, peer: NodeId, name: &str, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let f = failing.entry(peer).or_insert(Failing { since: now, warned: None, calls: 0 });
        f.calls += 1;
        let failed_ms = now.duration_since(f.since).as_millis() as u64;
        let due = match f.warned {
            None => now.duration_since(f.since) >= WARN_AFTER,
            Some(t) => now.duration_since(t) >= REPEAT,
        };
        if due {
            tracing::warn!(peer = %name, failed_ms, calls = f.calls, error = %error, "a Raft peer does not answer");
            f.warned = Some(now);
            f.calls = 0;
        } else {
            tracing::debug!(peer = %name, error = %error, "a call to a Raft peer failed");
        }
    }

    /// `peer` (`name`) answered a call.
    pub fn answered(&self, peer: NodeId, name: &str) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failing.remove(&peer)
            && f.warned.is_some()
        {
            tracing::info!(peer = %name, after_ms = f.since.elapsed().as_millis() as u64, "a Raft peer answers again");
        }
    }
}
