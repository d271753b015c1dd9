//! Backup and restore: JSON export / import of the replicated tables, and online copies
//! of a core's data dir.
//!
//! - `format`: the export document, its streaming writer and its streaming reader, which
//!   checks a whole file (version, tables, kinds, encodings, record values, count) and
//!   names the line and column of the first problem. No RocksDB, no network (fuzzed).
//! - `export`: a core writes the document from one RocksDB snapshot (one applied index).
//! - `import`: a checked document becomes batches of transactions through Raft.
//! - `data_dir`: an online copy of a core's data dir (RocksDB checkpoint + IDENTITY).
//! - [`Progress`]: records and bytes done, rate and time left, for long operations.

mod progress;

// Private to the crate; public (hidden, no stability promised) for mnema's own tests and
// fuzz targets, as the crate's internal modules are (`internal!` in lib.rs).
internal! {
    #[cfg(feature = "server")]
    mod data_dir;
    #[cfg(feature = "server")]
    mod export;
    mod format;
    #[cfg(feature = "server")]
    mod import;
}

#[cfg(feature = "server")]
pub use data_dir::BackupInfo;
#[cfg(feature = "server")]
pub(crate) use data_dir::backup as backup_data_dir;
#[cfg(feature = "server")]
pub use export::temp_beside;
#[cfg(feature = "server")]
pub(crate) use export::{export_file, export_to};
pub use format::{Header, Summary};
#[cfg(feature = "server")]
pub(crate) use import::import_file as import_catalog;
#[cfg(feature = "server")]
pub use import::{Mode, Submit};
pub use progress::Progress;

/// Reads and checks the whole export file `path` against `tables` (a node's table
/// declarations); writes nothing. The error names the line and column of the first problem.
#[cfg(feature = "server")]
pub fn check_file(path: &std::path::Path, tables: Vec<crate::TableDef>) -> crate::Result<Summary> {
    import::check_file(path, &crate::engine::Catalog::new(tables)?)
}

/// Checks the export file `path` whole against `tables`, then writes it through `to` (a
/// [`crate::Client`] of a core, say) in batches of transactions; returns what it held.
#[cfg(feature = "server")]
pub async fn import_file<S: Submit>(
    path: &std::path::Path,
    tables: Vec<crate::TableDef>,
    mode: Mode,
    to: &mut S,
    progress: &mut Progress,
) -> crate::Result<Summary> {
    let catalog = std::sync::Arc::new(crate::engine::Catalog::new(tables)?);
    import::import_file(path, catalog, mode, to, progress).await
}
