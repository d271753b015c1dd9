//! When a core campaigns. openraft 0.9 draws each node's election timeout once, at start:
//! two followers whose draws lie close together campaign together after every leader
//! failure, split the vote, and wait out the same timeouts again, round after round (seen
//! as failovers of 3–4 s where 1.5–2 s was due). This task draws afresh for every
//! campaign: a voter that has heard from no leader for `raft.election_timeout` (the
//! leader's lease, after which the other voters give their votes again) plus a wait drawn
//! in `[¼, ½)` of it campaigns (`Trigger::elect`); if no leader reaches it after that, it
//! campaigns again after another fresh draw. openraft's own timer (1.5×–2× the timeout,
//! see `raft_setup`) stays, behind this one.

use super::Runtime;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A wait drawn in `[¼, ½)` of `timeout`.
fn draw(timeout: Duration) -> Duration {
    let quarter = timeout / 4;
    let spread = quarter.as_millis().max(1) as u64;
    quarter + Duration::from_millis(crate::config::random_u64() % spread)
}

/// Runs until the node stops (cores only).
pub(crate) async fn campaign(rt: Arc<Runtime>) {
    let timeout = rt.cfg.election_timeout();
    let tick = (rt.cfg.heartbeat() / 2).max(Duration::from_millis(10));
    let slot = rt.raft_slot();
    let mut seen = u64::MAX;
    // When this core campaigns next, unless a leader reaches it first.
    let mut due: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = rt.stopped() => return,
        }
        let Ok(raft) = slot.get() else { continue };
        let (leading, voter) = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.state == openraft::ServerState::Leader, m.membership_config.membership().voter_ids().any(|id| id == rt.cfg.node_id))
        };
        if leading || !voter || slot.refuses_votes() {
            // A leader is in touch with itself; a learner, or a core without its Raft
            // state, does not campaign.
            slot.touch();
            continue;
        }
        let (contact, contacts) = slot.last_contact();
        if contacts != seen {
            // A leader reached it (or it led) since the last look: silence counts from there.
            seen = contacts;
            due = Some(contact + timeout + draw(timeout));
        }
        let at = *due.get_or_insert_with(|| contact + timeout + draw(timeout));
        if Instant::now() < at {
            continue;
        }
        tracing::info!(silent_ms = contact.elapsed().as_millis() as u64, "no leader heard from: campaigning");
        if raft.trigger().elect().await.is_err() {
            continue;
        }
        // Once per silence: if this campaign brings no leader (a split vote, or a log
        // behind another voter's), openraft's own timer goes on from here, and backs off
        // where a voter showed a longer log; a second early campaign would only raise the
        // term under the voter that can win.
        due = Some(Instant::now() + Duration::from_secs(3600));
    }
}
