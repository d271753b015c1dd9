//! `dns` discovery: the nodes are the records of one name (`cluster.dns.name`).
//!
//! - `a` / `aaaa`: each address is a node `{app}@{address}` reached on the port the name
//!   rule gives (`node.base_port` + the number `app` ends with), as in EMQX.
//! - `srv`: each record is a node `{app}@{target}` reached at the target's address (looked
//!   up with the same resolver) and the record's port, so nodes on one host can differ by
//!   port.
//!
//! `app` is the part of this node's name before `@`. Answers are never cached: discovery
//! runs while a cluster forms and must see records as they change.

use crate::config::DnsRecordType;
use crate::error::{Error, Result};
use crate::name::{NodeName, Peer};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn err(reason: impl std::fmt::Display) -> Error {
    Error::discovery("dns", reason)
}

/// A resolver for discovery: `servers`, or the system's when empty.
pub fn resolver(servers: &[SocketAddr]) -> Result<TokioResolver> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if servers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| err(format!("system resolver config: {e}")))?
    } else {
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), provider)
    };
    let opts = builder.options_mut();
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.build().map_err(|e| err(format!("resolver: {e}")))
}

/// The nodes `name` lists now, sorted by name.
pub async fn discover(
    resolver: &TokioResolver,
    name: &str,
    record_type: DnsRecordType,
    app: &str,
    base_port: u16,
) -> Result<Vec<Peer>> {
    let name_fq = fqdn(name);
    let mut out = Vec::new();
    match record_type {
        DnsRecordType::A | DnsRecordType::Aaaa => {
            let lookup = match record_type {
                DnsRecordType::A => resolver.ipv4_lookup(name_fq.as_str()).await,
                _ => resolver.ipv6_lookup(name_fq.as_str()).await,
            }
            .map_err(|e| err(format!("{record_type:?} records of {name}: {e}")))?;
            for r in lookup.answers() {
                let ip = match &r.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                out.push(address_peer(app, ip, base_port)?);
            }
        }
        DnsRecordType::Srv => {
            let lookup =
                resolver.srv_lookup(name_fq.as_str()).await.map_err(|e| err(format!("SRV records of {name}: {e}")))?;
            for r in lookup.answers() {
                let RData::SRV(srv) = &r.data else { continue };
                let target = srv.target.to_utf8();
                let target = target.trim_end_matches('.');
                let ip = resolver
                    .lookup_ip(fqdn(target).as_str())
                    .await
                    .map_err(|e| err(format!("address of SRV target {target}: {e}")))?
                    .iter()
                    .next()
                    .ok_or_else(|| err(format!("SRV target {target} has no address")))?;
                out.push(srv_peer(app, target, ip, srv.port)?);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

fn address_peer(app: &str, ip: IpAddr, base_port: u16) -> Result<Peer> {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Peer::parse("cluster.dns", &format!("{app}@{host}"), base_port)
}

fn srv_peer(app: &str, target: &str, ip: IpAddr, port: u16) -> Result<Peer> {
    let name = NodeName::parse("cluster.dns", &format!("{app}@{target}"))?;
    Ok(Peer { name, addr: SocketAddr::new(ip, port).to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_node_names_and_addresses() {
        let p = address_peer("mnema", "10.0.0.7".parse().unwrap(), 4370).unwrap();
        assert_eq!((p.name.as_str(), p.addr.as_str()), ("mnema@10.0.0.7", "10.0.0.7:4370"));
        let p = address_peer("mnema2", "fd00::7".parse().unwrap(), 4370).unwrap();
        assert_eq!((p.name.as_str(), p.addr.as_str()), ("mnema2@[fd00::7]", "[fd00::7]:4372"));
        let p = srv_peer("emqx", "s1.emqx.io", "10.0.0.1".parse().unwrap(), 5370).unwrap();
        assert_eq!((p.name.as_str(), p.addr.as_str()), ("emqx@s1.emqx.io", "10.0.0.1:5370"));
        assert!(srv_peer("emqx", "bad host", "10.0.0.1".parse().unwrap(), 1).is_err());
    }
}
