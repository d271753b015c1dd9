//! `messages`: published messages kept for clients that were offline (the seed's message
//! persistence), in one `disc_only` ordered table.
//!
//! - One-to-one (a queue): [`publish_to_queue`] stores the message and one queue entry for
//!   its consumer; [`queued`] returns the consumer's messages in id order; [`ack_queued`]
//!   removes the entry and the message.
//! - One-to-many (a topic): [`publish_to_topic`] stores the message and a topic-log entry;
//!   each subscriber has a read position per topic: [`missed`] returns what came after it,
//!   in order, and [`ack_topic`] moves it.
//!
//! Ids sort like publish times ([`new_id`]), so id order is the order to deliver in.
//! Record keys (all in this table; lengths are u16 BE):
//! `m id` message · `q len client id` queue entry · `t len topic id` topic log ·
//! `p len client len topic` read position.

use super::MESSAGES;
use super::topic::validate_name;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A published message, as the seed records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The message id, unique per queue or topic log.
    pub id: u64,
    /// Client id of the publisher.
    pub from: String,
    /// Its QoS.
    pub qos: u8,
    /// The topic it was published to.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// When it was published, in ms since the Unix epoch.
    pub ts_ms: u64,
    /// The retain flag.
    pub retain: bool,
}

const VALUES: Typed<Vec<u8>, Message> = Typed::new(MESSAGES);

/// A new message id: milliseconds in the high bits, a per-process counter below, so ids
/// from one publisher increase and ids from anywhere sort by time to the millisecond.
pub fn new_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    (super::time::now_ms() << 20) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF)
}

fn part(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = u16::try_from(s.len()).map_err(|_| Error::InvalidTxn(format!("`{}…` is over 65,535 bytes", &s[..16])))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn message_key(id: u64) -> Vec<u8> {
    let mut k = vec![b'm'];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn queue_prefix(client: &str) -> Result<Vec<u8>> {
    let mut k = vec![b'q'];
    part(&mut k, client)?;
    Ok(k)
}

fn topic_prefix(topic: &str) -> Result<Vec<u8>> {
    let mut k = vec![b't'];
    part(&mut k, topic)?;
    Ok(k)
}

fn position_key(client: &str, topic: &str) -> Result<Vec<u8>> {
    let mut k = vec![b'p'];
    part(&mut k, client)?;
    part(&mut k, topic)?;
    Ok(k)
}

fn with_id(mut prefix: Vec<u8>, id: u64) -> Vec<u8> {
    prefix.extend_from_slice(&id.to_be_bytes());
    prefix
}

fn id_after(prefix_len: usize, key: &[u8]) -> Result<u64> {
    let raw: [u8; 8] = key
        .get(prefix_len..)
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| Error::corrupt("message index key", format!("{} bytes", key.len())))?;
    Ok(u64::from_be_bytes(raw))
}

fn store(txn: Txn, msg: &Message) -> Result<Txn> {
    validate_name(&msg.topic).map_err(|e| Error::InvalidTopic { topic: msg.topic.clone(), reason: e.to_string() })?;
    Ok(txn.put(MESSAGES, message_key(msg.id), Typed::<Vec<u8>, Message>::encode_value(msg)?))
}

async fn load(node: &impl Tables, id: u64) -> Result<Option<Message>> {
    VALUES.values(&node.get(MESSAGES, &message_key(id)).await?).map(|mut v| v.pop())
}

/// Stores `msg` for one consumer, `client` (one-to-one).
pub async fn publish_to_queue(node: &impl Tables, msg: &Message, client: &str) -> Result<Committed> {
    let txn = store(Txn::new(), msg)?.put(MESSAGES, with_id(queue_prefix(client)?, msg.id), Vec::new());
    node.transact(txn).await
}

/// `client`'s queued messages, oldest first.
pub async fn queued(node: &impl Tables, client: &str) -> Result<Vec<Message>> {
    let prefix = queue_prefix(client)?;
    let mut out = Vec::new();
    for (k, _) in node.prefix(MESSAGES, &prefix).await? {
        if let Some(m) = load(node, id_after(prefix.len(), &k)?).await? {
            out.push(m);
        }
    }
    Ok(out)
}

/// `client` has the message `id`: it leaves the queue and the store.
pub async fn ack_queued(node: &impl Tables, client: &str, id: u64) -> Result<Committed> {
    let txn = Txn::new().delete(MESSAGES, with_id(queue_prefix(client)?, id)).delete(MESSAGES, message_key(id));
    node.transact(txn).await
}

/// Stores `msg` in its topic's log (one-to-many).
pub async fn publish_to_topic(node: &impl Tables, msg: &Message) -> Result<Committed> {
    let txn = store(Txn::new(), msg)?.put(MESSAGES, with_id(topic_prefix(&msg.topic)?, msg.id), Vec::new());
    node.transact(txn).await
}

/// Messages of `topic` after `client`'s read position, oldest first.
pub async fn missed(node: &impl Tables, client: &str, topic: &str) -> Result<Vec<Message>> {
    let pos = match node.get(MESSAGES, &position_key(client, topic)?).await?.first() {
        Some(v) => id_after(0, v)?,
        None => 0,
    };
    let prefix = topic_prefix(topic)?;
    let mut out = Vec::new();
    for (k, _) in node.prefix(MESSAGES, &prefix).await? {
        let id = id_after(prefix.len(), &k)?;
        if id > pos
            && let Some(m) = load(node, id).await?
        {
            out.push(m);
        }
    }
    Ok(out)
}

/// `client` has read `topic` up to and including `id`.
pub async fn ack_topic(node: &impl Tables, client: &str, topic: &str, id: u64) -> Result<Committed> {
    node.transact(Txn::new().put(MESSAGES, position_key(client, topic)?, id.to_be_bytes().to_vec())).await
}
