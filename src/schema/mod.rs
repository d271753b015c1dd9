//! The broker's tables (DESIGN.md's table list), as declarations for the engine.
//!
//! Every node of a cluster declares the same list; `mnema start` and `mnema dev-cluster`
//! use [`broker_tables`].

pub mod routes;
pub mod topic;

use crate::engine::{Kind, Storage, TableDef};

pub const ROUTES: &str = "routes";
pub const SUBSCRIPTIONS: &str = "subscriptions";
pub const SESSIONS: &str = "sessions";
pub const MESSAGES: &str = "messages";
pub const RETAINED: &str = "retained";
pub const CLIENT_STATUS: &str = "client_status";
pub const PROXY_SUBSCRIPTIONS: &str = "proxy_subscriptions";
pub const CONFIGS: &str = "configs";
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
        TableDef::replicated(MESSAGES, Set, DiscOnly),
        TableDef::replicated(RETAINED, OrderedSet, Disc),
        TableDef::replicated(CLIENT_STATUS, Set, Disc),
        TableDef::replicated(PROXY_SUBSCRIPTIONS, Bag, Disc),
        TableDef::replicated(CONFIGS, Set, Disc),
        TableDef::replicated(ALARMS, OrderedSet, Disc),
        TableDef::replicated(DASHBOARD_USERS, Set, Disc),
        TableDef::replicated(RULES, Set, Disc),
        TableDef::replicated(BANNED, Set, Disc),
        TableDef::replicated(CLUSTER_NODES, Set, Disc),
    ]
}
