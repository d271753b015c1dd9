//! The Raft state as this node sees it: the running instance and its metrics, who leads
//! (and whether this core is a leader cut off from its majority), the applied and commit
//! indexes and the wait for one.

use super::Runtime;
use crate::error::{Error, Result};
use crate::raft::types::{NodeId, NodeInfo, Raft, RaftMetrics};
use std::time::Duration;

impl Runtime {
    /// The running Raft instance.
    pub fn raft(&self) -> Result<Raft> {
        self.raft.get()
    }

    pub fn me(&self) -> NodeInfo {
        NodeInfo { name: self.cfg.name.to_string(), addr: self.cfg.advertise.clone() }
    }

    pub fn metrics(&self) -> Result<RaftMetrics> {
        Ok(self.raft()?.metrics().borrow().clone())
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_tx.borrow()
    }

    /// Waits until this node has applied `index`.
    ///
    /// [`Error::Shutdown`] as soon as the node stops: nothing applies any more then, and
    /// a call waiting here (a write, a read index) must not hold the node's shutdown.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        // Applied already (a write on the leader, usually): no waiter registered anywhere.
        if self.applied_index() >= index {
            return Ok(());
        }
        let mut rx = self.applied_tx.subscribe();
        let res = tokio::select! {
            res = tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index)) => res,
            () = self.stop.cancelled() => {
                return if self.applied_index() >= index { Ok(()) } else { Err(Error::Shutdown) };
            }
        };
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout {
                what: format!("{} to apply index {index} (applied {})", self.cfg.name, self.applied_index()),
                ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// The leader's id and address as this node knows them (a replicant: as its core said).
    pub fn leader(&self) -> Result<Option<(NodeId, NodeInfo)>> {
        if let Some(link) = &self.link {
            let s = link.status.borrow();
            return Ok(s.leader_id().zip(s.leader.clone()).map(|(id, (name, addr))| (id, NodeInfo { name, addr })));
        }
        let m = self.metrics()?;
        Ok(self.leader_in(&m))
    }

    /// The leader `m` names, with its address (see [`Runtime::known_leader`]).
    fn leader_in(&self, m: &RaftMetrics) -> Option<(NodeId, NodeInfo)> {
        self.known_leader(m).and_then(|id| m.membership_config.membership().get_node(&id).map(|n| (id, n.clone())))
    }

    /// The leader a replication stream tells its replicant: none while this core is cut
    /// off (so the replicant moves), else [`Runtime::leader`]. One read of the metrics.
    pub(crate) fn leader_unless_cut_off(&self) -> Option<NodeInfo> {
        let m = self.metrics().ok()?;
        if self.cut_off_in(&m) {
            return None;
        }
        self.leader_in(&m).map(|(_, n)| n)
    }

    /// The leader `m` names, unless this core is a follower that has heard from no leader
    /// for the leader's lease (the election timeout): openraft names the last leader it
    /// heard from however long ago, and a core cut off from the others (which no longer
    /// campaigns alone, see `campaign`) would report a leader it cannot reach.
    pub(crate) fn known_leader(&self, m: &RaftMetrics) -> Option<NodeId> {
        let id = m.current_leader?;
        (id == self.cfg.node_id || self.raft.leader_heard_within(self.cfg.election_timeout())).then_some(id)
    }

    pub fn name(&self) -> &str {
        self.cfg.name.as_str()
    }

    /// Whether this core is the leader now (a replicant never is).
    pub(crate) fn leads(&self) -> bool {
        !self.is_replicant() && self.leader().ok().flatten().is_some_and(|(id, _)| id == self.cfg.node_id)
    }

    /// Whether this node is a leader that no majority has acknowledged for two election
    /// timeouts (it is on the minority side of a partition).
    pub fn cut_off(&self) -> bool {
        self.metrics().is_ok_and(|m| self.cut_off_in(&m))
    }

    fn cut_off_in(&self, m: &RaftMetrics) -> bool {
        m.current_leader == Some(self.cfg.node_id)
            && m.millis_since_quorum_ack.is_some_and(|ms| ms > 2 * self.cfg.election_timeout().as_millis() as u64)
    }

    pub fn is_replicant(&self) -> bool {
        self.link.is_some()
    }

    /// The commit index as this node knows it (a replicant: as its core last said).
    pub fn committed_index(&self) -> u64 {
        match &self.link {
            Some(link) => link.status.borrow().committed,
            None => *self.committed_tx.borrow(),
        }
    }
}
