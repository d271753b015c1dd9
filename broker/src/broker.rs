//! One broker node, put together: its clients and their subscriptions (`local`), their
//! sessions (`sessions`) and the routing of their publishes (`routing`, `forward`). What
//! the cluster shares lives in mnema:
//! - `routes`: filter → this node (`Dest::Node`) while it has a local subscriber, filter →
//!   `Dest::Shared { group, node }` for members of a shared subscription;
//! - `sessions`: persistent sessions (owner node, subscriptions);
//! - `messages`: QoS ≥ 1 messages queued for a persistent session whose client is away;
//! - `retained`, `client_status`, and `cluster_nodes` (each broker's forwarding address).

use crate::forward::Peers;
use crate::local::Local;
use crate::routing::{RouteReads, Router};
use crate::sessions::Sessions;
use mnema::Node;
use std::sync::Arc;

/// One broker node: what a connection talks to.
pub struct Broker {
    /// This node's clients, their subscriptions, local delivery.
    pub local: Arc<Local>,
    /// Connecting, subscribing, going away.
    pub sessions: Sessions,
    /// Publishing.
    pub router: Router,
}

impl Broker {
    /// A broker over a started node; `peers` reaches the other broker nodes.
    pub fn new(node: Node, peers: Peers, reads: RouteReads) -> Arc<Broker> {
        let local = Arc::new(Local::new(node.clone()));
        Arc::new(Broker {
            sessions: Sessions::new(node.clone(), local.clone()),
            router: Router::new(node, local.clone(), peers, reads),
            local,
        })
    }
}
