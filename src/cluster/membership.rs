//! Joining a cluster: the joiner's side ([`join`]) and the leader's side ([`admit`]).
//!
//! `join` runs on the node that joins (a request, not an invite, as in EMQX). The joiner
//! discards its replicated data and Raft log, then asks the target to admit it; the leader
//! adds it as a learner, waits until it has caught up, and then makes it a voter.

use crate::error::{Error, Result};
use crate::name::{NodeName, Peer};
use crate::raft::types::NodeInfo;
use crate::rpc::client::status_error;
use crate::rpc::pb;
use crate::runtime::ClusterRoom;
use super::state::ClusterState;
use openraft::ChangeMembers;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a join may take, catching up included.
const JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Makes this node a member of the cluster `target` belongs to.
pub(crate) async fn join(shared: &ClusterRoom, state: &ClusterState, target: &Peer) -> Result<()> {
    if target.name == shared.config().name {
        return Err(Error::Refused("a node cannot join itself".into()));
    }
    if shared.is_replicant() {
        return Err(Error::is_replicant(
            shared.config().name.as_str(),
            "joining (a replicant streams from the cores in replicant.cores)",
        ));
    }
    let mut client = shared.peers().cluster(&target.addr)?;
    let their = client.node_info(pb::Empty {}).await.map_err(|s| status_error(target.name.as_str(), s))?.into_inner();
    let their = crate::rpc::convert::node_from_pb(their)?;
    if their.name != target.name.as_str() {
        return Err(Error::Refused(format!("{} answers as `{}`, not `{}`", target.addr, their.name, target.name)));
    }
    // Before anything of this node's data is discarded: the same tables, or no join.
    shared.check_schema(target.name.as_str(), &their.schema)?;
    shared.check_can_follow(&their.schema)?;
    if their.role == crate::config::Role::Replicant {
        return Err(Error::is_replicant(target.name.as_str(), "being joined (join a core of its cluster)"));
    }
    if super::rebuild::lost_its_state(shared, state) {
        // Its old self is a voter of that cluster: back as a new member, nothing discarded.
        return super::rebuild::rejoin_via(shared, target).await;
    }
    let m = shared.metrics()?;
    let membership = m.membership_config.membership();
    if membership.get_node(&their.node_id).is_some() {
        shared.set_refuse_votes(false);
        tracing::info!(target = %target.name, "already in the same cluster");
        return Ok(());
    }
    let others: Vec<String> =
        membership.nodes().filter(|(id, _)| **id != shared.config().node_id).map(|(_, n)| n.name.clone()).collect();
    if !others.is_empty() {
        return Err(Error::Refused(format!(
            "{} is already in a cluster with {}; leave it before joining another",
            shared.config().name,
            others.join(", ")
        )));
    }
    tracing::warn!(target = %target.name, "joining: discarding this node's replicated data");
    shared.reset_raft().await?;
    shared.adopt_cluster_id(&their.cluster_id)?;
    let req = pb::JoinRequest {
        name: shared.config().name.to_string(),
        addr: shared.config().advertise.clone(),
        schema: crate::rpc::convert::encode_schema(&shared.schema().info()),
    };
    let mut req = tonic::Request::new(req);
    req.set_timeout(JOIN_TIMEOUT);
    client.join(req).await.map_err(|s| status_error(target.name.as_str(), s))?;
    shared.set_refuse_votes(false);
    tracing::info!(target = %target.name, "joined");
    Ok(())
}

/// Admits `name` at `addr` into this node's cluster (forwarded to the leader if need be).
pub(crate) async fn admit(shared: &ClusterRoom, state: &ClusterState, name: &str, addr: &str, schema: &[u8]) -> Result<pb::JoinReply> {
    let node_name = NodeName::parse("join.name", name)?;
    let theirs = crate::rpc::convert::decode_schema(schema)?;
    shared.check_schema(name, &theirs)?;
    // A joiner without the code of a table in the log could not apply it.
    shared.check_peer_has_code(name, &theirs)?;
    let id = node_name.node_id();
    let raft = shared.raft()?;
    let Some((leader_id, leader)) = shared.leader()? else {
        return Err(Error::NoLeader("the cluster has no leader to admit a new member".into()));
    };
    if leader_id != shared.config().node_id {
        let mut client = shared.peers().cluster(&leader.addr)?;
        let mut req = tonic::Request::new(pb::JoinRequest { name: name.into(), addr: addr.into(), schema: schema.to_vec() });
        req.set_timeout(JOIN_TIMEOUT);
        return client.join(req).await.map(|r| r.into_inner()).map_err(|s| status_error(&leader.name, s));
    }
    // A voter that asks to join has no Raft state: a node that has its state and is a
    // member never asks (`join` answers "already in the same cluster" on its side). It
    // lost its store, whichever way it found the cluster (seeds, dns, k8s, etcd, `cluster
    // join`): its old self may have voted in a term it has forgotten, so it must not come
    // back as that voter with an empty log. Its old voter is removed first (refused while
    // that would leave the remaining voters without a running majority: the joiner asks
    // again), then it is admitted as a new member below, as `rebuild.rs` does.
    if shared.metrics()?.membership_config.membership().voter_ids().any(|v| v == id) {
        tracing::warn!(node = name, "a voter asks to join: it lost its Raft state; removing its old incarnation first");
        super::leave::remove_member(shared, state, name, false).await?;
    }
    let _guard = state.lock_membership().await;
    let m = shared.metrics()?;
    let membership = m.membership_config.membership();
    if let Some(existing) = membership.get_node(&id)
        && existing.name != name
    {
        return Err(Error::Refused(format!(
            "node id of `{name}` collides with member `{}`; rename one of them",
            existing.name
        )));
    }
    let is_voter = membership.voter_ids().any(|v| v == id);
    if !is_voter {
        let info = NodeInfo { name: name.into(), addr: addr.into() };
        raft.add_learner(id, info, true).await.map_err(|e| Error::Raft(format!("add learner {name}: {e}")))?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| Error::Raft(format!("make {name} a voter: {e}")))?;
        tracing::info!(node = name, "admitted into the cluster");
    }
    Ok(pb::JoinReply { leader: shared.config().name.to_string() })
}
