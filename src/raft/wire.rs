//! Encoding of everything Raft sends or stores: log entries and openraft's RPC messages.
//!
//! Each is versioned bincode (see `codec`). The decoders take bytes from disk or the
//! network and return an error on anything malformed; the fuzz targets call them.

use crate::codec;
use crate::error::Result;
use crate::raft::types::{Entry, NodeId, RaftError, TypeConfig};
use openraft::error::InstallSnapshotError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

pub const ENTRY_VERSION: u8 = 2;
pub const RPC_VERSION: u8 = 1;

pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>> {
    codec::encode_versioned(ENTRY_VERSION, entry)
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry> {
    codec::decode_versioned("log entry", ENTRY_VERSION, bytes)
}

pub fn encode<T: serde::Serialize>(msg: &T) -> Result<Vec<u8>> {
    codec::encode_versioned(RPC_VERSION, msg)
}

pub fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    codec::decode_versioned(what, RPC_VERSION, bytes)
}

pub type AppendRequest = AppendEntriesRequest<TypeConfig>;

/// The indexes of the first and last of `entries` (`(1, 0)`, an empty range, for none:
/// a heartbeat's).
pub fn span(entries: &[Entry]) -> (u64, u64) {
    match (entries.first(), entries.last()) {
        (Some(f), Some(l)) => (f.log_id.index, l.log_id.index),
        _ => (1, 0),
    }
}
pub type AppendReply = std::result::Result<AppendEntriesResponse<NodeId>, RaftError>;
pub type VoteReq = VoteRequest<NodeId>;
pub type VoteReply = std::result::Result<VoteResponse<NodeId>, RaftError>;
pub type SnapshotRequest = InstallSnapshotRequest<TypeConfig>;
pub type SnapshotReply = std::result::Result<InstallSnapshotResponse<NodeId>, RaftError<InstallSnapshotError>>;

/// Decodes any request a Raft server accepts (for fuzzing all four at once).
#[cfg(feature = "fuzzing")]
pub fn decode_any_request(bytes: &[u8]) -> bool {
    decode::<AppendRequest>("append", bytes).is_ok()
        | decode::<VoteReq>("vote", bytes).is_ok()
        | decode::<SnapshotRequest>("snapshot chunk", bytes).is_ok()
        | decode::<super::pre_vote::PreVoteRequest>("pre-vote", bytes).is_ok()
}
