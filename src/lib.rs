//! # mnema
//!
//! An embedded, replicated table store for MQTT brokers: a Rust replacement for
//! Mnesia/Mria as EMQX uses them. Core nodes run Raft (openraft) over RocksDB; every node
//! serves reads from a local in-memory copy; writes are group-committed through the Raft
//! leader and acknowledged once a majority has them on disk.
//!
//! ```no_run
//! # async fn demo() -> mnema::Result<()> {
//! use mnema::{Node, NodeConfig, Txn, schema};
//! let node = Node::start(NodeConfig::new("mnema@127.0.0.1", "/tmp/mnema"), schema::broker_tables()).await?;
//! node.transact(Txn::new().put(schema::RULES, "rule1", r#"{"sql":"SELECT * FROM \"t/#\""}"#)).await?;
//! assert_eq!(node.get(schema::RULES, b"rule1")?.len(), 1);
//! node.shutdown().await
//! # }
//! ```
//!
//! See ARCHITECTURE.md for the map of the code.

pub mod backup;
pub mod codec;
pub mod config;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod name;
pub mod raft;
pub mod replication;
pub mod schema;
pub mod status;
pub mod storage;

#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod node;
#[cfg(feature = "server")]
pub mod rpc;
#[cfg(feature = "server")]
pub mod runtime;

pub use config::{NodeConfig, Role};
pub use engine::{Committed, Kind, Op, OpResult, Scope, Storage, TableDef, Txn};
pub use error::{Error, Result};
pub use name::{NodeName, Peer};
#[cfg(feature = "server")]
pub use node::Node;
