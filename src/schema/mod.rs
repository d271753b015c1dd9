//! The broker's tables (DESIGN.md's table list): their declarations, and one small typed
//! module per table on the generic engine.
//!
//! Every node of a cluster declares the same list; `mnema start` and `mnema dev-cluster`
//! use [`broker_tables`]. The modules take `&NodeShared` (a `&Node` coerces) and times in
//! milliseconds since the epoch from the caller ([`time::now_ms`]), so a transaction
//! carries the same time to every node. Read-modify-write goes through conditional
//! transactions (`require_value`) and is retried on conflict, never blindly overwritten.

pub mod routes;
pub mod time;
pub mod topic;

#[cfg(feature = "server")]
pub mod alarms;
#[cfg(feature = "server")]
pub mod banned;
#[cfg(feature = "server")]
pub mod client_status;
#[cfg(feature = "server")]
pub mod cluster_nodes;
#[cfg(feature = "server")]
pub mod configs;
#[cfg(feature = "server")]
pub mod dashboard_users;
#[cfg(feature = "server")]
pub mod expiry;
#[cfg(feature = "server")]
pub mod messages;
#[cfg(feature = "server")]
pub mod proxy_subscriptions;
#[cfg(feature = "server")]
pub mod retained;
#[cfg(feature = "server")]
pub mod rules;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod subscriptions;
#[cfg(feature = "server")]
mod update;

use crate::engine::{Kind, Storage, TableDef};

pub const ROUTES: &str = "routes";
pub const SUBSCRIPTIONS: &str = "subscriptions";
pub const SESSIONS: &str = "sessions";
pub const MESSAGES: &str = "messages";
pub const RETAINED: &str = "retained";
pub const CLIENT_STATUS: &str = "client_status";
pub const PROXY_SUBSCRIPTIONS: &str = "proxy_subscriptions";
pub const CONFIGS: &str = "configs";
pub const CONFIG_LOG: &str = "config_log";
pub const ALARMS: &str = "alarms";
pub const DASHBOARD_USERS: &str = "dashboard_users";
pub const RULES: &str = "rules";
pub const BANNED: &str = "banned";
pub const CLUSTER_NODES: &str = "cluster_nodes";

/// Every table the broker uses.
pub fn broker_tables() -> Vec<TableDef> {
    use Kind::*;
    use Storage::*;
    vec![
        TableDef::replicated(ROUTES, Bag, Ram).with_topic_index(),
        TableDef::local(SUBSCRIPTIONS, Bag, Ram),
        TableDef::replicated(SESSIONS, Set, Disc),
        TableDef::replicated(MESSAGES, OrderedSet, DiscOnly),
        TableDef::replicated(RETAINED, OrderedSet, Disc),
        TableDef::replicated(CLIENT_STATUS, Set, Disc),
        TableDef::replicated(PROXY_SUBSCRIPTIONS, Bag, Disc),
        TableDef::replicated(CONFIGS, Set, Disc),
        TableDef::replicated(CONFIG_LOG, OrderedSet, Disc),
        TableDef::replicated(ALARMS, OrderedSet, Disc),
        TableDef::replicated(DASHBOARD_USERS, Set, Disc),
        TableDef::replicated(RULES, Set, Disc),
        TableDef::replicated(BANNED, Set, Disc),
        TableDef::replicated(CLUSTER_NODES, Set, Disc),
    ]
}

/// Whether `value` is a valid stored value of broker table `table` (import checks every
/// record with it): the table's typed encoding, or JSON text for tables the generic
/// `ctl table put` also writes; `routes` only in its own encoding; tables without a typed
/// module accept any bytes.
#[cfg(feature = "server")]
pub fn check_value(table: &str, value: &[u8]) -> std::result::Result<(), String> {
    // The typed modules' encoding, or JSON text (what `mnema ctl table put` stores).
    fn typed<V: serde::Serialize + serde::de::DeserializeOwned>(v: &[u8]) -> std::result::Result<(), String> {
        match crate::engine::typed::Typed::<Vec<u8>, V>::decode_value(v) {
            Ok(_) => Ok(()),
            Err(e) if serde_json::from_slice::<serde_json::Value>(v).is_err() => Err(format!("neither JSON nor {e}")),
            Err(_) => Ok(()),
        }
    }
    match table {
        ROUTES => routes::decode_dest(value).map(|_| ()).map_err(|e| e.to_string()),
        SESSIONS => typed::<sessions::Session>(value),
        RETAINED => typed::<retained::Retained>(value),
        CLIENT_STATUS => typed::<client_status::ClientStatus>(value),
        PROXY_SUBSCRIPTIONS => typed::<proxy_subscriptions::ProxySub>(value),
        CONFIGS => typed::<configs::ConfigEntry>(value),
        // The id counter (8 bytes) or a change.
        CONFIG_LOG if value.len() == 8 => Ok(()),
        CONFIG_LOG => typed::<configs::ConfigChange>(value),
        ALARMS => typed::<alarms::Alarm>(value),
        DASHBOARD_USERS => typed::<dashboard_users::User>(value),
        RULES => typed::<rules::Rule>(value),
        BANNED => typed::<banned::Ban>(value),
        CLUSTER_NODES => typed::<cluster_nodes::NodeRecord>(value),
        // `messages` mixes messages, index entries and positions under one key space.
        _ => Ok(()),
    }
}
