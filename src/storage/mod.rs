//! Everything on disk: the data dir's identity, the RocksDB instance, the Raft log store,
//! the state machine and its snapshot files.
//!
//! Not here: the in-memory tables (`engine::memory`) and any networking.

pub mod identity;
pub mod raft_mark;

#[cfg(feature = "server")]
pub mod apply;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod log_store;
#[cfg(feature = "server")]
pub mod records;
#[cfg(feature = "server")]
pub mod set_aside;
#[cfg(feature = "server")]
pub mod state_machine;

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
