//! `banned`: clients refused at connect, by client id, username or peer host, each
//! with an optional end time (the expiry sweep removes ended bans).

use super::BANNED;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// What a ban matches.
pub enum BanKind {
    /// A client id.
    ClientId,
    /// A username.
    Username,
    /// A peer's host (IP address).
    PeerHost,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A ban.
pub struct Ban {
    /// What `who` is.
    pub kind: BanKind,
    /// The banned client id, username or host.
    pub who: String,
    /// Who banned it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at_ms: u64,
    /// `None`: until lifted.
    pub until_ms: Option<u64>,
}

/// The index of bans that end, by when (index key: 8 bytes, big-endian ms since the epoch).
pub const BY_EXPIRY: &str = "by_expiry";

impl Ban {
    /// Whether the ban has ended at `now_ms`.
    pub fn ended(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|u| u <= now_ms)
    }
}

pub(crate) const TABLE: Typed<String, Ban> = Typed::new(BANNED);

fn key(kind: BanKind, who: &str) -> String {
    format!("{kind:?}:{who}")
}

/// Bans `ban.who`.
pub async fn ban(node: &impl Tables, ban: &Ban) -> Result<Committed> {
    node.transact(TABLE.put(Txn::new(), &key(ban.kind, &ban.who), ban)?).await
}

/// Lifts the ban on `who`.
pub async fn lift(node: &impl Tables, kind: BanKind, who: &str) -> Result<Committed> {
    node.transact(TABLE.delete(Txn::new(), &key(kind, who))).await
}

/// Whether `who` is banned at `now_ms` (an ended ban no longer counts, swept or not).
pub async fn is_banned(node: &impl Tables, kind: BanKind, who: &str, now_ms: u64) -> Result<bool> {
    let b = TABLE.values(&node.get(BANNED, key(kind, who).as_bytes()).await?)?.pop();
    Ok(b.is_some_and(|b| !b.ended(now_ms)))
}

/// Every ban.
pub async fn list(node: &impl Tables) -> Result<Vec<Ban>> {
    Ok(TABLE.records(&node.dump(BANNED).await?)?.into_iter().map(|(_, b)| b).collect())
}
