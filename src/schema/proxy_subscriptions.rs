//! `proxy_subscriptions`: topic filters a client is subscribed to on connect, without
//! subscribing itself (the seed's proxy subscription). A bag: client id → (filter, QoS).

use super::PROXY_SUBSCRIPTIONS;
use super::topic::validate_filter;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
/// A subscription made on behalf of a client.
pub struct ProxySub {
    /// The topic filter.
    pub filter: String,
    /// Its QoS.
    pub qos: u8,
}

const TABLE: Typed<String, ProxySub> = Typed::new(PROXY_SUBSCRIPTIONS);

fn check(sub: &ProxySub) -> Result<()> {
    validate_filter(&sub.filter)
        .map_err(|e| Error::InvalidTopic { topic: sub.filter.clone(), reason: e.to_string() })?;
    if sub.qos > 2 {
        return Err(Error::InvalidTxn(format!("QoS {} (0, 1 or 2)", sub.qos)));
    }
    Ok(())
}

/// Adds `sub` for `client`.
pub async fn add(node: &impl Tables, client: &str, sub: &ProxySub) -> Result<Committed> {
    check(sub)?;
    node.transact(TABLE.put(Txn::new(), &client.to_string(), sub)?).await
}

/// Removes `sub` of `client`.
pub async fn remove(node: &impl Tables, client: &str, sub: &ProxySub) -> Result<Committed> {
    node.transact(TABLE.delete_object(Txn::new(), &client.to_string(), sub)?).await
}

/// What to subscribe `client` to when it connects, sorted.
pub async fn list(node: &impl Tables, client: &str) -> Result<Vec<ProxySub>> {
    let mut subs = TABLE.values(&node.get(PROXY_SUBSCRIPTIONS, client.as_bytes()).await?)?;
    subs.sort();
    Ok(subs)
}
