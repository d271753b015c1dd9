//! The node's server: the Raft, Cluster and Replication gRPC services behind the cookie
//! check, and on the same port Raft's frames (`raft::frame`), told apart by a connection's
//! first byte.

use crate::cluster::service::ClusterService;
use crate::cluster::state::ClusterState;
use crate::replication::streams::Streams;
use crate::raft::frame::MAGIC;
use crate::raft::frame_server::FrameServer;
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

pub(crate) async fn serve(
    shared: Arc<Runtime>,
    cluster: Arc<ClusterState>,
    streams: Arc<Streams>,
    listener: tokio::net::TcpListener,
) {
    let stop = shared.stop_token();
    let check = CheckCookie::new(&shared.config().config.node.cookie);
    let raft_service = Arc::new(RaftService::new(shared.raft_slot()));
    let raft = RaftServer::from_arc(raft_service.clone())
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let cluster = ClusterServer::new(ClusterService { node: shared.service_room(), cluster: shared.cluster_room(), state: cluster })
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let replication = ReplicationServer::new(ReplicationService { node: shared.log_serving(), streams })
        .max_decoding_message_size(crate::codec::MAX_DECODE)
        .max_encoding_message_size(crate::codec::MAX_DECODE);
    let raft_check = check.clone().same_cluster(shared.cluster_id_cell());
    let frames = shared.config().tls.is_none().then(|| {
        let admitted = shared.raft_frames_counter();
        FrameServer::new(raft_service.clone(), Arc::new(shared.service_room()), raft_check.clone(), admitted)
    });
    let raft = InterceptedService::new(raft, raft_check);
    let replication = InterceptedService::new(replication, check.clone());
    let cluster = InterceptedService::new(cluster, check);
    let incoming = accept(shared.clone(), listener, frames);
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

/// Accepts connections on `listener` until the node stops: frames connections are served
/// by `frames` (refused when it is `None`: with TLS, Raft stays inside it), the others go to
/// the gRPC server through the returned stream.
fn accept(
    shared: Arc<Runtime>,
    listener: tokio::net::TcpListener,
    frames: Option<FrameServer>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio::net::TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let stop = shared.stop_token();
    let node = shared.clone();
    shared.spawn(async move {
        loop {
            let (sock, from) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: the next accept may succeed. Not a busy loop.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
                        }
                    }
                },
            };
            // Nagle would hold small replies (Raft acks, stream messages) up to 40 ms.
            let _ = sock.set_nodelay(true);
            let (tx, frames, stop) = (tx.clone(), frames.clone(), stop.clone());
            node.spawn(async move {
                let mut first = [0u8; 1];
                let peeked = tokio::select! {
                    _ = stop.cancelled() => return,
                    p = tokio::time::timeout(std::time::Duration::from_secs(10), sock.peek(&mut first)) => p,
                };
                match peeked {
                    Ok(Ok(1)) if first[0] == MAGIC[0] => match frames {
                        Some(frames) => frames.serve(sock, from.to_string(), stop).await,
                        None => tracing::warn!(peer = %from, "refused a Raft frames connection: this node's cluster runs TLS"),
                    },
                    Ok(Ok(1)) => {
                        let _ = tx.send(Ok(sock)).await;
                    }
                    // Closed, failed or silent before its first byte.
                    _ => {}
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
