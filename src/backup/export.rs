//! Export on a core: every replicated table, read from one RocksDB snapshot, so the file
//! is exactly the state at the applied index its header records.

use super::format::{DocWriter, Header};
use super::progress::Progress;
use crate::engine::keys::{split_record, split_table, table_prefix};
use crate::error::{Error, Result};
use crate::runtime::BackupSource;
use crate::storage::data_snapshot::DataSnapshot;
use std::io::Write;
use std::path::Path;

/// Writes the document to `out`; returns the sink, the header and the record count.
pub(crate) fn export_to<W: Write>(node: &BackupSource, out: W, progress: &mut Progress) -> Result<(W, Header, u64)> {
    if node.is_replicant() {
        return Err(Error::is_replicant(node.name(), "export"));
    }
    let snap = DataSnapshot::take(node.db());
    let header = Header {
        applied_index: snap.applied_index()?,
        node: node.name().to_string(),
        cluster: node.cluster_config().name.clone(),
        cluster_id: node.cluster_id(),
        exported_at_ms: crate::schema::time::now_ms(),
        config: serde_json::to_value(node.cluster_config()).map_err(|e| Error::Encode { what: "the cluster config".into(), reason: e.to_string() })?,
    };
    let werr = |e: std::io::Error| Error::Storage(format!("write export: {e}"));
    let mut w = DocWriter::new(out, &header).map_err(werr)?;
    // Every table of the catalog at the snapshot's index, empty ones too (an import
    // creates them), each read as its own key range.
    for decl in snap.catalog()?.values() {
        w.table(decl).map_err(werr)?;
        snap.for_each_with_prefix(&table_prefix(&decl.name), |k, v| {
            let (_, rest) = split_table(k)?;
            let (key, value) = split_record(decl.kind, rest, v)?;
            w.record(key, value).map_err(werr)?;
            progress.add(1, (key.len() + value.len()) as u64);
            Ok(true)
        })?;
    }
    let (out, n) = w.finish().map_err(werr)?;
    progress.finish();
    Ok((out, header, n))
}

/// Exports to `path` atomically: a temp file beside it, synced, then renamed.
pub(crate) fn export_file(node: &BackupSource, path: &Path, progress: &mut Progress) -> Result<(Header, u64)> {
    let tmp = temp_beside(path);
    let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let f = crate::storage::synced_file::SyncingWriter::new(f);
    let res = export_to(node, std::io::BufWriter::with_capacity(1 << 20, f), progress);
    let (buf, header, n) = match res {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let f = buf.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
    f.finish().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok((header, n))
}

/// `dir/.name.tmp-<pid>`: same file system as `path`, so the rename is atomic.
pub fn temp_beside(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
