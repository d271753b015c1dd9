//! When a core campaigns. openraft 0.9 draws each node's election timeout once, at start,
//! and has no pre-vote: two followers whose draws lie close together campaign together after
//! every leader failure and split the vote round after round, and a core cut off from the
//! leader raises its term on its own and, once reachable, deposes the healthy leader (seen
//! in the fault suite as 0.7–2.5 s without a leader after a partition healed). openraft's
//! timer is off (`raft_setup`); this task decides instead:
//!
//! - a voter that has heard from no leader for `raft.election_timeout` (the leader's lease,
//!   after which the other voters give their votes again) plus a wait drawn in `[¼, ½)` of
//!   it asks the other voters first (a pre-vote, `raft::pre_vote`): only when a majority of
//!   every configuration would vote for it does it campaign (`Trigger::elect`);
//! - whatever came of it (no majority, a split vote, a log behind another voter's), it
//!   tries again after a fresh draw, until a leader reaches it;
//! - a voter that grants another core's pre-vote holds its own campaign back for a quarter
//!   of the timeout: two followers that both pass a pre-vote and campaign together would
//!   split the vote and lose a round.
//!
use super::Runtime;
use crate::raft::network::{PreVoteAnswer, pre_vote};
use crate::raft::pre_vote::{PreVoteReply, PreVoteRequest, majority_of_each};
use crate::raft::slot::RaftSlot;
use crate::raft::types::Membership;
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
        // A core whose pre-vote this one granted campaigns first.
        let at = at.max(slot.campaign_deferred_until());
        if Instant::now() < at {
            continue;
        }
        // Whatever comes of this attempt, the next is a fresh draw away.
        due = Some(Instant::now() + draw(timeout));
        let membership = raft.metrics().borrow().membership_config.membership().clone();
        if let Err(refusals) = canvass(&rt, &slot, &membership, timeout / 4).await {
            rt.instruments.pre_votes_lost.inc();
            tracing::debug!(silent_ms = contact.elapsed().as_millis() as u64, %refusals, "no majority would vote for this core: not campaigning");
            continue;
        }
        tracing::info!(silent_ms = contact.elapsed().as_millis() as u64, "no leader heard from, and a majority would vote for this core: campaigning");
        rt.instruments.campaigns.inc();
        let _ = raft.trigger().elect().await;
    }
}

/// Asks the other voters of `membership` whether they would vote for this core, each within
/// `ttl`; done as soon as a majority of every configuration would (this core's own vote
/// included). The refusals otherwise, for the log.
async fn canvass(rt: &Runtime, slot: &RaftSlot, membership: &Membership, ttl: Duration) -> Result<(), String> {
    use futures::StreamExt;
    let me = rt.cfg.node_id;
    let req = PreVoteRequest { candidate: me, last_log_id: slot.last_log_id().map_err(|e| e.to_string())? };
    let configs = membership.get_joint_config();
    let mut granted = vec![me];
    if majority_of_each(configs, &granted) {
        return Ok(());
    }
    let mut asks: futures::stream::FuturesUnordered<_> = membership
        .voter_ids()
        .filter(|id| *id != me)
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
        .map(|(id, node)| {
            let req = &req;
            async move {
                let answer = pre_vote(&rt.peers, &node, req, ttl).await;
                (id, node.name, answer)
            }
        })
        .collect();
    let mut refusals = Vec::new();
    while let Some((id, name, answer)) = asks.next().await {
        match answer {
            PreVoteAnswer::Reply(PreVoteReply::Granted) | PreVoteAnswer::Unsupported => {
                granted.push(id);
                if majority_of_each(configs, &granted) {
                    return Ok(());
                }
            }
            PreVoteAnswer::Reply(refused) => refusals.push(format!("{name}: {refused:?}")),
            PreVoteAnswer::Failed(e) => refusals.push(format!("{name}: {e}")),
        }
    }
    Err(refusals.join("; "))
}
