//! The Cluster gRPC service: status, join, forwarded writes and operator reads.

use crate::engine::Batch;
use crate::error::Error;
use crate::name::Peer;
use crate::node::NodeShared;
use crate::rpc::pb::{self, cluster_server::Cluster};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    pub node: Arc<NodeShared>,
}

/// Our error as a gRPC status the client side maps back (see `rpc::client::status_error`).
pub fn to_status(e: Error) -> Status {
    match e {
        Error::Refused(m) => Status::failed_precondition(m),
        Error::UnknownTable(t) => Status::not_found(t),
        Error::InvalidTxn(m) | Error::Config { reason: m, .. } => Status::invalid_argument(m),
        Error::NoLeader(m) => Status::unavailable(format!("no leader available: {m}")),
        Error::Conflict(m) => Status::aborted(m),
        Error::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn node_info(&self, _: Request<pb::Empty>) -> Result<Response<pb::NodeStatus>, Status> {
        Ok(Response::new(self.node.node_status()))
    }

    async fn status(&self, _: Request<pb::Empty>) -> Result<Response<pb::ClusterStatus>, Status> {
        super::status::collect(&self.node).await.map(Response::new).map_err(to_status)
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let r = req.into_inner();
        super::membership::admit(&self.node, &r.name, &r.addr).await.map(Response::new).map_err(to_status)
    }

    async fn join_other(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let r = req.into_inner();
        // `name` is the peer as the operator wrote it: name@host or name@host:port.
        let target = Peer::parse("node", &r.name, self.node.config.node.base_port).map_err(to_status)?;
        super::membership::join(&self.node, &target).await.map_err(to_status)?;
        let leader = self.node.leader().ok().flatten().map(|(_, n)| n.name).unwrap_or_default();
        Ok(Response::new(pb::JoinReply { leader }))
    }

    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let batch: Batch =
            crate::codec::decode_versioned("forwarded batch", crate::codec::WIRE_VERSION, &req.into_inner().batch)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reply = self.node.serve_forwarded(batch).await;
        let bytes = crate::codec::encode_versioned(crate::codec::WIRE_VERSION, &reply)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::WriteReply { reply: bytes }))
    }

    async fn transact(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let txn: crate::engine::Txn =
            crate::codec::decode_versioned("transaction", crate::codec::WIRE_VERSION, &req.into_inner().batch)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reply: Result<crate::engine::Committed, String> = self.node.transact(txn).await.map_err(|e| e.to_string());
        let bytes = crate::codec::encode_versioned(crate::codec::WIRE_VERSION, &reply)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::WriteReply { reply: bytes }))
    }

    async fn read_index(&self, _: Request<pb::Empty>) -> Result<Response<pb::ReadIndexReply>, Status> {
        let index = self.node.read_index_as_leader().await.map_err(to_status)?;
        Ok(Response::new(pb::ReadIndexReply { index }))
    }

    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
        let r = req.into_inner();
        if r.min_applied > 0 {
            self.node.wait_applied(r.min_applied, Duration::from_secs(10)).await.map_err(to_status)?;
        }
        let records = if r.all {
            self.node.dump(&r.table).map_err(to_status)?
        } else {
            self.node
                .get(&r.table, &r.key)
                .map_err(to_status)?
                .into_iter()
                .map(|v| (r.key.as_slice().into(), v))
                .collect()
        };
        Ok(Response::new(pb::ReadReply {
            records: records.into_iter().map(|(k, v)| pb::Record { key: k.to_vec(), value: v.to_vec() }).collect(),
            applied_index: self.node.applied_index(),
        }))
    }
}
