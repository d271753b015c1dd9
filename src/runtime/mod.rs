//! The running node, under every role: its store, in-memory tables, Raft instance and
//! peers, and the read and write paths that `cluster`, `replication`, `schema`, `backup`
//! and `node` use (none of which this module imports).
//!
//! Reads come from the local in-memory copy (or RocksDB for `disc_only` tables) and never
//! leave the node. Writes of replicated tables go through the group-commit
//! [`proposer`] to the leader (forwarded over gRPC from a follower), and return once this
//! node has applied them, so a read after a write on the same node sees it.

// The parts, one job each (this file: the `Runtime` struct and its small accessors).
mod access; // the runtime as `engine::Tables`
mod backup_source; // the backup feature's handle on the node
mod campaign; // when a core campaigns: after the lease, a fresh draw and a pre-vote
mod catalog; // tables created and dropped through the log
mod cluster_room; // the cluster feature's handles on the node
mod handle; // `TableHandle`: typed access to one table
mod instruments; // counters and histograms for /metrics
mod following; // a replicant's handle on the node
mod lifecycle; // open, tasks, shutdown, failure
mod log_serving; // the log server's handle on the node
mod observing; // the HTTP endpoint's handle on the node
pub mod link; // a replicant's link to the cores
mod members; // membership events
pub mod proposer; // the group commit
mod progress; // the Raft state as this node sees it: leader, applied, committed
mod raft_setup; // starting and resetting Raft
mod read; // the read path, linearizable reads
mod ready; // readiness
mod status; // node status, schema checks against peers
mod tables_room; // the typed table modules' handle on the node
mod watcher; // change-feed watches
mod write; // the write path

pub(crate) use catalog::keep_declared_tables;
pub(crate) use lifecycle::Lent;
pub use handle::TableHandle;
pub use instruments::Instruments;
pub(crate) use members::watch_peers;
pub use members::MemberWatch;
pub(crate) use read::Place;
pub use watcher::{Watch, WatchSnapshot};
pub(crate) use backup_source::BackupSource;
pub(crate) use cluster_room::{ClusterRoom, ServiceRoom};
pub(crate) use following::{Following, Published};
pub(crate) use log_serving::LogServing;
pub(crate) use observing::{Observed, Observing};
pub(crate) use tables_room::{TablesRoom, TablesTask};

use crate::config::{DiscoveryStrategy, Validated};
use crate::engine::feed::FeedRing;
use crate::engine::members::MemberFeed;
use crate::engine::memory::MemStore;
use crate::engine::NodeSchema;
use crate::error::{Error, Result};
use crate::raft::slot::RaftSlot;
use crate::raft::types::Raft;
use crate::rpc::client::Peers;
use crate::storage::db::Db;
use crate::storage::log_store::RetentionPins;
use crate::storage::identity;
use link::Link;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// State shared by the node's tasks and gRPC services.
pub struct Runtime {
    cfg: Validated,
    data_dir: PathBuf,
    /// Before the in-memory state: fields drop in order, so the store closes before the
    /// tables and the feed are freed (`Node::shutdown` waits for the one, not the other).
    db: Db,
    /// The tables it declared and the code it registered.
    schema: Arc<NodeSchema>,
    /// Replicated tables, with the catalog they were applied under.
    mem: Arc<MemStore>,
    /// The change feed: what each applied entry changed (see `engine::feed`).
    feed: Arc<FeedRing>,
    /// Membership events (see `engine::members`).
    members: Arc<MemberFeed>,
    /// Local tables; writers serialise on `local_writer`.
    local: Arc<MemStore>,
    local_writer: Mutex<()>,
    applied_tx: Arc<watch::Sender<u64>>,
    raft: Arc<RaftSlot>,
    peers: Peers,
    /// Frames connections for the writes this node forwards (`write::forward`).
    forwards: crate::raft::frame_client::Pool,
    /// The cluster this node belongs to (recorded in IDENTITY; changes on join).
    cluster_id: crate::rpc::auth::ClusterId,
    proposer: mpsc::Sender<proposer::Pending>,
    /// Cancelled when the node shuts down; every background task ends on it.
    stop: CancellationToken,
    /// Every task the node spawned, awaited by shutdown.
    tasks: TaskTracker,
    /// Log entries held for replication streams: the replication feature's pins
    /// (`replication::streams`), lent for the log store's purge.
    pins: RetentionPins,
    /// The commit index as this core knows it.
    committed_tx: Arc<watch::Sender<u64>>,
    /// The replicants streaming from this core, as the replication feature registers them
    /// (`replication::streams`): read for the status and the version gate.
    streamed: Arc<dyn StreamedTo>,
    /// A replicant's link to the cores (`None` on a core).
    link: Option<Arc<Link>>,
    /// This process's request-id client number, and the next sequence number.
    request_client: u64,
    request_seq: AtomicU64,
    /// Writes sent again after an unknown outcome (for status and tests).
    write_retries: AtomicU64,
    /// Counters and histograms for `/metrics`.
    instruments: Instruments,
    /// Resolves once the state machine of the current Raft instance is gone: a reset waits
    /// for it before it wipes what that state machine writes (see `raft_setup::reset_raft`).
    state_machine_gone: Mutex<Option<crate::storage::state_machine::Gone>>,
    /// Set when this core's Raft stopped by itself (a storage failure such as a full disk:
    /// `NodeFailed`), or was stopped on damage found in its store (`DamagedState`): the
    /// node can no longer take part and must be restarted, or rebuilt ([`Node::failed`]).
    failure: watch::Sender<Option<Error>>,
    /// This core's `RAFT_MARK` writer, one for every Raft instance it runs.
    mark: Arc<crate::storage::raft_mark::MarkWriter>,
    /// Whether a clean stop flushes the memtables (always, but in tests of a WAL that
    /// still holds data at a stop, as after a failed flush: [`Runtime::keep_wal_at_stop`]).
    flush_at_stop: std::sync::atomic::AtomicBool,
}

impl Runtime {    /// The node's RocksDB, for the crate's tests (a look at what is stored).
    #[cfg(any(test, feature = "test-util"))]
    pub fn store(&self) -> &Db {
        &self.db
    }

    /// Makes this core's clean stop leave its memtables unflushed, as a failed flush
    /// would: the WAL still holds data at the next start (tests of damage to it).
    #[cfg(any(test, feature = "test-util"))]
    pub fn keep_wal_at_stop(&self) {
        self.flush_at_stop.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes sent again after an unknown outcome since start.
    #[cfg(any(test, feature = "test-util"))]
    pub fn write_retries(&self) -> u64 {
        self.write_retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Channels to the peers (tests cut and heal them: `partition`, `heal`).
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The shared cell of this node's cluster id, for the Raft calls' cluster check.
    pub(crate) fn cluster_id_cell(&self) -> crate::rpc::auth::ClusterId {
        self.cluster_id.clone()
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether this core refuses vote requests (see [`RaftSlot::refuses_votes`]).
    pub fn refuses_votes(&self) -> bool {
        self.raft.refuses_votes()
    }

    /// Sets whether this core refuses vote requests and campaigns (see `cluster::rebuild`).
    pub(crate) fn set_refuse_votes(&self, refuse: bool) {
        self.raft.set_refuse_votes(refuse)
    }

    /// The slot of this core's Raft instance, for the Raft gRPC service.
    pub(crate) fn raft_slot(&self) -> Arc<RaftSlot> {
        self.raft.clone()
    }

    /// Records that this node now belongs to `id`.
    pub(crate) fn adopt_cluster_id(&self, id: &str) -> Result<()> {
        identity::set_cluster_id(&self.data_dir, id)?;
        *self.cluster_id.write().map_err(|_| Error::Shutdown)? = id.to_string();
        Ok(())
    }
}

/// Read-only access for the features: what the node was started with and the parts it
/// holds. The fields stay private (ARCHITECTURE.md, "Layering"): a feature asks
/// for what it needs through a method, and the state it owns is its own.
impl Runtime {
    /// The node's validated configuration (immutable for the node's life).
    pub(crate) fn config(&self) -> &Validated {
        &self.cfg
    }

    /// The node's data dir.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The node's RocksDB (reads of the log and of `disc` tables, backups, metrics).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The tables this node declared and the code it registered.
    pub(crate) fn schema(&self) -> &Arc<NodeSchema> {
        &self.schema
    }

    /// A replicant's link to the cores (`None` on a core).
    pub(crate) fn link(&self) -> Option<&Arc<Link>> {
        self.link.as_ref()
    }

    /// Tells the membership feed an event the cluster feature saw (this node left).
    pub(crate) fn tell_member_event(&self, event: crate::engine::MemberEvent) {
        self.members.send(event)
    }
}

/// The replicants streaming from a core, as the replication feature that registers them
/// (`replication::streams::Streams`) lets the runtime read them.
pub(crate) trait StreamedTo: Send + Sync {
    /// The replicants streaming from this core now.
    fn replicants(&self) -> Vec<crate::status::Subscriber>;
}

/// What the cluster feature asks of the replicants streaming from this core.
impl Runtime {
    /// Whether replicant `name` streams from this core now.
    pub(crate) fn streams_to(&self, name: &str) -> bool {
        self.streamed.replicants().iter().any(|s| s.name == name)
    }
}

impl Runtime {
    pub(crate) fn set_raft(&self, raft: Option<Raft>) -> Result<()> {
        self.raft.set(raft).map(|_| ())
    }

    /// Follows this node's applied index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    pub(crate) fn applied_sender(&self) -> Arc<watch::Sender<u64>> {
        self.applied_tx.clone()
    }

    pub fn strategy(&self) -> DiscoveryStrategy {
        self.cfg.config.cluster.discovery_strategy
    }
}

/// Wipes and restarts this node's Raft (see `cluster::membership::join`).
pub(crate) async fn raft_setup_reset(shared: &Arc<Runtime>) -> Result<()> {
    raft_setup::reset_raft(shared).await
}
