//! The data dir's identity: which node it belongs to, checked before RocksDB is opened.
//!
//! `<data_dir>/IDENTITY` is a small JSON file written once, atomically, when the dir is
//! created. It is read before anything else is touched, so opening a dir under another
//! node name fails with both names and leaves every file as it was.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FILE: &str = "IDENTITY";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub format_version: u32,
    pub node_name: String,
    pub node_id: u64,
    /// The cluster this node belongs to; changes only when it joins another cluster.
    pub cluster_id: String,
    /// Unix milliseconds at creation.
    pub created_at_ms: u64,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the identity of `data_dir`, if it has one.
pub fn read(data_dir: &Path) -> Result<Option<Identity>> {
    let p = path(data_dir);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt("IDENTITY file", format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Checks that `data_dir` belongs to `name`, creating the identity of a new dir.
///
/// A dir that has files but no identity is refused: it was not made by mnema, and
/// adopting it could mix unrelated data.
pub fn check_or_create(data_dir: &Path, name: &str, node_id: u64, cluster_id: &str) -> Result<Identity> {
    open_or_create(data_dir, name, node_id, cluster_id).map(|(id, _)| id)
}

/// [`check_or_create`], also saying whether the identity was created now (the dir had
/// none: a new node, or a lost volume's new dir).
pub fn open_or_create(data_dir: &Path, name: &str, node_id: u64, cluster_id: &str) -> Result<(Identity, bool)> {
    if let Some(id) = read(data_dir)? {
        if id.node_name != name {
            return Err(Error::NodeNameMismatch {
                dir: data_dir.to_path_buf(),
                recorded: id.node_name,
                configured: name.to_string(),
            });
        }
        if id.format_version != FORMAT_VERSION {
            return Err(Error::FormatVersion {
                dir: data_dir.to_path_buf(),
                found: id.format_version,
                supported: FORMAT_VERSION,
            });
        }
        return Ok((id, false));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let non_empty = std::fs::read_dir(data_dir).map_err(|e| Error::io(data_dir, e))?.next().is_some();
    if non_empty {
        return Err(Error::Refused(format!(
            "data dir {} is not empty and has no {FILE} file: it was not created by mnema; use an empty dir",
            data_dir.display()
        )));
    }
    let created_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let id = Identity {
        format_version: FORMAT_VERSION,
        node_name: name.to_string(),
        node_id,
        cluster_id: cluster_id.into(),
        created_at_ms,
    };
    write(data_dir, &id)?;
    Ok((id, true))
}

fn write(data_dir: &Path, id: &Identity) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(id).map_err(|e| Error::Encode { what: "IDENTITY".into(), reason: e.to_string() })?;
    write_atomically(&path(data_dir), &bytes)
}

/// Records that the node now belongs to `cluster_id` (after joining another cluster).
pub fn set_cluster_id(data_dir: &Path, cluster_id: &str) -> Result<()> {
    // Read at start, so gone since: refused, never written afresh.
    let mut id = read(data_dir)?.ok_or_else(|| Error::DamagedState {
        file: path(data_dir),
        reason: "the node's IDENTITY is gone while it runs".into(),
    })?;
    id.cluster_id = cluster_id.to_string();
    write(data_dir, &id)
}

/// Writes `bytes` to `target` via a synced temp file and a rename, then syncs the dir.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = target.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_both_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        check_or_create(&d, "a@h", 1, "c1").unwrap();
        let before = std::fs::read(path(&d)).unwrap();
        let err = check_or_create(&d, "b@h", 2, "c1").unwrap_err().to_string();
        assert!(err.contains("`a@h`") && err.contains("`b@h`"), "{err}");
        assert_eq!(std::fs::read(path(&d)).unwrap(), before);
        assert_eq!(check_or_create(&d, "a@h", 1, "other").unwrap().cluster_id, "c1", "the recorded id wins");
        set_cluster_id(&d, "c2").unwrap();
        assert_eq!(read(&d).unwrap().unwrap().cluster_id, "c2");
    }

    #[test]
    fn foreign_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("something"), b"x").unwrap();
        assert!(check_or_create(dir.path(), "a@h", 1, "c").is_err());
    }
}
