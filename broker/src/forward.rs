//! Broker-to-broker forwarding: this crate's own gRPC service (`proto/forward.proto`).
//! Each broker records its forwarding address in mnema's `cluster_nodes` table under its
//! node name; a publishing node looks the receiver up there and keeps one channel per node.

use crate::broker::{Broker, Msg};
use mnema::schema::cluster_nodes::{self, NodeRecord};
use mnema::{Node, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

pub mod pb {
    tonic::include_proto!("mnema_broker");
}

pub use pb::Delivery;

impl Delivery {
    /// `msg`, for a node's subscribers, or for one member of a shared group.
    pub fn of(msg: &Msg, shared: Option<&(String, String)>) -> Delivery {
        let (shared_group, shared_filter) = shared.cloned().unwrap_or_default();
        Delivery {
            topic: msg.topic.clone(),
            payload: msg.payload.to_vec(),
            qos: u32::from(msg.qos),
            retain: msg.retain,
            from: msg.from.clone(),
            shared_group,
            shared_filter,
            id: msg.id,
        }
    }
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no forwarding address recorded for {0}")]
    Unknown(String),
    #[error("bad forwarding address `{addr}` for {node}")]
    BadAddress { node: String, addr: String },
    #[error("{node}: {status}")]
    Rpc { node: String, status: Box<tonic::Status> },
    #[error(transparent)]
    Store(#[from] mnema::Error),
}

/// Channels to the other broker nodes, by node name.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, pb::forward_client::ForwardClient<Channel>>>,
}

impl Peers {
    fn cached(&self, node: &str) -> Option<pb::forward_client::ForwardClient<Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).get(node).cloned()
    }

    async fn client(
        &self,
        store: &Node,
        node: &str,
    ) -> std::result::Result<pb::forward_client::ForwardClient<Channel>, ForwardError> {
        if let Some(c) = self.cached(node) {
            return Ok(c);
        }
        let rec = cluster_nodes::list(store)
            .await?
            .into_iter()
            .find(|r| r.name == node)
            .ok_or_else(|| ForwardError::Unknown(node.into()))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", rec.addr))
            .map_err(|_| ForwardError::BadAddress { node: node.into(), addr: rec.addr.clone() })?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let client = pb::forward_client::ForwardClient::new(endpoint.connect_lazy());
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).insert(node.into(), client.clone());
        Ok(client)
    }

    /// Hands `d` to `node`; returns how many receivers it reached there.
    pub async fn deliver(&self, store: &Node, node: &str, d: Delivery) -> std::result::Result<u32, ForwardError> {
        let mut client = self.client(store, node).await?;
        match client.deliver(d).await {
            Ok(r) => Ok(r.into_inner().receivers),
            Err(status) => {
                // A node that restarted may have a new address: look it up again next time.
                self.channels.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
                Err(ForwardError::Rpc { node: node.into(), status: Box::new(status) })
            }
        }
    }
}

/// Records this broker's forwarding address under its node name.
pub async fn register(node: &Node, addr: &str) -> Result<()> {
    let rec = NodeRecord {
        name: node.name().into(),
        role: node.role().as_str().into(),
        addr: addr.into(),
        joined_at_ms: mnema::schema::time::now_ms(),
    };
    cluster_nodes::register(node, &rec).await.map(|_| ())
}

/// The service other brokers forward to. It holds the broker weakly: a connection another
/// node keeps open never holds this node's store open past its shutdown.
pub struct Service {
    pub broker: std::sync::Weak<Broker>,
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
        let broker = self.broker.upgrade().ok_or_else(|| tonic::Status::unavailable("broker node stopping"))?;
        let n = if d.shared_group.is_empty() {
            broker.deliver_local(&msg).await
        } else {
            broker.deliver_shared(&d.shared_group, &d.shared_filter, &msg).await
        }
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(pb::Delivered { receivers: n as u32 }))
    }
}

/// Serves forwarded deliveries on `listener` until `stop` resolves.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = pb::forward_server::ForwardServer::new(Service { broker: Arc::downgrade(&broker) });
    drop(broker);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}
