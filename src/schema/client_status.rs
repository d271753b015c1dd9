//! `client_status`: whether each client is online, on which node, and since when (the
//! seed's online status storage), keyed by client id.

use super::CLIENT_STATUS;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, IndexRange, Txn};
use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// Whether a client is connected, and where.
pub struct ClientStatus {
    /// Whether it is connected now.
    pub online: bool,
    /// The node the client is (or was last) connected to.
    pub node: String,
    /// When it last connected.
    pub online_at_ms: u64,
    /// `None` while it has not gone offline since it connected.
    pub offline_at_ms: Option<u64>,
}

const TABLE: Typed<String, ClientStatus> = Typed::new(CLIENT_STATUS);

/// Records that `client` connected to `on_node`.
pub async fn connected(node: &impl Tables, client: &str, on_node: &str, now_ms: u64) -> Result<Committed> {
    let s = ClientStatus { online: true, node: on_node.into(), online_at_ms: now_ms, offline_at_ms: None };
    node.transact(TABLE.put(Txn::new(), &client.to_string(), &s)?).await
}

/// Marks `client` offline, keeping its node and online time. A client that reconnected
/// elsewhere meanwhile (its record changed) is left online: the write is conditional.
pub async fn disconnected(node: &impl Tables, client: &str, now_ms: u64) -> Result<Committed> {
    let key = client.to_string();
    let raw = node.get(CLIENT_STATUS, key.as_bytes()).await?;
    let mut txn = Txn::new();
    let s = match (raw.first(), TABLE.values(&raw)?.pop()) {
        (Some(old), Some(mut s)) => {
            txn = txn.require_value(CLIENT_STATUS, key.as_bytes(), old.to_vec());
            s.online = false;
            s.offline_at_ms = Some(now_ms);
            s
        }
        _ => ClientStatus { online: false, node: String::new(), online_at_ms: 0, offline_at_ms: Some(now_ms) },
    };
    node.transact(TABLE.put(txn, &key, &s)?).await
}

/// The status of `client`.
pub async fn get(node: &impl Tables, client: &str) -> Result<Option<ClientStatus>> {
    Ok(TABLE.values(&node.get(CLIENT_STATUS, client.as_bytes()).await?)?.pop())
}

/// The index of online clients by the node they are connected to (index key: the node's
/// name; offline clients are not in it).
pub const ONLINE_BY_NODE: &str = "online_by_node";

/// Client ids online on `on_node` (the seed's per-node client list), sorted; read through
/// the [`ONLINE_BY_NODE`] index.
pub async fn online_on(node: &impl Tables, on_node: &str) -> Result<Vec<String>> {
    let hits = node.index(CLIENT_STATUS, ONLINE_BY_NODE, IndexRange::exact(on_node)).await?;
    hits.iter().map(|h| <String as crate::engine::typed::TableKey>::decode_key(&h.key)).collect()
}
