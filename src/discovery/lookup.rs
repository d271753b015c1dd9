//! One node's discovery source, by `cluster.discovery_strategy`.

use super::{dns, etcd, k8s};
use crate::config::{DiscoveryStrategy, Validated};
use crate::error::Result;
use crate::name::Peer;

/// One node's discovery source, by `cluster.discovery_strategy`.
pub enum Lookup {
    K8s,
    Dns(Box<hickory_resolver::TokioResolver>),
    Etcd(Box<etcd::Registry>),
}

impl Lookup {
    /// The source the strategy names; `None` for `manual` and `static` (no lookup).
    pub fn new(cfg: &Validated) -> Result<Option<Lookup>> {
        Ok(match cfg.config.cluster.discovery_strategy {
            DiscoveryStrategy::Manual | DiscoveryStrategy::Static => None,
            DiscoveryStrategy::K8s => Some(Lookup::K8s),
            DiscoveryStrategy::Dns => Some(Lookup::Dns(Box::new(dns::resolver(&cfg.dns_servers)?))),
            DiscoveryStrategy::Etcd => cfg.etcd.clone().map(|c| Lookup::Etcd(Box::new(etcd::Registry::new(c)))),
        })
    }

    /// The nodes the source lists now, sorted by name: for `etcd` the registered cores;
    /// for `dns` and `k8s` every listed node (their roles are learnt by asking them).
    pub async fn peers(&mut self, me: &Validated) -> Result<Vec<Peer>> {
        let cfg = &me.config;
        let app = me.name.as_str().split('@').next().unwrap_or("");
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
