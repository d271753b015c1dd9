//! The composition root: [`Node::start`] opens the runtime and starts the parts the
//! node's role needs (the gRPC server, cluster formation, the replicant's follower, the
//! leader's sweeps, etcd registration); [`Node::shutdown`] stops them. The read and write
//! paths themselves live in `crate::runtime`.

mod server;

use crate::cluster::state::ClusterState;
use crate::config::{NodeConfig, Role};
use crate::engine::{Blob, Committed, Declared, NodeSchema, OpResult, TableDef, Txn};
use crate::error::{Error, Result};
use crate::name::Peer;
use crate::status::{ClusterStatus, NodeStatus, ReplicantStatus};
use crate::replication::streams::Streams;
use crate::runtime::{Lent, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A node of a mnema cluster: a handle on it, cheap to clone and share across tasks.
///
/// ```no_run
/// # async fn demo() -> mnema::Result<()> {
/// use mnema::{Node, NodeConfig, Txn, schema};
/// let node = Node::start(NodeConfig::new("mnema@127.0.0.1", "/tmp/mnema"), schema::broker_tables()).await?;
/// let committed = node.transact(Txn::new().put(schema::RULES, "r1", r#"{"sql":"SELECT 1"}"#)).await?;
/// assert!(node.applied_index() >= committed.index);
/// assert!(node.get_one(schema::RULES, b"r1")?.is_some());
/// node.shutdown().await
/// # }
/// ```
///
/// Dropping every handle without [`Node::shutdown`] leaves its tasks running until the
/// tokio runtime ends.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Runtime>,
    /// The cluster feature's own state: the membership lock, the list it proposes while
    /// forming, whether the data dir had an IDENTITY before this start.
    cluster: Arc<ClusterState>,
}

impl Node {
    /// Opens the data dir, starts serving, and joins or forms the cluster as configured.
    ///
    /// `tables` are the tables this node declares (a `Vec<TableDef>`, or a [`Declared`]
    /// that also registers code for tables created at runtime). Its local tables are its
    /// own; its replicated tables are created through the log when the cluster lacks them
    /// (a rolling upgrade may add tables), and a table the cluster has must be declared the
    /// same ([`Error::SchemaMismatch`]).
    pub async fn start(config: NodeConfig, tables: impl Into<Declared>) -> Result<Node> {
        let cfg = config.validate()?;
        let schema = NodeSchema::new(tables.into(), cfg.name.as_str())?;
        followed_shards_hold_tables(&cfg, &schema)?;
        // Everything that can be refused without touching the data dir is checked first:
        // the TLS files, and the listen address (a port in use stops the node here).
        server::builder(&cfg)?;
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| Error::config("node.listen", format!("cannot listen on {}: {e}", cfg.listen)))?;
        let http = match &cfg.config.http.listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::config("http.listen", format!("cannot listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        // The replication feature's state: lent to the runtime, kept by the log server.
        let streams = Arc::new(Streams::default());
        let lent = Lent { pins: streams.pins(), streamed: streams.clone() };
        let (rt, had_identity) = Runtime::open(cfg, schema, lent).await?;
        let cluster = ClusterState::new(had_identity);
        let node = Node { shared: rt.clone(), cluster: cluster.clone() };
        // A table this node declares otherwise than the log it holds has it: no start.
        if let Err(e) = rt.schema().check_against(&rt.view().catalog) {
            let _ = node.shutdown().await;
            return Err(e);
        }
        rt.spawn(server::serve(rt.clone(), cluster.clone(), streams, listener));
        if let Some(http) = http {
            rt.spawn(crate::observe::serve(rt.observing(), http, rt.stop_token()));
        }
        // etcd discovery: registered for as long as the node runs, whatever its role.
        let etcd_lease = match rt.config().etcd.clone() {
            Some(etcd) => {
                let (tx, rx) = watch::channel(None);
                let me = crate::discovery::EtcdRegistration { addr: rt.config().advertise.clone(), role: rt.config().role };
                rt.spawn(crate::discovery::etcd::keep_registered(
                    etcd,
                    rt.config().name.to_string(),
                    me,
                    tx,
                    rt.stop_token(),
                ));
                Some(rx)
            }
            None => None,
        };
        match rt.following() {
            Some((following, link)) => rt.spawn(crate::replication::replicant::run(following, link)),
            None => {
                if let Err(e) = crate::cluster::bootstrap::form(&rt.cluster_room(), &cluster, etcd_lease).await {
                    // Nothing keeps running behind a start that failed.
                    let _ = node.shutdown().await;
                    return Err(e);
                }
                rt.spawn(crate::schema::expiry::run(rt.tables_task(), rt.config().expiry_sweep_interval()));
                if let Some(after) = rt.config().autoclean() {
                    rt.spawn(crate::cluster::autoclean::run(rt.cluster_room(), cluster.clone(), after));
                }
            }
        }
        rt.spawn(crate::runtime::keep_declared_tables(rt.clone()));
        rt.spawn(crate::runtime::watch_peers(rt.clone()));
        tracing::info!(name = %rt.config().name, addr = %rt.config().advertise, "node started");
        Ok(node)
    }

    /// The `routes` table of this node: adds, deletes and wildcard matches.
    pub fn routes(&self) -> crate::schema::routes::Routes<'_> {
        crate::schema::routes::Routes::new(self.shared.tables_room())
    }

    /// This node's name, `name@host`.
    pub fn name(&self) -> &str {
        self.shared.config().name.as_str()
    }

    /// This node's id (derived from its name).
    pub fn node_id(&self) -> u64 {
        self.shared.config().node_id
    }

    /// The address other nodes reach this one at.
    pub fn addr(&self) -> &str {
        &self.shared.config().advertise
    }

    /// Whether this node is a core or a replicant.
    pub fn role(&self) -> Role {
        self.shared.config().role
    }

    /// Writes a transaction of replicated tables. Returns once a majority of cores has it
    /// durably and this node has applied it, so a read here right after sees it.
    pub async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.shared.transact(txn).await
    }

    /// Writes a transaction of local tables, on this node only (synced before it returns).
    pub fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        self.shared.transact_local(txn)
    }

    /// The values under `key` in `table`, read locally: at most one for a set or ordered
    /// set, every value for a bag.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        self.shared.get(table, key)
    }

    /// The value under `key` in a set or ordered set, read locally. A bag is refused
    /// ([`Error::InvalidTxn`]): it may hold many values under one key.
    pub fn get_one(&self, table: &str, key: &[u8]) -> Result<Option<Blob>> {
        self.shared.get_one(table, key)
    }

    /// A handle on `table` for fast local reads: the table is looked up once, here
    /// ([`Error::UnknownTable`](crate::Error::UnknownTable) if it is not declared), not on every read.
    pub fn table(&self, table: &str) -> Result<crate::runtime::TableHandle> {
        crate::runtime::TableHandle::new(&self.shared, table)
    }

    /// The records `range` selects through `table`'s secondary index `index`, read
    /// locally, in index order: the index keys within its bounds, then by record key and
    /// value ([`Error::UnknownIndex`] if the table has no such index).
    ///
    /// ```no_run
    /// # fn f(node: mnema::Node) -> mnema::Result<()> {
    /// use mnema::{IndexRange, schema};
    /// // The sessions a node owns, 100 at a time.
    /// let mut page = IndexRange::exact("mnema1@host").limit(100);
    /// loop {
    ///     let hits = node.index(schema::SESSIONS, schema::sessions::BY_OWNER, &page)?;
    ///     for hit in &hits { /* hit.key: the client id; hit.value: the session */ }
    ///     match hits.last() {
    ///         Some(last) if hits.len() == 100 => page = page.after(last),
    ///         _ => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn index(&self, table: &str, index: &str, range: &crate::engine::IndexRange) -> Result<Vec<crate::engine::IndexHit>> {
        self.shared.index(table, index, range)
    }

    /// Watches `spec`'s tables: one [`WatchEvent`](crate::WatchEvent) per committed log
    /// entry that changed them, in log order, with the changes of the transactions that
    /// applied (a rejected transaction, a failed condition, a `put_if_absent` that found
    /// its key change nothing), the same sequence on every node. From `spec.from_index`
    /// (an index not applied yet is waited for), or the next entry this node applies.
    /// [`Error::Compacted`] when this node's feed no longer holds that index (it keeps the
    /// last `feed.ring_entries` entries with changes), or later when the watcher falls that
    /// far behind: read a snapshot and watch again ([`Node::snapshot_and_watch`]).
    /// [`Error::UnknownTable`], [`Error::LocalTable`], or [`Error::ShardNotFollowed`] on a
    /// replicant, for a table it cannot watch.
    ///
    /// ```no_run
    /// # async fn f(node: mnema::Node) -> mnema::Result<()> {
    /// use mnema::{ChangeOp, WatchSpec, schema};
    /// let mut configs = node.watch(WatchSpec::table(schema::CONFIGS))?;
    /// while let Some(event) = configs.next().await {
    ///     for change in event?.changes {
    ///         if let ChangeOp::Put(value) = &change.op {
    ///             println!("{:?} = {} bytes", change.key, value.len());
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, spec: crate::WatchSpec) -> Result<crate::Watch> {
        self.shared.watch(spec)
    }

    /// The records of `spec`'s tables at one applied index, and a watch from the next one:
    /// nothing lost between them, nothing seen twice (see [`Node::watch`]).
    pub fn snapshot_and_watch(&self, spec: crate::WatchSpec) -> Result<(crate::WatchSnapshot, crate::Watch)> {
        self.shared.snapshot_and_watch(spec)
    }

    /// The membership events this node sees from now on ([`MemberEvent`](crate::MemberEvent)):
    /// cores joining, promoted and removed, in log order, as every core and replicant
    /// applies the membership changes; and, best-effort, this node leaving its cluster, the
    /// cores it cannot reach and reaches again (probed every second), replicants
    /// connecting to and leaving this core, and the leader it knows changing.
    ///
    /// ```no_run
    /// # async fn f(node: mnema::Node) {
    /// use mnema::MemberEvent;
    /// let mut members = node.watch_members();
    /// while let Some(event) = members.next().await {
    ///     if let MemberEvent::Down { name } = event {
    ///         println!("{name} is not answering: clean its clients' channels");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn watch_members(&self) -> crate::MemberWatch {
        self.shared.watch_members()
    }

    /// Creates the replicated table `def` through the log: one entry, applied at the same
    /// index on every core and replicant, kept across restarts, in snapshots and exports.
    /// Creating an identical table again is a no-op ([`OpResult::Exists`]); a table of that
    /// name declared otherwise is [`Error::SchemaMismatch`]. Its rule and extractors must
    /// be code every node registered ([`Declared::rule`], [`Declared::extractor`], or a
    /// table it declares): else [`Error::Unregistered`] names a node that lacks it.
    ///
    /// ```no_run
    /// # async fn f(node: mnema::Node) -> mnema::Result<()> {
    /// use mnema::{Kind, Storage, TableDef, Txn};
    /// node.create_table(&TableDef::replicated("audit", Kind::OrderedSet, Storage::Disc)).await?;
    /// node.transact(Txn::new().put("audit", "0001", "created")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_table(&self, def: &TableDef) -> Result<Committed> {
        self.shared.create_table(def).await
    }

    /// Drops the replicated table `name` and every record of it, through the log (on disc
    /// too). A table this node declares is created again, empty, by the next node that
    /// declares it and starts, or writes to it.
    pub async fn drop_table(&self, name: &str) -> Result<Committed> {
        self.shared.drop_table(name).await
    }

    /// The tables of this node: the replicated ones the log has created (as of what this
    /// node applied), then its local ones.
    pub fn tables(&self) -> Vec<crate::status::TableInfo> {
        self.shared.tables()
    }

    /// The page of `table`'s records `range` selects, read locally: keys within its
    /// bounds, in key order (or reversed), after its cursor, at most its limit (see
    /// [`KeyRange`](crate::KeyRange); an ordered set reads its range directly, a set or bag
    /// selects the page from a pass over its records).
    ///
    /// ```no_run
    /// # fn f(node: mnema::Node) -> mnema::Result<()> {
    /// use mnema::KeyRange;
    /// let mut page = KeyRange::prefix("client-").limit(500);
    /// loop {
    ///     let records = node.range(mnema::schema::SESSIONS, &page)?;
    ///     // … show them …
    ///     match records.last() {
    ///         Some(last) if records.len() == 500 => page = page.after(last),
    ///         _ => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn range(&self, table: &str, range: &crate::KeyRange) -> Result<Vec<(Blob, Blob)>> {
        self.shared.range(table, range)
    }

    /// The record with the lowest key of `table` (a bag: its lowest value), read locally.
    pub fn first(&self, table: &str) -> Result<Option<(Blob, Blob)>> {
        Ok(self.shared.range(table, &crate::KeyRange::all().limit(1))?.pop())
    }

    /// The record with the highest key of `table` (a bag: its highest value), read locally.
    pub fn last(&self, table: &str) -> Result<Option<(Blob, Blob)>> {
        Ok(self.shared.range(table, &crate::KeyRange::all().reverse().limit(1))?.pop())
    }

    /// How many records `table` holds here (a bag: key-value pairs).
    pub fn count(&self, table: &str) -> Result<u64> {
        self.shared.count(table)
    }

    /// Every record of `table`, read locally (ordered sets in key order).
    pub fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        self.shared.dump(table)
    }

    /// Records of a set or ordered set whose keys start with `prefix`, read locally
    /// (ordered sets in key order).
    pub fn prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Blob, Blob)>> {
        self.shared.prefix(table, prefix)
    }

    /// A linearizable read: sees every write committed before the call, on any node
    /// (one round trip to the leader, then a local read once this node has caught up).
    pub async fn get_linearizable(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        self.shared.barrier().await?;
        self.shared.get(table, key)
    }

    /// Waits until this node is ready, at most `timeout`: a core knows a leader and has
    /// applied the commit index it knows, a replicant streams (`normal`), and the tables
    /// the node declares are in the log (Mria's `wait_for_tables`). The HTTP `/ready`
    /// answers by the same rule. [`Error::Timeout`] says why it is not.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.shared.wait_ready(timeout).await
    }

    /// Waits until this node has applied every write committed before the call.
    pub async fn barrier(&self) -> Result<()> {
        self.shared.barrier().await
    }

    /// The last log index applied on this node.
    pub fn applied_index(&self) -> u64 {
        self.shared.applied_index()
    }

    /// Waits until this node has applied `index` (a [`Committed::index`], say), at most
    /// `timeout` ([`Error::Timeout`]); [`Error::Shutdown`] if the node stops first.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        self.shared.wait_applied(index, timeout).await
    }

    /// Whether this node is the Raft leader now.
    pub fn is_leader(&self) -> bool {
        self.shared.leads()
    }

    /// This node's status.
    pub fn status(&self) -> NodeStatus {
        self.cluster.node_status(&self.shared.cluster_room())
    }

    /// A replicant's state, upstream core and lag (`None` on a core).
    pub fn replicant_status(&self) -> Option<ReplicantStatus> {
        self.shared.replicant_status()
    }

    /// The cluster as this node sees it: every member asked for its status.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        crate::cluster::status::collect(&self.shared.cluster_room(), &self.cluster).await
    }

    /// The cores of this node's Raft membership: `(voters, learners)` by name.
    pub fn members(&self) -> Result<(Vec<String>, Vec<String>)> {
        let m = self.shared.metrics()?;
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let (mut v, mut l) = (Vec::new(), Vec::new());
        for (id, info) in membership.nodes() {
            if voters.contains(id) { v.push(info.name.clone()) } else { l.push(info.name.clone()) }
        }
        Ok((v, l))
    }

    /// Joins the cluster `target` belongs to, discarding this node's replicated data.
    pub async fn join(&self, target: &Peer) -> Result<()> {
        crate::cluster::membership::join(&self.shared.cluster_room(), &self.cluster, target).await
    }

    /// This node leaves its cluster and becomes a cluster of one (a new cluster id), its
    /// replicated data dropped. Refused when it would leave the rest without a majority
    /// running, unless `force`.
    pub async fn leave(&self, force: bool) -> Result<()> {
        crate::cluster::leave::leave(&self.shared.cluster_room(), &self.cluster, force).await
    }

    /// Removes the member `name` from the cluster (`force-leave`), through the leader.
    /// Refused ([`Error::MajorityAtRisk`]) when the voters left would not have a majority
    /// running, unless `force`.
    pub async fn remove_member(&self, name: &str, force: bool) -> Result<()> {
        crate::cluster::leave::remove_member(&self.shared.cluster_room(), &self.cluster, name, force).await
    }

    /// Writes every replicated table to the export file `path` (a core only), from one
    /// consistent state; returns that state's applied index and the record count.
    pub async fn export(&self, path: &std::path::Path) -> Result<(u64, u64)> {
        let (rt, path) = (self.shared.backup_source(), path.to_path_buf());
        let mut progress = crate::backup::Progress::silent("export");
        let (header, n) = self.shared.spawn_blocking(move || crate::backup::export_file(&rt, &path, &mut progress))
            .await
            .map_err(|e| Error::task("export", e))??;
        Ok((header.applied_index, n))
    }

    /// Checks the export file `path` whole, then writes it through Raft (a core only).
    pub async fn import(&self, path: &std::path::Path, mode: crate::backup::Mode) -> Result<crate::backup::Summary> {
        let mut progress = crate::backup::Progress::silent("import");
        let mut to = self.shared.backup_source();
        let catalog = Arc::new(self.shared.catalog_with_declared());
        crate::backup::import_catalog(path, catalog, mode, &mut to, &mut progress).await
    }

    /// An online copy of this core's data dir in the new directory `dir` (RocksDB
    /// checkpoint and `IDENTITY`): restored by starting a node of the same name on it.
    pub async fn backup_data_dir(&self, dir: &std::path::Path) -> Result<crate::backup::BackupInfo> {
        let (rt, dir) = (self.shared.backup_source(), dir.to_path_buf());
        self.shared.spawn_blocking(move || crate::backup::backup_data_dir(&rt, &dir))
            .await
            .map_err(|e| Error::task("backup", e))?
    }

    /// Resolves when this core's Raft has stopped by itself: a storage failure (a full
    /// disk, an I/O error) that openraft cannot go on after ([`Error::NodeFailed`]), or
    /// damage found in its store while it runs, a table file whose checksum no longer
    /// matches ([`Error::DamagedState`] naming the file: the node stops its Raft rather than
    /// vote and acknowledge from a store it cannot read). The node is then no member any
    /// more: writes fail, it answers no Raft call, and only a restart (once the cause is
    /// fixed; after damage, `mnema data rebuild`) brings it back. `mnema start` exits
    /// non-zero on it so that a supervisor restarts the process; a broker should do the
    /// same. Never resolves on a replicant or on a clean shutdown.
    pub async fn failed(&self) -> Error {
        self.shared.failed().await
    }

    /// Stops serving and shuts Raft down; the data dir stays as it is. When this returns,
    /// every task of the node has ended and, once other handles are dropped, RocksDB is
    /// closed and the data dir can be opened again.
    pub async fn shutdown(self) -> Result<()> {
        self.shared.shutdown().await?;
        // Every task has ended; what may still hold the store is a gRPC call answering
        // (without Raft it ends at once), blocking work it started (an export) and other
        // clones of this handle. RocksDB closes when the last of them goes.
        let closed = self.shared.db().closed();
        let t0 = std::time::Instant::now();
        // The last handle frees the node's memory too (its tables, the change feed's ring):
        // a million records take a third of a second to free (`BENCHMARKS.md`), which no
        // async task should block on and the stop need not wait for. A blocking thread
        // drops it; the store closes first (`Runtime` holds `db` before them), and that is
        // what the stop waits for.
        drop(tokio::task::spawn_blocking(move || drop(self)));
        let closed = tokio::time::timeout(Duration::from_secs(10), closed.wait()).await.map_err(|_| Error::Timeout {
            what: "the store to close (other clones of this Node, or calls in flight, still hold it)".into(),
            ms: 10_000,
        });
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "stop: the store closed");
        closed
    }

    /// The runtime under this handle, for the crate's tests and the `test-util` feature.
    #[cfg(any(test, feature = "test-util"))]
    #[doc(hidden)]
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.shared
    }
}

impl crate::engine::Tables for Node {
    fn node_name(&self) -> &str {
        self.name()
    }

    fn transact(&self, txn: Txn) -> impl std::future::Future<Output = Result<Committed>> + Send {
        self.shared.transact(txn)
    }

    fn transact_local(&self, txn: &Txn) -> Result<Vec<OpResult>> {
        self.shared.transact_local(txn)
    }

    fn get(&self, table: &str, key: &[u8]) -> impl std::future::Future<Output = Result<Vec<Blob>>> + Send {
        std::future::ready(self.shared.get(table, key))
    }

    fn prefix(
        &self,
        table: &str,
        prefix: &[u8],
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(self.shared.prefix(table, prefix))
    }

    fn dump(&self, table: &str) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(self.shared.dump(table))
    }

    fn range(
        &self,
        table: &str,
        range: crate::engine::KeyRange,
    ) -> impl std::future::Future<Output = Result<Vec<(Blob, Blob)>>> + Send {
        std::future::ready(self.shared.range(table, &range))
    }

    fn count(&self, table: &str) -> impl std::future::Future<Output = Result<u64>> + Send {
        std::future::ready(self.shared.count(table))
    }

    fn index(
        &self,
        table: &str,
        index: &str,
        range: crate::engine::IndexRange,
    ) -> impl std::future::Future<Output = Result<Vec<crate::engine::IndexHit>>> + Send {
        std::future::ready(self.shared.index(table, index, &range))
    }
}

/// Each shard a replicant's `replicant.shards` lists must hold a table it declares: a
/// shard holding none is a mistake in the list (checked before the data dir is touched).
fn followed_shards_hold_tables(cfg: &crate::config::Validated, schema: &NodeSchema) -> Result<()> {
    if cfg.role != Role::Replicant {
        return Ok(());
    }
    let shards = &cfg.config.replicant.shards;
    match shards.iter().find(|s| !schema.replicated.iter().any(|d| d.shard == **s)) {
        Some(empty) => Err(Error::config(
            "replicant.shards",
            format!("shard {empty} holds none of this node's replicated tables (listed: {shards:?})"),
        )),
        None => Ok(()),
    }
}

/// `mnema data rebuild`: sets aside this core's Raft state (`db/`, snapshots, `RAFT_MARK`
/// into `<data_dir>/damaged-<ms>/`, kept) and keeps its `IDENTITY`, so that on its next
/// start it rejoins its cluster as a new member. On a lost volume's new, empty data dir it
/// writes the node's `IDENTITY` first. Returns where the old state went. The node must not
/// be running.
pub fn rebuild_data_dir(config: &NodeConfig) -> Result<std::path::PathBuf> {
    let cfg = config.validate()?;
    let initial = cfg.initial_cluster_id(&config.cluster.name, config.cluster.discovery_strategy);
    crate::storage::identity::check_or_create(&config.node.data_dir, cfg.name.as_str(), cfg.node_id, &initial)?;
    crate::storage::set_aside::set_aside(&config.node.data_dir, cfg.name.as_str())
}
