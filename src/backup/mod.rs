//! Backup and restore: JSON export / import of the replicated tables, and online copies
//! of a core's data dir.
//!
//! - [`format`](mod@format): the export document, its streaming writer and its streaming reader, which
//!   checks a whole file (version, tables, kinds, encodings, record values, count) and
//!   names the line and column of the first problem. No RocksDB, no network (fuzzed).
//! - `export`: a core writes the document from one RocksDB snapshot (one applied index).
//! - `import`: a checked document becomes batches of transactions through Raft.
//! - `data_dir`: an online copy of a core's data dir (RocksDB checkpoint + IDENTITY).
//! - [`progress`]: records and bytes done, rate and time left, for long operations.

pub mod format;
pub mod progress;

#[cfg(feature = "server")]
pub mod data_dir;
#[cfg(feature = "server")]
pub mod export;
#[cfg(feature = "server")]
pub mod import;
