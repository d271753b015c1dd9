//! `cluster status`: every member of the Raft membership, asked for its own status.

use crate::error::Result;
use crate::rpc::client::status_error;
use crate::config::Role;
use crate::rpc::pb;
use crate::status::{ClusterStatus, MemberStatus, NodeStatus};
use crate::runtime::ClusterRoom;
use super::state::ClusterState;
use std::time::Duration;

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn collect(shared: &ClusterRoom, state: &ClusterState) -> Result<ClusterStatus> {
    if let Some(link) = shared.link() {
        // A replicant is not in the membership: ask the core it streams from (or any).
        let upstream = link.status.borrow().upstream.clone();
        let cores: Vec<(String, String)> =
            upstream.into_iter().chain(shared.config().cores.iter().map(|p| (p.name.to_string(), p.addr.clone()))).collect();
        let mut last = crate::error::Error::NoLeader("no core reachable".into());
        for (name, addr) in cores {
            let mut client = shared.peers().cluster(&addr)?;
            let mut req = tonic::Request::new(pb::Empty {});
            req.set_timeout(ASK_TIMEOUT * 2);
            match client.status(req).await {
                Ok(r) => return crate::rpc::convert::cluster_from_pb(r.into_inner()),
                Err(s) => last = status_error(&name, s),
            }
        }
        return Err(last);
    }
    let m = shared.metrics()?;
    let membership = m.membership_config.membership().clone();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let asks = membership.nodes().map(|(id, info)| {
        let (id, info) = (*id, info.clone());
        let voter = voters.contains(&id);
        async move {
            let res = if id == shared.config().node_id {
                Ok(state.node_status(shared))
            } else {
                ask(shared, &info.name, &info.addr).await
            };
            match res {
                Ok(s) => MemberStatus {
                    name: info.name,
                    addr: info.addr,
                    role: Role::Core,
                    voter,
                    running: true,
                    status: Some(s),
                    error: None,
                },
                Err(e) => MemberStatus {
                    name: info.name,
                    addr: info.addr,
                    role: Role::Core,
                    voter,
                    running: false,
                    status: None,
                    error: Some(e.to_string()),
                },
            }
        }
    });
    let mut members = futures::future::join_all(asks).await;
    // Replicants are not members: each core lists those streaming from it.
    let mut replicants = std::collections::BTreeMap::new();
    for s in members.iter().filter_map(|m| m.status.as_ref()) {
        for sub in &s.subscribers {
            replicants.insert(sub.name.clone(), sub.addr.clone());
        }
    }
    let asks = replicants.into_iter().map(|(name, addr)| async move {
        let res = ask(shared, &name, &addr).await;
        MemberStatus {
            running: res.is_ok(),
            error: res.as_ref().err().map(|e| e.to_string()),
            status: res.ok(),
            name,
            addr,
            role: Role::Replicant,
            voter: false,
        }
    });
    members.extend(futures::future::join_all(asks).await);
    let leader = shared.known_leader(&m).and_then(|id| membership.get_node(&id).map(|n| n.name.clone()));
    Ok(ClusterStatus {
        cluster: shared.config().config.cluster.name.clone(),
        leader,
        members,
        cluster_id: shared.cluster_id(),
    })
}

async fn ask(shared: &ClusterRoom, name: &str, addr: &str) -> Result<NodeStatus> {
    shared.peers().node_info(name, addr, ASK_TIMEOUT).await
}
