//! Discovery: three nodes started at the same moment form exactly one cluster.

use crate::harness::*;
use mnema::config::{DiscoveryStrategy, K8sAddressType};
use mnema::{Node, NodeConfig, Txn};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A stand-in for the Kubernetes API server: answers the Endpoints GET with the real JSON
/// shape, or 404 once `gone` is set.
async fn apiserver(ips: &[&str], port: u16, gone: Arc<AtomicBool>) -> String {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let addresses: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            format!(r#"{{"ip":"{ip}","hostname":"mnema-{i}","targetRef":{{"kind":"Pod","name":"mnema-{i}"}}}}"#)
        })
        .collect();
    let body = format!(
        r#"{{"kind":"Endpoints","apiVersion":"v1","metadata":{{"name":"mnema","namespace":"default"}},"subsets":[{{"addresses":[{}],"ports":[{{"name":"mnema","port":{port},"protocol":"TCP"}}]}}]}}"#,
        addresses.join(",")
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (body, gone) = (body.clone(), gone.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let ok = req.uri().path() == "/api/v1/namespaces/default/endpoints/mnema"
                        && !gone.load(Ordering::SeqCst);
                    let (status, text) =
                        if ok { (200, body.clone()) } else { (404, r#"{"kind":"Status","code":404}"#.to_string()) };
                    async move {
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A port free on 127.0.0.1, .2 and .3 (one node per loopback address, same port).
fn port_on_three_loopbacks() -> u16 {
    loop {
        let p = free_base(1) + 1;
        if (1..=3).all(|i| std::net::TcpListener::bind((format!("127.0.0.{i}").as_str(), p)).is_ok()) {
            return p;
        }
    }
}

fn k8s_config(dir: &std::path::Path, ip: &str, port: u16, apiserver: &str) -> NodeConfig {
    let name = format!("mnema@{ip}");
    let mut c = NodeConfig::new(&name, dir.join(ip));
    c.node.base_port = port;
    c.node.cookie = "test-cookie".into();
    c.cluster.discovery_strategy = DiscoveryStrategy::K8s;
    c.cluster.k8s.apiserver = apiserver.into();
    c.cluster.k8s.service_name = "mnema".into();
    c.cluster.k8s.address_type = K8sAddressType::Ip;
    c.raft.heartbeat_interval = "50ms".into();
    c.raft.election_timeout = "300ms".into();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k8s_nodes_started_together_form_exactly_one_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_three_loopbacks();
    let gone = Arc::new(AtomicBool::new(false));
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let api = apiserver(&ips, port, gone.clone()).await;
    let (a, b, c) = tokio::join!(
        Node::start(k8s_config(dir.path(), ips[0], port, &api), test_tables()),
        Node::start(k8s_config(dir.path(), ips[1], port, &api), test_tables()),
        Node::start(k8s_config(dir.path(), ips[2], port, &api), test_tables()),
    );
    let mut nodes = vec![a.expect("n1"), b.expect("n2"), c.expect("n3")];
    wait_until("one cluster of three with one leader", Duration::from_secs(30), || async {
        let views: Vec<_> = nodes
            .iter()
            .map(|n| {
                let m = n.metrics().ok();
                let size = m.as_ref().map(|m| m.membership_config.membership().voter_ids().count()).unwrap_or(0);
                (m.and_then(|m| m.current_leader), size, n.shared().cluster_id())
            })
            .collect();
        views.iter().all(|v| v.0.is_some() && v.1 == 3 && *v == views[0])
    })
    .await;
    let done = nodes[2].transact(Txn::new().put("kv", "k8s", "v")).await.expect("write");
    for n in &nodes {
        n.wait_applied(done.index, Duration::from_secs(10)).await.expect("apply");
        assert_eq!(n.get("kv", b"k8s").expect("get").len(), 1);
    }
    // A restarted node rejoins from its data dir: no discovery (the API now answers 404).
    gone.store(true, Ordering::SeqCst);
    let n3 = nodes.remove(2);
    n3.shutdown().await.expect("stop");
    let n3 = Node::start(k8s_config(dir.path(), ips[2], port, &api), test_tables()).await.expect("restart");
    let done = nodes[0].transact(Txn::new().put("kv", "after", "v")).await.expect("write");
    n3.wait_applied(done.index, Duration::from_secs(20)).await.expect("n3 rejoined");
    assert_eq!(n3.get("kv", b"k8s").expect("get").len(), 1);
    nodes.push(n3);
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}
