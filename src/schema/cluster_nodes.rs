//! `cluster_nodes`: the broker's record of the nodes it has seen, by node name.

use super::CLUSTER_NODES;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Change, ChangeOp, Committed, Txn};
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

/// What one change of `cluster_nodes` (from a watch of the table) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeChange {
    /// A node was recorded, or recorded again (a new address).
    Recorded(NodeRecord),
    /// The node of that name was forgotten.
    Forgotten(String),
    /// Every record went (the table was cleared or dropped).
    Cleared,
}

/// Decodes one record's value (as a watch snapshot holds it).
pub fn decode(value: &[u8]) -> Result<NodeRecord> {
    Typed::<String, NodeRecord>::decode_value(value)
}

/// Decodes a change of `cluster_nodes` from a watch (`None`: another table's, or the
/// table's creation). A value that does not decode is an error, not skipped.
///
/// ```no_run
/// # async fn f(node: mnema::Node) -> mnema::Result<()> {
/// use mnema::schema::cluster_nodes::{self, NodeChange};
/// let mut w = node.watch(mnema::WatchSpec::table(mnema::schema::CLUSTER_NODES))?;
/// while let Some(event) = w.next().await {
///     for c in &event?.changes {
///         if let Some(NodeChange::Recorded(r)) = cluster_nodes::change(c)? {
///             println!("{} is at {}", r.name, r.addr);
///         }
///     }
/// }
/// # Ok(()) }
/// ```
pub fn change(c: &Change) -> Result<Option<NodeChange>> {
    if &*c.table != CLUSTER_NODES {
        return Ok(None);
    }
    Ok(match &c.op {
        ChangeOp::Put(v) => Some(NodeChange::Recorded(decode(v)?)),
        ChangeOp::Delete | ChangeOp::DeleteObject(_) => {
            Some(NodeChange::Forgotten(<String as crate::engine::typed::TableKey>::decode_key(&c.key)?))
        }
        ChangeOp::Clear | ChangeOp::Dropped => Some(NodeChange::Cleared),
        ChangeOp::Created => None,
    })
}
