//! Raft's network, server side: decodes a peer's request and hands it to the local Raft,
//! whether it came as a gRPC call or over a frames connection (`raft::frame_server`).

use super::pre_vote::{self, PreVoteRequest, Voter};
use super::slot::RaftSlot;
use super::wire;
use crate::error::Error;
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

/// What a peer asks of this core's Raft, by either transport (gRPC, `raft::frame`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `AppendEntries`.
    Append,
    /// `Vote`.
    Vote,
    /// A pre-vote (`raft::pre_vote`).
    PreVote,
    /// An `InstallSnapshot` chunk.
    Snapshot,
}

fn reply(answer: Result<Vec<u8>, Error>) -> Result<Response<Payload>, Status> {
    answer.map(|data| Response::new(Payload { data })).map_err(|e| to_status(&e))
}

impl RaftService {
    /// Decodes a peer's request, hands it to this core's Raft and encodes Raft's answer:
    /// the one handling of Raft's messages, whichever transport brought them.
    pub async fn handle(&self, call: Call, data: &[u8]) -> Result<Vec<u8>, Error> {
        match call {
            Call::Append => self.append_entries(data).await,
            Call::Vote => self.vote(data).await,
            Call::PreVote => self.pre_vote(data),
            Call::Snapshot => self.install_snapshot(data).await,
        }
    }

    async fn append_entries(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let rpc: wire::AppendRequest = wire::decode("append entries", data)?;
        let (first, last) = wire::span(&rpc.entries);
        stages::mark(Stage::FollowerReceived, first, last);
        let res: wire::AppendReply = self.raft.get()?.append_entries(rpc).await;
        stages::mark(Stage::FollowerReplied, first, last);
        // Accepted from the leader of the vote this core holds (not refused for a higher one).
        if matches!(&res, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))) {
            self.raft.touch();
        }
        wire::encode(&res)
    }

    async fn vote(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let rpc: wire::VoteReq = wire::decode("vote", data)?;
        if self.raft.refuses_votes() {
            // A core without Raft state of its own (a new data dir until it forms or joins,
            // a rebuild until it is a member again) may have voted in a term it no longer
            // knows: it answers, and does not grant. (An answer, not an error: the
            // candidate counts it as a vote refused, as Raft expects, and logs no failure.)
            tracing::debug!(vote = %rpc.vote, "vote refused: no Raft state of its own");
            let refused: wire::VoteReply =
                Ok(openraft::raft::VoteResponse { vote: rpc.vote, vote_granted: false, last_log_id: None });
            return wire::encode(&refused);
        }
        let res: wire::VoteReply = self.raft.get()?.vote(rpc).await;
        wire::encode(&res)
    }

    fn pre_vote(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let rpc: PreVoteRequest = wire::decode("pre-vote", data)?;
        let raft = self.raft.get()?;
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
            last_log_id: self.raft.last_log_id()?,
        };
        let answer = pre_vote::decide(&voter, &rpc);
        if answer == pre_vote::PreVoteReply::Granted {
            // That candidate campaigns now: this core lets it, rather than split the vote.
            self.raft.defer_campaign(lease / 4);
        }
        tracing::debug!(candidate = rpc.candidate, ?answer, "pre-vote");
        wire::encode(&answer)
    }

    async fn install_snapshot(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let rpc: wire::SnapshotRequest = wire::decode("snapshot chunk", data)?;
        let res: wire::SnapshotReply = self.raft.get()?.install_snapshot(rpc).await;
        if res.is_ok() {
            self.raft.touch();
        }
        wire::encode(&res)
    }
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(self.handle(Call::Append, &req.into_inner().data).await)
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(self.handle(Call::Vote, &req.into_inner().data).await)
    }

    async fn pre_vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(self.handle(Call::PreVote, &req.into_inner().data).await)
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        reply(self.handle(Call::Snapshot, &req.into_inner().data).await)
    }
}
