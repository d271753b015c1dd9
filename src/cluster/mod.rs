//! Cluster management: the gRPC server of a node, forming a cluster at start, joining,
//! and the cluster status `mnema ctl cluster status` prints.
//!
//! Not here: Raft itself (`raft`), storage (`storage`).

pub mod bootstrap;
pub mod membership;
pub mod server;
pub mod service;
pub mod status;
