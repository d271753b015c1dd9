//! Autoclean (`cluster.autoclean`): the leader removes a member that has been unreachable
//! for longer than the interval, and purges the routes that led to it.
//!
//! Only the leader acts, so one node decides; removal goes through [`remove_member`]
//! without force, so autoclean never takes the cluster below a majority of running voters
//! (with two of three cores down it removes nothing and waits).

use super::leave::remove_member;
use super::state::ClusterState;
use crate::runtime::ClusterRoom;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Watches the members until the node stops.
pub(crate) async fn run(shared: ClusterRoom, state: Arc<ClusterState>, after: Duration) {
    let every = (after / 5).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut down_since: HashMap<u64, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shared.tasks().stopped() => return,
        }
        let leader = shared.leads();
        let Ok(m) = shared.metrics() else { continue };
        if !leader {
            down_since.clear();
            continue;
        }
        let members: Vec<(u64, String, String)> = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != shared.config().node_id)
            .map(|(id, n)| (*id, n.name.clone(), n.addr.clone()))
            .collect();
        down_since.retain(|id, _| members.iter().any(|(m, _, _)| m == id));
        for (id, name, addr) in members {
            if answers(&shared, &name, &addr, every).await {
                down_since.remove(&id);
                continue;
            }
            let since = *down_since.entry(id).or_insert_with(Instant::now);
            if since.elapsed() < after {
                continue;
            }
            match remove_member(&shared, &state, &name, false).await {
                Ok(()) => {
                    down_since.remove(&id);
                    tracing::warn!(node = %name, down_for = ?since.elapsed(), "autoclean removed an unreachable member");
                    let purged = match shared.table_ix(crate::schema::ROUTES) {
                        Ok(_) => crate::schema::routes::purge_node(shared.tables_room(), &name).await,
                        Err(_) => Ok(0),
                    };
                    if let Err(e) = purged {
                        tracing::warn!(node = %name, error = %e, "autoclean could not purge its routes");
                    }
                }
                Err(e) => tracing::info!(node = %name, error = %e, "autoclean leaves the member in place"),
            }
        }
    }
}

async fn answers(shared: &ClusterRoom, name: &str, addr: &str, limit: Duration) -> bool {
    shared.peers().node_info(name, addr, limit.min(Duration::from_secs(1))).await.is_ok()
}
