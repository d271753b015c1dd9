//! Raft between core nodes: openraft's type configuration, the wire encoding of its
//! messages, and its network over gRPC (client and server sides).
//!
//! Not here: storage (`storage`), what gets proposed (`runtime::proposer`).

pub mod types;
pub mod wire;

#[cfg(feature = "server")]
pub mod network;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod slot;
