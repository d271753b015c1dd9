//! Watches of the membership (`Node::watch_members`), and the task that tells them what
//! this node sees of its peers: the leader it knows, and (on a core) the cores it cannot
//! reach. Membership changes themselves come from the log, where the state machine (a
//! core) or the applier (a replicant) tells of them.

use super::Runtime;
use crate::engine::members::MemberEvent;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A node's membership events ([`MemberEvent`]), from the moment of the call: a
/// [`futures::Stream`], or [`MemberWatch::next`]. Delivery is best-effort: a watcher that
/// falls more than a thousand events behind gets [`MemberEvent::Missed`] and goes on.
pub struct MemberWatch {
    inner: tokio_stream::wrappers::BroadcastStream<MemberEvent>,
}

impl std::fmt::Debug for MemberWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberWatch")
    }
}

impl MemberWatch {
    /// The next event; `None` once the node stopped.
    pub async fn next(&mut self) -> Option<MemberEvent> {
        futures::StreamExt::next(self).await
    }
}

impl futures::Stream for MemberWatch {
    type Item = MemberEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<MemberEvent>> {
        use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|r| match r {
                Ok(e) => e,
                Err(BroadcastStreamRecvError::Lagged(n)) => MemberEvent::Missed { events: n },
            })
        })
    }
}

/// How often a core asks each other core whether it answers.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long an answer may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// Failed probes in a row before a core is told to be down.
const DOWN_AFTER: u32 = 2;

impl Runtime {
    /// A watch of this node's membership events from now on.
    pub fn watch_members(&self) -> MemberWatch {
        MemberWatch { inner: tokio_stream::wrappers::BroadcastStream::new(self.members.subscribe()) }
    }
}

/// Tells the watchers of the members when the leader this node knows changes, and (on a
/// core) when another core stops answering it or answers again. Runs until the node stops.
pub(crate) async fn watch_peers(rt: Arc<Runtime>) {
    let mut leader = rt.leader().ok().flatten().map(|(_, n)| n.name);
    let mut misses: std::collections::BTreeMap<String, u32> = Default::default();
    let mut down: std::collections::BTreeSet<String> = Default::default();
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The leader is looked at once a heartbeat interval, not on every change of the Raft
    // metrics (they change with every append).
    let mut look = tokio::time::interval(rt.cfg.heartbeat());
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = look.tick() => {}
            _ = probe.tick() => {
                if !rt.is_replicant() {
                    probe_cores(&rt, &mut misses, &mut down).await;
                }
            }
            _ = rt.stopped() => return,
        }
        let now = rt.leader().ok().flatten().map(|(_, n)| n.name);
        if now != leader {
            leader = now.clone();
            rt.members.send(MemberEvent::LeaderChanged { leader: now });
        }
    }
}

/// Asks every other core of the membership whether it answers; tells of the ones that
/// stop (after [`DOWN_AFTER`] failures in a row) and of the ones that come back.
async fn probe_cores(
    rt: &Runtime,
    misses: &mut std::collections::BTreeMap<String, u32>,
    down: &mut std::collections::BTreeSet<String>,
) {
    let Ok(m) = rt.metrics() else { return };
    let others: Vec<(String, String)> = m
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != rt.cfg.node_id)
        .map(|(_, n)| (n.name.clone(), n.addr.clone()))
        .collect();
    let asks = others.iter().map(|(name, addr)| rt.peers.node_info(name, addr, PROBE_TIMEOUT));
    for ((name, _), answer) in others.iter().zip(futures::future::join_all(asks).await) {
        if answer.is_ok() {
            misses.remove(name);
            if down.remove(name) {
                rt.members.send(MemberEvent::Up { name: name.clone() });
            }
        } else {
            let n = misses.entry(name.clone()).or_default();
            *n += 1;
            if *n >= DOWN_AFTER && down.insert(name.clone()) {
                rt.members.send(MemberEvent::Down { name: name.clone() });
            }
        }
    }
    // Members no longer in the membership are no one's concern any more.
    down.retain(|n| others.iter().any(|(o, _)| o == n));
    misses.retain(|n, _| others.iter().any(|(o, _)| o == n));
}
