//! What travels through a broker node: a published message, and what a connection's
//! writer is asked to send.

use crate::mqtt::Out;
use bytes::Bytes;
use mnema::schema::messages::Message;

/// A message on its way to subscribers.
#[derive(Clone, Debug)]
pub struct Msg {
    pub id: u64,
    pub from: String,
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

impl Msg {
    /// As mnema stores it (a retained message, or one queued for a session), at `qos`.
    pub fn stored(&self, qos: u8) -> Message {
        Message {
            id: self.id,
            from: self.from.clone(),
            qos,
            topic: self.topic.clone(),
            payload: self.payload.to_vec(),
            ts_ms: mnema::schema::time::now_ms(),
            retain: self.retain,
        }
    }
}

/// What a connection's writer is asked to send.
pub enum ToClient {
    /// A packet as it is.
    Packet(Out),
    /// A message to deliver at `qos` (the writer picks its packet id); `queued`: the id of
    /// its copy in `messages`, removed when the client acknowledges it.
    Message { msg: Msg, qos: u8, retain: bool, queued: Option<u64> },
}

impl ToClient {
    /// A message read back from mnema (a retained one, or one queued for the client), at
    /// the QoS it was stored with.
    pub fn stored(m: Message, retain: bool, queued: Option<u64>) -> ToClient {
        let qos = m.qos;
        let msg = Msg { id: m.id, from: m.from, topic: m.topic, payload: Bytes::from(m.payload), qos, retain };
        ToClient::Message { msg, qos, retain, queued }
    }
}
