//! A cluster harness for tests and benches, mnema's own and a broker's (feature
//! `test-util`): nodes in this process on loopback, free ports, bounded waits.
//!
//! ```no_run
//! # async fn demo() {
//! use mnema::testing::{Cluster, wait_until};
//! use std::time::Duration;
//! let c = Cluster::start(3).await;
//! let done = c.nodes[0].transact(mnema::Txn::new().put("kv", "k", "v")).await.unwrap();
//! c.wait_applied(done.index).await;
//! let r = c.replicant(4).await;
//! wait_until("the replicant to stream", Duration::from_secs(20), || async {
//!     r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
//! })
//! .await;
//! c.shutdown().await;
//! # }
//! ```

use crate::config::DiscoveryStrategy;
use crate::{Kind, Node, NodeConfig, Role, Storage, TableDef};
use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The cookie every node of the harness uses.
pub const COOKIE: &str = "test-cookie";

/// A base port such that base+1..=base+n are free now. Callers in one process take
/// disjoint ranges; the bind check guards against other processes. Bases stay in
/// 10000..32000, below Linux's ephemeral ports (32768 and up), which the many outgoing
/// connections of a test run would otherwise take between the check and a node's bind.
pub fn free_base(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 2000) * 10;
    loop {
        let next = u32::from(NEXT.fetch_add(n + 2, Ordering::SeqCst));
        let base = (10_000 + (seed + next) % 22_000) as u16;
        let ok = (1..=n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if ok {
            return base;
        }
    }
}

/// The broker's tables and one table of each kind and storage class: `kv` (set, disc),
/// `ram_set`, `bag`, `big` (disc only), `big_bag`, `ordered` (ordered set, ram), and the
/// local `local_disc`.
pub fn test_tables() -> Vec<TableDef> {
    let mut t = crate::schema::broker_tables();
    t.push(TableDef::replicated("kv", Kind::Set, Storage::Disc));
    t.push(TableDef::replicated("ram_set", Kind::Set, Storage::Ram));
    t.push(TableDef::replicated("bag", Kind::Bag, Storage::Disc));
    t.push(TableDef::replicated("big", Kind::Set, Storage::DiscOnly));
    t.push(TableDef::replicated("big_bag", Kind::Bag, Storage::DiscOnly));
    t.push(TableDef::replicated("ordered", Kind::OrderedSet, Storage::Ram));
    t.push(TableDef::local("local_disc", Kind::Set, Storage::Disc));
    t
}

/// Node `i`'s name: `n<i>@127.0.0.1`.
pub fn name(i: u16) -> String {
    format!("n{i}@127.0.0.1")
}

/// The number `i` of a node named by [`name`] (`n<i>@host`).
pub fn number_of(node: &str) -> Option<u16> {
    node.strip_prefix('n')?.split('@').next()?.parse().ok()
}

/// Core `i` of a cluster of `n` static seeds, under `dir`, ports from `base`; fast Raft
/// timings (50 ms heartbeats, 300 ms election timeout).
pub fn config(dir: &Path, base: u16, i: u16, n: u16) -> NodeConfig {
    let mut c = NodeConfig::new(&name(i), dir.join(format!("n{i}")));
    c.node.base_port = base;
    c.node.cookie = COOKIE.into();
    c.cluster.discovery_strategy = DiscoveryStrategy::Static;
    c.cluster.static_.seeds = (1..=n).map(name).collect();
    c.raft.heartbeat_interval = crate::config::Interval::from_millis(50).expect("positive");
    c.raft.election_timeout = crate::config::Interval::from_millis(300).expect("positive");
    c
}

/// Node `i` with the manual strategy: a cluster of its own until it joins one.
pub fn manual_config(dir: &Path, base: u16, i: u16) -> NodeConfig {
    let mut c = config(dir, base, i, 0);
    c.cluster.discovery_strategy = DiscoveryStrategy::Manual;
    c.cluster.static_.seeds.clear();
    c
}

/// Replicant `i` of a cluster of `n` static-seed cores (it streams from those cores).
pub fn replicant_config(dir: &Path, base: u16, i: u16, n: u16) -> NodeConfig {
    let mut c = config(dir, base, i, n);
    c.node.role = Role::Replicant;
    c.replicant.stall_timeout = crate::config::Interval::from_millis(1000).expect("positive");
    c
}

/// Waits for `cond` (checked now and every 20 ms), panicking with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (20 s at most) until `node` has every replicated table of `tables` (the log
/// creates the tables nodes declare once they have a leader).
pub async fn wait_for_tables(node: &Node, tables: &[TableDef]) {
    wait_until(&format!("{} to have its declared tables", node.name()), Duration::from_secs(20), || async {
        let have: Vec<String> = node.tables().into_iter().map(|t| t.declaration.name).collect();
        tables.iter().filter(|t| t.scope == crate::Scope::Replicated).all(|t| have.contains(&t.name))
    })
    .await;
}

/// Cores in this process, in a temporary directory.
pub struct Cluster {
    /// Where the nodes' data dirs are (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The base port: node `i` listens on `base + i`.
    pub base: u16,
    /// The running nodes, in start order.
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `n` static-seed cores with [`test_tables`] and waits for a leader that all of
    /// them know.
    pub async fn start(n: u16) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    /// As [`Cluster::start`], each node's config changed by `tweak` first.
    pub async fn start_with(n: u16, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        Self::start_declaring(n, test_tables(), tweak).await
    }

    /// As [`Cluster::start_with`], every node declaring `tables` instead of [`test_tables`].
    pub async fn start_declaring(n: u16, tables: Vec<TableDef>, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        // Room for replicants numbered after the cores.
        let base = free_base(n + 3);
        let mut nodes = Vec::new();
        for i in 1..=n {
            let mut c = config(dir.path(), base, i, n);
            tweak(&mut c);
            nodes.push(Node::start(c, tables.clone()).await.expect("start node"));
        }
        let c = Cluster { dir, base, nodes };
        c.wait_leader().await;
        for n in &c.nodes {
            wait_for_tables(n, &tables).await;
        }
        c
    }

    /// Waits (20 s at most) until every node has every replicated table of
    /// [`test_tables`]: the log creates what the nodes declare once they have a leader.
    pub async fn wait_tables(&self) {
        for n in &self.nodes {
            wait_for_tables(n, &test_tables()).await;
        }
    }

    /// Waits (20 s at most) for a leader that every node knows.
    pub async fn wait_leader(&self) {
        wait_until("a leader known to every node", Duration::from_secs(20), || async {
            let leaders: Vec<Option<String>> = self.nodes.iter().map(|n| n.status().leader).collect();
            leaders[0].is_some() && leaders.iter().all(|l| *l == leaders[0])
        })
        .await;
    }

    /// The index in [`Cluster::nodes`] of the leader.
    pub fn leader(&self) -> usize {
        self.nodes.iter().position(|n| n.is_leader()).expect("a leader")
    }

    /// The index in [`Cluster::nodes`] of a follower.
    pub fn follower(&self) -> usize {
        self.nodes.iter().position(|n| !n.is_leader()).expect("a follower")
    }

    /// Waits (20 s at most per node) until every node has applied `index`.
    pub async fn wait_applied(&self, index: u64) {
        for n in &self.nodes {
            n.wait_applied(index, Duration::from_secs(20)).await.expect("node applies index");
        }
    }

    /// Starts replicant `i` (numbered after the cores) streaming from this cluster's cores.
    pub async fn replicant(&self, i: u16) -> Node {
        let cores = self.nodes.iter().filter(|n| n.role() == Role::Core).count() as u16;
        Node::start(replicant_config(self.dir.path(), self.base, i, cores), test_tables())
            .await
            .expect("start replicant")
    }

    /// Stops node `i` (named by [`name`]) and takes it out of [`Cluster::nodes`].
    pub async fn stop_node(&mut self, i: u16) {
        let pos = self.nodes.iter().position(|n| n.name() == name(i)).unwrap_or_else(|| panic!("n{i} is not running"));
        self.nodes.remove(pos).shutdown().await.unwrap_or_else(|e| panic!("stopping n{i}: {e}"));
    }

    /// Stops every node; returns the directory (kept until dropped) for a look inside.
    pub async fn shutdown(self) -> tempfile::TempDir {
        for n in self.nodes {
            n.shutdown().await.expect("shutdown");
        }
        self.dir
    }
}

/// The table files (SSTs) of the column family `cf` (`log`, `meta`, `data` or `local`) of
/// the stopped store `db` (a node's `db/` directory), as RocksDB lists them.
pub fn table_files(db: &Path, cf: &str) -> crate::Result<Vec<std::path::PathBuf>> {
    use crate::storage::db::storage_err;
    let opts = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&opts, db).map_err(|e| storage_err("list column families", e))?;
    let store = rocksdb::DB::open_cf_for_read_only(&opts, db, &names, false)
        .map_err(|e| storage_err(&format!("open {} read-only", db.display()), e))?;
    let files = store.live_files().map_err(|e| storage_err("list table files", e))?;
    Ok(files
        .into_iter()
        .filter(|f| f.column_family_name == cf)
        .map(|f| db.join(f.name.trim_start_matches('/')))
        .collect())
}

/// The routes table's matching on a held view, as the typed module runs it (for the
/// benches: the functions themselves take crate-private types and are not public).
pub mod routes_raw {
    use crate::engine::memory::MemState;
    use crate::engine::{Blob, TableIx};
    use crate::schema::routes::Route;

    /// Calls `found` with the filter and destination of every route matching `topic`.
    pub fn for_each_match(
        view: &MemState,
        ix: TableIx,
        topic: &str,
        found: impl FnMut(&[u8], &Blob),
    ) -> crate::Result<()> {
        crate::schema::routes::for_each_match(view, ix, topic, found)
    }

    /// The routes matching `topic`, decoded.
    pub fn match_routes(view: &MemState, ix: TableIx, topic: &str) -> crate::Result<Vec<Route>> {
        crate::schema::routes::match_routes(view, ix, topic)
    }

    /// The routes to `node`, through the table's `by_node` index.
    pub fn routes_of_node(view: &MemState, ix: TableIx, node: &str) -> crate::Result<Vec<(Blob, Blob)>> {
        crate::schema::routes::routes_of_node(view, ix, node)
    }
}
