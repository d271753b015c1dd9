//! One broker node: its connected clients and local subscriptions in memory, everything
//! the cluster shares in mnema.
//!
//! What lives in mnema (replicated, survives any node):
//! - `routes`: filter → this node (`Dest::Node`) while it has a local subscriber, filter →
//!   `Dest::Shared { group, node }` for members of a shared subscription;
//! - `sessions`: persistent sessions (owner node, subscriptions);
//! - `messages`: QoS ≥ 1 messages queued for a persistent session whose client is away;
//! - `retained`, `client_status`, and `cluster_nodes` (each broker's forwarding address).
//!
//! A publish is routed by the routes table: delivered here for `Dest::Node(me)`, forwarded
//! once to every other node named, and to one node per shared group. A node that cannot be
//! reached (down) is covered by its sessions: the message is queued for every persistent
//! session that node owns whose subscriptions match.

use crate::forward::{Delivery, Peers};
use crate::mqtt::Out;
use bytes::Bytes;
use mnema::schema::messages::{self, Message};
use mnema::schema::routes::Dest;
use mnema::schema::topic::{matches, validate_filter, validate_name};
use mnema::schema::{client_status, retained, sessions};
use mnema::{Error, MemberEvent, Node, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;

/// How long a persistent 3.1.1 session outlives its client (5.0 clients say).
pub const DEFAULT_SESSION_EXPIRY_S: u64 = 2 * 3600;

/// How a publish reads the routes table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RouteReads {
    /// Each publish first waits for this node to have applied everything committed when it
    /// arrived (one ReadIndex shared by every publish waiting at that moment): a publish
    /// sent after a SUBACK reaches that subscriber, whichever nodes they are on.
    Linearizable,
    /// Read this node's copy as it is (a route added a moment ago on another node may not
    /// be seen yet).
    Local,
}

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
    fn stored(&self, qos: u8) -> Message {
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

struct Client {
    conn: u64,
    tx: UnboundedSender<ToClient>,
}

/// A subscription filter as the client gave it: plain, or `$share/<group>/<filter>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    Plain(String),
    Shared { group: String, filter: String },
}

impl Filter {
    /// Parses and validates a SUBSCRIBE filter.
    pub fn parse(raw: &str) -> std::result::Result<Filter, String> {
        let f = match raw.strip_prefix("$share/") {
            Some(rest) => {
                let (group, filter) = rest.split_once('/').ok_or("`$share/` needs a group and a filter")?;
                if group.is_empty() || group.contains(['+', '#']) {
                    return Err(format!("bad share group `{group}`"));
                }
                Filter::Shared { group: group.into(), filter: filter.into() }
            }
            None => Filter::Plain(raw.into()),
        };
        validate_filter(f.filter()).map_err(|e| e.to_string())?;
        Ok(f)
    }

    /// The topic filter routes are keyed by.
    pub fn filter(&self) -> &str {
        match self {
            Filter::Plain(f) | Filter::Shared { filter: f, .. } => f,
        }
    }

    fn dest(&self, me: &str) -> Dest {
        match self {
            Filter::Plain(_) => Dest::Node(me.into()),
            Filter::Shared { group, .. } => Dest::Shared { group: group.clone(), node: me.into() },
        }
    }

    /// As a session stores it (the client's own text).
    pub fn raw(&self) -> String {
        match self {
            Filter::Plain(f) => f.clone(),
            Filter::Shared { group, filter } => format!("$share/{group}/{filter}"),
        }
    }
}

/// One broker node.
pub struct Broker {
    node: Node,
    me: String,
    peers: Peers,
    reads: RouteReads,
    clients: Mutex<HashMap<String, Client>>,
    /// Local subscriptions: filter → client → QoS. A client with no entry in `clients` is
    /// a persistent session whose client is away.
    subs: RwLock<HashMap<Filter, BTreeMap<String, u8>>>,
    /// Serialises subscription changes with the route writes they imply.
    route_changes: tokio::sync::Mutex<()>,
    /// Shared publishes: round robin over nodes and over members.
    turn: AtomicUsize,
    next_conn: AtomicU64,
    barrier: Barrier,
}

impl Broker {
    /// A broker over a started node; `peers` reaches the other broker nodes.
    pub fn new(node: Node, peers: Peers, reads: RouteReads) -> Arc<Broker> {
        let me = node.name().to_string();
        Arc::new(Broker {
            node,
            me,
            peers,
            reads,
            clients: Mutex::new(HashMap::new()),
            subs: RwLock::new(HashMap::new()),
            route_changes: tokio::sync::Mutex::new(()),
            turn: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            barrier: Barrier::default(),
        })
    }

    /// Follows the other brokers' forwarding addresses (`cluster_nodes`) through a watch,
    /// until the node stops.
    pub async fn follow_peers(self: Arc<Self>) {
        self.peers.follow(&self.node).await
    }

    /// Until the node stops: when a core goes down or leaves the cluster (a membership
    /// event), the leader marks offline every client the status table has online there
    /// (EMQX cleans a dead node's channels on `nodedown`). Down is the leader's view: a node
    /// cut off from the leader only has its clients marked offline too; they are marked
    /// online again when they next connect. A client that reconnected elsewhere meanwhile
    /// is left alone (the write is conditional).
    pub async fn clean_dead_nodes(self: Arc<Self>) {
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
                    self.add_sub(&s.client_id, f, *qos).await?;
                }
            }
        }
        Ok(owned.len())
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_subs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Filter, BTreeMap<String, u8>>> {
        self.subs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_subs(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Filter, BTreeMap<String, u8>>> {
        self.subs.write().unwrap_or_else(|p| p.into_inner())
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
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
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
        // The CONNACK first; from here on live messages reach the client. A second
        // connection with the same id takes over: the old one's writer ends.
        let _ = tx.send(ToClient::Packet(Out::ConnAck { session_present: present }));
        self.lock_clients().insert(client.to_string(), Client { conn, tx: tx.clone() });
        let Some((session, _)) = session else {
            self.drop_subs_of(client).await?;
            return Ok((conn, false));
        };
        for (raw, qos) in &session.subscriptions {
            if let Ok(f) = Filter::parse(raw) {
                self.add_sub(client, f, *qos).await?;
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
        {
            let mut clients = self.lock_clients();
            match clients.get(client) {
                Some(c) if c.conn == conn => {
                    clients.remove(client);
                }
                // Taken over by a newer connection: nothing of the session changes.
                _ => return Ok(()),
            }
        }
        let now = mnema::schema::time::now_ms();
        client_status::disconnected(&self.node, client, now).await?;
        if persistent {
            sessions::close(&self.node, client, now).await?;
            Ok(())
        } else {
            self.drop_subs_of(client).await
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
            self.add_sub(client, f.clone(), qos).await?;
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
            self.remove_sub(client, &f).await?;
            if persistent {
                sessions::unsubscribe(&self.node, client, &f.raw(), now).await?;
            }
        }
        Ok(())
    }

    async fn add_sub(&self, client: &str, f: Filter, qos: u8) -> Result<()> {
        let _g = self.route_changes.lock().await;
        let first = {
            let mut subs = self.write_subs();
            let members = subs.entry(f.clone()).or_default();
            let first = members.is_empty();
            members.insert(client.to_string(), qos);
            first
        };
        if first {
            self.node.routes().add(f.filter(), &f.dest(&self.me)).await?;
        }
        Ok(())
    }

    async fn remove_sub(&self, client: &str, f: &Filter) -> Result<()> {
        let _g = self.route_changes.lock().await;
        let last = {
            let mut subs = self.write_subs();
            let emptied = subs.get_mut(f).is_some_and(|m| m.remove(client).is_some() && m.is_empty());
            if emptied {
                subs.remove(f);
            }
            emptied
        };
        if last {
            self.node.routes().delete(f.filter(), &f.dest(&self.me)).await?;
        }
        Ok(())
    }

    async fn drop_subs_of(&self, client: &str) -> Result<()> {
        let mine: Vec<Filter> =
            self.read_subs().iter().filter(|(_, m)| m.contains_key(client)).map(|(f, _)| f.clone()).collect();
        for f in mine {
            self.remove_sub(client, &f).await?;
        }
        Ok(())
    }

    /// A client published `msg`: retained if asked, then routed. Returns once every
    /// receiver has it or has it queued (what a QoS 1 PUBACK promises).
    pub async fn publish(&self, msg: Msg) -> Result<usize> {
        validate_name(&msg.topic)
            .map_err(|e| mnema::Error::InvalidTopic { topic: msg.topic.clone(), reason: e.to_string() })?;
        if msg.retain {
            retained::retain(&self.node, &msg.stored(msg.qos), None).await?;
        }
        if self.reads == RouteReads::Linearizable {
            self.barrier.wait(&self.node).await?;
        }
        let routes = self.node.routes().match_routes(&msg.topic)?;
        let mut nodes: Vec<String> = Vec::new();
        let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in routes {
            match r.dest {
                Dest::Node(n) => nodes.push(n),
                Dest::Shared { group, node } => groups.entry((group, r.filter)).or_default().push(node),
            }
        }
        nodes.sort();
        nodes.dedup();
        let mut sends = Vec::new();
        for n in nodes {
            sends.push((n, None));
        }
        for ((group, filter), mut members) in groups {
            members.sort();
            members.dedup();
            let pick = if members.contains(&self.me) {
                self.me.clone()
            } else {
                members[self.turn.fetch_add(1, Ordering::Relaxed) % members.len()].clone()
            };
            sends.push((pick, Some((group, filter))));
        }
        let mut receivers = 0;
        let mut remote = Vec::new();
        let m = &msg;
        for (n, shared) in sends {
            if n == self.me {
                receivers += match &shared {
                    None => self.deliver_local(&msg).await?,
                    Some((g, f)) => self.deliver_shared(g, f, &msg).await?,
                };
            } else {
                remote.push(async move {
                    let out = self.peers.deliver(&self.node, &n, Delivery::of(m, shared.as_ref())).await;
                    (n, out)
                });
            }
        }
        for (n, out) in futures::future::join_all(remote).await {
            match out {
                Ok(k) => receivers += k as usize,
                Err(e) => {
                    tracing::warn!(node = %n, error = %e, topic = %msg.topic, "node unreachable; queueing for its persistent sessions");
                    receivers += self.queue_for_node(&n, &msg).await?;
                }
            }
        }
        Ok(receivers)
    }

    /// Delivers to this node's plain subscribers of matching filters (a client once, at
    /// the highest QoS among its matching subscriptions).
    pub async fn deliver_local(&self, msg: &Msg) -> Result<usize> {
        let mut want: BTreeMap<String, u8> = BTreeMap::new();
        for (f, members) in self.read_subs().iter() {
            if let Filter::Plain(filter) = f
                && matches(filter, &msg.topic)
            {
                for (c, q) in members {
                    let q = (*q).min(msg.qos);
                    want.entry(c.clone()).and_modify(|e| *e = (*e).max(q)).or_insert(q);
                }
            }
        }
        let mut n = 0;
        for (client, qos) in want {
            if self.send_or_queue(&client, msg, qos).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Delivers to one member of the shared group `group` on `filter`: a connected one if
    /// any (round robin), else queued for one away persistent member.
    pub async fn deliver_shared(&self, group: &str, filter: &str, msg: &Msg) -> Result<usize> {
        let key = Filter::Shared { group: group.into(), filter: filter.into() };
        let members: Vec<(String, u8)> =
            self.read_subs().get(&key).map(|m| m.iter().map(|(c, q)| (c.clone(), *q)).collect()).unwrap_or_default();
        if members.is_empty() {
            return Ok(0);
        }
        let online: Vec<&(String, u8)> = {
            let clients = self.lock_clients();
            members.iter().filter(|(c, _)| clients.contains_key(c)).collect()
        };
        let (client, qos) = match online.is_empty() {
            false => online[self.turn.fetch_add(1, Ordering::Relaxed) % online.len()].clone(),
            true => members[0].clone(),
        };
        Ok(usize::from(self.send_or_queue(&client, msg, qos.min(msg.qos)).await?))
    }

    async fn send_or_queue(&self, client: &str, msg: &Msg, qos: u8) -> Result<bool> {
        let sent = {
            let clients = self.lock_clients();
            clients
                .get(client)
                .map(|c| c.tx.send(ToClient::Message { msg: msg.clone(), qos, retain: false, queued: None }).is_ok())
        };
        match sent {
            Some(true) => Ok(true),
            _ if qos == 0 => Ok(false),
            _ => {
                // Away: queue it if the session is still this node's; a session another
                // node took over is that node's to serve.
                match sessions::get(&self.node, client).await? {
                    Some(s) if s.owner == self.me => {
                        messages::publish_to_queue(&self.node, &msg.stored(qos), client).await?;
                        Ok(true)
                    }
                    _ => {
                        self.drop_subs_of(client).await?;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// `node` cannot be reached: queue `msg` for each persistent session it owns whose
    /// subscriptions match (at the subscription's QoS; QoS 0 is not queued).
    async fn queue_for_node(&self, node: &str, msg: &Msg) -> Result<usize> {
        if msg.qos == 0 {
            return Ok(0);
        }
        let mut n = 0;
        for s in sessions::owned_by(&self.node, node).await? {
            let qos = s
                .subscriptions
                .iter()
                .filter_map(|(raw, q)| Filter::parse(raw).ok().map(|f| (f, *q)))
                .filter(|(f, _)| matches(f.filter(), &msg.topic))
                .map(|(_, q)| q.min(msg.qos))
                .max();
            if let Some(q) = qos.filter(|q| *q > 0) {
                messages::publish_to_queue(&self.node, &msg.stored(q), &s.client_id).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// One ReadIndex for every publish waiting when it starts: a publish waits for a barrier
/// that began after it arrived.
#[derive(Default)]
struct Barrier {
    started: AtomicU64,
    done: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

impl Barrier {
    async fn wait(&self, node: &Node) -> Result<()> {
        let arrived = self.started.load(Ordering::Acquire);
        let _g = self.lock.lock().await;
        if self.done.load(Ordering::Acquire) > arrived {
            return Ok(());
        }
        let n = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        node.barrier().await?;
        self.done.store(n, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_parse_into_group_and_filter_and_bad_ones_are_refused() {
        assert_eq!(
            Filter::parse("$share/g1/a/+").unwrap(),
            Filter::Shared { group: "g1".into(), filter: "a/+".into() }
        );
        assert_eq!(Filter::parse("a/#").unwrap(), Filter::Plain("a/#".into()));
        assert_eq!(Filter::parse("$share/g1/a/+").unwrap().raw(), "$share/g1/a/+");
        for bad in ["$share/g1", "$share//a", "$share/g+/a", "a/#/b", ""] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
