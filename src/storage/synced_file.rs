//! [`SyncingWriter`]: a large file sent to disk as it is written, not all at its end.
//!
//! A Raft snapshot or an export of hundreds of MiB, left in the page cache and synced once
//! at its end, puts all of it in the disk's queue at once. The WAL shares that disk, so
//! every acknowledged write's fsync then waits behind it: on a machine whose cores share
//! one disk, the three cores' snapshots (built at the same applied index, 142 MB each)
//! held every write for up to 150 ms, and an fsync of another process for 100 ms
//! (`BENCHMARKS.md`, "Snapshots on the disk the WAL shares"). Syncing every
//! [`SYNC_EVERY`] bytes bounds what a WAL sync can find queued ahead of it, and paces the
//! writer to the disk. RocksDB's own files do the same (`bytes_per_sync` in `db.rs`).

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two syncs of the file's data.
pub const SYNC_EVERY: u64 = 4 << 20;

/// A file whose data is synced every [`SYNC_EVERY`] bytes, and fully by [`Self::finish`].
pub struct SyncingWriter {
    file: File,
    since_sync: u64,
}

impl SyncingWriter {
    pub fn new(file: File) -> SyncingWriter {
        SyncingWriter { file, since_sync: 0 }
    }

    /// Syncs the rest of the file (data and metadata) and returns it.
    pub fn finish(self) -> io::Result<File> {
        self.file.sync_all()?;
        Ok(self.file)
    }
}

impl Write for SyncingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since_sync += n as u64;
        if self.since_sync >= SYNC_EVERY {
            self.file.sync_data()?;
            self.since_sync = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written through the writer is the file's content, whatever the sizes of
    /// the writes around the sync points.
    #[test]
    fn a_synced_file_holds_every_byte_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let mut w = SyncingWriter::new(File::create(&path).expect("create"));
        let mut want = Vec::new();
        let mut i = 0u64;
        while (want.len() as u64) < 3 * SYNC_EVERY + 12_345 {
            let chunk: Vec<u8> = (0..(1 + i * 7919 % 300_000)).map(|b| (b ^ i) as u8).collect();
            w.write_all(&chunk).expect("write");
            want.extend_from_slice(&chunk);
            i += 1;
        }
        drop(w.finish().expect("finish"));
        assert_eq!(std::fs::read(&path).expect("read"), want);
    }
}
