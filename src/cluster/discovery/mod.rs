//! Finding the other nodes, by `cluster.discovery_strategy` (the network side; what the
//! sources answer is decoded in `crate::discovery`).
//!
//! `manual` and `static` need no lookup (see `bootstrap`). `k8s` reads the service's
//! Endpoints from the Kubernetes API, `dns` the A, AAAA or SRV records of one name, `etcd`
//! the registrations under a prefix. Lookups run only for a data dir without Raft state: a
//! restarted node rejoins its own cluster from its data dir. Registration in etcd runs for
//! as long as the node does, so that others see it.
//!
//! Not here: deciding what to do with the nodes found (`bootstrap`), joining (`membership`).

pub mod dns;
pub mod etcd;
pub mod k8s;
