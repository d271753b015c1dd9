//! The replication stream: what a core sends a subscribed replicant, message by message.
//!
//! ```text
//! Start{Snapshot}  Chunk(0) Chunk(1) … SnapshotEnd{index, records, crc} [Members]  Entries… Heartbeat…
//! Start{Entries{from}}                                                            Entries… Heartbeat…
//! ```
//! and, to a replicant that asks for it, `Members{index}` after the `Entries` holding a
//! membership change.
//! ```text
//! ```
//! Each message is one gRPC message holding versioned bincode. Entries carry their Raft
//! index; the replicant requires them consecutive. Snapshot chunks carry a sequence
//! number, and the end message a record count and a CRC-32 of every record, so a lost,
//! repeated or altered chunk is detected before anything is published.

use crate::codec;
use crate::engine::Batch;
use crate::error::Result;
use serde::{Deserialize, Serialize};

pub const STREAM_VERSION: u8 = 1;

/// `SubscribeRequest.features` bit: the replicant understands [`StreamMsg::Members`]
/// (a replicant of an earlier build asks for none and is sent none).
pub const FEATURE_MEMBERS: u32 = 1;

/// Records per snapshot chunk at most (chunks are also cut at [`CHUNK_BYTES`]).
pub const CHUNK_RECORDS: usize = 8192;
pub const CHUNK_BYTES: usize = 1 << 20;
/// Entries per `Entries` message at most.
pub const MAX_ENTRIES: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartMode {
    /// A snapshot follows, then entries after its index.
    Snapshot,
    /// Entries follow, the first with index `from`.
    Entries { from: u64 },
}

/// One applied log entry. `batch` is `None` for entries without records (Raft's blank and
/// membership entries, or a batch with nothing in the subscribed shards).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub index: u64,
    pub batch: Option<Batch>,
}

/// Sent when the core has nothing else to send for a while, and with every `Entries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The commit index of the cluster as this core knows it.
    pub committed: u64,
    /// What this core has applied.
    pub core_applied: u64,
    /// The leader as this core knows it: (name, address).
    pub leader: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMsg {
    Start {
        core: String,
        mode: StartMode,
        /// The core's applied index when the stream began: the replicant is in
        /// `local_replay` until it has applied this far.
        core_applied: u64,
    },
    SnapshotChunk {
        seq: u32,
        /// Stored records: (RocksDB key, value) as laid out by `engine::keys`.
        records: ChunkRecords,
    },
    SnapshotEnd {
        /// The applied index the snapshot holds.
        index: u64,
        records: u64,
        crc: u32,
    },
    Entries {
        entries: Vec<StreamEntry>,
        heartbeat: Heartbeat,
    },
    Heartbeat(Heartbeat),
    /// The membership as of `index`, `(name, voter)` of every core: after a snapshot's end
    /// (its index) and after the entries holding a membership change (that entry's index).
    /// Only to replicants that ask for it ([`FEATURE_MEMBERS`]); appended last, so the
    /// messages before it keep their bytes.
    Members { index: u64, members: crate::engine::members::Members },
}

/// A snapshot chunk's records, (RocksDB key, value) pairs, held in one buffer: a chunk of
/// [`CHUNK_RECORDS`] records costs the core that builds it and the replicant that decodes
/// it two allocations, not two per record. On the wire each pair is two byte strings
/// (the bytes of a `Vec<(Vec<u8>, Vec<u8>)>`), and they decode without a serde visit per
/// byte.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChunkRecords {
    bytes: Vec<u8>,
    /// Where each record's key ends and where its value ends, in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl ChunkRecords {
    /// Adds a record.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.ends.push((key_end, self.bytes.len()));
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of every key and value held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Every record, in the order added.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.ends.len()).map(move |i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
            let (key_end, end) = self.ends[i];
            (&self.bytes[start..key_end], &self.bytes[key_end..end])
        })
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for ChunkRecords {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(records: I) -> Self {
        let mut out = ChunkRecords::default();
        for (k, v) in records {
            out.push(k.as_ref(), v.as_ref());
        }
        out
    }
}

impl std::fmt::Debug for ChunkRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for ChunkRecords {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for (k, v) in self.iter() {
            seq.serialize_element(&(serde_bytes::Bytes::new(k), serde_bytes::Bytes::new(v)))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ChunkRecords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_seq(chunk_de::Records)
    }
}

/// Decoding a chunk's pairs straight into one [`ChunkRecords`] buffer.
mod chunk_de {
    use super::ChunkRecords;
    use serde::de::{DeserializeSeed, Deserializer, Error, SeqAccess, Visitor};
    use std::fmt;

    pub struct Records;

    impl<'de> Visitor<'de> for Records {
        type Value = ChunkRecords;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a sequence of (key, value) byte strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChunkRecords, A::Error> {
            let mut out = ChunkRecords::default();
            // The hint comes from the bytes: reserve no more than a chunk holds.
            out.ends.reserve(seq.size_hint().unwrap_or(0).min(super::CHUNK_RECORDS));
            while seq.next_element_seed(Pair(&mut out))?.is_some() {}
            Ok(out)
        }
    }

    /// One (key, value) pair, appended.
    struct Pair<'a>(&'a mut ChunkRecords);

    impl<'de> DeserializeSeed<'de> for Pair<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_tuple(2, self)
        }
    }

    impl<'de> Visitor<'de> for Pair<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a (key, value) pair of byte strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let out = self.0;
            if seq.next_element_seed(Append(&mut out.bytes))?.is_none() {
                return Err(A::Error::invalid_length(0, &"a (key, value) pair"));
            }
            let key_end = out.bytes.len();
            if seq.next_element_seed(Append(&mut out.bytes))?.is_none() {
                return Err(A::Error::invalid_length(1, &"a (key, value) pair"));
            }
            out.ends.push((key_end, out.bytes.len()));
            Ok(())
        }
    }

    /// One byte string, appended to the buffer.
    struct Append<'a>(&'a mut Vec<u8>);

    impl<'de> DeserializeSeed<'de> for Append<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_bytes(self)
        }
    }

    impl<'de> Visitor<'de> for Append<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<(), E> {
            self.0.extend_from_slice(v);
            Ok(())
        }
    }
}

pub fn encode(msg: &StreamMsg) -> Result<Vec<u8>> {
    codec::encode_versioned(STREAM_VERSION, msg)
}

/// Decodes one message from a core; malformed bytes are an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<StreamMsg> {
    codec::decode_versioned("replication message", STREAM_VERSION, bytes)
}

/// Adds one snapshot record to a running checksum (both sides use this).
pub fn crc_record(crc: &mut crc32fast::Hasher, key: &[u8], value: &[u8]) {
    crc.update(&(key.len() as u64).to_le_bytes());
    crc.update(key);
    crc.update(&(value.len() as u64).to_le_bytes());
    crc.update(value);
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    /// What cores of earlier builds send must decode: the bytes of a chunk are fixed.
    #[test]
    fn a_snapshot_chunk_encodes_to_the_same_bytes_as_ever() {
        let msg =
            StreamMsg::SnapshotChunk { seq: 3, records: [(&b"k"[..], &[0, 255][..]), (b"", b"v")].into_iter().collect() };
        let bytes = encode(&msg).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "01010302016b0200ff000176");
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    /// A chunk decodes into one buffer: cut anywhere, it is an error, never a panic or a
    /// shorter chunk; whole, every record comes back in order.
    #[test]
    fn a_cut_chunk_is_an_error_and_a_whole_one_keeps_its_records() {
        let records: ChunkRecords =
            (0..50u32).map(|i| (i.to_be_bytes().repeat(i as usize % 4), vec![i as u8; i as usize])).collect();
        let msg = StreamMsg::SnapshotChunk { seq: 0, records: records.clone() };
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
        }
        let StreamMsg::SnapshotChunk { records: back, .. } = decode(&bytes).unwrap() else { panic!("not a chunk") };
        assert_eq!(back.len(), 50);
        assert!(back.iter().eq(records.iter()));
        assert_eq!(back.iter().nth(7), Some((&7u32.to_be_bytes().repeat(3)[..], &[7u8; 7][..])));
    }

    #[test]
    fn a_membership_message_round_trips_and_is_the_last_variant() {
        let msg = StreamMsg::Members { index: 7, members: vec![("n1".into(), true), ("n2".into(), false)] };
        let bytes = encode(&msg).unwrap();
        assert_eq!(&bytes[..2], &[STREAM_VERSION, 5], "variant 5: after every message of the first build");
        assert_eq!(decode(&bytes).unwrap(), msg);
    }
}
