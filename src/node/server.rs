//! The node's gRPC server: the Raft, Cluster and Replication services behind the cookie check.

use crate::cluster::service::ClusterService;
use crate::cluster::state::ClusterState;
use crate::raft::service::RaftService;
use crate::replication::log_server::ReplicationService;
use crate::rpc::auth::CheckCookie;
use crate::rpc::pb::cluster_server::ClusterServer;
use crate::rpc::pb::raft_server::RaftServer;
use crate::rpc::pb::replication_server::ReplicationServer;
use crate::runtime::Runtime;
use std::sync::Arc;
use tonic::service::interceptor::InterceptedService;

/// A server builder with this node's transport security (`inet_tls`), checked: `Node::start`
/// calls it first so that a bad certificate or key stops the node with a clear error.
pub(crate) fn builder(cfg: &crate::config::Validated) -> crate::error::Result<tonic::transport::Server> {
    let builder = tonic::transport::Server::builder();
    let Some(files) = &cfg.tls else { return Ok(builder) };
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(&files.cert, &files.key));
    if files.mutual {
        tls = tls.client_ca_root(Certificate::from_pem(&files.ca));
    }
    builder.tls_config(tls).map_err(|e| crate::error::Error::config("cluster.tls", e))
}

pub(crate) async fn serve(shared: Arc<Runtime>, cluster: Arc<ClusterState>, listener: tokio::net::TcpListener) {
    let stop = shared.stop_token();
    let check = CheckCookie::new(&shared.config().config.node.cookie);
    let raft = RaftServer::new(RaftService::new(shared.raft_slot()))
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let cluster = ClusterServer::new(ClusterService { node: shared.service_room(), cluster: shared.cluster_room(), state: cluster })
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let replication = ReplicationServer::new(ReplicationService { node: shared.log_serving() })
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let raft = InterceptedService::new(raft, check.clone().same_cluster(shared.cluster_id_cell()));
    let replication = InterceptedService::new(replication, check.clone());
    let cluster = InterceptedService::new(cluster, check);
    // The builder's `tcp_nodelay` applies only to listeners it binds itself: set it on each
    // accepted socket, or Nagle holds small replies (Raft acks, stream messages) up to 40 ms.
    let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
        if let Ok(sock) = &s {
            let _ = sock.set_nodelay(true);
        }
        s
    });
    let builder = match builder(shared.config()) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "TLS configuration refused; not serving");
            return;
        }
    };
    let res = builder
        .tcp_nodelay(true)
        // A span per RPC: its service and method, e.g. `/mnema.Raft/AppendEntries`.
        .trace_fn(|req| tracing::debug_span!("rpc", path = %req.uri().path()))
        .add_service(raft)
        .add_service(cluster)
        .add_service(replication)
        .serve_with_incoming_shutdown(incoming, async move {
            stop.cancelled().await;
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "gRPC server stopped");
    }
}
