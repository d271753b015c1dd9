//! Broker-to-broker forwarding: this crate's own gRPC service (`proto/forward.proto`).
//! Each broker records its forwarding address in mnema's `cluster_nodes` table under its
//! node name.
//!
//! - `client`: the publishing side: the other nodes' addresses followed through a watch of
//!   the table, one channel per node ([`Peers`]), and this node's registration.
//! - `server`: the receiving side, which hands a delivery to this node's clients.

mod client;
mod server;

pub use client::{Peers, register};
pub use server::serve;

pub mod pb {
    tonic::include_proto!("mnema_broker");
}

pub use pb::Delivery;
