//! Forwarding, the publishing side: channels to the other broker nodes by node name, at
//! the addresses `cluster_nodes` records (followed through a watch), and this node's own
//! registration there.

use super::pb::{self, Delivery};
use crate::message::Msg;
use mnema::schema::CLUSTER_NODES;
use mnema::schema::cluster_nodes::{self, NodeChange, NodeRecord};
use mnema::{Node, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

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

/// Channels to the other broker nodes, by node name, and their forwarding addresses as
/// `cluster_nodes` says: followed through a watch of the table ([`Peers::follow`]), so a
/// node that registers a new address is reached there from its next forward on, and no
/// forward rereads the table.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<String, pb::forward_client::ForwardClient<Channel>>>,
    /// Node → forwarding address; `None` until the first snapshot of the table.
    addrs: Mutex<Option<HashMap<String, String>>>,
}

/// How long [`Peers::follow`] waits before it watches again after a failure.
const REWATCH: Duration = Duration::from_millis(500);

impl Peers {
    fn cached(&self, node: &str) -> Option<pb::forward_client::ForwardClient<Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).get(node).cloned()
    }

    fn forget_channel(&self, node: &str) {
        self.channels.lock().unwrap_or_else(|p| p.into_inner()).remove(node);
    }

    /// The address `cluster_nodes` records for `node`: from the followed copy, or (before
    /// the first snapshot) read from the table.
    async fn addr_of(&self, store: &Node, node: &str) -> std::result::Result<String, ForwardError> {
        let known = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|a| a.get(node).cloned());
        let addr = match known {
            Some(addr) => addr,
            None => cluster_nodes::list(store).await?.into_iter().find(|r| r.name == node).map(|r| r.addr),
        };
        addr.ok_or_else(|| ForwardError::Unknown(node.into()))
    }

    async fn client(
        &self,
        store: &Node,
        node: &str,
    ) -> std::result::Result<pb::forward_client::ForwardClient<Channel>, ForwardError> {
        if let Some(c) = self.cached(node) {
            return Ok(c);
        }
        let addr = self.addr_of(store, node).await?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| ForwardError::BadAddress { node: node.into(), addr: addr.clone() })?
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
                // A fresh connection next time (the address itself comes from the watch).
                self.forget_channel(node);
                Err(ForwardError::Rpc { node: node.into(), status: Box::new(status) })
            }
        }
    }

    /// Follows `cluster_nodes` on `store` until it stops: a snapshot of the table, then its
    /// changes; a node whose address changes or whose record goes loses its channel. After
    /// `Compacted` (this follower fell behind) or a failure it starts again from a snapshot.
    pub async fn follow(&self, store: &Node) {
        loop {
            match self.follow_once(store).await {
                Err(mnema::Error::Shutdown) => return,
                Err(mnema::Error::Compacted { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "following cluster_nodes: watching again"),
                Ok(()) => return,
            }
            tokio::time::sleep(REWATCH).await;
        }
    }

    /// One snapshot and the watch after it; `Ok` when the watch ends with the node.
    async fn follow_once(&self, store: &Node) -> Result<()> {
        let (snapshot, mut watch) = store.snapshot_and_watch(mnema::WatchSpec::table(CLUSTER_NODES))?;
        let mut addrs = HashMap::new();
        for (_, _, value) in &snapshot.records {
            let r = cluster_nodes::decode(value)?;
            addrs.insert(r.name, r.addr);
        }
        self.replace_addrs(addrs);
        while let Some(event) = watch.next().await {
            for c in &event?.changes {
                match cluster_nodes::change(c)? {
                    Some(NodeChange::Recorded(r)) => self.set_addr(&r.name, Some(r.addr)),
                    Some(NodeChange::Forgotten(name)) => self.set_addr(&name, None),
                    Some(NodeChange::Cleared) => self.replace_addrs(HashMap::new()),
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Takes the addresses of a snapshot; channels to changed or missing ones go.
    fn replace_addrs(&self, addrs: HashMap<String, String>) {
        let mut known = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let old = known.as_ref();
        channels.retain(|node, _| old.and_then(|o| o.get(node)) == addrs.get(node) && addrs.contains_key(node));
        *known = Some(addrs);
    }

    /// `node`'s address is now `addr` (`None`: forgotten); its channel goes if it changed.
    fn set_addr(&self, node: &str, addr: Option<String>) {
        let mut known = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        let map = known.get_or_insert_with(HashMap::new);
        let changed = map.get(node) != addr.as_ref();
        match addr {
            Some(a) => map.insert(node.to_string(), a),
            None => map.remove(node),
        };
        if changed {
            self.forget_channel(node);
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
