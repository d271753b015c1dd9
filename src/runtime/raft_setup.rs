//! Creating (and re-creating, on join) the node's openraft instance.

use super::Runtime;
use crate::error::{Error, Result};
use crate::raft::network::Network;
use crate::storage::layout;
use crate::storage::log_store::LogStore;
use crate::storage::raft_mark;
use crate::storage::state_machine::StateMachine;
use crate::raft::unsynced::Unsynced;
use openraft::{Config, SnapshotPolicy};
use std::sync::Arc;

fn raft_config(shared: &Runtime) -> Result<Arc<Config>> {
    let hb = shared.cfg.heartbeat().as_millis() as u64;
    let et = shared.cfg.election_timeout().as_millis() as u64;
    let c = Config {
        cluster_name: shared.cfg.config.cluster.name.clone(),
        heartbeat_interval: hb,
        // openraft 0.9: a follower that last heard from its leader at `t` gives no vote
        // before `t + election_timeout_max` (the leader's lease). Its own election timer is
        // off: `runtime::campaign` decides when a core campaigns (a fresh draw per
        // campaign, and a pre-vote first, so a core that cannot win never raises its term
        // and deposes a healthy leader when it is back).
        election_timeout_min: et / 2,
        election_timeout_max: et,
        enable_elect: false,
        // Per snapshot chunk (1 MiB), not per snapshot.
        install_snapshot_timeout: 10_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(shared.cfg.config.raft.snapshot_after_entries),
        snapshot_max_chunk_size: 1 << 20,
        max_in_snapshot_log_to_keep: 1000,
        max_payload_entries: 256,
        ..Default::default()
    };
    Ok(Arc::new(c.validate().map_err(|e| Error::config("raft", e))?))
}

fn log_store(shared: &Runtime, unsynced: Arc<Unsynced>) -> Result<LogStore> {
    LogStore::new(
        shared.db.clone(),
        shared.cfg.node_id,
        unsynced,
        shared.pins.clone(),
        shared.committed_tx.clone(),
        shared.applied_sender(),
        shared.mark.clone(),
    )
}

/// Opens the log store and state machine and starts Raft on them, once their state has
/// been checked against `RAFT_MARK` (a vote or applied index that went back is refused).
pub(crate) async fn start_raft(shared: &Arc<Runtime>) -> Result<()> {
    // Shared by the log store (which writes it), the state machine and the network.
    let unsynced = Arc::new(Unsynced::default());
    let sm = StateMachine::open(
        shared.db.clone(),
        shared.schema.clone(),
        layout::snapshots(&shared.data_dir),
        shared.mem.clone(),
        shared.feed.clone(),
        shared.members.clone(),
        shared.applied_sender(),
    )?
    .with_log(shared.cfg.node_id, unsynced.clone());
    let vote = LogStore::stored_vote(&shared.db)?;
    raft_mark::check(&shared.data_dir, &layout::db(&shared.data_dir), vote.as_ref(), sm.applied_index())?;
    let log = log_store(shared, unsynced.clone())?;
    let reader = log.clone();
    shared.raft_slot().set_last_log(Arc::new(move || reader.last_log_id()))?;
    let network = Network { peers: shared.peers.clone(), unsynced, peer_log: Default::default() };
    let gone = sm.gone();
    if let Ok(mut g) = shared.state_machine_gone.lock() {
        *g = Some(gone);
    }
    let raft = openraft::Raft::new(shared.cfg.node_id, raft_config(shared)?, network, log, sm)
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    shared.set_raft(Some(raft))
}

/// How long a reset waits for the old state machine's last apply or snapshot.
const STATE_MACHINE_STOPS_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Stops Raft, deletes the log and every replicated record, and starts Raft again,
/// uninitialised: the node is ready to be added to another cluster.
pub(crate) async fn reset_raft(shared: &Arc<Runtime>) -> Result<()> {
    // Replication streams serve the old history: they end when they see this change.
    shared.raft_slot().replacing();
    if let Ok(raft) = shared.raft() {
        raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
    }
    shared.set_raft(None)?;
    // openraft's shutdown ends its core, not the task that applies entries nor a snapshot
    // being built: one of them could write the old history's applied index, records or
    // snapshot after the wipe below, and the new instance would start from them.
    let gone = shared.state_machine_gone.lock().ok().and_then(|mut g| g.take());
    if let Some(gone) = gone {
        tokio::time::timeout(STATE_MACHINE_STOPS_WITHIN, gone.wait()).await.map_err(|_| Error::Timeout {
            what: "the replaced Raft instance's state machine to stop".into(),
            ms: STATE_MACHINE_STOPS_WITHIN.as_millis() as u64,
        })?;
    }
    log_store(shared, Arc::default())?.wipe()?;
    StateMachine::wipe(&shared.db, &layout::snapshots(&shared.data_dir))?;
    start_raft(shared).await
}
