//! What the cluster feature keeps of its own, apart from the node's runtime: the lock that
//! serialises the membership changes this node makes as leader, the node list it proposes
//! while forming a cluster (dns, k8s), and whether its data dir had an IDENTITY before this
//! start. One `ClusterState` per node, made by `Node::start` and handed to the cluster
//! service, the formation at start, autoclean and the node's own join and leave.

use crate::runtime::ClusterRoom;
use crate::status::NodeStatus;
use std::sync::{Arc, Mutex};

pub struct ClusterState {
    /// Serialises membership changes this node makes as leader (admit, remove).
    membership_lock: tokio::sync::Mutex<()>,
    /// The node list this node proposes to form a cluster with (dns, k8s discovery), shown
    /// in its status so that the others initialise only when every member proposes it.
    forming_with: Mutex<Vec<String>>,
    /// Whether the data dir had its IDENTITY before this start: a core with an identity but
    /// no Raft state lost its store (or had it set aside) and rejoins as a new member.
    had_identity: bool,
}

impl ClusterState {
    pub(crate) fn new(had_identity: bool) -> Arc<Self> {
        Arc::new(ClusterState {
            membership_lock: tokio::sync::Mutex::new(()),
            forming_with: Mutex::new(Vec::new()),
            had_identity,
        })
    }

    /// Held while this node, as leader, changes the membership.
    pub(crate) async fn lock_membership(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.membership_lock.lock().await
    }

    /// Publishes the node list this node proposes to form a cluster with.
    pub(crate) fn propose(&self, names: &[String]) {
        if let Ok(mut mine) = self.forming_with.lock() {
            *mine = names.to_vec();
        }
    }

    /// Whether the data dir had its IDENTITY before this start.
    pub(crate) fn had_identity(&self) -> bool {
        self.had_identity
    }

    /// This node's status as the cluster service answers it: the runtime's, with the list
    /// it proposes while forming.
    pub(crate) fn node_status(&self, rt: &ClusterRoom) -> NodeStatus {
        let mut status = rt.node_status();
        status.forming_with = self.forming_with.lock().map(|f| f.clone()).unwrap_or_default();
        status
    }
}
