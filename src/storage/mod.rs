//! Everything on disk: the data dir's identity, the RocksDB instance, the Raft log store,
//! the state machine and its snapshot files. The only module that knows the on-disk
//! layout: what else reads the store goes through `data_snapshot` (records at one applied
//! index), `log_reader` (entries back from the log), `meta` (every key of the `meta` column
//! family) and `records` (`disc_only` reads).
//!
//! Not here: the in-memory tables (`engine::memory`) and any networking.

pub mod identity;
pub mod raft_mark;

#[cfg(feature = "server")]
pub mod apply;
#[cfg(feature = "server")]
pub mod data_snapshot;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod log_reader;
#[cfg(feature = "server")]
pub mod log_store;
#[cfg(feature = "server")]
pub mod meta;
#[cfg(feature = "server")]
pub mod records;
#[cfg(feature = "server")]
pub mod set_aside;
#[cfg(feature = "server")]
pub mod state_machine;
pub mod synced_file;

/// Paths inside a node's data dir.
pub mod layout {
    use std::path::{Path, PathBuf};

    pub fn db(data_dir: &Path) -> PathBuf {
        data_dir.join("db")
    }

    pub fn snapshots(data_dir: &Path) -> PathBuf {
        data_dir.join("snapshots")
    }
}
