//! Rebuilding a core that has no Raft state while its cluster runs: a lost volume, or a
//! data dir set aside by `mnema data rebuild` after its state was found damaged.
//!
//! Raft assumes a member never forgets its vote or its log. A core that did must not take
//! part as its old self, so it comes back as a new incarnation of the member:
//!
//! 1. From start until it is a member again it refuses every vote request
//!    (`Runtime::refuses_votes`): a vote it gave in a term it
//!    has forgotten could elect a second leader, or a leader without entries a majority
//!    counted on.
//! 2. It asks the cluster to remove its old voter (the leader refuses while removing it
//!    would leave fewer than a majority of the remaining voters running; it then waits and
//!    asks again). A learner of its name is its own new incarnation from an earlier attempt
//!    and is kept.
//! 3. It asks to be admitted: the leader adds it as a learner, catches it up (snapshot,
//!    then entries) and promotes it to voter, as for any join.
//!
//! Whatever found the cluster (static seeds, dns, k8s, etcd, an operator's `cluster join`),
//! a core that [lost its state](lost_its_state) comes back this way, never through a plain
//! join: that would discard what the leader may already have replicated to it as its old
//! voter, or, once that included the membership, take it back as that voter.

use crate::error::Result;
use crate::name::Peer;
use crate::rpc::client::status_error;
use crate::rpc::pb;
use crate::runtime::ClusterRoom;
use super::state::ClusterState;
use std::time::{Duration, Instant};

/// How long one admission (catching up included) may take.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(1);

/// Runs the rebuild through `via`, a running core of this node's cluster, until this node is
/// a member again (or the node stops).
pub(crate) async fn rejoin_as_new_member(shared: ClusterRoom, via: Peer) {
    tracing::warn!(via = %via.name, "no Raft state here while the cluster runs: rejoining as a new member (removed, then added back as a learner and promoted); refusing votes meanwhile");
    // Without a deadline it ends only as a member again, or with the node's stop.
    let _ = rejoin(&shared, &via, None).await;
}

/// Whether this core lost its Raft state but not its IDENTITY (a lost store, or one set
/// aside by `mnema data rebuild`): it was a member, and may have voted in a term it forgot.
pub(crate) fn lost_its_state(shared: &ClusterRoom, state: &ClusterState) -> bool {
    state.had_identity() && shared.refuses_votes()
}

/// The rebuild through `via` as one request (an operator's `cluster join`): done once this
/// node is a member again; the last error if it is not within the admission timeout.
pub(crate) async fn rejoin_via(shared: &ClusterRoom, via: &Peer) -> Result<()> {
    rejoin(shared, via, Some(Instant::now() + ADMIT_TIMEOUT)).await
}

/// Steps until this node is a member again, asking again after each failure until
/// `deadline` (`None`: for as long as the node runs).
async fn rejoin(shared: &ClusterRoom, via: &Peer, deadline: Option<Instant>) -> Result<()> {
    loop {
        if shared.tasks().is_stopping() {
            return Err(crate::error::Error::Shutdown);
        }
        match step(shared, via).await {
            Ok(true) => {
                shared.set_refuse_votes(false);
                tracing::info!(via = %via.name, "rebuilt: a member again, caught up as a learner and promoted");
                return Ok(());
            }
            Ok(false) => continue,
            Err(e) if deadline.is_some_and(|d| Instant::now() >= d) => return Err(e),
            Err(e) => tracing::info!(error = %e, "rebuild waits; asking again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shared.tasks().stopped() => {}
        }
    }
}

/// One step: removed if still a member (`Ok(false)`: look again), else admitted (`Ok(true)`).
async fn step(shared: &ClusterRoom, via: &Peer) -> Result<bool> {
    let me = shared.config().name.as_str();
    let mut client = shared.peers().cluster(&via.addr)?;
    let err = |s| status_error(via.name.as_str(), s);
    let status = client.status(pb::Empty {}).await.map_err(err)?.into_inner();
    let status = crate::rpc::convert::cluster_from_pb(status)?;
    // Only a voter is the old incarnation: it may have voted in a term this node forgot. A
    // learner of that name is this rebuild's own, added by an earlier attempt that did not
    // see its answer (a timeout on a busy cluster): it is promoted, never removed again.
    let voter = status.members.iter().any(|m| m.name == me && m.role == crate::config::Role::Core && m.voter);
    if voter {
        client.force_leave(pb::LeaveRequest { name: me.to_string(), force: false }).await.map_err(err)?;
        tracing::info!("removed from the cluster's membership; asking to be added back");
        return Ok(false);
    }
    let mut req = tonic::Request::new(pb::JoinRequest {
        name: me.to_string(),
        addr: shared.config().advertise.clone(),
        schema: crate::rpc::convert::encode_schema(&shared.schema().info()),
    });
    req.set_timeout(ADMIT_TIMEOUT);
    client.join(req).await.map_err(err)?;
    Ok(true)
}
