//! Raft between core nodes: openraft's type configuration, the wire encoding of its
//! messages, its network over frames or gRPC (client and server sides), and the record of what the
//! log store reported to Raft before syncing it (`unsynced`), which storage and network share,
//! and the pre-vote a core wins before it campaigns (`pre_vote`).
//!
//! Not here: storage (`storage`), what gets proposed (`runtime::proposer`).

pub mod frame;
pub mod pre_vote;
pub mod types;
pub mod unsynced;
pub mod wire;

#[cfg(feature = "server")]
pub mod frame_client;
#[cfg(feature = "server")]
pub mod frame_server;
#[cfg(feature = "server")]
pub mod network;
#[cfg(feature = "server")]
pub mod peer_log;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod slot;
