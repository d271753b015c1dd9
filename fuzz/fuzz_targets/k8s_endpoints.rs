//! The Kubernetes API server's Endpoints answer (k8s discovery): malformed JSON or odd
//! addresses are an error, never a panic.
#![no_main]
use mnema::config::{K8sAddressType, K8sSection};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for t in [K8sAddressType::Ip, K8sAddressType::Dns, K8sAddressType::Hostname] {
        let k8s = K8sSection { service_name: "mnema".into(), address_type: t, ..Default::default() };
        let _ = mnema::discovery::k8s_peers(data, &k8s, "mnema", 4370);
    }
});
