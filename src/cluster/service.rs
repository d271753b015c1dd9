//! The Cluster gRPC service: status, join, forwarded writes and operator reads.

use crate::engine::Batch;
use crate::name::Peer;
use crate::rpc::pb::{self, cluster_server::Cluster};
use crate::rpc::status::to_status;
use crate::runtime::{ClusterRoom, ServiceRoom};
use super::state::ClusterState;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    /// What the client calls reach.
    pub(crate) node: ServiceRoom,
    /// What the membership calls reach.
    pub(crate) cluster: ClusterRoom,
    /// The cluster feature's own state (see `state.rs`).
    pub state: Arc<ClusterState>,
}

/// Sends what export writes as chunks of a gRPC stream.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<pb::Payload, Status>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let data = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(Ok(pb::Payload { data }))
                .map_err(|_| std::io::Error::other("the export's receiver went away"))?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    type ExportStream = tokio_stream::wrappers::ReceiverStream<Result<pb::Payload, Status>>;
    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::Payload, Status>>;
    type TransactStreamStream = super::pipeline::ReplyStream;

    async fn transact_stream(
        &self,
        req: Request<tonic::Streaming<pb::TaggedWrite>>,
    ) -> Result<Response<Self::TransactStreamStream>, Status> {
        Ok(Response::new(super::pipeline::serve(&self.node, req.into_inner())))
    }

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        super::watch::serve(&self.node, req.into_inner()).map(Response::new).map_err(|e| to_status(&e))
    }

    async fn export(&self, _: Request<pb::Empty>) -> Result<Response<Self::ExportStream>, Status> {
        if self.node.is_replicant() {
            return Err(to_status(&crate::error::Error::is_replicant(self.node.name(), "export")));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.backup_source();
        self.node.tasks().spawn_blocking(move || {
            let mut progress = crate::backup::Progress::silent("export");
            let w = ChunkWriter { tx: tx.clone(), buf: Vec::new() };
            if let Err(e) = crate::backup::export_to(&node, w, &mut progress) {
                let _ = tx.blocking_send(Err(to_status(&e)));
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn backup(&self, req: Request<pb::BackupRequest>) -> Result<Response<pb::BackupReply>, Status> {
        let dir = std::path::PathBuf::from(req.into_inner().dir);
        let node = self.node.backup_source();
        let info = self.node.tasks().spawn_blocking(move || crate::backup::backup_data_dir(&node, &dir))
            .await
            .map_err(|e| to_status(&crate::error::Error::task("backup", e)))?
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::BackupReply {
            dir: info.dir.display().to_string(),
            applied_index: info.applied_index,
            bytes: info.bytes,
        }))
    }

    async fn node_info(&self, _: Request<pb::Empty>) -> Result<Response<pb::NodeStatus>, Status> {
        Ok(Response::new(crate::rpc::convert::node_to_pb(&self.state.node_status(&self.cluster))))
    }

    async fn status(&self, _: Request<pb::Empty>) -> Result<Response<pb::ClusterStatus>, Status> {
        super::status::collect(&self.cluster, &self.state)
            .await
            .map(|s| Response::new(crate::rpc::convert::cluster_to_pb(&s)))
            .map_err(|e| to_status(&e))
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let r = req.into_inner();
        super::membership::admit(&self.cluster, &self.state, &r.name, &r.addr, &r.schema).await.map(Response::new).map_err(|e| to_status(&e))
    }

    async fn join_other(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let r = req.into_inner();
        // `name` is the peer as the operator wrote it: name@host or name@host:port.
        let target = Peer::parse("node", &r.name, self.node.config().config.node.base_port).map_err(|e| to_status(&e))?;
        super::membership::join(&self.cluster, &self.state, &target).await.map_err(|e| to_status(&e))?;
        let leader = self.node.leader().ok().flatten().map(|(_, n)| n.name).unwrap_or_default();
        Ok(Response::new(pb::JoinReply { leader }))
    }

    async fn force_leave(&self, req: Request<pb::LeaveRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let r = req.into_inner();
        super::leave::remove_member(&self.cluster, &self.state, &r.name, r.force).await.map_err(|e| to_status(&e))?;
        let leader = self.node.leader().ok().flatten().map(|(_, n)| n.name).unwrap_or_default();
        Ok(Response::new(pb::JoinReply { leader }))
    }

    async fn leave(&self, req: Request<pb::LeaveRequest>) -> Result<Response<pb::JoinReply>, Status> {
        super::leave::leave(&self.cluster, &self.state, req.into_inner().force).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::JoinReply { leader: self.node.name().to_string() }))
    }

    async fn write(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let req = req.into_inner();
        let reply = serve_write(&self.node, &req.batch, req.relay).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::WriteReply { reply }))
    }

    async fn transact(&self, req: Request<pb::WriteRequest>) -> Result<Response<pb::WriteReply>, Status> {
        let reply = serve_transact(&self.node, &req.into_inner().batch).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::WriteReply { reply }))
    }

    async fn read_index(&self, _: Request<pb::Empty>) -> Result<Response<pb::ReadIndexReply>, Status> {
        let index = self.node.read_index_as_leader().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReadIndexReply { index }))
    }

    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
        let r = req.into_inner();
        // A linearizable read from any node: the read index comes from the leader (this node
        // asks it), the read waits until this node applied that index.
        let index = if r.linearizable { self.node.read_index().await.map_err(|e| to_status(&e))? } else { 0 };
        let wait = r.min_applied.max(index);
        if wait > 0 {
            self.node.wait_applied(wait, Duration::from_secs(10)).await.map_err(|e| to_status(&e))?;
        }
        let records = if r.all {
            self.node.dump(&r.table).map_err(|e| to_status(&e))?
        } else {
            self.node
                .get(&r.table, &r.key)
                .map_err(|e| to_status(&e))?
                .into_iter()
                .map(|v| (r.key.as_slice().into(), v))
                .collect()
        };
        Ok(Response::new(pb::ReadReply {
            records: records.into_iter().map(|(k, v)| pb::Record { key: k.to_vec(), value: v.to_vec() }).collect(),
            applied_index: self.node.applied_index(),
        }))
    }

    async fn tables(&self, _: Request<pb::Empty>) -> Result<Response<pb::TablesReply>, Status> {
        crate::rpc::convert::tables_to_pb(&self.node.tables()).map(Response::new).map_err(|e| to_status(&e))
    }

    async fn range_read(&self, req: Request<pb::RangeReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
        let mut r = req.into_inner();
        let range = crate::rpc::convert::key_range_from_pb(&mut r).map_err(|e| to_status(&e))?;
        let index = if r.linearizable { self.node.read_index().await.map_err(|e| to_status(&e))? } else { 0 };
        let wait = r.min_applied.max(index);
        if wait > 0 {
            self.node.wait_applied(wait, Duration::from_secs(10)).await.map_err(|e| to_status(&e))?;
        }
        let records = self.node.range(&r.table, &range).map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReadReply {
            records: records.into_iter().map(|(k, v)| pb::Record { key: k.to_vec(), value: v.to_vec() }).collect(),
            applied_index: self.node.applied_index(),
        }))
    }

    async fn count(&self, req: Request<pb::CountRequest>) -> Result<Response<pb::CountReply>, Status> {
        let count = self.node.count(&req.into_inner().table).map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::CountReply { count, applied_index: self.node.applied_index() }))
    }

    async fn index_read(&self, req: Request<pb::IndexReadRequest>) -> Result<Response<pb::IndexReadReply>, Status> {
        let mut r = req.into_inner();
        let range = crate::rpc::convert::index_range_from_pb(&mut r).map_err(|e| to_status(&e))?;
        let index = if r.linearizable { self.node.read_index().await.map_err(|e| to_status(&e))? } else { 0 };
        let wait = r.min_applied.max(index);
        if wait > 0 {
            self.node.wait_applied(wait, Duration::from_secs(10)).await.map_err(|e| to_status(&e))?;
        }
        let hits = self.node.index(&r.table, &r.index, &range).map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::IndexReadReply {
            hits: crate::rpc::convert::hits_to_pb(hits),
            applied_index: self.node.applied_index(),
        }))
    }
}

/// Serves a batch a follower or replicant forwarded (`relay`: relayed by a replicant
/// through this core), in its encoded form, and returns the encoded answer: the one
/// handling of a forwarded batch, whether it came as a gRPC `Write` call or over frames
/// (`raft::frame_server::Writes`).
pub(crate) async fn serve_write(node: &ServiceRoom, batch: &[u8], relay: bool) -> crate::error::Result<Vec<u8>> {
    let batch: Batch = crate::codec::decode_versioned("forwarded batch", crate::codec::WIRE_VERSION, batch)?;
    let reply = if relay { node.serve_relayed(batch).await } else { node.serve_forwarded(batch).await }?;
    crate::codec::encode_versioned(crate::codec::WIRE_VERSION, &reply)
}

/// Serves a client's transaction, in its encoded form, and returns the encoded answer:
/// the one handling of it, whether it came as a gRPC `Transact` call or over frames.
pub(crate) async fn serve_transact(node: &ServiceRoom, txn: &[u8]) -> crate::error::Result<Vec<u8>> {
    let txn: crate::engine::Txn = crate::codec::decode_versioned("transaction", crate::codec::WIRE_VERSION, txn)?;
    let reply = node.transact(txn).await?;
    crate::codec::encode_versioned(crate::codec::WIRE_VERSION, &reply)
}

impl crate::raft::frame_server::Writes for ServiceRoom {
    fn serve<'a>(&'a self, batch: &'a [u8], relay: bool) -> crate::raft::frame_server::Answer<'a> {
        Box::pin(serve_write(self, batch, relay))
    }

    fn transact<'a>(&'a self, txn: &'a [u8]) -> crate::raft::frame_server::Answer<'a> {
        Box::pin(serve_transact(self, txn))
    }
}
