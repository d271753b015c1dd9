//! The replicant's side: pick a core, follow its stream, move to another core when it
//! dies or stalls, resuming at `applied + 1`.
//!
//! Cores are ranked by how many replicants already stream from them (fewest first), then
//! followers before the leader, then a hash of (replicant, core) names, so replicants
//! spread over the cores and keep off the leader. A stream that ends, fails a check, or
//! sends nothing (not even a heartbeat) for `replicant.stall_timeout` is dropped.
//!
//! Not here: the checks on a stream (`applier`), forwarding writes (`node`).

use super::applier::Applier;
use super::stream::{self, Heartbeat, StreamMsg};
use crate::config::Role;
use crate::error::{Error, Result};
use crate::name::Peer;
use crate::rpc::client::status_error;
use crate::rpc::pb;
use crate::runtime::{Following, Published};
use crate::runtime::link::{Link, ReplicantState};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Rendezvous hash: each replicant orders the cores differently.
pub fn spread_rank(replicant: &str, core: &str) -> u64 {
    crate::name::fnv1a(format!("{replicant}\n{core}").as_bytes())
}

/// Runs until the node stops: follows one core after another.
pub(crate) async fn run(shared: Following, link: Arc<Link>) {
    let mut pause = Duration::from_millis(50);
    let mut last_failed: Option<String> = None;
    // What discovery found last: used while it does not answer.
    let mut discovered: Vec<Peer> = Vec::new();
    let mut lookup = match crate::discovery::Lookup::new(shared.config()) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "discovery unavailable; following the configured cores only");
            None
        }
    };
    while !shared.tasks().is_stopping() {
        let cores = candidates(&shared, lookup.as_mut(), &mut discovered).await;
        let ranked = rank(&shared, &link, &cores).await;
        // Prefer any other core over the one that just failed us.
        let pick = ranked.iter().find(|(p, _)| Some(&p.addr) != last_failed.as_ref()).or(ranked.first()).cloned();
        let Some((core, cluster)) = pick else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = shared.tasks().stopped() => break,
            }
        };
        let started = Instant::now();
        match follow(&shared, &link, &core, cluster.as_deref()).await {
            Ok(()) => tracing::info!(core = %core.name, "replication stream ended"),
            Err(e) => {
                tracing::warn!(core = %core.name, error = %e, "replication stream dropped");
                link.set_error(&e);
            }
        }
        link.set_state(ReplicantState::Connecting, None);
        last_failed = Some(core.addr.clone());
        // A stream that lasted is not a reason to slow down; quick failures back off.
        pause = if started.elapsed() > Duration::from_secs(5) {
            Duration::from_millis(50)
        } else {
            (pause * 2).min(Duration::from_secs(1))
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.tasks().stopped() => break,
        }
    }
}

/// (unreachable or leaderless, replicants already streaming, is leader, spread hash)
type RankKey = (u8, usize, u8, u64);

/// How long a failover waits for discovery before using the cores it found last time.
const DISCOVERY_WAIT: Duration = Duration::from_secs(1);

/// The configured cores, then those discovery lists now (the `dns`, `etcd` and `k8s`
/// strategies; nodes that turn out not to be cores are dropped by [`rank`]). A slow or
/// failing source costs a failover at most [`DISCOVERY_WAIT`]: the last list found is used.
async fn candidates(
    shared: &Following,
    lookup: Option<&mut crate::discovery::Lookup>,
    discovered: &mut Vec<Peer>,
) -> Vec<Peer> {
    if let Some(lookup) = lookup {
        match tokio::time::timeout(DISCOVERY_WAIT, lookup.peers(shared.config())).await {
            Ok(Ok(found)) => *discovered = found,
            Ok(Err(e)) => tracing::warn!(error = %e, "discovering cores failed; using the ones found before"),
            Err(_) => {
                tracing::warn!("discovery did not answer within {DISCOVERY_WAIT:?}; using the cores found before")
            }
        }
    }
    let mut cores = shared.config().cores.clone();
    for p in discovered.iter() {
        if p.name != shared.config().name && !cores.iter().any(|c| c.name == p.name) {
            cores.push(p.clone());
        }
    }
    cores
}

/// `cores` of our cluster, best first, with their cluster id; unreachable ones last (id
/// unknown).
async fn rank(shared: &Following, link: &Link, cores: &[Peer]) -> Vec<(Peer, Option<String>)> {
    let pinned = link.cluster.lock().ok().and_then(|c| c.clone());
    let me = shared.config().name.to_string();
    let asks = cores.iter().map(|p| async move {
        let res = shared.peers().node_info(p.name.as_str(), &p.addr, ASK_TIMEOUT).await;
        (p.clone(), res)
    });
    let mut scored: Vec<(RankKey, (Peer, Option<String>))> = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(p, res)| {
            let hash = spread_rank(&me, p.name.as_str());
            match res {
                Ok(s)
                    if s.role == Role::Core
                        && let Err(e) = shared.check_can_follow(p.name.as_str(), &s.schema) =>
                {
                    tracing::error!(core = %p.name, error = %e, "core declares other tables; not following it");
                    link.set_error(&e);
                    None
                }
                Ok(s) if s.role == Role::Core && pinned.as_ref().is_none_or(|c| *c == s.cluster_id) => {
                    // Cores that know no leader (a minority side) come after those that do.
                    let leaderless = u8::from(s.leader.is_none());
                    let leader = u8::from(s.raft_role == Some(crate::status::RaftRole::Leader));
                    Some(((leaderless, s.subscribers.len(), leader, hash), (p, Some(s.cluster_id))))
                }
                Ok(s) if s.role == Role::Core => {
                    tracing::warn!(core = %p.name, theirs = %s.cluster_id, "core of another cluster; not following it");
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(core = %p.name, error = %e, "core not reachable");
                    Some(((2, 0, 0, hash), (p, None)))
                }
            }
        })
        .collect();
    scored.sort_by_key(|(k, _)| *k);
    scored.into_iter().map(|(_, p)| p).collect()
}

/// Follows `core` (of cluster `cluster`, when known) until its stream ends or fails.
async fn follow(shared: &Following, link: &Link, core: &Peer, cluster: Option<&str>) -> Result<()> {
    let upstream = (core.name.to_string(), core.addr.clone());
    let mut client = shared.peers().replication(&core.addr)?;
    let req = pb::SubscribeRequest {
        replicant: shared.config().name.to_string(),
        addr: shared.config().advertise.clone(),
        shards: shared.config().config.replicant.shards.iter().map(|s| u32::from(*s)).collect(),
        applied: shared.applied_index(),
        schema: crate::rpc::convert::encode_schema(&shared.schema().info()),
        features: stream::FEATURE_MEMBERS,
        protocol: shared.config().protocol(),
    };
    let mut stream = client.subscribe(req).await.map_err(|s| status_error(core.name.as_str(), s))?.into_inner();
    let known = link.members.lock().ok().and_then(|m| m.clone());
    let mut applier = Applier::new(shared.schema().clone(), shared.view().holding.clone(), known);
    // Commit indexes learned and when, to report lag in time.
    let mut learned: VecDeque<(u64, Instant)> = VecDeque::new();
    let stall = shared.config().stall_timeout();
    let mut leaderless_since: Option<Instant> = None;
    // When the snapshot of a bootstrap began (until its state is published).
    let mut bootstrap_since: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            m = tokio::time::timeout(stall, stream.message()) => m,
            _ = shared.tasks().stopped() => return Ok(()),
        };
        let next = next
            .map_err(|_| Error::Timeout {
                what: format!("a message from {}", core.name),
                ms: stall.as_millis() as u64,
            })?
            .map_err(|s| status_error(core.name.as_str(), s))?;
        let Some(payload) = next else { return Ok(()) };
        let msg = stream::decode(&payload.data)?;
        match &msg {
            StreamMsg::Start { mode: stream::StartMode::Snapshot, .. } => {
                bootstrap_since = Some(Instant::now());
                link.status.send_modify(|s| s.bootstraps += 1)
            }
            StreamMsg::Start { .. } => link.status.send_modify(|s| s.resumes += 1),
            _ => {}
        }
        // The state as published, held (not a guard) while the message is applied.
        let current = shared.view();
        let out = if matches!(msg, StreamMsg::SnapshotEnd { .. }) {
            // The end of a snapshot builds every table in bulk (0.6 s for 1.1M records):
            // on the blocking pool, not on one of the async threads the node serves with.
            let now = current.clone();
            let (back, out) = shared
                .tasks()
                .spawn_blocking(move || {
                    let out = applier.handle(msg, &now);
                    (applier, out)
                })
                .await
                .map_err(|e| Error::task("the bootstrap's build", e))?;
            applier = back;
            out?
        } else {
            applier.handle(msg, &current)?
        };
        let mut applied = current.applied;
        let mut publish = None;
        if let Some(state) = out.publish {
            // The first core whose data this replicant publishes fixes its cluster.
            if let Some(id) = cluster
                && let Ok(mut pinned) = link.cluster.lock()
                && pinned.is_none()
            {
                *pinned = Some(id.to_string());
                // Recorded like any node's (one path writes IDENTITY).
                if let Err(e) = shared.adopt_cluster_id(id) {
                    tracing::warn!(error = %e, "could not record the cluster id in IDENTITY");
                }
            }
            applied = state.applied;
            if let Some(since) = bootstrap_since.take() {
                shared.record_bootstrap(since.elapsed().as_secs_f64(), state.tables.iter().map(|t| t.len() as i64).sum());
            }
            publish = Some(Published { state, changes: (!out.bootstrapped).then_some(out.feed) });
        }
        // A `Members` message comes after the entries it describes, which the messages
        // before it handed over.
        if let Ok(mut m) = link.members.lock()
            && applier.members() != m.as_ref()
        {
            *m = applier.members().cloned();
        }
        // A core that knows no leader for a stall timeout is on the minority side of a
        // partition (or has lost its cluster): follow a core of the majority instead, once
        // what this message carried is handed over.
        let mut leaderless = None;
        if let Some(hb) = out.heartbeat {
            match &hb.leader {
                Some(_) => leaderless_since = None,
                None => {
                    let since = *leaderless_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > stall {
                        leaderless = Some(Error::NoLeader(format!(
                            "{} has known no leader for {:?}; moving to a core that does",
                            core.name,
                            since.elapsed()
                        )));
                    }
                }
            }
            note_heartbeat(link, hb, &mut learned);
        }
        while learned.front().is_some_and(|(i, _)| *i <= applied) {
            learned.pop_front();
        }
        let since = learned.front().map(|(_, t)| *t);
        link.status.send_modify(|s| s.behind_since = since);
        // Before the hand-over, which announces the applied index: a caller woken by it
        // sees the link state this message put us in.
        link.set_state(applier.state(applied), Some(&upstream));
        shared.hand_over(publish, out.member_events);
        if let Some(e) = leaderless {
            return Err(e);
        }
    }
}

fn note_heartbeat(link: &Link, hb: Heartbeat, learned: &mut VecDeque<(u64, Instant)>) {
    if learned.back().is_none_or(|(i, _)| hb.committed > *i) {
        learned.push_back((hb.committed, Instant::now()));
        // Bounded: under a steady load only the oldest unapplied entry matters.
        if learned.len() > 1024 {
            learned.pop_back();
        }
    }
    link.status.send_modify(|s| {
        s.committed = s.committed.max(hb.committed);
        if hb.leader.is_some() {
            s.leader = hb.leader;
        }
    });
}
