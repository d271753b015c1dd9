//! `subscriptions`: this node's own subscribers by topic filter (a local bag, never
//! replicated: each node knows only the clients connected to it; other nodes reach them
//! through `routes`).

use super::SUBSCRIPTIONS;
use super::topic::validate_filter;
use crate::engine::Tables;
use crate::error::{Error, Result};

fn check(filter: &str) -> Result<()> {
    validate_filter(filter).map_err(|e| Error::InvalidTopic { topic: filter.into(), reason: e.to_string() })
}

/// Adds `subscriber` to `filter` on this node.
pub fn subscribe(node: &impl Tables, filter: &str, subscriber: &str) -> Result<()> {
    check(filter)?;
    node.transact_local(&crate::engine::Txn::new().put(SUBSCRIPTIONS, filter, subscriber)).map(|_| ())
}

/// Removes `subscriber` from `filter` on this node.
pub fn unsubscribe(node: &impl Tables, filter: &str, subscriber: &str) -> Result<()> {
    check(filter)?;
    node.transact_local(&crate::engine::Txn::new().delete_object(SUBSCRIPTIONS, filter, subscriber)).map(|_| ())
}

/// Local subscribers of exactly `filter`, sorted.
pub async fn subscribers(node: &impl Tables, filter: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = node
        .get(SUBSCRIPTIONS, filter.as_bytes())
        .await?
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    out.sort();
    Ok(out)
}
