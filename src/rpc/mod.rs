//! gRPC plumbing shared by the Raft and Cluster services: generated code, cookie checks,
//! and client channels to peers.

pub mod auth;
pub mod client;
pub mod convert;
pub mod status;

#[allow(clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("mnema");
}
