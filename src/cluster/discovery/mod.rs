//! Finding the other nodes at first start, by `cluster.discovery_strategy`.
//!
//! `manual` and `static` need no lookup (see `bootstrap`); `k8s` reads the service's
//! Endpoints from the Kubernetes API. Discovery runs only for a data dir without Raft
//! state: a restarted node rejoins its own cluster from its data dir.

pub mod k8s;
