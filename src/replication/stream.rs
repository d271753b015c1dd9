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
        #[serde(with = "byte_pairs")]
        records: Vec<(Vec<u8>, Vec<u8>)>,
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

/// Records as byte runs, not one serde visit per byte (the same bincode bytes).
mod byte_pairs {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    pub fn serialize<S: Serializer>(records: &Records, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(records.len()))?;
        for (k, v) in records {
            seq.serialize_element(&(Bytes::new(k), Bytes::new(v)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Records, D::Error> {
        let pairs: Vec<(ByteBuf, ByteBuf)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())).collect())
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
            StreamMsg::SnapshotChunk { seq: 3, records: vec![(b"k".to_vec(), vec![0, 255]), (vec![], b"v".to_vec())] };
        let bytes = encode(&msg).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "01010302016b0200ff000176");
        assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn a_membership_message_round_trips_and_is_the_last_variant() {
        let msg = StreamMsg::Members { index: 7, members: vec![("n1".into(), true), ("n2".into(), false)] };
        let bytes = encode(&msg).unwrap();
        assert_eq!(&bytes[..2], &[STREAM_VERSION, 5], "variant 5: after every message of the first build");
        assert_eq!(decode(&bytes).unwrap(), msg);
    }
}
