//! Import: check the whole file first, then write it through Raft in batches.
//!
//! `merge` puts every record of the file (a set key takes the file's value, a bag gains
//! the file's values) and keeps everything else; `replace` first clears each table the
//! file has (in the same transaction as that table's first batch). Tables not in the file
//! are never touched. A table of the file the target lacks is created through its log
//! first (a version 2 file declares its tables). Nothing is written unless the whole file
//! checks.

use super::format::{self, Event, Summary};
use super::progress::Progress;
use crate::engine::{Catalog, Declaration, Op, Txn};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// How an import treats what the cluster already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Records are added to (or replace) those present; others stay.
    Merge,
    /// Each table in the file is cleared first, then filled from the file.
    Replace,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "merge" => Ok(Mode::Merge),
            "replace" => Ok(Mode::Replace),
            other => Err(Error::config("--mode", format!("`{other}`: use merge or replace"))),
        }
    }
}

/// Most ops and bytes per transaction.
const BATCH_OPS: usize = 2000;
const BATCH_BYTES: usize = 1 << 20;

/// Where batches go: a node in this process, or a node over gRPC (`mnema ctl`).
pub trait Submit {
    /// Writes one transaction of imported records.
    fn submit(&mut self, txn: Txn) -> impl std::future::Future<Output = Result<()>>;

    /// Creates a table the file has and the target lacks, through the target's log.
    fn create(&mut self, declaration: Declaration) -> impl std::future::Future<Output = Result<()>> {
        self.submit(Txn { shard: 0, ops: vec![Op::CreateTable { declaration }] })
    }
}

impl Submit for crate::runtime::BackupSource {
    async fn submit(&mut self, txn: Txn) -> Result<()> {
        if self.is_replicant() {
            return Err(Error::is_replicant(self.name(), "import"));
        }
        self.transact(txn).await.map(|_| ())
    }
}

/// What the file reader hands the writer.
enum Job {
    Create(Declaration),
    Write(Txn, u64, u64),
}

/// Reads and checks all of `path` against `catalog`; writes nothing.
pub fn check_file(path: &Path, catalog: &Catalog) -> Result<Summary> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    format::read(std::io::BufReader::with_capacity(1 << 20, f), catalog, &mut |_| Ok(()))
}

/// Checks `path`, then writes it through `to` in batches; returns what the file held.
pub async fn import_file<S: Submit>(
    path: &Path,
    catalog: Arc<Catalog>,
    mode: Mode,
    to: &mut S,
    progress: &mut Progress,
) -> Result<Summary> {
    let (p, c) = (path.to_path_buf(), catalog.clone());
    let summary = tokio::task::spawn_blocking(move || check_file(&p, &c))
        .await
        .map_err(|e| Error::task("import check", e))??;
    progress.total_records = Some(summary.records);
    progress.total_bytes = std::fs::metadata(path).ok().map(|m| m.len());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(4);
    let p = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || -> Result<()> {
        let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        let mut txn = Txn::new();
        let (mut bytes, mut records) = (0usize, 0u64);
        let mut table = String::new();
        let gone = |_| "import stopped".to_string();
        let send = |txn: &mut Txn, bytes: &mut usize, records: &mut u64| -> std::result::Result<(), String> {
            if !txn.ops.is_empty() {
                tx.blocking_send(Job::Write(std::mem::take(txn), *records, *bytes as u64)).map_err(gone)?;
            }
            *bytes = 0;
            *records = 0;
            Ok(())
        };
        format::read(std::io::BufReader::with_capacity(1 << 20, f), &catalog, &mut |e| {
            match e {
                Event::Table { name, create } => {
                    send(&mut txn, &mut bytes, &mut records)?;
                    table = name.to_string();
                    if let Some(decl) = create {
                        tx.blocking_send(Job::Create(decl)).map_err(gone)?;
                    }
                    if mode == Mode::Replace {
                        txn = Txn::new().clear(&table);
                    }
                }
                Event::Record { key, value } => {
                    bytes += key.len() + value.len();
                    records += 1;
                    txn.ops.push(crate::engine::Op::Put { table: table.clone(), key, value });
                    if txn.ops.len() >= BATCH_OPS || bytes >= BATCH_BYTES {
                        send(&mut txn, &mut bytes, &mut records)?;
                    }
                }
            }
            Ok(())
        })?;
        send(&mut txn, &mut bytes, &mut records).map_err(Error::Storage)?;
        Ok(())
    });
    while let Some(job) = rx.recv().await {
        match job {
            Job::Create(decl) => to.create(decl).await?,
            Job::Write(txn, records, bytes) => {
                to.submit(txn).await?;
                progress.add(records, bytes);
            }
        }
    }
    reader.await.map_err(|e| Error::task("import", e))??;
    progress.finish();
    Ok(summary)
}
