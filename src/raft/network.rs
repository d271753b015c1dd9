//! Raft's network, client side: openraft's RPCs as gRPC calls to peers.
//!
//! A snapshot is sent by openraft's chunked transport, one `InstallSnapshot` call per
//! chunk (`raft.snapshot_max_chunk_size`), so no message holds a whole snapshot.
//!
//! An `AppendEntries` tells a follower a commit index no higher than what this core has
//! synced of its own log ([`Unsynced`]): its log store reports its own appends to Raft
//! before their sync, and Raft's commit index may count them. A message with no entries
//! (the notice of a new commit index, a heartbeat) waits for that sync instead, at most
//! half its timeout, so followers learn a commit as soon as it holds.

use super::types::{LogId, NodeId, NodeInfo, TypeConfig};
use super::peer_log::PeerLog;
use super::pre_vote::{PreVoteReply, PreVoteRequest};
use super::unsynced::Unsynced;
use super::wire;
use crate::error::{Error, TransportKind};
use crate::rpc::client::{Peers, status_error};
use crate::rpc::pb::Payload;
use crate::stages::{self, Stage};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse, VoteResponse};

/// Makes one [`Connection`] per peer (openraft asks for one per replication stream).
#[derive(Clone)]
pub struct Network {
    pub peers: Peers,
    /// What the log store reported to Raft before syncing it.
    pub unsynced: std::sync::Arc<Unsynced>,
    /// Peers whose calls fail, for the log.
    pub peer_log: std::sync::Arc<PeerLog>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Connection {
            target,
            node: node.clone(),
            peers: self.peers.clone(),
            unsynced: self.unsynced.clone(),
            peer_log: self.peer_log.clone(),
        }
    }
}

pub struct Connection {
    target: NodeId,
    node: NodeInfo,
    peers: Peers,
    unsynced: std::sync::Arc<Unsynced>,
    peer_log: std::sync::Arc<PeerLog>,
}

/// The highest log id `rpc` names (its previous entry or one of its entries) at or below
/// `bound`: a commit index the follower can take, lower than the leader's.
fn commit_within(rpc: &wire::AppendRequest, bound: u64) -> Option<LogId> {
    let entries = rpc.entries.iter().map(|e| &e.log_id);
    rpc.prev_log_id.iter().chain(entries).filter(|id| id.index <= bound).max_by_key(|id| id.index).copied()
}

/// `rpc`'s commit index lowered to what `unsynced` says is synced here; a message with no
/// entries first waits for the sync, at most `wait`.
async fn clamp_commit(
    unsynced: &Unsynced,
    mut rpc: wire::AppendRequest,
    wait: std::time::Duration,
) -> Result<wire::AppendRequest, Error> {
    let Some(commit) = rpc.leader_commit else { return Ok(rpc) };
    let failed = |e: String| Error::Storage(format!("the leader's log: {e}"));
    let mut bound = unsynced.bound().map_err(failed)?;
    if commit.index > bound && rpc.entries.is_empty() {
        if let Ok(done) = tokio::time::timeout(wait, unsynced.wait(commit.index)).await {
            done.map_err(failed)?;
        }
        bound = unsynced.bound().map_err(failed)?;
    }
    if commit.index > bound {
        rpc.leader_commit = commit_within(&rpc, bound);
    }
    Ok(rpc)
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>;

fn transport<E: std::error::Error>(e: Error) -> RPCError<NodeId, NodeInfo, E> {
    match e {
        Error::Transport { kind: TransportKind::NotConnected, .. }
        | Error::CookieMismatch { .. }
        | Error::ForeignCluster { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

impl Connection {
    /// Sends one encoded request and decodes the peer's `Result`.
    async fn call<T, E>(
        &self,
        method: Method,
        data: Vec<u8>,
        ttl: std::time::Duration,
    ) -> Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        T: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let addr = self.node.addr.as_str();
        let mut client = self.peers.raft(addr).map_err(transport)?;
        let req = Payload { data };
        let fut = async {
            match method {
                Method::Append => client.append_entries(req).await,
                Method::Vote => client.vote(req).await,
                Method::Snapshot => client.install_snapshot(req).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                let reason = format!("no reply within {ttl:?}");
                let e = Error::transport(&self.node.name, TransportKind::TimedOut, reason);
                self.peer_log.failed(self.target, &self.node.name, &e);
                return Err(transport(e));
            }
            Ok(Err(status)) => {
                let e = status_error(&self.node.name, status);
                if matches!(e, Error::CookieMismatch { .. }) {
                    tracing::error!(peer = %self.node.name, "peer refused our cookie");
                }
                self.peer_log.failed(self.target, &self.node.name, &e);
                return Err(transport(e));
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        self.peer_log.answered(self.target, &self.node.name);
        let res: Result<T, RaftError<NodeId, E>> =
            wire::decode("raft reply", &reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

/// A voter's answer to a pre-vote, as the candidate sees it.
#[derive(Debug)]
pub enum PreVoteAnswer {
    Reply(PreVoteReply),
    /// The peer predates pre-votes (a build one protocol version older): it decides by
    /// Raft's vote alone, so it counts as granting.
    Unsupported,
    /// No answer (unreachable, timed out, undecodable).
    Failed(Error),
}

/// Asks `node` whether it would vote for the candidate of `req`, waiting at most `ttl`.
pub async fn pre_vote(peers: &Peers, node: &NodeInfo, req: &PreVoteRequest, ttl: std::time::Duration) -> PreVoteAnswer {
    let data = match wire::encode(req) {
        Ok(d) => d,
        Err(e) => return PreVoteAnswer::Failed(e),
    };
    let mut client = match peers.raft(&node.addr) {
        Ok(c) => c,
        Err(e) => return PreVoteAnswer::Failed(e),
    };
    match tokio::time::timeout(ttl, client.pre_vote(Payload { data })).await {
        Err(_) => PreVoteAnswer::Failed(Error::transport(
            &node.name,
            TransportKind::TimedOut,
            format!("no pre-vote reply within {ttl:?}"),
        )),
        Ok(Err(status)) if crate::rpc::status::is_unimplemented(&status) => PreVoteAnswer::Unsupported,
        Ok(Err(status)) => PreVoteAnswer::Failed(status_error(&node.name, status)),
        Ok(Ok(r)) => match wire::decode::<PreVoteReply>("pre-vote reply", &r.into_inner().data) {
            Ok(answer) => PreVoteAnswer::Reply(answer),
            Err(e) => PreVoteAnswer::Failed(e),
        },
    }
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: wire::AppendRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let rpc = clamp_commit(&self.unsynced, rpc, option.hard_ttl() / 2)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let data = wire::encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let (first, last) = wire::span(&rpc.entries);
        stages::mark(Stage::Sent, first, last);
        let res = self.call(Method::Append, data, option.hard_ttl()).await;
        stages::mark(Stage::ReplyReceived, first, last);
        res
    }

    async fn install_snapshot(
        &mut self,
        rpc: wire::SnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let data = wire::encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call(Method::Snapshot, data, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: wire::VoteReq, option: RPCOption) -> Result<VoteResponse<NodeId>, RpcErr> {
        let data = wire::encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match self.call(Method::Vote, data, option.hard_ttl()).await {
            // A peer nothing reached (not up yet, or gone) casts no vote: answered as a refusal
            // carrying the candidate's own vote, which openraft counts as a "no" and ignores
            // otherwise (a refusal cannot elect anyone). Returned as an error, openraft would
            // log every election round of a cluster still forming as an ERROR.
            Err(RPCError::Unreachable(e)) => {
                tracing::debug!(peer = %self.node.name, error = %e, "vote request not delivered; counted as refused");
                Ok(VoteResponse { vote: rpc.vote, vote_granted: false, last_log_id: None })
            }
            other => other,
        }
    }
}
