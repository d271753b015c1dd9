//! `mnema data rebuild`: setting a core's Raft state aside so the node rejoins its
//! cluster as a new member (see `cluster::rebuild`).
//!
//! Offline, on a stopped node: the RocksDB directory and the snapshots move to
//! `<data_dir>/damaged-<unix ms>/` (kept for inspection, never deleted), and `RAFT_MARK`
//! goes with them. `IDENTITY` stays, so the node keeps its name and cluster; started again,
//! it finds no Raft state while its cluster runs, and rejoins as a new incarnation.

use super::{identity, layout, raft_mark};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Moves the Raft state of `data_dir` (which must belong to `name`) aside; returns where
/// it went (an empty directory when there was nothing, as for a lost volume whose new dir
/// only has its IDENTITY). Local `disc` tables live in the same RocksDB and go with it.
pub fn set_aside(data_dir: &Path, name: &str) -> Result<PathBuf> {
    let ident = identity::read(data_dir)?.ok_or_else(|| {
        Error::config("node.data_dir", format!("{} has no IDENTITY: not a mnema data dir", data_dir.display()))
    })?;
    if ident.node_name != name {
        return Err(Error::NodeNameMismatch {
            dir: data_dir.to_path_buf(),
            recorded: ident.node_name,
            configured: name.to_string(),
        });
    }
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let aside = data_dir.join(format!("damaged-{ms}"));
    std::fs::create_dir(&aside).map_err(|e| Error::io(&aside, e))?;
    for from in [layout::db(data_dir), layout::snapshots(data_dir), raft_mark::path(data_dir)] {
        if from.exists() {
            let Some(file) = from.file_name() else { continue };
            let to = aside.join(file);
            std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    identity::sync_dir(data_dir)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_sets_its_state_aside_and_identity_stays() {
        let dir = tempfile::tempdir().unwrap();
        identity::check_or_create(dir.path(), "n1@h", 1, "c").unwrap();
        std::fs::create_dir(layout::db(dir.path())).unwrap();
        std::fs::write(layout::db(dir.path()).join("CURRENT"), b"x").unwrap();
        assert!(matches!(set_aside(dir.path(), "n2@h"), Err(Error::NodeNameMismatch { .. })));
        assert!(layout::db(dir.path()).exists(), "moved for another node name");
        let aside = set_aside(dir.path(), "n1@h").unwrap();
        assert!(!layout::db(dir.path()).exists());
        assert_eq!(std::fs::read(aside.join("db").join("CURRENT")).unwrap(), b"x");
        assert!(identity::read(dir.path()).unwrap().is_some());
    }
}
