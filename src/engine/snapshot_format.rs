//! The snapshot file: every replicated record at one applied index, streamed.
//!
//! ```text
//! "MNEMASNP" | version: u8 | frames… | end frame
//! frame     = key len: u32 LE | value len: u32 LE | key | value
//! end frame = 0xFFFF_FFFF | record count: u64 LE | CRC-32 of all frames: u32 LE
//! ```
//! Files are written and read one record at a time, so a table of millions of records
//! never sits whole in memory; the end frame makes a truncated or altered file an error.

use crate::error::{Error, Result};
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"MNEMASNP";
pub const VERSION: u8 = 1;
const END: u32 = u32::MAX;
/// Largest key a record may have (a topic is at most 65,535 bytes, plus the table prefix).
pub const MAX_KEY: usize = 1 << 20;
/// Largest value a record may have.
pub const MAX_VALUE: usize = 64 << 20;

pub struct SnapshotWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    count: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        Ok(SnapshotWriter { out, crc: crc32fast::Hasher::new(), count: 0 })
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "record too large for a snapshot"));
        }
        let head = [(key.len() as u32).to_le_bytes(), (value.len() as u32).to_le_bytes()].concat();
        for part in [&head[..], key, value] {
            self.crc.update(part);
            self.out.write_all(part)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the end frame; returns the sink and the number of records.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.out.write_all(&END.to_le_bytes())?;
        self.out.write_all(&self.count.to_le_bytes())?;
        self.out.write_all(&self.crc.finalize().to_le_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.count))
    }
}

/// Reads records until the end frame, which it checks.
pub struct SnapshotReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    count: u64,
    done: bool,
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| Error::corrupt("snapshot", format!("truncated: {e}")))
}

impl<R: Read> SnapshotReader<R> {
    pub fn new(mut input: R) -> Result<Self> {
        let mut head = [0u8; 9];
        read_exact(&mut input, &mut head)?;
        if &head[..8] != MAGIC {
            return Err(Error::corrupt("snapshot", "not a mnema snapshot (bad magic)"));
        }
        if head[8] != VERSION {
            return Err(Error::UnknownFormat { what: "snapshot".into(), found: head[8], supported: VERSION });
        }
        Ok(SnapshotReader { input, crc: crc32fast::Hasher::new(), count: 0, done: false })
    }

    /// The next record, or `None` after a valid end frame.
    pub fn next_record(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        read_exact(&mut self.input, &mut len)?;
        let klen = u32::from_le_bytes(len);
        if klen == END {
            let mut tail = [0u8; 12];
            read_exact(&mut self.input, &mut tail)?;
            let count = u64::from_le_bytes(tail[..8].try_into().map_err(|_| Error::corrupt("snapshot", "end frame"))?);
            let crc = u32::from_le_bytes(tail[8..].try_into().map_err(|_| Error::corrupt("snapshot", "end frame"))?);
            if count != self.count {
                return Err(Error::corrupt(
                    "snapshot",
                    format!("end frame counts {count} records, read {}", self.count),
                ));
            }
            if crc != self.crc.clone().finalize() {
                return Err(Error::corrupt("snapshot", "checksum mismatch"));
            }
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra).map_err(|e| Error::corrupt("snapshot", e))? != 0 {
                return Err(Error::corrupt("snapshot", "bytes after the end frame"));
            }
            self.done = true;
            return Ok(None);
        }
        let mut vlen = [0u8; 4];
        read_exact(&mut self.input, &mut vlen)?;
        let (klen, vlen) = (klen as usize, u32::from_le_bytes(vlen) as usize);
        if klen > MAX_KEY || vlen > MAX_VALUE {
            return Err(Error::corrupt("snapshot", format!("record of {klen}+{vlen} bytes exceeds the limits")));
        }
        let mut key = vec![0u8; klen];
        read_exact(&mut self.input, &mut key)?;
        let mut value = vec![0u8; vlen];
        read_exact(&mut self.input, &mut value)?;
        self.crc.update(&(klen as u32).to_le_bytes());
        self.crc.update(&(vlen as u32).to_le_bytes());
        self.crc.update(&key);
        self.crc.update(&value);
        self.count += 1;
        Ok(Some((key, value)))
    }
}

/// Checks a whole snapshot; returns its record count.
pub fn verify<R: Read>(input: R) -> Result<u64> {
    let mut r = SnapshotReader::new(input)?;
    while r.next_record()?.is_some() {}
    Ok(r.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = SnapshotWriter::new(Vec::new()).unwrap();
        w.record(b"k1", b"v1").unwrap();
        w.record(b"k2", b"").unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = SnapshotReader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_record().unwrap(), Some((b"k1".to_vec(), b"v1".to_vec())));
        assert_eq!(r.next_record().unwrap(), Some((b"k2".to_vec(), vec![])));
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(verify(&bytes[..]).unwrap(), 2);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(verify(&bytes[..cut]).is_err(), "truncated at {cut} accepted");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(verify(&b[..]).is_err(), "flip at {i} accepted");
        }
    }
}
