//! `sessions`: persistent sessions (clean_session = false) by client id: subscriptions
//! with QoS, expiry interval, the node that owns the session, and times.
//!
//! [`open`] creates a session or takes it over: the owner becomes the node the client
//! connects to now (a session follows its client across nodes). Every change is a
//! conditional read-modify-write (`schema::update`), so concurrent take-overs serialise.

use super::SESSIONS;
use super::topic::validate_filter;
use super::update::update;
use crate::engine::typed::Typed;
use crate::engine::{IndexRange, Tables};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A persistent session.
pub struct Session {
    /// The client id it belongs to.
    pub client_id: String,
    /// Topic filter → QoS.
    pub subscriptions: BTreeMap<String, u8>,
    /// Seconds the session outlives its client's disconnection.
    pub expiry_interval_s: u64,
    /// The node holding the client's connection (or last holding it).
    pub owner: String,
    /// Whether its client is connected.
    pub connected: bool,
    /// When it was created.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

impl Session {
    /// When the session expires: its expiry interval after it last changed, once its
    /// client is disconnected (`None` while connected).
    pub fn expires_at_ms(&self) -> Option<u64> {
        (!self.connected).then(|| self.updated_at_ms.saturating_add(self.expiry_interval_s.saturating_mul(1000)))
    }

    /// Whether the session has expired at `now_ms` (only a disconnected one can).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| at <= now_ms)
    }
}

/// The index of sessions by owner node (index key: the owner's name).
pub const BY_OWNER: &str = "by_owner";
/// The index of disconnected sessions by when they expire (index key: 8 bytes, big-endian
/// ms since the epoch).
pub const BY_EXPIRY: &str = "by_expiry";

pub(crate) const TABLE: Typed<String, Session> = Typed::new(SESSIONS);

/// The client connected to `owner`: returns its session and whether it existed before
/// (a resumed session keeps its subscriptions; its owner moves to `owner`).
pub async fn open(
    node: &impl Tables,
    client: &str,
    owner: &str,
    expiry_interval_s: u64,
    now_ms: u64,
) -> Result<(Session, bool)> {
    let mut resumed = false;
    let (s, _) = update(node, TABLE, &client.to_string(), |old| {
        resumed = old.is_some();
        let mut s = old.unwrap_or_else(|| Session {
            client_id: client.into(),
            subscriptions: BTreeMap::new(),
            expiry_interval_s,
            owner: owner.into(),
            connected: true,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        });
        s.owner = owner.into();
        s.connected = true;
        s.expiry_interval_s = expiry_interval_s;
        s.updated_at_ms = now_ms;
        Ok(Some(s))
    })
    .await?;
    let s = s.ok_or_else(|| Error::Invariant("session update wrote nothing".into()))?;
    Ok((s, resumed))
}

async fn change(
    node: &impl Tables,
    client: &str,
    now_ms: u64,
    f: impl Fn(&mut Session) -> Result<()>,
) -> Result<Session> {
    let (s, _) = update(node, TABLE, &client.to_string(), |old| {
        let mut s = old.ok_or_else(|| Error::InvalidTxn(format!("no session for client `{client}`")))?;
        f(&mut s)?;
        s.updated_at_ms = now_ms;
        Ok(Some(s))
    })
    .await?;
    s.ok_or_else(|| Error::Invariant("session update wrote nothing".into()))
}

/// Adds (or changes the QoS of) the subscription to `filter`.
pub async fn subscribe(node: &impl Tables, client: &str, filter: &str, qos: u8, now_ms: u64) -> Result<Session> {
    validate_filter(filter).map_err(|e| Error::InvalidTopic { topic: filter.into(), reason: e.to_string() })?;
    if qos > 2 {
        return Err(Error::InvalidTxn(format!("QoS {qos} (0, 1 or 2)")));
    }
    change(node, client, now_ms, |s| {
        s.subscriptions.insert(filter.into(), qos);
        Ok(())
    })
    .await
}

/// Removes the subscription to `filter`.
pub async fn unsubscribe(node: &impl Tables, client: &str, filter: &str, now_ms: u64) -> Result<Session> {
    change(node, client, now_ms, |s| {
        s.subscriptions.remove(filter);
        Ok(())
    })
    .await
}

/// The client disconnected: the session stays for its expiry interval.
pub async fn close(node: &impl Tables, client: &str, now_ms: u64) -> Result<Session> {
    change(node, client, now_ms, |s| {
        s.connected = false;
        Ok(())
    })
    .await
}

/// Discards `client`'s session (a clean start): its subscriptions go with it. Returns
/// whether there was one.
pub async fn remove(node: &impl Tables, client: &str) -> Result<bool> {
    let existed = get(node, client).await?.is_some();
    if existed {
        node.transact(TABLE.delete(crate::engine::Txn::new(), &client.to_string())).await?;
    }
    Ok(existed)
}

/// Every session whose owner is `owner` (connected or not), in client id order: what a
/// broker restores when it restarts, and whom messages routed to a node that is down are
/// queued for.
///
/// Read through the [`BY_OWNER`] index: as many records as the owner has, whatever the
/// table's size.
pub async fn owned_by(node: &impl Tables, owner: &str) -> Result<Vec<Session>> {
    let hits = node.index(SESSIONS, BY_OWNER, IndexRange::exact(owner)).await?;
    hits.iter().map(|h| decode(&h.value)).collect()
}

/// A stored session: the typed encoding, or JSON of its shape.
fn decode(value: &[u8]) -> Result<Session> {
    match Typed::<String, Session>::decode_value(value) {
        Ok(s) => Ok(s),
        Err(e) => serde_json::from_slice(value).map_err(|_| e),
    }
}

/// The session of `client`.
pub async fn get(node: &impl Tables, client: &str) -> Result<Option<Session>> {
    Ok(TABLE.values(&node.get(SESSIONS, client.as_bytes()).await?)?.pop())
}
