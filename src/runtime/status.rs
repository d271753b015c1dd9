//! What a node says of itself: its status (role, Raft state, applied and committed
//! indexes, a replicant's link and shards), and the schema checks against what a peer
//! says of its own (tables, code).

use super::Runtime;
use crate::engine::declaration::{SchemaInfo, code_mismatch, first_difference};
use crate::error::{Error, Result};
use crate::status::{NodeStatus, RaftRole};
use std::sync::atomic::Ordering;

impl Runtime {
    /// A replicant's state, upstream core, lag and shards (`None` on a core).
    pub fn replicant_status(&self) -> Option<crate::status::ReplicantStatus> {
        let link = self.link.as_ref()?;
        let mut report = link.report(self.applied_index());
        let view = self.mem.load();
        let mut shards: std::collections::BTreeMap<u16, crate::status::ShardStatus> = Default::default();
        for (def, t) in view.catalog.defs().iter().zip(&view.tables) {
            if !view.holding.follows(def.shard) {
                continue;
            }
            let s = shards.entry(def.shard).or_insert_with(|| crate::status::ShardStatus {
                shard: def.shard,
                tables: Vec::new(),
                records: 0,
                lag_entries: report.lag_entries,
            });
            s.tables.push(def.name.clone());
            s.records += t.len() as u64;
        }
        report.shards = shards.into_values().collect();
        Some(report)
    }

    /// This node's status.
    pub fn node_status(&self) -> NodeStatus {
        let mut status = NodeStatus {
            name: self.cfg.name.to_string(),
            node_id: self.cfg.node_id,
            role: self.cfg.role,
            raft_role: None,
            applied_index: self.applied_index(),
            term: 0,
            leader: None,
            addr: self.cfg.advertise.clone(),
            cluster_id: self.cluster_id(),
            replicant: None,
            subscribers: Vec::new(),
            committed: self.committed_index(),
            write_retries: self.write_retries.load(Ordering::Relaxed),
            forming_with: Vec::new(),
            schema: self.schema_info(),
            protocol: self.cfg.protocol(),
        };
        if let Some(link) = &self.link {
            status.leader = link.leader().map(|l| l.0);
            status.replicant = self.replicant_status();
            return status;
        }
        match self.metrics() {
            Ok(m) => {
                status.leader = self
                    .known_leader(&m)
                    .and_then(|id| m.membership_config.membership().get_node(&id).map(|n| n.name.clone()));
                status.raft_role = Some(match m.state {
                    openraft::ServerState::Leader => RaftRole::Leader,
                    openraft::ServerState::Follower => RaftRole::Follower,
                    openraft::ServerState::Candidate => RaftRole::Candidate,
                    openraft::ServerState::Learner => RaftRole::Learner,
                    openraft::ServerState::Shutdown => RaftRole::Shutdown,
                });
                status.term = m.current_term;
            }
            Err(_) => status.raft_role = Some(RaftRole::Shutdown),
        }
        status.subscribers = self.streamed.replicants();
        status
    }

    /// [`Error::SchemaMismatch`] when `peer` declares a replicated table this node declares
    /// too, but differently; [`Error::CodeMismatch`] when it registers a rule or extractor
    /// under another version (a peer that said nothing is taken at its word). Tables one
    /// side declares and the other does not are no conflict: the log creates them.
    pub(crate) fn check_schema(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        if theirs.is_empty() {
            return Ok(());
        }
        let ours = self.schema.info();
        if let Some((table, reason)) = first_difference(&ours.declared, &theirs.declared) {
            return Err(Error::SchemaMismatch { peer: peer.to_string(), table, reason });
        }
        if let Some((kind, name, ours, theirs)) = code_mismatch(&ours.registry, &theirs.registry) {
            return Err(Error::CodeMismatch { peer: peer.to_string(), kind, name, ours, theirs });
        }
        Ok(())
    }

    /// What this node says of its schema: its declarations, its code, and the code of the
    /// tables in the catalog it applied.
    pub(crate) fn schema_info(&self) -> SchemaInfo {
        let mut info = self.schema.info();
        info.uses = SchemaInfo::code_of(&self.mem.load().catalog.declarations());
        info
    }

    /// [`Error::Unregistered`] naming `peer` when it lacks code that a table of this node's
    /// catalog names: it could not apply the log (a joiner, a subscribing replicant).
    pub(crate) fn check_peer_has_code(&self, peer: &str, theirs: &SchemaInfo) -> Result<()> {
        if theirs.is_empty() {
            return Ok(());
        }
        theirs.must_have_code_of(peer, &self.schema_info())
    }

    /// [`Error::Unregistered`] naming this node when it lacks code that the tables of
    /// `peer`'s catalog name: it could not apply that cluster's log (checked before a join
    /// discards anything, and before a replicant follows a core).
    pub(crate) fn check_can_follow(&self, theirs: &SchemaInfo) -> Result<()> {
        self.schema_info().must_have_code_of(self.name(), theirs)
    }

}
