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

use crate::config::DiscoveryStrategy;
use crate::error::Result;
use crate::name::Peer;
use crate::node::NodeShared;

/// One node's discovery source, by `cluster.discovery_strategy`.
pub enum Lookup {
    K8s,
    Dns(Box<hickory_resolver::TokioResolver>),
    Etcd(Box<etcd::Registry>),
}

impl Lookup {
    /// The source the strategy names; `None` for `manual` and `static` (no lookup).
    pub fn new(shared: &NodeShared) -> Result<Option<Lookup>> {
        Ok(match shared.strategy() {
            DiscoveryStrategy::Manual | DiscoveryStrategy::Static => None,
            DiscoveryStrategy::K8s => Some(Lookup::K8s),
            DiscoveryStrategy::Dns => Some(Lookup::Dns(Box::new(dns::resolver(&shared.cfg.dns_servers)?))),
            DiscoveryStrategy::Etcd => shared.cfg.etcd.clone().map(|c| Lookup::Etcd(Box::new(etcd::Registry::new(c)))),
        })
    }

    /// The nodes the source lists now, sorted by name: for `etcd` the registered cores;
    /// for `dns` and `k8s` every listed node (their roles are learnt by asking them).
    pub async fn peers(&mut self, shared: &NodeShared) -> Result<Vec<Peer>> {
        let cfg = &shared.config;
        let app = shared.cfg.name.as_str().split('@').next().unwrap_or("");
        match self {
            Lookup::K8s => k8s::discover(&cfg.cluster.k8s, app, cfg.node.base_port).await,
            Lookup::Dns(resolver) => {
                let d = &cfg.cluster.dns;
                dns::discover(resolver, &d.name, d.record_type, app, cfg.node.base_port).await
            }
            Lookup::Etcd(registry) => registry.cores().await,
        }
    }
}
