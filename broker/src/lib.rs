//! # mnema-broker
//!
//! A small MQTT 3.1.1 and 5.0 broker built on mnema, one mnema node per broker node: the
//! routes, persistent sessions, offline QoS 1 messages, retained messages and client
//! status live in mnema's replicated tables; publishes reach subscribers on other nodes
//! through this crate's forwarding service. It exists to show (and test, with real MQTT
//! clients) that mnema's public API carries a broker's work; see `docs/broker.md`.
//!
//! ```no_run
//! # async fn demo() -> mnema::Result<()> {
//! use mnema_broker::{BrokerConfig, start};
//! let node = mnema::NodeConfig::new("b1@127.0.0.1", "/tmp/b1");
//! let running = start(BrokerConfig::new(node, "127.0.0.1:1883", "127.0.0.1:5370")).await?;
//! println!("MQTT on {}", running.mqtt_addr());
//! running.shutdown().await
//! # }
//! ```

//!
//! The parts, each in its own file, none importing one that imports it back:
//! - `local`: this node's clients and subscriptions (indexed by a `topic_index`), and
//!   delivery to them; `offline`: queues for persistent sessions whose client is away;
//! - `sessions`: connect, subscribe, go away, restore after a restart, clients of a dead
//!   node; `routing`: a publish to this node's subscribers and the other nodes';
//! - `forward`: the forwarding service between broker nodes (`client` and `server`);
//! - `broker`: the three put together, what a connection (`conn`, over `mqtt`) talks to.

mod broker;
mod conn;
mod filter;
mod forward;
mod local;
mod message;
mod mqtt;
mod offline;
mod routing;
mod sessions;
mod topic_index;

pub use routing::RouteReads;

use mnema::{Error, Node, NodeConfig, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How to run one broker node.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The mnema node under it (name, data dir, cluster).
    pub node: NodeConfig,
    /// Where MQTT clients connect.
    pub mqtt_listen: String,
    /// Where other broker nodes forward publishes to.
    pub forward_listen: String,
    /// The forwarding address other nodes use (default: `forward_listen`).
    pub forward_advertise: Option<String>,
    /// How publishes read the routes table.
    pub route_reads: RouteReads,
    /// How long to wait for the cluster to have a leader before serving.
    pub form_timeout: Duration,
}

impl BrokerConfig {
    /// A node with MQTT on `mqtt_listen` and forwarding on `forward_listen`.
    pub fn new(node: NodeConfig, mqtt_listen: &str, forward_listen: &str) -> BrokerConfig {
        BrokerConfig {
            node,
            mqtt_listen: mqtt_listen.into(),
            forward_listen: forward_listen.into(),
            forward_advertise: None,
            route_reads: RouteReads::Linearizable,
            form_timeout: Duration::from_secs(60),
        }
    }
}

/// A broker node serving.
pub struct Running {
    node: Node,
    mqtt: SocketAddr,
    forward: SocketAddr,
    /// Every task the broker spawned, awaited by [`Running::shutdown`].
    tasks: TaskTracker,
    /// Cancelled at shutdown; every task ends on it.
    stop: CancellationToken,
}

/// How long [`Running::shutdown`] waits for the broker's tasks to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Running {
    /// Where MQTT clients connect.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt
    }

    /// Where other broker nodes forward to.
    pub fn forward_addr(&self) -> SocketAddr {
        self.forward
    }

    /// The mnema node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stops serving MQTT and forwarding (every connection ends), waits for the broker's
    /// tasks to end, then stops the mnema node.
    pub async fn shutdown(self) -> Result<()> {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait()).await.is_err() {
            return Err(Error::Timeout {
                what: "the broker's tasks to end".into(),
                ms: STOP_TIMEOUT.as_millis() as u64,
            });
        }
        self.node.shutdown().await
    }
}

async fn bind(what: &str, addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| Error::io(format!("{what} listener on {addr}"), e))
}

/// Starts the mnema node, waits (bounded) until it is ready, records the
/// forwarding address, restores the persistent sessions this node owns, then serves.
pub async fn start(cfg: BrokerConfig) -> Result<Running> {
    let mqtt = bind("MQTT", &cfg.mqtt_listen).await?;
    let forward = bind("forwarding", &cfg.forward_listen).await?;
    let (mqtt_addr, forward_addr) = (
        mqtt.local_addr().map_err(|e| Error::io("MQTT listener", e))?,
        forward.local_addr().map_err(|e| Error::io("forwarding listener", e))?,
    );
    let node = Node::start(cfg.node.clone(), mnema::schema::broker_tables()).await?;
    // A leader known, what it committed applied here, the broker's tables in the log.
    node.wait_ready(cfg.form_timeout).await?;
    let advertise = cfg.forward_advertise.clone().unwrap_or_else(|| forward_addr.to_string());
    forward::register(&node, &advertise).await?;
    let b = broker::Broker::new(node.clone(), forward::Peers::default(), cfg.route_reads);
    let restored = b.sessions.restore().await?;
    if restored > 0 {
        tracing::info!(sessions = restored, "persistent sessions restored");
    }
    let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
    let (b1, stop1) = (b.clone(), stop.clone());
    tasks.spawn(async move {
        tokio::select! {
            () = b1.router.follow_peers() => {}
            () = stop1.cancelled() => {}
        }
    });
    let (b2, stop2) = (b.clone(), stop.clone());
    tasks.spawn(async move {
        tokio::select! {
            () = b2.sessions.clean_dead_nodes() => {}
            () = stop2.cancelled() => {}
        }
    });
    tasks.spawn(conn::accept(b.clone(), mqtt, stop.clone()));
    let local = b.local.clone();
    let stopped = stop.clone();
    tasks.spawn(async move {
        if let Err(e) = forward::serve(local, forward, stopped.cancelled_owned()).await {
            tracing::error!(error = %e, "forwarding service stopped");
        }
    });
    Ok(Running { node, mqtt: mqtt_addr, forward: forward_addr, tasks, stop })
}
