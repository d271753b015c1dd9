//! Pre-vote: before a core campaigns (raises its term), it asks the other voters whether
//! they would vote for it, and campaigns only when a majority of every configuration would.
//!
//! openraft 0.9 has no pre-vote. Without it, a core cut off from the leader (a partition, a
//! long pause) campaigns on its own, raising its term each time; when it is reachable again
//! its higher term deposes the healthy leader, and the cluster waits for a new election
//! (seen in the fault suite as 0.7–2.5 s without a leader after a follower's partition
//! healed). With it, a core that cannot win does not raise its term: the leader keeps
//! leading and the core catches up from it.
//!
//! A voter grants when it would grant the vote itself: it has heard from no leader for the
//! leader's lease (the election timeout) or leads without a quorum's acknowledgement within
//! it, the candidate's log is at least as up to date as its own, and it gives votes at all
//! (a core without its own Raft state does not). The decision is [`decide`], pure; the
//! server side (`service.rs`) gathers what it needs, the client side is `network::pre_vote`,
//! and `runtime::campaign` canvasses.

use super::types::{LogId, NodeId};
use serde::{Deserialize, Serialize};

/// Whether a voter would vote for `candidate`, whose log ends at `last_log_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    pub last_log_id: Option<LogId>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreVoteReply {
    /// It would vote for the candidate.
    Granted,
    /// A leader reached it within the lease (or it leads with a quorum's acknowledgement).
    LeaderAlive,
    /// Its log is more up to date than the candidate's.
    LogAhead,
    /// It has no Raft state of its own and gives no votes.
    GivesNoVotes,
}

/// What a voter knows when it is asked.
#[derive(Clone, Debug)]
pub struct Voter {
    /// It gives no votes (no Raft state of its own).
    pub refuses_votes: bool,
    /// It leads, or a leader reached it, within the lease.
    pub leader_within_lease: bool,
    /// The last entry of its log.
    pub last_log_id: Option<LogId>,
}

/// The answer of `voter` to `req`: the rules of a real vote, without raising any term.
pub fn decide(voter: &Voter, req: &PreVoteRequest) -> PreVoteReply {
    if voter.refuses_votes {
        PreVoteReply::GivesNoVotes
    } else if voter.leader_within_lease {
        PreVoteReply::LeaderAlive
    } else if req.last_log_id < voter.last_log_id {
        PreVoteReply::LogAhead
    } else {
        PreVoteReply::Granted
    }
}

/// Whether `granted` (the candidate itself included) is a majority of each configuration of
/// a (possibly joint) membership.
pub fn majority_of_each(configs: &[std::collections::BTreeSet<NodeId>], granted: &[NodeId]) -> bool {
    !configs.is_empty()
        && configs.iter().all(|c| c.iter().filter(|id| granted.contains(id)).count() > c.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(openraft::CommittedLeaderId::new(term, 1), index))
    }

    fn voter(leader: bool, last: Option<LogId>) -> Voter {
        Voter { refuses_votes: false, leader_within_lease: leader, last_log_id: last }
    }

    #[test]
    fn a_voter_that_heard_a_leader_within_the_lease_refuses() {
        let req = PreVoteRequest { candidate: 2, last_log_id: log(3, 10) };
        assert_eq!(decide(&voter(true, log(3, 5)), &req), PreVoteReply::LeaderAlive);
        assert_eq!(decide(&voter(false, log(3, 5)), &req), PreVoteReply::Granted);
    }

    #[test]
    fn a_voter_with_a_more_up_to_date_log_refuses() {
        let req = PreVoteRequest { candidate: 2, last_log_id: log(3, 10) };
        assert_eq!(decide(&voter(false, log(3, 11)), &req), PreVoteReply::LogAhead);
        assert_eq!(decide(&voter(false, log(4, 2)), &req), PreVoteReply::LogAhead, "a later term wins over a longer log");
        assert_eq!(decide(&voter(false, log(3, 10)), &req), PreVoteReply::Granted, "an equal log is up to date");
        assert_eq!(decide(&voter(false, None), &req), PreVoteReply::Granted);
        let empty = PreVoteRequest { candidate: 2, last_log_id: None };
        assert_eq!(decide(&voter(false, log(1, 1)), &empty), PreVoteReply::LogAhead);
    }

    #[test]
    fn a_voter_without_its_own_state_gives_no_vote() {
        let v = Voter { refuses_votes: true, leader_within_lease: false, last_log_id: None };
        assert_eq!(decide(&v, &PreVoteRequest { candidate: 2, last_log_id: log(9, 9) }), PreVoteReply::GivesNoVotes);
    }

    #[test]
    fn a_joint_membership_needs_a_majority_of_each_configuration() {
        let old: BTreeSet<NodeId> = [1, 2, 3].into();
        let new: BTreeSet<NodeId> = [3, 4, 5].into();
        assert!(majority_of_each(std::slice::from_ref(&old), &[1, 2]));
        assert!(!majority_of_each(std::slice::from_ref(&old), &[1]));
        assert!(!majority_of_each(&[old.clone(), new.clone()], &[1, 2]));
        assert!(majority_of_each(&[old, new], &[1, 3, 4]));
        assert!(!majority_of_each(&[], &[1]));
    }
}
