//! Forming the cluster at start, by discovery strategy.
//!
//! - A node whose data dir already holds a Raft state rejoins its own cluster from it,
//!   whatever the strategy: no discovery, no risk of forming a second cluster.
//! - `manual`: a new node is a cluster of one until `cluster join`.
//! - `static`: the seeds form one cluster. Every seed initialises Raft with the same
//!   membership (all seeds, ids from their names); identical initial configs elect one
//!   leader, so starting every seed at once still yields exactly one cluster. A node not in
//!   its own seed list joins through the seeds. A seed with an empty data dir whose cluster
//!   is already running (its volume was lost) does not initialise: the leader still has it
//!   as a member and replicates the whole state to it.

use crate::config::DiscoveryStrategy;
use crate::error::{Error, Result};
use crate::node::NodeShared;
use crate::raft::types::NodeInfo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub async fn form(shared: &Arc<NodeShared>) -> Result<()> {
    let raft = shared.raft()?;
    if raft.is_initialized().await.map_err(|e| Error::Raft(e.to_string()))? {
        tracing::info!("restarting with this data dir's cluster membership");
        return Ok(());
    }
    match shared.strategy() {
        DiscoveryStrategy::Manual => initialize(shared, BTreeMap::from([(shared.cfg.node_id, shared.me())])).await,
        DiscoveryStrategy::Static => {
            let seeds = &shared.cfg.seeds;
            if seeds.iter().any(|p| p.name == shared.cfg.name) {
                if let Some(peer) = running_cluster(shared).await {
                    // A seed without Raft state while its cluster runs: its volume was
                    // lost. It must not start a second history; the leader has it in the
                    // membership and replicates everything to it from the start.
                    tracing::warn!(peer = %peer, "no Raft state here but the cluster runs: resyncing from it");
                    return Ok(());
                }
                let members = seeds
                    .iter()
                    .map(|p| (p.name.node_id(), NodeInfo { name: p.name.to_string(), addr: p.addr.clone() }))
                    .collect();
                initialize(shared, members).await
            } else {
                tokio::spawn(join_seeds(shared.clone()));
                Ok(())
            }
        }
        DiscoveryStrategy::K8s => {
            tokio::spawn(discover_and_form(shared.clone()));
            Ok(())
        }
        other => {
            Err(Error::config("cluster.discovery_strategy", format!("{other:?} is not available in this version")))
        }
    }
}

/// A seed that is already part of a running cluster of ours (it knows a leader and has
/// applied entries), if any answers.
async fn running_cluster(shared: &Arc<NodeShared>) -> Option<String> {
    let ours = shared.cluster_id();
    for seed in shared.cfg.seeds.iter().filter(|p| p.name != shared.cfg.name) {
        let Ok(mut client) = shared.peers.cluster(&seed.addr) else { continue };
        let mut req = tonic::Request::new(crate::rpc::pb::Empty {});
        req.set_timeout(Duration::from_millis(500));
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(700), client.node_info(req)).await {
            let s = s.into_inner();
            if s.cluster_id == ours && !s.leader.is_empty() && s.applied_index > 0 {
                return Some(seed.name.to_string());
            }
        }
    }
    None
}

async fn initialize(shared: &Arc<NodeShared>, members: BTreeMap<u64, NodeInfo>) -> Result<()> {
    match shared.raft()?.initialize(members).await {
        Ok(()) => Ok(()),
        // Another seed's leader reached us first: we are already part of the cluster.
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(Error::Raft(format!("initialize: {e}"))),
    }
}

/// Discovery (k8s): look up the members until this node is among them; join the cluster
/// if one already runs there, else, once every member answers and two lookups in a row
/// agree, form it with that member list: nodes that see the same list initialise the
/// same membership and cluster id, so they form exactly one cluster.
async fn discover_and_form(shared: Arc<NodeShared>) {
    let cfg = &shared.config;
    let app = shared.cfg.name.as_str().split('@').next().unwrap_or("").to_string();
    let mut stopping = shared.stopping.clone();
    let mut last: Option<Vec<String>> = None;
    loop {
        if *stopping.borrow() {
            return;
        }
        match crate::cluster::discovery::k8s::discover(&cfg.cluster.k8s, &app, cfg.node.base_port).await {
            Ok(peers) => {
                let names: Vec<String> = peers.iter().map(|p| p.name.to_string()).collect();
                if !peers.iter().any(|p| p.name == shared.cfg.name) {
                    tracing::info!(found = ?names, "this node is not among the discovered ones yet");
                } else if let Some(p) = running_among(&shared, &peers).await {
                    match crate::cluster::membership::join(&shared, &p).await {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::info!(peer = %p.name, error = %e, "joining the discovered cluster failed; retrying")
                        }
                    }
                } else if last.as_ref() == Some(&names) && all_answer(&shared, &peers).await {
                    let id = crate::config::derived_cluster_id(&cfg.cluster.name, names.iter().map(String::as_str));
                    let members = peers
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
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

async fn node_info(shared: &NodeShared, addr: &str) -> Option<crate::rpc::pb::NodeStatus> {
    let mut client = shared.peers.cluster(addr).ok()?;
    let mut req = tonic::Request::new(crate::rpc::pb::Empty {});
    req.set_timeout(Duration::from_millis(500));
    match tokio::time::timeout(Duration::from_millis(700), client.node_info(req)).await {
        Ok(Ok(s)) => Some(s.into_inner()),
        _ => None,
    }
}

/// A discovered node already in a running cluster (any cluster id: we have none yet).
async fn running_among(shared: &NodeShared, peers: &[crate::name::Peer]) -> Option<crate::name::Peer> {
    for p in peers.iter().filter(|p| p.name != shared.cfg.name) {
        if let Some(s) = node_info(shared, &p.addr).await
            && !s.leader.is_empty()
            && s.applied_index > 0
        {
            return Some(p.clone());
        }
    }
    None
}

async fn all_answer(shared: &NodeShared, peers: &[crate::name::Peer]) -> bool {
    for p in peers.iter().filter(|p| p.name != shared.cfg.name) {
        if node_info(shared, &p.addr).await.is_none() {
            return false;
        }
    }
    true
}

/// Keeps trying the seeds until one admits this node.
async fn join_seeds(shared: Arc<NodeShared>) {
    let mut delay = Duration::from_millis(200);
    let mut stopping = shared.stopping.clone();
    loop {
        for seed in shared.cfg.seeds.clone() {
            if *stopping.borrow() {
                return;
            }
            match crate::cluster::membership::join(&shared, &seed).await {
                Ok(()) => return,
                Err(Error::Shutdown) => return,
                Err(e) => {
                    tracing::info!(seed = %seed.name, error = %e, "seed not ready to admit us yet")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
