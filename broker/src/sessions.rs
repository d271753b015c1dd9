//! Sessions: a client connecting and going away, its subscriptions, persistent sessions
//! kept in mnema's `sessions` table (and restored after a restart), and client status
//! (`client_status`), including the clients of a node that went down.

use crate::filter::Filter;
use crate::local::Local;
use crate::message::ToClient;
use crate::mqtt::Out;
use mnema::schema::messages::{self, Message};
use mnema::schema::{client_status, retained, sessions};
use mnema::{Error, MemberEvent, Node, Result};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// How long a persistent 3.1.1 session outlives its client (5.0 clients say).
pub const DEFAULT_SESSION_EXPIRY_S: u64 = 2 * 3600;

/// The sessions of one broker node.
pub struct Sessions {
    node: Node,
    me: String,
    local: Arc<Local>,
}

impl Sessions {
    /// The sessions of the broker node over `node`, whose clients are `local`.
    pub fn new(node: Node, local: Arc<Local>) -> Sessions {
        Sessions { me: node.name().to_string(), node, local }
    }

    /// After a restart: the persistent sessions this node owns get their subscriptions
    /// back (clients away until they reconnect), so their messages are queued again.
    pub async fn restore(&self) -> Result<usize> {
        let owned = sessions::owned_by(&self.node, &self.me).await?;
        let now = mnema::schema::time::now_ms();
        for s in &owned {
            if s.connected {
                sessions::close(&self.node, &s.client_id, now).await?;
            }
            for (raw, qos) in &s.subscriptions {
                if let Ok(f) = Filter::parse(raw) {
                    self.local.add_sub(&s.client_id, f, *qos).await?;
                }
            }
        }
        Ok(owned.len())
    }

    /// A client connected here: sends its CONNACK through `tx`, then (a persistent
    /// session) makes the session's subscriptions local and sends its queued messages.
    /// Returns the connection's number and whether a session was present.
    pub async fn connect(
        &self,
        client: &str,
        persistent: bool,
        expiry_s: u64,
        tx: UnboundedSender<ToClient>,
    ) -> Result<(u64, bool)> {
        let conn = self.local.next_conn();
        let now = mnema::schema::time::now_ms();
        client_status::connected(&self.node, client, &self.me, now).await?;
        let session = if persistent {
            let (session, resumed) = sessions::open(&self.node, client, &self.me, expiry_s, now).await?;
            Some((session, resumed))
        } else {
            if sessions::remove(&self.node, client).await? {
                for m in messages::queued(&self.node, client).await? {
                    messages::ack_queued(&self.node, client, m.id).await?;
                }
            }
            None
        };
        let present = session.as_ref().is_some_and(|(_, resumed)| *resumed);
        // The CONNACK first; from here on live messages reach the client.
        let _ = tx.send(ToClient::Packet(Out::ConnAck { session_present: present }));
        self.local.attach(client, conn, tx.clone());
        let Some((session, _)) = session else {
            self.local.drop_subs_of(client).await?;
            return Ok((conn, false));
        };
        for (raw, qos) in &session.subscriptions {
            if let Ok(f) = Filter::parse(raw) {
                self.local.add_sub(client, f, *qos).await?;
            }
        }
        for m in messages::queued(&self.node, client).await? {
            let id = m.id;
            let _ = tx.send(ToClient::stored(m, false, Some(id)));
        }
        Ok((conn, present))
    }

    /// Connection `conn` of `client` ended. A persistent session keeps its subscriptions
    /// (messages are queued for it); a clean one loses them.
    pub async fn disconnect(&self, client: &str, conn: u64, persistent: bool) -> Result<()> {
        if !self.local.detach(client, conn) {
            return Ok(());
        }
        let now = mnema::schema::time::now_ms();
        client_status::disconnected(&self.node, client, now).await?;
        if persistent {
            sessions::close(&self.node, client, now).await?;
            Ok(())
        } else {
            self.local.drop_subs_of(client).await
        }
    }

    /// The client acknowledged a message queued for it.
    pub async fn ack_queued(&self, client: &str, id: u64) -> Result<()> {
        messages::ack_queued(&self.node, client, id).await.map(|_| ())
    }

    /// SUBSCRIBE: per filter the QoS granted (`None`: refused), then the retained
    /// messages to send after the SUBACK.
    pub async fn subscribe(
        &self,
        client: &str,
        persistent: bool,
        filters: Vec<(String, u8)>,
    ) -> Result<(Vec<Option<u8>>, Vec<Message>)> {
        let mut granted = Vec::with_capacity(filters.len());
        let mut retained_out = Vec::new();
        let now = mnema::schema::time::now_ms();
        for (raw, qos) in filters {
            let Ok(f) = Filter::parse(&raw) else {
                granted.push(None);
                continue;
            };
            // QoS 2 is granted as 1: delivery is at least once.
            let qos = qos.min(1);
            self.local.add_sub(client, f.clone(), qos).await?;
            if persistent {
                sessions::subscribe(&self.node, client, &f.raw(), qos, now).await?;
            }
            if let Filter::Plain(filter) = &f {
                for r in retained::match_retained(&self.node, filter).await? {
                    if r.expires_at_ms.is_none_or(|t| t > now) {
                        retained_out.push(Message { qos: r.msg.qos.min(qos), ..r.msg });
                    }
                }
            }
            granted.push(Some(qos));
        }
        Ok((granted, retained_out))
    }

    /// UNSUBSCRIBE.
    pub async fn unsubscribe(&self, client: &str, persistent: bool, filters: &[String]) -> Result<()> {
        let now = mnema::schema::time::now_ms();
        for raw in filters {
            let Ok(f) = Filter::parse(raw) else { continue };
            self.local.remove_sub(client, &f).await?;
            if persistent {
                sessions::unsubscribe(&self.node, client, &f.raw(), now).await?;
            }
        }
        Ok(())
    }

    /// Until the node stops: when a core goes down or leaves the cluster (a membership
    /// event), the leader marks offline every client the status table has online there
    /// (EMQX cleans a dead node's channels on `nodedown`). Down is the leader's view: a node
    /// cut off from the leader only has its clients marked offline too; they are marked
    /// online again when they next connect. A client that reconnected elsewhere meanwhile
    /// is left alone (the write is conditional).
    pub async fn clean_dead_nodes(&self) {
        let mut members = self.node.watch_members();
        while let Some(event) = members.next().await {
            let gone = match event {
                MemberEvent::Down { name } | MemberEvent::Removed { name, .. } => name,
                _ => continue,
            };
            if gone == self.me || !self.node.is_leader() {
                continue;
            }
            match self.mark_offline(&gone).await {
                Ok(n) => tracing::info!(node = %gone, clients = n, "clients of a node that went down marked offline"),
                Err(e) => tracing::warn!(node = %gone, error = %e, "could not mark a dead node's clients offline"),
            }
        }
    }

    /// Marks offline the clients the status table has online on `node`; returns how many.
    pub async fn mark_offline(&self, node: &str) -> Result<usize> {
        let now = mnema::schema::time::now_ms();
        let mut marked = 0;
        for client in client_status::online_on(&self.node, node).await? {
            match client_status::disconnected(&self.node, &client, now).await {
                Ok(_) => marked += 1,
                // It connected again (elsewhere) since the read: its new record stands.
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(marked)
    }
}
