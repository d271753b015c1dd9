//! This node's clients and their subscriptions, and delivery to them.
//!
//! Connected clients are reached through their connection's writer; a subscriber whose
//! client is away (a persistent session) gets QoS ≥ 1 messages queued (`offline`). Plain
//! subscriptions are found through a [`TopicIndex`], so a publish visits the filters its
//! topic can match, not every subscription of the node; shared ones by group and filter.
//! The first local subscriber of a filter adds this node's route to mnema's `routes`, the
//! last one to go removes it.

use crate::filter::Filter;
use crate::message::{Msg, ToClient};
use crate::offline;
use crate::topic_index::TopicIndex;
use mnema::{Node, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;

/// Subscribers of one filter: client → QoS granted.
type Members = BTreeMap<String, u8>;

struct Client {
    conn: u64,
    tx: UnboundedSender<ToClient>,
}

#[derive(Default)]
struct Subs {
    /// Plain filters, matched by topic.
    plain: TopicIndex<Members>,
    /// Shared subscriptions by (group, filter).
    shared: HashMap<(String, String), Members>,
    /// Each client's filters.
    of_client: HashMap<String, BTreeSet<Filter>>,
}

impl Subs {
    fn members_mut(&mut self, f: &Filter) -> Option<&mut Members> {
        match f {
            Filter::Plain(filter) => self.plain.get_mut(filter),
            Filter::Shared { group, filter } => self.shared.get_mut(&(group.clone(), filter.clone())),
        }
    }

    /// Adds `client`; whether it is the filter's first member.
    fn add(&mut self, client: &str, f: &Filter, qos: u8) -> bool {
        let members = match f {
            Filter::Plain(filter) => self.plain.entry(filter, Members::new),
            Filter::Shared { group, filter } => self.shared.entry((group.clone(), filter.clone())).or_default(),
        };
        let first = members.is_empty();
        members.insert(client.to_string(), qos);
        self.of_client.entry(client.to_string()).or_default().insert(f.clone());
        first
    }

    /// Removes `client`; whether it was the filter's last member.
    fn remove(&mut self, client: &str, f: &Filter) -> bool {
        let emptied = self.members_mut(f).is_some_and(|m| m.remove(client).is_some() && m.is_empty());
        if emptied {
            match f {
                Filter::Plain(filter) => {
                    self.plain.remove(filter);
                }
                Filter::Shared { group, filter } => {
                    self.shared.remove(&(group.clone(), filter.clone()));
                }
            }
        }
        if let Some(mine) = self.of_client.get_mut(client) {
            mine.remove(f);
            if mine.is_empty() {
                self.of_client.remove(client);
            }
        }
        emptied
    }
}

/// This node's clients, subscriptions and local delivery.
pub struct Local {
    node: Node,
    me: String,
    clients: Mutex<HashMap<String, Client>>,
    subs: RwLock<Subs>,
    /// Serialises subscription changes with the route writes they imply.
    route_changes: tokio::sync::Mutex<()>,
    /// Shared deliveries: round robin over a group's connected members.
    turn: AtomicUsize,
    next_conn: AtomicU64,
}

impl Local {
    /// The clients of the broker node over `node`.
    pub fn new(node: Node) -> Local {
        Local {
            me: node.name().to_string(),
            node,
            clients: Mutex::new(HashMap::new()),
            subs: RwLock::new(Subs::default()),
            route_changes: tokio::sync::Mutex::new(()),
            turn: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
        }
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_subs(&self) -> std::sync::RwLockReadGuard<'_, Subs> {
        self.subs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_subs(&self) -> std::sync::RwLockWriteGuard<'_, Subs> {
        self.subs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection's number.
    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// `client` is connected here on connection `conn`, reached through `tx` (a second
    /// connection with the same id takes over: the old one's writer ends).
    pub fn attach(&self, client: &str, conn: u64, tx: UnboundedSender<ToClient>) {
        self.lock_clients().insert(client.to_string(), Client { conn, tx });
    }

    /// Connection `conn` of `client` ended; `false` if a newer connection took it over
    /// (then nothing of the session changes).
    pub fn detach(&self, client: &str, conn: u64) -> bool {
        let mut clients = self.lock_clients();
        match clients.get(client) {
            Some(c) if c.conn == conn => {
                clients.remove(client);
                true
            }
            _ => false,
        }
    }

    /// Subscribes `client` to `f` at `qos`; the filter's first subscriber here adds this
    /// node's route.
    pub async fn add_sub(&self, client: &str, f: Filter, qos: u8) -> Result<()> {
        let _g = self.route_changes.lock().await;
        if self.write_subs().add(client, &f, qos) {
            self.node.routes().add(f.filter(), &f.dest(&self.me)).await?;
        }
        Ok(())
    }

    /// Unsubscribes `client` from `f`; the filter's last subscriber here removes the route.
    pub async fn remove_sub(&self, client: &str, f: &Filter) -> Result<()> {
        let _g = self.route_changes.lock().await;
        if self.write_subs().remove(client, f) {
            self.node.routes().delete(f.filter(), &f.dest(&self.me)).await?;
        }
        Ok(())
    }

    /// Unsubscribes `client` from every filter.
    pub async fn drop_subs_of(&self, client: &str) -> Result<()> {
        let mine: Vec<Filter> = self.read_subs().of_client.get(client).into_iter().flatten().cloned().collect();
        for f in mine {
            self.remove_sub(client, &f).await?;
        }
        Ok(())
    }

    /// Delivers to this node's plain subscribers of matching filters (a client once, at
    /// the highest QoS among its matching subscriptions).
    pub async fn deliver_local(&self, msg: &Msg) -> Result<usize> {
        let mut want: BTreeMap<String, u8> = BTreeMap::new();
        self.read_subs().plain.for_each_match(&msg.topic, |members| {
            for (c, q) in members {
                let q = (*q).min(msg.qos);
                want.entry(c.clone()).and_modify(|e| *e = (*e).max(q)).or_insert(q);
            }
        });
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
        let members: Vec<(String, u8)> = self
            .read_subs()
            .shared
            .get(&(group.to_string(), filter.to_string()))
            .map(|m| m.iter().map(|(c, q)| (c.clone(), *q)).collect())
            .unwrap_or_default();
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
                if offline::queue_for_session(&self.node, &self.me, client, msg, qos).await? {
                    Ok(true)
                } else {
                    // A session another node took over is that node's to serve.
                    self.drop_subs_of(client).await?;
                    Ok(false)
                }
            }
        }
    }
}
