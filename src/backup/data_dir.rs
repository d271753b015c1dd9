//! An online copy of a core's data dir: a RocksDB checkpoint (log, vote, applied state and
//! every record, consistent at one point) and the IDENTITY file. Restoring is copying the
//! directory back as the node's data dir; it opens only under the same node name.

use crate::error::{Error, Result};
use crate::runtime::BackupSource;
use crate::storage::layout;
use std::path::{Path, PathBuf};

/// What a backup holds.
#[derive(Clone, Debug)]
pub struct BackupInfo {
    /// Where the copy is.
    pub dir: PathBuf,
    /// The node had applied at least this much when the copy was taken.
    pub applied_index: u64,
    /// Its size on disk.
    pub bytes: u64,
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Copies `node`'s data dir into `dir`, which must not exist or be empty.
pub(crate) fn backup(node: &BackupSource, dir: &Path) -> Result<BackupInfo> {
    if node.is_replicant() {
        return Err(Error::is_replicant(node.name(), "a data dir backup"));
    }
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.next().is_some() {
        return Err(Error::Refused(format!("{} is not empty; back up into a new directory", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let applied_index = node.applied_index();
    node.db().checkpoint(&layout::db(dir))?;
    let ident = node.data_dir().join("IDENTITY");
    std::fs::copy(&ident, dir.join("IDENTITY")).map_err(|e| Error::io(&ident, e))?;
    std::fs::create_dir_all(layout::snapshots(dir)).map_err(|e| Error::io(dir, e))?;
    crate::storage::identity::sync_dir(dir)?;
    Ok(BackupInfo { dir: dir.to_path_buf(), applied_index, bytes: dir_size(dir) })
}
