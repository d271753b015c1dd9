//! Forming the cluster at start, by discovery strategy.
//!
//! - A node whose data dir already holds a Raft state rejoins its own cluster from it,
//!   whatever the strategy: no discovery, no risk of forming a second cluster.
//! - `manual`: a new node is a cluster of one until `cluster join`.
//! - `static`: the seeds form one cluster. Every seed initialises Raft with the same
//!   membership (all seeds, ids from their names); identical initial configs elect one
//!   leader, so starting every seed at once still yields exactly one cluster. A node not in
//!   its own seed list joins through the seeds. A seed with an empty data dir whose cluster
//!   is already running does not initialise: a new data dir is a seed starting late (the
//!   leader sends it everything); one that had its IDENTITY lost its store or had it set
//!   aside, and rejoins as a new member (`rebuild.rs`).
//! - `k8s`, `dns`: look up the nodes until this node is among them; join a running cluster
//!   there, or form one with the whole list once every listed node answers and two lookups
//!   agree (nodes that see the same list initialise the same membership). A node that had
//!   an IDENTITY but no Raft state rejoins the running cluster as a new member
//!   (`rebuild.rs`), under every strategy.
//! - `etcd`: join a running cluster among the registered cores; otherwise one etcd
//!   transaction decides which node forms the cluster (alone), and the others join it. The
//!   transaction is what makes "exactly one cluster" hold while registrations still arrive.

use crate::config::{DiscoveryStrategy, Role};
use crate::discovery::{Lookup, etcd};
use crate::error::{Error, Result};
use crate::name::Peer;
use crate::raft::types::NodeInfo;
use crate::runtime::ClusterRoom;
use super::state::ClusterState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Brings a core into its cluster. `etcd_lease` follows this node's etcd lease (the `etcd`
/// strategy registers before forming).
pub(crate) async fn form(shared: &ClusterRoom, state: &Arc<ClusterState>, etcd_lease: Option<watch::Receiver<Option<i64>>>) -> Result<()> {
    let raft = shared.raft()?;
    let initialized = raft.is_initialized().await.map_err(|e| Error::Raft(e.to_string()))?;
    // `refuses_votes`: this start found no Raft state of its own.
    if initialized && !shared.refuses_votes() {
        check_same_cluster(shared).await?;
        tracing::info!("restarting with this data dir's cluster membership");
        return Ok(());
    }
    if initialized && !state.had_identity() {
        // A new data dir that the leader reached between the start of its Raft and this
        // look (a seed started after the others formed the cluster): a member now, that
        // never voted nor acknowledged anything before. Its votes are its own; refusing
        // them for ever would leave the cluster one voter short at the next election.
        shared.set_refuse_votes(false);
        tracing::info!("the cluster's leader reached this new node first: catching up from it");
        return Ok(());
    }
    match shared.strategy() {
        DiscoveryStrategy::Manual if super::rebuild::lost_its_state(shared, state) => {
            // Its old self is a voter somewhere: a cluster of one under that cluster's id
            // would be a second history. An operator's `cluster join` brings it back.
            tracing::warn!(
                "no Raft state here, but this node was a member (its IDENTITY is here): not forming a cluster of one; `mnema ctl cluster join <member>` brings it back as a new member"
            );
            Ok(())
        }
        DiscoveryStrategy::Manual => initialize(shared, BTreeMap::from([(shared.config().node_id, shared.me())])).await,
        DiscoveryStrategy::Static => {
            let seeds = &shared.config().seeds;
            same_tables_as_running(shared, seeds).await?;
            if seeds.iter().any(|p| p.name == shared.config().name) {
                if let Some(peer) = running_among(shared, seeds, Some(&shared.cluster_id())).await {
                    if state.had_identity() {
                        // A seed whose data dir knew it but has no Raft state: its store was
                        // lost or set aside (`mnema data rebuild`). It must not start a second
                        // history, nor vote as the member it was: it comes back as a new
                        // incarnation (removed, added back as a learner, promoted).
                        shared.tasks().spawn(super::rebuild::rejoin_as_new_member(shared.clone(), peer));
                    } else {
                        // A new data dir: a seed starting after the others formed the cluster.
                        // It never voted nor acknowledged anything; the leader has it in the
                        // membership and sends it everything.
                        shared.set_refuse_votes(false);
                        tracing::info!(peer = %peer.name, "the cluster already runs: catching up from its leader");
                    }
                    return Ok(());
                }
                let members = seeds
                    .iter()
                    .map(|p| (p.name.node_id(), NodeInfo { name: p.name.to_string(), addr: p.addr.clone() }))
                    .collect();
                initialize(shared, members).await
            } else {
                shared.tasks().spawn(join_seeds(shared.clone(), state.clone()));
                Ok(())
            }
        }
        DiscoveryStrategy::K8s | DiscoveryStrategy::Dns => {
            if let Some(lookup) = Lookup::new(shared.config())? {
                shared.tasks().spawn(discover_and_form(shared.clone(), state.clone(), lookup));
            }
            Ok(())
        }
        DiscoveryStrategy::Etcd => {
            let lease =
                etcd_lease.ok_or_else(|| Error::config("cluster.discovery_strategy", "etcd without a lease"))?;
            shared.tasks().spawn(claim_and_form(shared.clone(), state.clone(), lease));
            Ok(())
        }
    }
}

/// On a restart: refuses to go on when a majority of the other voters of this node's
/// membership answer, all with one cluster id that is not the one its IDENTITY records (an
/// IDENTITY from another cluster, which would otherwise leave the node isolated for ever,
/// its Raft calls refused as foreign). Members that do not answer prove nothing.
async fn check_same_cluster(shared: &ClusterRoom) -> Result<()> {
    let m = shared.metrics()?;
    let membership = m.membership_config.membership();
    let others: Vec<NodeInfo> = membership
        .voter_ids()
        .filter(|id| *id != shared.config().node_id)
        .filter_map(|id| membership.get_node(&id).cloned())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let asks = others.iter().map(|n| shared.peers().node_info(&n.name, &n.addr, PROBE));
    let answers: Vec<(String, crate::status::NodeStatus)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .zip(&others)
        .filter_map(|(r, n)| r.ok().map(|s| (n.name.clone(), s)))
        .collect();
    // The same tables as every member that answers, or no start.
    for (name, s) in &answers {
        shared.check_schema(name, &s.schema)?;
    }
    let ids: Vec<(String, String)> = answers.into_iter().map(|(n, s)| (n, s.cluster_id)).collect();
    let ours = shared.cluster_id();
    let majority = others.len() / 2 + 1;
    let Some((_, theirs)) = ids.first() else { return Ok(()) };
    if ids.len() >= majority && ids.iter().all(|(_, id)| id == theirs) && *theirs != ours {
        let names: Vec<&str> = ids.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::ForeignIdentity {
            file: crate::storage::identity::path(shared.data_dir()),
            ours,
            theirs: theirs.clone(),
            members: names.join(", "),
        });
    }
    Ok(())
}

/// Refuses to start ([`Error::SchemaMismatch`]) when one of `peers` that answers now
/// declares its replicated tables differently from this node. Peers that do not answer
/// prove nothing (they are checked when they join or restart).
async fn same_tables_as_running(shared: &ClusterRoom, peers: &[Peer]) -> Result<()> {
    let others: Vec<&Peer> = peers.iter().filter(|p| p.name != shared.config().name).collect();
    let asks = others.iter().map(|p| shared.peers().node_info(p.name.as_str(), &p.addr, PROBE));
    for (r, p) in futures::future::join_all(asks).await.into_iter().zip(others) {
        if let Ok(s) = r {
            shared.check_schema(p.name.as_str(), &s.schema)?;
        }
    }
    Ok(())
}

async fn initialize(shared: &ClusterRoom, members: BTreeMap<u64, NodeInfo>) -> Result<()> {
    // A new cluster, formed by every member at once: their votes are theirs to give.
    shared.set_refuse_votes(false);
    match shared.raft()?.initialize(members).await {
        Ok(()) => Ok(()),
        // Another seed's leader reached us first: we are already part of the cluster.
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(Error::Raft(format!("initialize: {e}"))),
    }
}

/// Discovery (k8s, dns): look up the members until this node is among them; join the
/// cluster if one already runs there, else, once every member answers and two lookups in a
/// row agree, form it with that member list: nodes that see the same list initialise the
/// same membership and cluster id, so they form exactly one cluster.
async fn discover_and_form(shared: ClusterRoom, state: Arc<ClusterState>, mut lookup: Lookup) {
    let cfg = &shared.config().config;
    let mut last: Option<Vec<String>> = None;
    loop {
        if shared.tasks().is_stopping() {
            return;
        }
        match lookup.peers(shared.config()).await {
            Ok(peers) => {
                let names: Vec<String> = peers.iter().map(|p| p.name.to_string()).collect();
                if !peers.iter().any(|p| p.name == shared.config().name) {
                    tracing::info!(found = ?names, "this node is not among the discovered ones yet");
                } else if let Some(p) = running_among(&shared, &peers, None).await {
                    if super::rebuild::lost_its_state(&shared, &state) {
                        shared.tasks().spawn(super::rebuild::rejoin_as_new_member(shared.clone(), p));
                        return;
                    }
                    match crate::cluster::membership::join(&shared, &state, &p).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::info!(peer = %p.name, error = %e, "joining the discovered cluster failed; retrying")
                        }
                    }
                } else if last.as_ref() == Some(&names)
                    && let Some(cores) = proposing_cores(&shared, &state, &peers, &names).await
                {
                    let core_names = cores.iter().map(|p| p.name.as_str());
                    let id = crate::config::derived_cluster_id(&cfg.cluster.name, core_names);
                    let members = cores
                        .iter()
                        .map(|p| (p.name.node_id(), NodeInfo { name: p.name.to_string(), addr: p.addr.clone() }));
                    let res = match shared.adopt_cluster_id(&id) {
                        Ok(()) => initialize(&shared, members.collect()).await,
                        Err(e) => Err(e),
                    };
                    match res {
                        Ok(()) => {
                            tracing::info!(members = ?names, "formed the cluster from discovery");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "forming the discovered cluster failed; retrying"),
                    }
                }
                last = Some(names);
            }
            Err(e) => tracing::warn!(error = %e, "discovery failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shared.tasks().stopped() => return,
        }
    }
}

/// Discovery (etcd): join a running cluster among the registered cores; else claim the
/// formation (one etcd transaction, so one winner) and form a cluster of this node alone,
/// which the others then join; else wait for the claim's holder to form it.
async fn claim_and_form(shared: ClusterRoom, state: Arc<ClusterState>, mut lease: watch::Receiver<Option<i64>>) {
    let Some(cfg) = shared.config().etcd.clone() else { return };
    let me = shared.config().name.to_string();
    let mut registry = etcd::Registry::new(cfg);
    loop {
        if shared.tasks().is_stopping() {
            return;
        }
        let step = async {
            let id = (*lease.borrow()).ok_or_else(|| Error::Refused("not registered in etcd yet".into()))?;
            let cores = registry.cores().await?;
            if let Some(p) = running_among(&shared, &cores, None).await {
                if super::rebuild::lost_its_state(&shared, &state) {
                    shared.tasks().spawn(super::rebuild::rejoin_as_new_member(shared.clone(), p));
                } else {
                    crate::cluster::membership::join(&shared, &state, &p).await?;
                }
                return Ok(true);
            }
            let holder = registry.claim_formation(&me, id).await?;
            if holder != me {
                tracing::info!(%holder, "waiting for the node that claimed the formation to form the cluster");
                return Ok(false);
            }
            shared.adopt_cluster_id(&crate::config::derived_cluster_id(
                &shared.config().config.cluster.name,
                [me.as_str()].into_iter(),
            ))?;
            initialize(&shared, BTreeMap::from([(shared.config().node_id, shared.me())])).await?;
            tracing::info!("formed the cluster (claimed in etcd); the other nodes join it");
            Ok::<bool, Error>(true)
        };
        match step.await {
            Ok(true) => return,
            Ok(false) => {}
            Err(Error::Shutdown) => return,
            Err(e) => tracing::info!(error = %e, "etcd formation step failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = lease.changed() => {}
            _ = shared.tasks().stopped() => return,
        }
    }
}

/// How long a node asked during formation has to answer.
const PROBE: Duration = Duration::from_millis(700);

/// A node among `peers` (not this one) already in a running cluster: it knows a leader and
/// has applied entries. With `cluster`, only a cluster of that id counts.
async fn running_among(shared: &ClusterRoom, peers: &[Peer], cluster: Option<&str>) -> Option<Peer> {
    for p in peers.iter().filter(|p| p.name != shared.config().name) {
        if let Ok(s) = shared.peers().node_info(p.name.as_str(), &p.addr, PROBE).await
            && cluster.is_none_or(|c| c == s.cluster_id)
            && s.leader.is_some()
            && s.applied_index > 0
        {
            return Some(p.clone());
        }
    }
    None
}

/// The cores among `peers` (this node included), once every one of them answers and
/// proposes the same list `names`; `None` until then. Publishing the proposal first and
/// waiting for every member's means two nodes initialise different memberships only if
/// a member changes its list between the two checks, not merely because one node's
/// lookups saw a change earlier than another's. A DNS name or a service may list
/// replicants too: they are never Raft members and propose nothing.
async fn proposing_cores(shared: &ClusterRoom, state: &ClusterState, peers: &[Peer], names: &[String]) -> Option<Vec<Peer>> {
    state.propose(names);
    let mut cores = Vec::new();
    for p in peers {
        if p.name == shared.config().name {
            cores.push(p.clone());
            continue;
        }
        match shared.peers().node_info(p.name.as_str(), &p.addr, PROBE).await {
            Ok(s) if s.role == Role::Core && s.forming_with == names => cores.push(p.clone()),
            Ok(s) if s.role == Role::Core => {
                tracing::info!(peer = %p.name, proposes = ?s.forming_with, "waiting for every node to propose the same list");
                return None;
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(cores)
}

/// Keeps trying the seeds until one admits this node.
async fn join_seeds(shared: ClusterRoom, state: Arc<ClusterState>) {
    let mut delay = Duration::from_millis(200);
    loop {
        for seed in shared.config().seeds.clone() {
            if shared.tasks().is_stopping() {
                return;
            }
            match crate::cluster::membership::join(&shared, &state, &seed).await {
                Ok(()) => return,
                Err(Error::Shutdown) => return,
                Err(e) => {
                    tracing::info!(seed = %seed.name, error = %e, "seed not ready to admit us yet")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.tasks().stopped() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
