//! Raft's network, client side: openraft's RPCs as gRPC calls to peers.
//!
//! A snapshot is sent by openraft's chunked transport, one `InstallSnapshot` call per
//! chunk (`raft.snapshot_max_chunk_size`), so no message holds a whole snapshot.

use super::types::{NodeId, NodeInfo, TypeConfig};
use super::wire;
use crate::error::{Error, TransportKind};
use crate::rpc::client::{Peers, status_error};
use crate::rpc::pb::Payload;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse, VoteResponse};

/// Makes one [`Connection`] per peer (openraft asks for one per replication stream).
#[derive(Clone)]
pub struct Network {
    pub peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        Connection { target, node: node.clone(), peers: self.peers.clone() }
    }
}

pub struct Connection {
    target: NodeId,
    node: NodeInfo,
    peers: Peers,
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
                return Err(transport(Error::transport(&self.node.name, TransportKind::TimedOut, reason)));
            }
            Ok(Err(status)) => {
                let e = status_error(&self.node.name, status);
                if matches!(e, Error::CookieMismatch { .. }) {
                    tracing::error!(peer = %self.node.name, "peer refused our cookie");
                }
                return Err(transport(e));
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        let res: Result<T, RaftError<NodeId, E>> =
            wire::decode("raft reply", &reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
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
        let data = wire::encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.call(Method::Append, data, option.hard_ttl()).await
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
