//! Raft's network, server side: decodes a peer's request and hands it to the local Raft.

use super::pre_vote::{self, PreVoteRequest, Voter};
use super::slot::RaftSlot;
use super::wire;
use crate::rpc::pb::Payload;
use crate::rpc::status::to_status;
use crate::stages::{self, Stage};
use crate::rpc::pb::raft_server::Raft as RaftRpc;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The Raft service of one core, over the slot of its current Raft instance.
pub struct RaftService {
    raft: Arc<RaftSlot>,
}

impl RaftService {
    pub fn new(raft: Arc<RaftSlot>) -> Self {
        RaftService { raft }
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<Payload>, Status> {
    wire::encode(value).map(|data| Response::new(Payload { data })).map_err(|e| to_status(&e))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: wire::AppendRequest = wire::decode("append entries", &req.into_inner().data).map_err(|e| to_status(&e))?;
        let (first, last) = wire::span(&rpc.entries);
        stages::mark(Stage::FollowerReceived, first, last);
        let res: wire::AppendReply =
            self.raft.get().map_err(|e| to_status(&e))?.append_entries(rpc).await;
        stages::mark(Stage::FollowerReplied, first, last);
        // Accepted from the leader of the vote this core holds (not refused for a higher one).
        if matches!(&res, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))) {
            self.raft.touch();
        }
        reply(&res)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: wire::VoteReq = wire::decode("vote", &req.into_inner().data).map_err(|e| to_status(&e))?;
        if self.raft.refuses_votes() {
            // A core without Raft state of its own (a new data dir until it forms or joins,
            // a rebuild until it is a member again) may have voted in a term it no longer
            // knows: it answers, and does not grant. (An answer, not an error: the
            // candidate counts it as a vote refused, as Raft expects, and logs no failure.)
            tracing::debug!(vote = %rpc.vote, "vote refused: no Raft state of its own");
            let refused: wire::VoteReply =
                Ok(openraft::raft::VoteResponse { vote: rpc.vote, vote_granted: false, last_log_id: None });
            return reply(&refused);
        }
        let res: wire::VoteReply = self.raft.get().map_err(|e| to_status(&e))?.vote(rpc).await;
        reply(&res)
    }

    async fn pre_vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: PreVoteRequest = wire::decode("pre-vote", &req.into_inner().data).map_err(|e| to_status(&e))?;
        let raft = self.raft.get().map_err(|e| to_status(&e))?;
        let lease = Duration::from_millis(raft.config().election_timeout_max);
        let leading_with_quorum = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.state == openraft::ServerState::Leader)
                .then(|| m.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) < lease.as_millis()))
        };
        let voter = Voter {
            refuses_votes: self.raft.refuses_votes(),
            // A leader counts its quorum's acknowledgements; a follower, the leader's appends.
            leader_within_lease: leading_with_quorum.unwrap_or_else(|| self.raft.leader_heard_within(lease)),
            last_log_id: self.raft.last_log_id().map_err(|e| to_status(&e))?,
        };
        let answer = pre_vote::decide(&voter, &rpc);
        if answer == pre_vote::PreVoteReply::Granted {
            // That candidate campaigns now: this core lets it, rather than split the vote.
            self.raft.defer_campaign(lease / 4);
        }
        tracing::debug!(candidate = rpc.candidate, ?answer, "pre-vote");
        reply(&answer)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: wire::SnapshotRequest = wire::decode("snapshot chunk", &req.into_inner().data).map_err(|e| to_status(&e))?;
        let res: wire::SnapshotReply =
            self.raft.get().map_err(|e| to_status(&e))?.install_snapshot(rpc).await;
        if res.is_ok() {
            self.raft.touch();
        }
        reply(&res)
    }
}
