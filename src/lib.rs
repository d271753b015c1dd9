//! # mnema
//!
//! An embedded, replicated table store for MQTT brokers: a Rust replacement for
//! Mnesia/Mria as EMQX uses them. Core nodes run Raft (openraft) over RocksDB; every node
//! serves reads from a local in-memory copy; writes are group-committed through the Raft
//! leader and acknowledged once a majority has them on disk. Replicants hold no Raft state:
//! they stream a read-only copy from any core and forward their writes.
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
//! What a broker uses:
//! - [`Node`]: start one per process ([`NodeConfig`], the [`TableDef`]s of its tables),
//!   then [`Txn`]s through [`Node::transact`] and local reads ([`Node::get`], …).
//! - [`schema`]: the broker's tables, declared ([`schema::broker_tables`]) and typed
//!   (routes with wildcard matching, sessions, messages, …), over any [`Tables`].
//! - [`Client`]: a running node over gRPC (what `mnema ctl` uses).
//! - [`Error`]: one variant per case a caller branches on; the same variant locally, from
//!   a forwarded write and from a [`Client`].
//! - Status as typed values: [`NodeStatus`], [`ClusterStatus`], [`ReplicantState`], …
//!
//! See ARCHITECTURE.md for the map of the code.

#![warn(missing_docs)]

/// Modules private to the crate; public (hidden from the docs, no stability promised)
/// with the `test-util` feature, for the crate's own tests and benches, and `fuzzing`,
/// for the fuzz targets.
macro_rules! internal {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(not(any(feature = "test-util", feature = "fuzzing")))]
        mod $name;
        $(#[$attr])*
        #[cfg(any(feature = "test-util", feature = "fuzzing"))]
        #[doc(hidden)]
        #[allow(missing_docs)]
        pub mod $name;
    )*};
}

internal! {
    mod codec;
    mod discovery;
    mod engine;
    mod name;
    mod raft;
    mod replication;
    mod stages;
    mod storage;
    #[cfg(feature = "server")]
    mod cluster;
    #[cfg(feature = "server")]
    mod node;
    #[cfg(feature = "server")]
    mod observe;
    #[cfg(feature = "server")]
    mod rpc;
    #[cfg(feature = "server")]
    mod runtime;
}

pub mod backup;
pub mod config;
mod error;
#[cfg(all(test, feature = "server"))]
mod golden;
pub mod protocol;
pub mod schema;
mod status;

#[cfg(feature = "server")]
mod client;

pub use config::{NodeConfig, Role};
pub use engine::{
    Blob, Change, ChangeOp, CodeRef, Committed, DEFAULT_SHARD, Declaration, Declared, Extractor, Index, IndexDecl,
    IndexDef, IndexHit, IndexKeys, IndexRange, KeyRange, Kind, MemberEvent, Op, OpResult, Scope, ShardId, Storage,
    TableDef, Tables, Txn, ValueRule, WatchEvent, WatchSpec,
};
pub use error::{CodeKind, Error, Result, TransportKind};
pub use name::{NodeName, Peer};
pub use status::{
    ClusterStatus, MemberStatus, NodeStatus, RaftRole, ReplicantState, ReplicantStatus, ShardStatus, Subscriber,
    TableInfo,
};

#[cfg(feature = "server")]
pub use client::{Client, Pipeline, Records};
#[cfg(feature = "server")]
pub use node::{Node, rebuild_data_dir};
#[cfg(feature = "server")]
pub use observe::is_peer_failure_noise;
#[cfg(feature = "server")]
pub use runtime::{MemberWatch, TableHandle, Watch, WatchSnapshot};

#[cfg(feature = "test-util")]
pub mod testing;
