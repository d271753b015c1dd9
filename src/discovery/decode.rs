//! What discovery sources answer, decoded (no network here, so the decoders are fuzzed):
//! the Kubernetes Endpoints object of the `k8s` strategy and the node registrations of the
//! `etcd` strategy. (DNS answers are decoded by the resolver crate.)

use crate::config::{K8sAddressType, K8sSection, Role};
use crate::error::{Error, Result};
use crate::name::{NodeName, Peer};
use serde::{Deserialize, Serialize};

fn err(reason: impl std::fmt::Display) -> Error {
    Error::discovery("kubernetes apiserver", reason)
}

#[derive(Deserialize)]
struct Endpoints {
    #[serde(default)]
    subsets: Vec<Subset>,
}

#[derive(Deserialize)]
struct Subset {
    #[serde(default)]
    addresses: Vec<Address>,
}

#[derive(Deserialize)]
struct Address {
    ip: String,
    #[serde(default)]
    hostname: Option<String>,
}

/// Node names from an Endpoints document (the decoder of the apiserver's answer).
pub fn k8s_peers(json: &[u8], k8s: &K8sSection, app: &str, base_port: u16) -> Result<Vec<Peer>> {
    let doc: Endpoints = serde_json::from_slice(json).map_err(|e| err(format!("Endpoints JSON: {e}")))?;
    let mut out = Vec::new();
    for a in doc.subsets.iter().flat_map(|s| &s.addresses) {
        let host = match k8s.address_type {
            K8sAddressType::Ip if a.ip.contains(':') => format!("[{}]", a.ip),
            K8sAddressType::Ip => a.ip.clone(),
            K8sAddressType::Dns => format!("{}.{}.{}", a.ip.replace(['.', ':'], "-"), k8s.namespace, k8s.suffix),
            K8sAddressType::Hostname => {
                let h = a.hostname.as_deref().ok_or_else(|| err(format!("address {} has no hostname", a.ip)))?;
                format!("{h}.{}.{}.{}", k8s.service_name, k8s.namespace, k8s.suffix)
            }
        };
        out.push(Peer::parse("cluster.k8s", &format!("{app}@{host}"), base_port)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// What a node writes under `{root}nodes/{name}` in etcd (the `etcd` strategy): how to
/// reach it and what it is. JSON, so `etcdctl get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdRegistration {
    pub addr: String,
    pub role: Role,
}

impl EtcdRegistration {
    pub fn encode(&self) -> Vec<u8> {
        // A struct of two strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Decodes one etcd key/value under `{root}nodes/`: the node name is the rest of the key.
pub fn etcd_node(root: &str, key: &[u8], value: &[u8]) -> Result<(Peer, Role)> {
    let bad = |reason: String| Error::discovery("etcd", reason);
    let key = std::str::from_utf8(key).map_err(|_| bad("a node key is not UTF-8".into()))?;
    let name = key
        .strip_prefix(root)
        .and_then(|k| k.strip_prefix("nodes/"))
        .ok_or_else(|| bad(format!("key `{key}` is not under {root}nodes/")))?;
    let name = NodeName::parse("cluster.etcd", name).map_err(|e| bad(format!("key `{key}`: {e}")))?;
    let reg: EtcdRegistration =
        serde_json::from_slice(value).map_err(|e| bad(format!("registration of {name}: {e}")))?;
    let port_ok = reg.addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !port_ok {
        return Err(bad(format!("registration of {name}: address `{}` is not host:port", reg.addr)));
    }
    Ok((Peer { name, addr: reg.addr }, reg.role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_registrations_round_trip_and_bad_ones_are_errors() {
        let reg = EtcdRegistration { addr: "127.0.0.1:4371".into(), role: Role::Core };
        let (peer, role) = etcd_node("/mnemacl/c/", b"/mnemacl/c/nodes/n1@h", &reg.encode()).unwrap();
        assert_eq!((peer.name.as_str(), peer.addr.as_str(), role), ("n1@h", "127.0.0.1:4371", Role::Core));
        let value = br#"{"addr":"[::1]:5","role":"replicant"}"#;
        assert_eq!(etcd_node("/p/", b"/p/nodes/r@h", value).unwrap().1, Role::Replicant);
        for (key, value) in [
            (&b"/other/nodes/n1@h"[..], &reg.encode()[..]),
            (b"/p/nodes/noat", &reg.encode()),
            (b"/p/nodes/n@h", b"{}"),
            (b"/p/nodes/n@h", br#"{"addr":"nohostport","role":"core"}"#),
            (b"/p/nodes/n@h", br#"{"addr":"h:1","role":"king"}"#),
            (b"/p/nodes/\xff", &reg.encode()),
        ] {
            assert!(etcd_node("/p/", key, value).is_err(), "{key:?} {value:?}");
        }
    }

    const DOC: &str = r#"{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"emqx-headless","namespace":"prod"},
      "subsets":[{"addresses":[
        {"ip":"10.0.0.2","hostname":"emqx-1","nodeName":"k1","targetRef":{"kind":"Pod","name":"emqx-1","namespace":"prod"}},
        {"ip":"10.0.0.1","hostname":"emqx-0","nodeName":"k2","targetRef":{"kind":"Pod","name":"emqx-0","namespace":"prod"}}],
        "notReadyAddresses":[{"ip":"10.0.0.3","hostname":"emqx-2"}],
        "ports":[{"name":"ekka","port":4370,"protocol":"TCP"}]}]}"#;

    fn section(t: K8sAddressType) -> K8sSection {
        K8sSection {
            service_name: "emqx-headless".into(),
            namespace: "prod".into(),
            suffix: "svc.cluster.local".into(),
            address_type: t,
            ..Default::default()
        }
    }

    #[test]
    fn names_by_address_type() {
        let names = |t| -> Vec<String> {
            k8s_peers(DOC.as_bytes(), &section(t), "emqx", 4370)
                .unwrap()
                .into_iter()
                .map(|p| p.name.to_string())
                .collect()
        };
        assert_eq!(names(K8sAddressType::Ip), ["emqx@10.0.0.1", "emqx@10.0.0.2"], "ready addresses only, sorted");
        assert_eq!(
            names(K8sAddressType::Dns),
            ["emqx@10-0-0-1.prod.svc.cluster.local", "emqx@10-0-0-2.prod.svc.cluster.local"]
        );
        assert_eq!(
            names(K8sAddressType::Hostname),
            ["emqx@emqx-0.emqx-headless.prod.svc.cluster.local", "emqx@emqx-1.emqx-headless.prod.svc.cluster.local"]
        );
        assert!(k8s_peers(b"{", &section(K8sAddressType::Ip), "emqx", 4370).is_err());
        assert!(k8s_peers(b"{}", &section(K8sAddressType::Ip), "emqx", 4370).unwrap().is_empty());
    }
}
