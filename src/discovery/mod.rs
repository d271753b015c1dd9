//! Finding the other nodes, by `cluster.discovery_strategy`.
//!
//! `manual` and `static` need no lookup (see `cluster::bootstrap`). `k8s` reads the
//! service's Endpoints from the Kubernetes API (`k8s.rs`), `dns` the A, AAAA or SRV records
//! of one name (`dns.rs`), `etcd` the registrations under a prefix (`etcd.rs`, which also
//! keeps this node registered and holds the formation claim). What the sources answer is
//! decoded in `decode.rs`, with no network, so that it is fuzzed (and built without the
//! `server` feature). [`Lookup`] is one node's source.
//!
//! Not here: deciding what to do with the nodes found (`cluster::bootstrap`), joining
//! (`cluster::membership`).

mod decode;
#[cfg(feature = "server")]
pub mod dns;
#[cfg(feature = "server")]
pub mod etcd;
#[cfg(feature = "server")]
pub mod k8s;
#[cfg(feature = "server")]
mod lookup;

pub use decode::{EtcdRegistration, etcd_node, k8s_peers};
#[cfg(feature = "server")]
pub use lookup::Lookup;
