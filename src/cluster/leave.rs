//! Leaving a cluster: a member removed by the leader ([`remove_member`], what `cluster
//! force-leave NODE` does), or this node leaving ([`leave`], `cluster leave`).
//!
//! Removal is one Raft membership change that drops the node entirely. It is refused when
//! the voters left would not have a majority running (the cluster would stop accepting
//! writes), unless forced; the last voter cannot be removed. Replicants are not members:
//! stopping one is all it takes.

use crate::error::{Error, Result};
use crate::name::NodeName;
use crate::rpc::client::status_error;
use crate::rpc::pb;
use crate::runtime::ClusterRoom;
use super::state::ClusterState;
use openraft::ChangeMembers;
use std::collections::BTreeSet;
use std::time::Duration;

const PROBE: Duration = Duration::from_millis(700);

/// Whether the member at `addr` answers.
async fn running(shared: &ClusterRoom, addr: &str) -> bool {
    shared.peers().node_info(addr, addr, PROBE).await.is_ok()
}

/// Whether `name` is a replicant streaming from some core of this membership.
async fn streams_from_a_core(shared: &ClusterRoom, membership: &crate::raft::types::Membership, name: &str) -> bool {
    if shared.streams_to(name) {
        return true;
    }
    for (_, n) in membership.nodes().filter(|(id, _)| **id != shared.config().node_id) {
        if let Ok(s) = shared.peers().node_info(&n.name, &n.addr, PROBE).await
            && s.subscribers.iter().any(|s| s.name == name)
        {
            return true;
        }
    }
    false
}

/// Removes member `name` from the cluster (on the leader; forwarded there from any core).
pub(crate) async fn remove_member(shared: &ClusterRoom, state: &ClusterState, name: &str, force: bool) -> Result<()> {
    if shared.is_replicant() {
        return Err(Error::is_replicant(shared.name(), "removing a member"));
    }
    let id = NodeName::parse("force-leave", name)?.node_id();
    let Some((leader_id, leader)) = shared.leader()? else {
        return Err(Error::NoLeader("no leader to change the membership".into()));
    };
    if leader_id != shared.config().node_id {
        let mut client = shared.peers().cluster(&leader.addr)?;
        let req = pb::LeaveRequest { name: name.into(), force };
        client.force_leave(req).await.map_err(|s| status_error(&leader.name, s))?;
        return Ok(());
    }
    let _guard = state.lock_membership().await;
    let raft = shared.raft()?;
    let m = shared.metrics()?;
    let membership = m.membership_config.membership().clone();
    if membership.get_node(&id).is_none() {
        let why = if streams_from_a_core(shared, &membership, name).await {
            "it is a replicant: replicants are never members; stop its process to take it out"
        } else {
            "replicants are never members; a replicant is taken out by stopping its process"
        };
        return Err(Error::NotAMember { name: name.to_string(), reason: why.to_string() });
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    if voters.contains(&id) {
        if voters.len() == 1 {
            return Err(Error::Refused(format!("`{name}` is the last voter; a cluster cannot remove its last core")));
        }
        if !force {
            let mut up = 0;
            for v in voters.iter().filter(|v| **v != id) {
                let addr = membership.get_node(v).map(|n| n.addr.clone()).unwrap_or_default();
                if *v == shared.config().node_id || running(shared, &addr).await {
                    up += 1;
                }
            }
            let remaining = voters.len() - 1;
            let majority = remaining / 2 + 1;
            if up < majority {
                return Err(Error::MajorityAtRisk { name: name.to_string(), up, remaining, majority });
            }
        }
        // `retain = false`: not kept as a learner either (also when the leader removes itself).
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Error::Raft(format!("remove voter {name}: {e}")))?;
    } else {
        raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Error::Raft(format!("remove learner {name}: {e}")))?;
    }
    tracing::info!(node = name, "removed from the cluster");
    Ok(())
}

/// This node leaves its cluster: the leader removes it, then it discards the cluster's
/// data and log and becomes a cluster of one (a new cluster id), as after a fresh start.
pub(crate) async fn leave(shared: &ClusterRoom, state: &ClusterState, force: bool) -> Result<()> {
    if shared.is_replicant() {
        return Err(Error::is_replicant(shared.name(), "leaving (replicants are not members; stop its process)"));
    }
    let m = shared.metrics()?;
    if m.membership_config.membership().nodes().count() <= 1 {
        return Err(Error::Refused(format!("{} is not in a cluster with other nodes", shared.name())));
    }
    remove_member(shared, state, shared.name(), force).await?;
    shared.reset_raft().await?;
    shared.adopt_cluster_id(&format!("{:016x}", crate::config::random_u64()))?;
    let me = std::collections::BTreeMap::from([(shared.config().node_id, shared.me())]);
    shared.raft()?.initialize(me).await.map_err(|e| Error::Raft(format!("initialize after leave: {e}")))?;
    tracing::info!("left the cluster; now a cluster of one");
    shared.tell_member_event(crate::engine::MemberEvent::Left { name: shared.name().to_string() });
    Ok(())
}
