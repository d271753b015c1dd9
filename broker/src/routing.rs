//! Routing a publish: retained if asked, then delivered through mnema's `routes` table —
//! here for `Dest::Node(me)`, forwarded once to every other node named, and to one node
//! per shared group. A node that cannot be reached (down) is covered by its sessions: the
//! message is queued for every persistent session it owns whose subscriptions match.

use crate::forward::{Delivery, Peers};
use crate::local::Local;
use crate::message::Msg;
use crate::offline;
use mnema::schema::retained;
use mnema::schema::routes::DestRef;
use mnema::schema::topic::validate_name;
use mnema::{Node, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How a publish reads the routes table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteReads {
    /// Each publish first waits for this node to have applied everything committed when it
    /// arrived (one ReadIndex shared by every publish waiting at that moment): a publish
    /// sent after a SUBACK reaches that subscriber, whichever nodes they are on.
    Linearizable,
    /// Read this node's copy as it is (a route added a moment ago on another node may not
    /// be seen yet).
    Local,
}

/// One node a publish goes to, and the shared group and filter it is for (`None`: the
/// node's plain subscribers).
type Target = (String, Option<(String, String)>);

/// Routes the publishes of one broker node.
pub struct Router {
    node: Node,
    me: String,
    local: Arc<Local>,
    peers: Peers,
    reads: RouteReads,
    /// Shared publishes: round robin over a group's nodes.
    turn: AtomicUsize,
    barrier: Barrier,
}

impl Router {
    /// The router of the broker node over `node`: `local` delivers here, `peers` reach the
    /// other broker nodes.
    pub fn new(node: Node, local: Arc<Local>, peers: Peers, reads: RouteReads) -> Router {
        Router {
            me: node.name().to_string(),
            node,
            local,
            peers,
            reads,
            turn: AtomicUsize::new(0),
            barrier: Barrier::default(),
        }
    }

    /// Follows the other brokers' forwarding addresses until the node stops.
    pub async fn follow_peers(&self) {
        self.peers.follow(&self.node).await
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
        let mut receivers = 0;
        let mut remote = Vec::new();
        let m = &msg;
        for (n, shared) in self.sends(&msg.topic)? {
            if n == self.me {
                receivers += match &shared {
                    None => self.local.deliver_local(&msg).await?,
                    Some((g, f)) => self.local.deliver_shared(g, f, &msg).await?,
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
                    receivers += offline::queue_for_node(&self.node, &n, &msg).await?;
                }
            }
        }
        Ok(receivers)
    }

    /// Where a publish on `topic` goes: each node with a plain subscriber once, and one
    /// node per shared group (this one if it has a member) with the group and filter.
    fn sends(&self, topic: &str) -> Result<Vec<Target>> {
        let mut nodes: Vec<String> = Vec::new();
        let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        self.node.routes().for_each_match(topic, |filter, dest| match dest {
            // Each node once (an exact and a wildcard route often lead to the same one).
            DestRef::Node(n) => {
                if !nodes.iter().any(|m| m == n) {
                    nodes.push(n.to_string());
                }
            }
            DestRef::Shared { group, node } => {
                groups.entry((group.to_string(), filter.to_string())).or_default().push(node.to_string())
            }
        })?;
        nodes.sort();
        let mut sends: Vec<Target> = nodes.into_iter().map(|n| (n, None)).collect();
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
        Ok(sends)
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
