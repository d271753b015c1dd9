//! The generic engine: Mnesia's model of tables and transactions, over bytes.
//!
//! Not here: RocksDB (see `storage`), Raft (see `raft`), the broker's tables (see `schema`).

pub mod access;
pub mod apply;
pub mod beside;
pub mod catalog;
pub mod declaration;
pub mod declared;
pub mod feed;
pub mod flat_map;
pub mod flat_set;
pub mod flat_table;
pub mod index;
pub mod keys;
pub mod packed_bucket;
pub mod packed_set;
pub mod snapshot_format;
pub mod table;
pub mod topic_trie;
pub mod txn;
pub mod typed;

pub mod members;
pub mod memory;
pub mod range;
pub mod registry;
pub mod requests;

/// Keys and values as the engine hands them out: shared, cheap to clone.
pub type Blob = std::sync::Arc<[u8]>;

/// Hashing for in-memory keys: foldhash (fast, seeded per process) instead of SipHash;
/// keys come from trusted writers through Raft, not from untrusted network input directly.
pub type KeyHasher = foldhash::fast::RandomState;

pub use access::Tables;
pub use catalog::{Catalog, TableIx};
pub use declaration::{CodeRef, Declaration, IndexDecl};
pub use declared::{Declared, NodeSchema};
pub use feed::{Change, ChangeOp, WatchEvent, WatchSpec};
pub use members::MemberEvent;
pub use index::{IndexHit, IndexRange};
pub use range::KeyRange;
pub use table::{
    DEFAULT_SHARD, Extractor, Index, IndexDef, IndexKeys, Kind, Scope, ShardId, Storage, TableDef, ValueRule,
};
pub use txn::{Batch, BatchOutcome, Committed, Op, OpResult, RequestId, Txn, TxnOutcome};
