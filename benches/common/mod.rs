//! Shared set-up for the benches: a cluster of cores on loopback in this process.

#![allow(dead_code)]

use mnema::config::DiscoveryStrategy;
use mnema::{Kind, Node, NodeConfig, Storage, TableDef};
use std::time::Duration;

pub fn tables() -> Vec<TableDef> {
    let mut t = mnema::schema::broker_tables();
    t.push(TableDef::replicated("kv", Kind::Set, Storage::Disc));
    t
}

fn free_base(n: u16) -> u16 {
    for base in (30_000u16..60_000).step_by(97) {
        if (1..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free ports");
}

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub names: Vec<String>,
    pub base: u16,
}

/// Starts `n` cores with static seeds and waits (bounded) for a leader.
pub async fn cluster(n: u16) -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for replicants numbered after the cores.
    let base = free_base(n + 4);
    let names: Vec<String> = (1..=n).map(|i| format!("b{i}@127.0.0.1")).collect();
    let mut nodes = Vec::new();
    for name in &names {
        let mut c = NodeConfig::new(name, dir.path().join(name));
        c.node.base_port = base;
        c.cluster.discovery_strategy = DiscoveryStrategy::Static;
        c.cluster.static_.seeds = names.clone();
        c.raft.snapshot_after_entries = 100_000;
        nodes.push(Node::start(c, tables()).await.expect("start"));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !nodes.iter().any(|n| n.is_leader()) {
        assert!(std::time::Instant::now() < deadline, "no leader within 30s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Bench { dir, nodes, names, base }
}

impl Bench {
    /// Starts replicant `i` (numbered after the cores) streaming from the cores.
    pub async fn replicant(&self, i: u16) -> Node {
        let name = format!("b{i}@127.0.0.1");
        let mut c = NodeConfig::new(&name, self.dir.path().join(&name));
        c.node.base_port = self.base;
        c.node.role = mnema::Role::Replicant;
        c.cluster.discovery_strategy = DiscoveryStrategy::Static;
        c.cluster.static_.seeds = self.names.clone();
        Node::start(c, tables()).await.expect("start replicant")
    }

    /// Waits (bounded) until a replicant is in state `normal`.
    pub async fn wait_normal(node: &Node) {
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while node.replicant_status().is_none_or(|s| s.state != mnema::ReplicantState::Normal) {
            assert!(std::time::Instant::now() < deadline, "replicant not normal within 300s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn leader(&self) -> &Node {
        self.nodes.iter().find(|n| n.is_leader()).expect("leader")
    }
}
