//! What discovery sources answer, decoded (no network here, so the decoders are fuzzed):
//! the Kubernetes Endpoints object of the `k8s` strategy.

use crate::config::{K8sAddressType, K8sSection};
use crate::error::{Error, Result};
use crate::name::Peer;
use serde::Deserialize;

fn err(reason: impl std::fmt::Display) -> Error {
    Error::Rpc { peer: "kubernetes apiserver".into(), reason: reason.to_string() }
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

#[cfg(test)]
mod tests {
    use super::*;

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
