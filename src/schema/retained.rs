//! `retained`: one retained message per topic (an ordered set keyed by topic name).
//!
//! [`retain`] with an empty payload deletes the topic's message, as MQTT says.
//! [`match_retained`] scans only the key range that a filter's literal first levels
//! allow (`a/b/+` scans keys starting `a/b/`), then checks each topic against the filter.

use super::RETAINED;
use super::messages::Message;
use super::topic::{matches, validate_filter, validate_name};
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A retained message and when it expires (`None`: never).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// The message.
    pub msg: Message,
    /// When it expires, if it does.
    pub expires_at_ms: Option<u64>,
}

const TABLE: Typed<String, Retained> = Typed::new(RETAINED);

/// The index of retained messages that expire, by when (index key: 8 bytes, big-endian ms
/// since the epoch).
pub const BY_EXPIRY: &str = "by_expiry";

/// Retains `msg` for its topic, replacing what was there; an empty payload deletes it.
pub async fn retain(node: &impl Tables, msg: &Message, expires_at_ms: Option<u64>) -> Result<Committed> {
    validate_name(&msg.topic).map_err(|e| Error::InvalidTopic { topic: msg.topic.clone(), reason: e.to_string() })?;
    let txn = if msg.payload.is_empty() {
        TABLE.delete(Txn::new(), &msg.topic)
    } else {
        TABLE.put(Txn::new(), &msg.topic, &Retained { msg: msg.clone(), expires_at_ms })?
    };
    node.transact(txn).await
}

/// The literal levels a filter starts with, as a key prefix.
fn literal_prefix(filter: &str) -> String {
    let mut prefix = String::new();
    for level in filter.split('/') {
        if level == "+" || level == "#" {
            return prefix;
        }
        prefix.push_str(level);
        prefix.push('/');
    }
    // No wildcard: the filter is a topic; its own key is the only candidate.
    filter.to_string()
}

/// Every retained message whose topic matches `filter`, in topic order.
pub async fn match_retained(node: &impl Tables, filter: &str) -> Result<Vec<Retained>> {
    validate_filter(filter).map_err(|e| Error::InvalidTopic { topic: filter.to_string(), reason: e.to_string() })?;
    let raw = node.prefix(RETAINED, literal_prefix(filter).as_bytes()).await?;
    let mut out = Vec::new();
    for (topic, r) in TABLE.records(&raw)? {
        if matches(filter, &topic) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The retained message of one topic.
pub async fn get(node: &impl Tables, topic: &str) -> Result<Option<Retained>> {
    Ok(TABLE.values(&node.get(RETAINED, topic.as_bytes()).await?)?.pop())
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes() {
        assert_eq!(super::literal_prefix("a/b/+"), "a/b/");
        assert_eq!(super::literal_prefix("#"), "");
        assert_eq!(super::literal_prefix("a/b"), "a/b");
        assert_eq!(super::literal_prefix("a//#"), "a//");
    }
}
