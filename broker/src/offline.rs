//! Offline queues: QoS ≥ 1 messages kept in mnema's `messages` table for a persistent
//! session whose client is away, until it reconnects and acknowledges them.

use crate::filter::Filter;
use crate::message::Msg;
use mnema::schema::messages;
use mnema::schema::sessions;
use mnema::schema::topic::matches;
use mnema::{Node, Result};

/// Queues `msg` at `qos` for the away client `client` if its persistent session is this
/// node's (`me`); `false`: the session is gone or another node took it over (that node
/// serves it), and nothing was queued.
pub async fn queue_for_session(node: &Node, me: &str, client: &str, msg: &Msg, qos: u8) -> Result<bool> {
    match sessions::get(node, client).await? {
        Some(s) if s.owner == me => {
            messages::publish_to_queue(node, &msg.stored(qos), client).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The node `owner` cannot be reached: queues `msg` for each persistent session it owns
/// whose subscriptions match (at the subscription's QoS; QoS 0 is not queued). Returns how
/// many sessions got it.
pub async fn queue_for_node(node: &Node, owner: &str, msg: &Msg) -> Result<usize> {
    if msg.qos == 0 {
        return Ok(0);
    }
    let mut n = 0;
    for s in sessions::owned_by(node, owner).await? {
        let qos = s
            .subscriptions
            .iter()
            .filter_map(|(raw, q)| Filter::parse(raw).ok().map(|f| (f, *q)))
            .filter(|(f, _)| matches(f.filter(), &msg.topic))
            .map(|(_, q)| q.min(msg.qos))
            .max();
        if let Some(q) = qos.filter(|q| *q > 0) {
            messages::publish_to_queue(node, &msg.stored(q), &s.client_id).await?;
            n += 1;
        }
    }
    Ok(n)
}
