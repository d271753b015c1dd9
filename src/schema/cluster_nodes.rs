//! `cluster_nodes`: the broker's record of the nodes it has seen, by node name.

use super::CLUSTER_NODES;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A node that joined the cluster.
pub struct NodeRecord {
    /// `name@host`.
    pub name: String,
    /// `core` or `replicant`.
    pub role: String,
    /// Its address.
    pub addr: String,
    /// When it joined.
    pub joined_at_ms: u64,
}

const TABLE: Typed<String, NodeRecord> = Typed::new(CLUSTER_NODES);

/// Records `rec`.
pub async fn register(node: &impl Tables, rec: &NodeRecord) -> Result<Committed> {
    node.transact(TABLE.put(Txn::new(), &rec.name, rec)?).await
}

/// Forgets the node `name`.
pub async fn remove(node: &impl Tables, name: &str) -> Result<Committed> {
    node.transact(TABLE.delete(Txn::new(), &name.to_string())).await
}

/// Every node recorded.
pub async fn list(node: &impl Tables) -> Result<Vec<NodeRecord>> {
    let mut v: Vec<NodeRecord> = TABLE.records(&node.dump(CLUSTER_NODES).await?)?.into_iter().map(|(_, r)| r).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}
