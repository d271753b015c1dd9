//! The broker's tables (DESIGN.md's table list): their declarations, and one small typed
//! module per table on the generic engine.
//!
//! `mnema start` and `mnema dev-cluster` declare [`broker_tables`]; a node declaring a
//! table otherwise than its cluster has it is refused, one declaring more creates the rest
//! through the log. The modules take `&Runtime` (a `&Node` coerces) and times in
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
pub(crate) mod expiry;
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

/// `routes`: topic filter → destination (node or shared group); bag, wildcard index.
pub const ROUTES: &str = "routes";
/// `subscriptions`: a node's local subscribers by filter; local bag.
pub const SUBSCRIPTIONS: &str = "subscriptions";
/// `sessions`: persistent sessions by client id.
pub const SESSIONS: &str = "sessions";
/// `messages`: offline message queues and topic logs, with read positions.
pub const MESSAGES: &str = "messages";
/// `retained`: the retained message of each topic.
pub const RETAINED: &str = "retained";
/// `client_status`: online/offline per client id.
pub const CLIENT_STATUS: &str = "client_status";
/// `proxy_subscriptions`: subscriptions made on behalf of a client.
pub const PROXY_SUBSCRIPTIONS: &str = "proxy_subscriptions";
/// `configs`: cluster-wide config entries.
pub const CONFIGS: &str = "configs";
/// `config_log`: the ordered log of config changes.
pub const CONFIG_LOG: &str = "config_log";
/// `alarms`: active and past alarms.
pub const ALARMS: &str = "alarms";
/// `dashboard_users`: dashboard logins (Argon2id hashes).
pub const DASHBOARD_USERS: &str = "dashboard_users";
/// `rules`: rule engine rules.
pub const RULES: &str = "rules";
/// `banned`: banned client ids, usernames and hosts.
pub const BANNED: &str = "banned";
/// `cluster_nodes`: the nodes that joined, by name.
pub const CLUSTER_NODES: &str = "cluster_nodes";

/// The shards of the broker's tables, grouped as EMQX groups its Mria shards: a
/// transaction stays within one, and a replicant may follow a subset
/// (`replicant.shards`), say the routes only.
pub mod shards {
    use crate::engine::ShardId;
    /// Cluster-wide configuration and administration: `configs`, `config_log`, `alarms`,
    /// `dashboard_users`, `rules`, `banned`, `cluster_nodes`.
    pub const COMMON: ShardId = 0;
    /// `routes`.
    pub const ROUTES: ShardId = 1;
    /// Sessions and where clients are: `sessions`, `client_status`, `proxy_subscriptions`.
    pub const SESSIONS: ShardId = 2;
    /// Offline messages: `messages`.
    pub const MESSAGES: ShardId = 3;
    /// Retained messages: `retained`.
    pub const RETAINED: ShardId = 4;
}

/// Every table the broker uses, each with the [`ValueRule`](crate::engine::ValueRule) its
/// records follow (checked by the catalog on every write and by import on every record); with the `server` feature off (the fuzz build) only `routes` and
/// `retained`, whose rules need no typed module, carry one.
pub fn broker_tables() -> Vec<TableDef> {
    use Kind::*;
    use Storage::*;
    let tables = vec![
        TableDef::replicated(ROUTES, Bag, Ram).with_topic_index().with_shard(shards::ROUTES),
        TableDef::local(SUBSCRIPTIONS, Bag, Ram),
        TableDef::replicated(SESSIONS, Set, Disc).with_shard(shards::SESSIONS),
        TableDef::replicated(MESSAGES, OrderedSet, DiscOnly).with_shard(shards::MESSAGES),
        TableDef::replicated(RETAINED, OrderedSet, Disc).with_shard(shards::RETAINED),
        TableDef::replicated(CLIENT_STATUS, Set, Disc).with_shard(shards::SESSIONS),
        TableDef::replicated(PROXY_SUBSCRIPTIONS, Bag, Disc).with_shard(shards::SESSIONS),
        TableDef::replicated(CONFIGS, Set, Disc),
        TableDef::replicated(CONFIG_LOG, OrderedSet, Disc),
        TableDef::replicated(ALARMS, OrderedSet, Disc),
        TableDef::replicated(DASHBOARD_USERS, Set, Disc),
        TableDef::replicated(RULES, Set, Disc),
        TableDef::replicated(BANNED, Set, Disc),
        TableDef::replicated(CLUSTER_NODES, Set, Disc),
    ];
    tables
        .into_iter()
        .map(|t| {
            let t = match record_rules::rule_of(&t.name) {
                Some(rule) => t.with_rule(rule),
                None => t,
            };
            record_rules::indexes_of(&t.name).into_iter().fold(t, |t, (name, extractor)| t.with_index(name, extractor))
        })
        .collect()
}

/// The record rules of the broker's tables.
mod record_rules {
    use super::*;
    use crate::engine::{Extractor, IndexKeys, ValueRule};

    /// The rule of broker table `table`, if it has one.
    pub(super) fn rule_of(table: &str) -> Option<ValueRule> {
        Some(match table {
            ROUTES => ValueRule::new("routes: topic filter -> destination", route),
            RETAINED => ValueRule::new("retained: topic name -> retained message", retained),
            #[cfg(feature = "server")]
            SESSIONS => ValueRule::new("sessions", typed::<sessions::Session>),
            #[cfg(feature = "server")]
            CLIENT_STATUS => ValueRule::new("client_status", typed::<client_status::ClientStatus>),
            #[cfg(feature = "server")]
            PROXY_SUBSCRIPTIONS => ValueRule::new("proxy_subscriptions", typed::<proxy_subscriptions::ProxySub>),
            #[cfg(feature = "server")]
            CONFIGS => ValueRule::new("configs", typed::<configs::ConfigEntry>),
            #[cfg(feature = "server")]
            CONFIG_LOG => ValueRule::new("config_log: id counter or change", config_log),
            #[cfg(feature = "server")]
            ALARMS => ValueRule::new("alarms", typed::<alarms::Alarm>),
            #[cfg(feature = "server")]
            DASHBOARD_USERS => ValueRule::new("dashboard_users", typed::<dashboard_users::User>),
            #[cfg(feature = "server")]
            RULES => ValueRule::new("rules", typed::<rules::Rule>),
            #[cfg(feature = "server")]
            BANNED => ValueRule::new("banned", typed::<banned::Ban>),
            #[cfg(feature = "server")]
            CLUSTER_NODES => ValueRule::new("cluster_nodes", typed::<cluster_nodes::NodeRecord>),
            // `messages` mixes messages, index entries and positions under one key space;
            // `subscriptions` is local.
            _ => return None,
        })
    }

    /// The secondary indexes of broker table `table`: what the broker looks records up by
    /// other than their key (a node's sessions, routes and clients; what expires when).
    pub(super) fn indexes_of(table: &str) -> Vec<(&'static str, Extractor)> {
        match table {
            ROUTES => vec![(routes::BY_NODE, Extractor::new("routes.node", route_node))],
            #[cfg(feature = "server")]
            SESSIONS => vec![
                (sessions::BY_OWNER, Extractor::new("sessions.owner", session_owner)),
                (sessions::BY_EXPIRY, Extractor::new("sessions.expiry", session_expiry)),
            ],
            #[cfg(feature = "server")]
            CLIENT_STATUS => {
                vec![(client_status::ONLINE_BY_NODE, Extractor::new("client_status.online_node", online_node))]
            }
            #[cfg(feature = "server")]
            RETAINED => vec![(retained::BY_EXPIRY, Extractor::new("retained.expiry", retained_expiry))],
            #[cfg(feature = "server")]
            BANNED => vec![(banned::BY_EXPIRY, Extractor::new("banned.expiry", ban_expiry))],
            _ => Vec::new(),
        }
    }

    /// A route's destination node.
    fn route_node(_key: &[u8], value: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        out.push(routes::decode_dest_ref(value).map_err(|e| e.to_string())?.node());
        Ok(())
    }

    /// A record's value as its table's type: the typed encoding, or JSON of that shape
    /// (what `mnema ctl table put` stores).
    #[cfg(feature = "server")]
    fn decoded<V: serde::Serialize + serde::de::DeserializeOwned>(v: &[u8]) -> std::result::Result<V, String> {
        match crate::engine::typed::Typed::<Vec<u8>, V>::decode_value(v) {
            Ok(value) => Ok(value),
            Err(e) => serde_json::from_slice(v).map_err(|j| format!("neither {e} nor JSON of its shape ({j})")),
        }
    }

    /// A session's owner node.
    #[cfg(feature = "server")]
    fn session_owner(_key: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        out.push(decoded::<sessions::Session>(v)?.owner);
        Ok(())
    }

    /// When a disconnected session expires (8 bytes, big-endian ms; none while connected).
    #[cfg(feature = "server")]
    fn session_expiry(_key: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        if let Some(at) = decoded::<sessions::Session>(v)?.expires_at_ms() {
            out.push(at.to_be_bytes());
        }
        Ok(())
    }

    /// The node an online client is connected to (none while offline).
    #[cfg(feature = "server")]
    fn online_node(_key: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        let s = decoded::<client_status::ClientStatus>(v)?;
        if s.online {
            out.push(s.node);
        }
        Ok(())
    }

    /// When a retained message expires (8 bytes, big-endian ms; none if it does not).
    #[cfg(feature = "server")]
    fn retained_expiry(_key: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        if let Some(at) = decoded::<retained::Retained>(v)?.expires_at_ms {
            out.push(at.to_be_bytes());
        }
        Ok(())
    }

    /// When a ban ends (8 bytes, big-endian ms; none if it lasts until lifted).
    #[cfg(feature = "server")]
    fn ban_expiry(_key: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        if let Some(at) = decoded::<banned::Ban>(v)?.until_ms {
            out.push(at.to_be_bytes());
        }
        Ok(())
    }

    /// A route: the key a valid MQTT topic filter, the value an encoded destination.
    fn route(key: &[u8], value: &[u8]) -> std::result::Result<(), String> {
        let filter = std::str::from_utf8(key).map_err(|_| "the topic filter is not UTF-8".to_string())?;
        topic::validate_filter(filter).map_err(|e| format!("topic filter: {e}"))?;
        routes::decode_dest(value).map(|_| ()).map_err(|e| e.to_string())
    }

    /// A retained message: the key a valid topic name (no wildcards); the value checked as
    /// the typed tables' (with the `server` feature).
    fn retained(key: &[u8], _value: &[u8]) -> std::result::Result<(), String> {
        let name = std::str::from_utf8(key).map_err(|_| "the topic name is not UTF-8".to_string())?;
        topic::validate_name(name).map_err(|e| format!("topic name: {e}"))?;
        #[cfg(feature = "server")]
        typed::<super::retained::Retained>(key, _value)?;
        Ok(())
    }

    /// The table's typed encoding, or JSON text (what `mnema ctl table put` stores).
    #[cfg(feature = "server")]
    fn typed<V: serde::Serialize + serde::de::DeserializeOwned>(
        _key: &[u8],
        v: &[u8],
    ) -> std::result::Result<(), String> {
        match crate::engine::typed::Typed::<Vec<u8>, V>::decode_value(v) {
            Ok(_) => Ok(()),
            Err(e) if serde_json::from_slice::<serde_json::Value>(v).is_err() => Err(format!("neither JSON nor {e}")),
            Err(_) => Ok(()),
        }
    }

    /// The id counter (8 bytes) or a change.
    #[cfg(feature = "server")]
    fn config_log(key: &[u8], v: &[u8]) -> std::result::Result<(), String> {
        if v.len() == 8 { Ok(()) } else { typed::<configs::ConfigChange>(key, v) }
    }
}
