//! Cluster management: the gRPC server of a node, forming a cluster at start, joining,
//! leaving, autoclean, and the cluster status `mnema ctl cluster status` prints.
//!
//! Not here: Raft itself (`raft`), storage (`storage`).

pub mod autoclean;
pub mod bootstrap;
pub mod leave;
pub mod state;
pub mod membership;
pub mod pipeline;
pub mod rebuild;
pub mod service;
pub mod status;
pub mod watch;
