//! Raft's network, client side: openraft's RPCs to peers, over frames (`raft::frame`, the
//! default without TLS) or as gRPC calls.
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
use super::frame::Kind;
use super::frame_client::{FrameConn, open};
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
            frames: None,
        }
    }
}

pub struct Connection {
    target: NodeId,
    node: NodeInfo,
    peers: Peers,
    unsynced: std::sync::Arc<Unsynced>,
    peer_log: std::sync::Arc<PeerLog>,
    /// The frames connection to the peer, once made; dropped after any failure (a reply
    /// may still be on its way) and made again by the next call.
    frames: Option<FrameConn>,
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
        &mut self,
        method: Method,
        data: Vec<u8>,
        ttl: std::time::Duration,
    ) -> Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        T: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let frames = self.peers.frames_to(&self.node.addr).map_err(transport)?;
        let answer = match frames {
            true => match tokio::time::timeout(ttl, self.call_frames(method, &data, ttl)).await {
                Err(_) => Err(timed_out(&self.node.name, ttl)),
                Ok(Some(answer)) => answer,
                // The peer has no frames: this call, and its next ones for a while, by gRPC.
                Ok(None) => self.call_grpc(method, data, ttl).await,
            },
            false => self.call_grpc(method, data, ttl).await,
        };
        let reply = match answer {
            Ok(reply) => reply,
            Err(e) => {
                if matches!(e, Error::CookieMismatch { .. }) {
                    tracing::error!(peer = %self.node.name, "peer refused our cookie");
                }
                self.peer_log.failed(self.target, &self.node.name, &e);
                return Err(transport(e));
            }
        };
        self.peer_log.answered(self.target, &self.node.name);
        let res: Result<T, RaftError<NodeId, E>> =
            wire::decode("raft reply", &reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }

    /// The call over this connection's frames connection (made first if there is none):
    /// the reply's bytes or the failure; `None` if the peer does not speak frames. Dropped
    /// midway (a timeout, or openraft giving up the call), it takes the connection with it.
    async fn call_frames(
        &mut self,
        method: Method,
        data: &[u8],
        ttl: std::time::Duration,
    ) -> Option<Result<Vec<u8>, Error>> {
        let name = self.node.name.as_str();
        // A connection whose hello announced another cluster id than this node's now (it
        // joined or left a cluster since) is not used again.
        let conn = match self.frames.take().filter(|c| self.peers.announces(c.cluster())) {
            Some(conn) => conn,
            None => {
                let within = ttl.min(self.peers.connect_timeout());
                match open(&self.peers, name, &self.node.addr, within).await? {
                    Ok(conn) => conn,
                    Err(e) => return Some(Err(e)),
                }
            }
        };
        let kind = match method {
            Method::Append => Kind::Append,
            Method::Vote => Kind::Vote,
            Method::Snapshot => Kind::Snapshot,
        };
        // Kept only after a whole exchange: a reply (or the peer's error) was read.
        let (back, answer) = conn.exchange(name, kind, data).await;
        self.frames = back;
        Some(answer)
    }

    /// The call as a gRPC call: the reply's bytes or the failure.
    async fn call_grpc(&self, method: Method, data: Vec<u8>, ttl: std::time::Duration) -> Result<Vec<u8>, Error> {
        let mut client = self.peers.raft(&self.node.addr)?;
        let req = Payload { data };
        let fut = async {
            match method {
                Method::Append => client.append_entries(req).await,
                Method::Vote => client.vote(req).await,
                Method::Snapshot => client.install_snapshot(req).await,
            }
        };
        match tokio::time::timeout(ttl, fut).await {
            Err(_) => Err(timed_out(&self.node.name, ttl)),
            Ok(Err(status)) => Err(status_error(&self.node.name, status)),
            Ok(Ok(r)) => Ok(r.into_inner().data),
        }
    }
}

fn timed_out(peer: &str, ttl: std::time::Duration) -> Error {
    Error::transport(peer, TransportKind::TimedOut, format!("no reply within {ttl:?}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::frame::{self, MAGIC};
    use openraft::Vote;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    const COOKIE: &str = "secret";

    fn connection(addr: &str) -> Connection {
        let peers = Peers::new(COOKIE, None, crate::protocol::PROTOCOL, None).unwrap();
        Connection {
            target: 2,
            node: NodeInfo { name: "peer".into(), addr: addr.into() },
            peers,
            unsynced: Default::default(),
            peer_log: Default::default(),
            frames: None,
        }
    }

    fn vote_req() -> wire::VoteReq {
        openraft::raft::VoteRequest { vote: Vote::new(3, 1), last_log_id: None }
    }

    /// A peer that speaks frames (the wire format, by hand): it answers the `n`th vote
    /// request of a connection after `delay(n)`, granting it only if `n` is odd.
    async fn frames_peer(delay: fn(u32) -> Duration) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut magic = [0u8; 8];
                    s.read_exact(&mut magic).await.unwrap();
                    assert_eq!(magic, MAGIC);
                    let mut buf = Vec::new();
                    assert_eq!(frame::read(&mut s, &mut buf).await.unwrap(), Some(Kind::Hello));
                    assert_eq!(frame::decode_hello(&buf).unwrap().cookie, COOKIE.as_bytes());
                    frame::write(&mut s, Kind::Ok, &[]).await.unwrap();
                    let mut n = 0;
                    while let Ok(Some(Kind::Vote)) = frame::read(&mut s, &mut buf).await {
                        n += 1;
                        let req: wire::VoteReq = wire::decode("vote", &buf).unwrap();
                        tokio::time::sleep(delay(n)).await;
                        let reply: wire::VoteReply =
                            Ok(VoteResponse { vote: req.vote, vote_granted: n % 2 == 1, last_log_id: None });
                        if frame::write(&mut s, Kind::Ok, &wire::encode(&reply).unwrap()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// A call given up (its timeout passed) may still have its reply on the way: the next
    /// call must not read it as its own. The first request of each connection is answered
    /// late and granted, any later one at once and refused: a call after the timeout gets
    /// a fresh connection's answer (granted), never the late one.
    #[tokio::test]
    async fn a_call_given_up_takes_its_frames_connection_with_it() {
        let addr = frames_peer(|n| if n == 1 { Duration::from_millis(400) } else { Duration::ZERO }).await;
        let mut c = connection(&addr);
        let short = RPCOption::new(Duration::from_millis(100));
        assert!(matches!(c.vote(vote_req(), short).await, Err(RPCError::Network(_))), "the first call times out");
        assert!(c.frames.is_none(), "the connection went with the call");
        let long = RPCOption::new(Duration::from_secs(5));
        let answer = c.vote(vote_req(), long.clone()).await.unwrap();
        assert!(answer.vote_granted, "a new connection's first answer");
        assert!(c.frames.is_some(), "kept after a whole exchange");
        let answer = c.vote(vote_req(), long).await.unwrap();
        assert!(!answer.vote_granted, "the same connection's second answer");
    }

    /// A connection announces the cluster id its node had when it said hello; once the
    /// node has adopted another (it joined or left a cluster), the next call says hello
    /// again with the new one, as a gRPC call would announce it.
    #[tokio::test]
    async fn a_frames_connection_is_not_used_after_the_cluster_id_changes() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, mut hellos) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut magic = [0u8; 8];
                    s.read_exact(&mut magic).await.unwrap();
                    let mut buf = Vec::new();
                    frame::read(&mut s, &mut buf).await.unwrap();
                    tx.send(frame::decode_hello(&buf).unwrap().cluster).unwrap();
                    frame::write(&mut s, Kind::Ok, &[]).await.unwrap();
                    while let Ok(Some(Kind::Vote)) = frame::read(&mut s, &mut buf).await {
                        let req: wire::VoteReq = wire::decode("vote", &buf).unwrap();
                        let reply: wire::VoteReply =
                            Ok(VoteResponse { vote: req.vote, vote_granted: true, last_log_id: None });
                        frame::write(&mut s, Kind::Ok, &wire::encode(&reply).unwrap()).await.unwrap();
                    }
                });
            }
        });
        let id: crate::rpc::auth::ClusterId = std::sync::Arc::new(std::sync::RwLock::new("c1".into()));
        let mut c = connection(&addr);
        c.peers = Peers::new(COOKIE, Some(id.clone()), crate::protocol::PROTOCOL, None).unwrap();
        let opt = RPCOption::new(Duration::from_secs(5));
        for _ in 0..2 {
            assert!(c.vote(vote_req(), opt.clone()).await.unwrap().vote_granted);
        }
        assert_eq!(hellos.recv().await.unwrap(), "c1");
        assert!(hellos.try_recv().is_err(), "one connection for both calls");
        *id.write().unwrap() = "c2".into();
        assert!(c.vote(vote_req(), opt).await.unwrap().vote_granted);
        let again = tokio::time::timeout(Duration::from_secs(5), hellos.recv()).await;
        assert_eq!(again.expect("a second hello").unwrap(), "c2", "a new hello with the new id");
    }

    /// A peer that answers the hello with no frame of ours (a gRPC server of a build
    /// without frames: HTTP/2's own preface) is called over gRPC from then on.
    #[tokio::test]
    async fn a_peer_without_frames_is_called_over_grpc() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // An HTTP/2 SETTINGS frame, as a server's preface, then the connection ends.
            let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
        });
        let mut c = connection(&addr);
        assert!(c.peers.frames_to(&addr).unwrap());
        // The gRPC call after the fallback finds nothing listening: a transport failure.
        let r = c.vote(vote_req(), RPCOption::new(Duration::from_secs(5))).await.unwrap();
        assert!(!r.vote_granted, "nothing delivered counts as refused");
        assert!(!c.peers.frames_to(&addr).unwrap(), "frames not tried again for a while");
    }

    /// A peer that refuses the hello (a wrong cookie) fails the call with its error, and
    /// no fallback to gRPC hides it.
    #[tokio::test]
    async fn a_refused_hello_fails_the_call_with_the_peers_error() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut magic = [0u8; 8];
            s.read_exact(&mut magic).await.unwrap();
            let mut buf = Vec::new();
            frame::read(&mut s, &mut buf).await.unwrap();
            let refusal = frame::encode_error(&Error::CookieMismatch { peer: String::new() }).unwrap();
            frame::write(&mut s, Kind::Err, &refusal).await.unwrap();
        });
        let mut c = connection(&addr);
        let heartbeat = wire::AppendRequest { vote: Vote::new(3, 1), prev_log_id: None, entries: vec![], leader_commit: None };
        match c.append_entries(heartbeat, RPCOption::new(Duration::from_secs(5))).await {
            Err(RPCError::Unreachable(_)) => {}
            other => panic!("expected the refusal, got {other:?}"),
        }
        assert!(c.peers.frames_to(&addr).unwrap(), "a refusal is no sign of a build without frames");
    }
}
