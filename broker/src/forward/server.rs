//! Forwarding, the receiving side: a delivery from another broker node goes to this
//! node's clients (its plain subscribers, or one member of a shared group).

use super::pb::{self, Delivery};
use crate::local::Local;
use crate::message::Msg;
use std::sync::Arc;

/// The service other brokers forward to. It holds this node's clients weakly: a
/// connection another node keeps open never holds this node's store open past its
/// shutdown.
struct Service {
    local: std::sync::Weak<Local>,
}

#[tonic::async_trait]
impl pb::forward_server::Forward for Service {
    async fn deliver(
        &self,
        req: tonic::Request<Delivery>,
    ) -> std::result::Result<tonic::Response<pb::Delivered>, tonic::Status> {
        let d = req.into_inner();
        let qos = u8::try_from(d.qos).ok().filter(|q| *q <= 2).ok_or_else(|| tonic::Status::invalid_argument("qos"))?;
        let msg = Msg { id: d.id, from: d.from, topic: d.topic, payload: d.payload.into(), qos, retain: d.retain };
        let local = self.local.upgrade().ok_or_else(|| tonic::Status::unavailable("broker node stopping"))?;
        let n = if d.shared_group.is_empty() {
            local.deliver_local(&msg).await
        } else {
            local.deliver_shared(&d.shared_group, &d.shared_filter, &msg).await
        }
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(pb::Delivered { receivers: n as u32 }))
    }
}

/// Serves forwarded deliveries to `local`'s clients on `listener` until `stop` resolves.
pub async fn serve(
    local: Arc<Local>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = pb::forward_server::ForwardServer::new(Service { local: Arc::downgrade(&local) });
    drop(local);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}
