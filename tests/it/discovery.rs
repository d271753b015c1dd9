//! Discovery against real sources: a Kubernetes API stand-in speaking the Endpoints JSON,
//! an authoritative DNS server (hickory-server, A and SRV records), and an etcd server
//! (Debian's `etcd-server`, started per test). Under each, three nodes started at the same
//! moment form exactly one cluster, and a restarted node rejoins from its data dir.

use crate::harness::*;
use mnema::config::{DiscoveryStrategy, DnsRecordType, K8sAddressType};
use mnema::{Node, NodeConfig, Txn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Starts three nodes at the same moment (what discovery must turn into one cluster).
async fn start_together(configs: [NodeConfig; 3]) -> Vec<Node> {
    let [a, b, c] = configs;
    let (a, b, c) =
        tokio::join!(Node::start(a, test_tables()), Node::start(b, test_tables()), Node::start(c, test_tables()));
    vec![a.expect("n1"), b.expect("n2"), c.expect("n3")]
}

/// Waits until `nodes` agree on one leader, three voters and one cluster id, then checks
/// a write made on the last one is applied on all.
async fn assert_one_cluster(nodes: &[Node], key: &str) {
    wait_until("one cluster of three with one leader", Duration::from_secs(30), || async {
        let views: Vec<_> = nodes
            .iter()
            .map(|n| {
                let m = n.runtime().metrics().ok();
                let size = m.as_ref().map(|m| m.membership_config.membership().voter_ids().count()).unwrap_or(0);
                (m.and_then(|m| m.current_leader), size, n.runtime().cluster_id())
            })
            .collect();
        views.iter().all(|v| v.0.is_some() && v.1 == 3 && *v == views[0])
    })
    .await;
    let done = nodes[nodes.len() - 1].transact(Txn::new().put("kv", key, "v")).await.expect("write");
    for n in nodes {
        n.wait_applied(done.index, Duration::from_secs(10)).await.expect("apply");
        assert_eq!(n.get("kv", key.as_bytes()).expect("get").len(), 1);
    }
}

/// Waits until replicant `r` streams from a core and serves `key` (written on the cores).
async fn assert_replicant_follows(r: &Node, key: &str) {
    let serving = || {
        r.replicant_status().is_some_and(|s| s.state == mnema::ReplicantState::Normal)
            && r.get("kv", key.as_bytes()).is_ok_and(|v| v.len() == 1)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !serving() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} does not serve `{key}` after 20 s: {:?}, applied {}",
            r.name(),
            r.replicant_status(),
            r.applied_index()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the last node, restarts it from its data dir with `config`, and checks that it
/// follows the cluster again (its discovery source may be gone by then).
async fn restart_last_and_rejoin(mut nodes: Vec<Node>, config: NodeConfig, old_key: &str) {
    let last = nodes.pop().expect("a node");
    last.shutdown().await.expect("stop");
    let again = Node::start(config, test_tables()).await.expect("restart");
    let done = nodes[0].transact(Txn::new().put("kv", "after-restart", "v")).await.expect("write");
    again.wait_applied(done.index, Duration::from_secs(20)).await.expect("rejoined from its data dir");
    assert_eq!(again.get("kv", old_key.as_bytes()).expect("get").len(), 1);
    nodes.push(again);
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

/// Stops the last node, sets its Raft state aside as `mnema data rebuild` does (a lost
/// store), restarts it with `config` (its discovery source still answering), and checks
/// that it comes back as a new member: its old voter removed, then added back as a learner
/// and promoted, never back as the same voter with an empty log; it then holds `old_key`.
async fn rebuild_last_and_rejoin_as_new_member(mut nodes: Vec<Node>, config: NodeConfig, old_key: &str) {
    let last = nodes.pop().expect("a node");
    let name = last.name().to_string();
    last.shutdown().await.expect("stop");
    let mut events = nodes[0].watch_members();
    mnema::rebuild_data_dir(&config).expect("set the store aside");
    let again = Node::start(config, test_tables()).await.expect("restart with an empty store");
    wait_rejoined_as_new_member(&mut events, &name).await;
    let done = nodes[0].transact(Txn::new().put("kv", "after-rebuild", "v")).await.expect("write");
    again.wait_applied(done.index, Duration::from_secs(20)).await.expect("caught up as a new member");
    assert_eq!(again.get("kv", old_key.as_bytes()).expect("get").len(), 1);
    nodes.push(again);
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

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

/// A port free on 127.0.0.1 to 127.0.0.n (one node per loopback address, same port).
fn port_on_loopbacks(n: u8) -> u16 {
    loop {
        let p = free_base(1) + 1;
        if (1..=n).all(|i| std::net::TcpListener::bind((format!("127.0.0.{i}").as_str(), p)).is_ok()) {
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
    c.raft.heartbeat_interval = "50ms".parse().unwrap();
    c.raft.election_timeout = "300ms".parse().unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k8s_nodes_started_together_form_exactly_one_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_loopbacks(3);
    let gone = Arc::new(AtomicBool::new(false));
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let api = apiserver(&ips, port, gone.clone()).await;
    let nodes = start_together([
        k8s_config(dir.path(), ips[0], port, &api),
        k8s_config(dir.path(), ips[1], port, &api),
        k8s_config(dir.path(), ips[2], port, &api),
    ])
    .await;
    assert_one_cluster(&nodes, "k8s").await;
    // A restarted node rejoins from its data dir: no discovery (the API now answers 404).
    gone.store(true, Ordering::SeqCst);
    restart_last_and_rejoin(nodes, k8s_config(dir.path(), ips[2], port, &api), "k8s").await;
}

/// An authoritative server for `mnema.test.` on 127.0.0.1 (UDP), serving `records`.
mod dns {
    use hickory_server::Server;
    use hickory_server::proto::rr::rdata::{A, SOA, SRV};
    use hickory_server::proto::rr::{Name, RData, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    pub fn a(name: &str, ip: Ipv4Addr) -> (String, RData) {
        (name.to_string(), RData::A(A(ip)))
    }

    pub fn srv(name: &str, port: u16, target: &str) -> (String, RData) {
        (name.to_string(), RData::SRV(SRV::new(0, 0, port, fqdn(target))))
    }

    fn fqdn(name: &str) -> Name {
        Name::from_ascii(name).expect("a test DNS name")
    }

    pub type Zone = Arc<InMemoryZoneHandler>;

    /// Adds a record to a served zone (new answers at once: the resolver does not cache).
    pub async fn add(zone: &Zone, (name, data): (String, RData)) {
        assert!(zone.upsert(Record::from_rdata(fqdn(&name), 1, data), 1).await, "record {name}");
    }

    pub async fn serve(records: Vec<(String, RData)>) -> (SocketAddr, Server<Catalog>) {
        let (addr, server, _) = serve_zone(records).await;
        (addr, server)
    }

    pub async fn serve_zone(records: Vec<(String, RData)>) -> (SocketAddr, Server<Catalog>, Zone) {
        let origin = fqdn("mnema.test.");
        let mut zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(fqdn("ns.mnema.test."), fqdn("admin.mnema.test."), 1, 3600, 600, 86_400, 1);
        assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 1));
        for (name, data) in records {
            assert!(zone.upsert_mut(Record::from_rdata(fqdn(&name), 1, data), 1), "record {name}");
        }
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(origin.into(), vec![zone.clone()]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS socket");
        let addr = socket.local_addr().expect("DNS address");
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        (addr, server, zone)
    }
}

fn dns_config(dir: &std::path::Path, name: &str, dns: SocketAddr, lookup: &str, kind: DnsRecordType) -> NodeConfig {
    let mut c = NodeConfig::new(name, dir.join(name));
    c.node.cookie = "test-cookie".into();
    c.cluster.discovery_strategy = DiscoveryStrategy::Dns;
    c.cluster.dns.name = lookup.into();
    c.cluster.dns.record_type = kind;
    c.cluster.dns.servers = vec![dns.to_string()];
    c.raft.heartbeat_interval = "50ms".parse().unwrap();
    c.raft.election_timeout = "300ms".parse().unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_a_records_nodes_started_together_form_exactly_one_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_loopbacks(4);
    // The name lists three cores and a replicant (127.0.0.4): the replicant is never a member.
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let records = ips.iter().map(|ip| dns::a("cluster.mnema.test.", ip.parse().expect("ip"))).collect();
    let (server, mut dns_server) = dns::serve(records).await;
    let config = |ip: &str| {
        let mut c = dns_config(dir.path(), &format!("mnema@{ip}"), server, "cluster.mnema.test", DnsRecordType::A);
        c.node.base_port = port;
        c
    };
    let mut replicant = config(ips[3]);
    replicant.node.role = mnema::Role::Replicant;
    let (a, b, c, r) = tokio::join!(
        Node::start(config(ips[0]), test_tables()),
        Node::start(config(ips[1]), test_tables()),
        Node::start(config(ips[2]), test_tables()),
        Node::start(replicant, test_tables()),
    );
    let nodes = vec![a.expect("n1"), b.expect("n2"), c.expect("n3")];
    let r = r.expect("replicant");
    assert_one_cluster(&nodes, "dns-a").await;
    assert_replicant_follows(&r, "dns-a").await;
    r.shutdown().await.expect("stop replicant");
    // The restarted node needs no DNS: the server is gone.
    dns_server.shutdown_gracefully().await.expect("stop DNS");
    restart_last_and_rejoin(nodes, config(ips[2]), "dns-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_srv_records_place_nodes_of_one_host_on_their_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(3);
    let mut records = Vec::new();
    for i in 1..=3u16 {
        let host = format!("n{i}.mnema.test.");
        records.push(dns::srv("_mnema._tcp.mnema.test.", base + i, &host));
        records.push(dns::a(&host, std::net::Ipv4Addr::LOCALHOST));
    }
    let (server, _dns_server) = dns::serve(records).await;
    let config = |i: u16| {
        let mut c = dns_config(
            dir.path(),
            &format!("mnema@n{i}.mnema.test"),
            server,
            "_mnema._tcp.mnema.test",
            DnsRecordType::Srv,
        );
        // The name's host is known to this DNS server only: say where to listen and be reached.
        c.node.listen = Some(addr(base, i));
        c.node.advertise = Some(addr(base, i));
        c
    };
    let nodes = start_together([config(1), config(2), config(3)]).await;
    assert_one_cluster(&nodes, "dns-srv").await;
    let members = nodes[0]
        .runtime()
        .metrics()
        .expect("metrics")
        .membership_config
        .membership()
        .nodes()
        .map(|(_, n)| (n.name.clone(), n.addr.clone()))
        .collect::<Vec<_>>();
    for i in 1..=3 {
        assert!(members.contains(&(format!("mnema@n{i}.mnema.test"), addr(base, i))), "{members:?}");
    }
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

/// An etcd server on loopback (Debian's `etcd-server`, installed by `.ci/setup`), killed on drop.
struct Etcd {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files for an etcd over TLS: its certificate and key, and the CA (which also signs the
/// client certificates it accepts).
struct EtcdTls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: std::path::PathBuf,
}

/// Client TLS for the test's own etcd calls: trust `ca`, present `identity` (cert, key) if any.
fn etcd_tls(ca: &std::path::Path, identity: Option<(&std::path::Path, &std::path::Path)>) -> etcd_client::TlsOptions {
    let read = |p: &std::path::Path| std::fs::read(p).expect("read PEM");
    let tls = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read(ca)));
    match identity {
        Some((cert, key)) => tls.identity(etcd_client::Identity::from_pem(read(cert), read(key))),
        None => tls,
    }
}

impl Etcd {
    async fn start() -> Etcd {
        Self::start_with(None).await
    }

    /// With `tls`, etcd serves https and requires client certificates signed by its CA.
    async fn start_with(tls: Option<&EtcdTls>) -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = free_base(2);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", base + 1);
        let peer = format!("http://127.0.0.1:{}", base + 2);
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
        let mut cmd = std::process::Command::new("etcd");
        cmd.args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")]);
        if let Some(t) = tls {
            cmd.arg("--cert-file").arg(&t.cert).arg("--key-file").arg(&t.key);
            cmd.arg("--trusted-ca-file").arg(&t.ca).arg("--client-cert-auth");
        }
        let child = cmd
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log)
            .spawn()
            .expect("start etcd: install Debian's etcd-server (.ci/setup does)");
        let etcd = Etcd { child, url: client, _dir: dir };
        let identity = tls.map(|t| etcd_tls(&t.ca, Some((&t.cert, &t.key))));
        let url = etcd.url.clone();
        eventually("etcd to answer", Duration::from_secs(30), || {
            let (url, identity) = (url.clone(), identity.clone());
            async move {
                let opts = identity.map(|t| etcd_client::ConnectOptions::new().with_tls(t));
                let mut c = etcd_client::Client::connect([url], opts).await.ok()?;
                c.get("probe", None).await.ok().map(|_| ())
            }
        })
        .await;
        etcd
    }

    async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.url.clone()], None).await.expect("etcd client")
    }
}

/// (node name, lease) of every registration under the default prefix of cluster `mnema`.
async fn registered(etcd: &mut etcd_client::Client) -> Vec<(String, i64)> {
    let prefix = "/mnemacl/mnema/nodes/";
    let resp = etcd.get(prefix, Some(etcd_client::GetOptions::new().with_prefix())).await.expect("etcd get");
    resp.kvs()
        .iter()
        .map(|kv| (String::from_utf8_lossy(kv.key()).trim_start_matches(prefix).to_string(), kv.lease()))
        .collect()
}

fn etcd_config(dir: &std::path::Path, base: u16, i: u16, etcd: &Etcd, ttl: &str) -> NodeConfig {
    let mut c = manual_config(dir, base, i);
    c.cluster.discovery_strategy = DiscoveryStrategy::Etcd;
    c.cluster.etcd.server = vec![etcd.url.clone()];
    c.cluster.etcd.node_ttl = ttl.parse().unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_nodes_started_together_form_exactly_one_cluster() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(4);
    // A long TTL: a stopped node that disappears at once did revoke its lease.
    let config = |i| etcd_config(dir.path(), base, i, &etcd, "60s");
    let nodes = start_together([config(1), config(2), config(3)]).await;
    assert_one_cluster(&nodes, "etcd").await;
    let mut client = etcd.client().await;
    let names: Vec<String> = registered(&mut client).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [name(1), name(2), name(3)]);
    let formed = client.get("/mnemacl/mnema/formed", None).await.expect("get");
    let holder = formed.kvs().first().map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
    assert!(holder.as_ref().is_some_and(|h| names.contains(h)), "one node claimed the formation: {holder:?}");

    let mut nodes = nodes;
    let n3 = nodes.pop().expect("n3");
    n3.shutdown().await.expect("stop n3");
    let names: Vec<String> = registered(&mut client).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [name(1), name(2)], "a clean stop revokes the lease at once (TTL is 60s)");
    nodes.push(Node::start(config(3), test_tables()).await.expect("restart n3"));
    wait_until("n3 registered again", Duration::from_secs(10), || async {
        registered(&mut etcd.client().await).await.len() == 3
    })
    .await;
    let done = nodes[0].transact(Txn::new().put("kv", "after-restart", "v")).await.expect("write");
    nodes[2].wait_applied(done.index, Duration::from_secs(20)).await.expect("n3 rejoined from its data dir");
    assert_eq!(nodes[2].get("kv", b"etcd").expect("get").len(), 1);
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etcd_lease_that_expires_removes_a_dead_node_and_a_live_one_registers_again() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(2);
    let mut client = etcd.client().await;
    // n1: a process, to be killed without a chance to revoke its lease.
    let text = format!(
        "[node]\nname = \"{}\"\ncookie = \"test-cookie\"\ndata_dir = \"{}\"\nbase_port = {base}\n\
         [cluster]\ndiscovery_strategy = \"etcd\"\netcd.server = \"{}\"\netcd.node_ttl = \"2s\"\n",
        name(1),
        dir.path().join("n1").display(),
        etcd.url
    );
    let mut n1 = spawn_config(dir.path(), &name(1), "n1", &text);
    let n2 = Node::start(etcd_config(dir.path(), base, 2, &etcd, "2s"), test_tables()).await.expect("n2");
    let leases = eventually("both nodes registered", Duration::from_secs(20), || async {
        let r = registered(&mut etcd.client().await).await;
        (r.len() == 2).then_some(r)
    })
    .await;

    // A live node whose lease ends (here: revoked behind its back) registers again.
    let n2_lease = leases.iter().find(|(n, _)| *n == name(2)).expect("n2 registered").1;
    client.lease_revoke(n2_lease).await.expect("revoke n2's lease");
    eventually("n2 registered under a new lease", Duration::from_secs(10), || async {
        let r = registered(&mut etcd.client().await).await;
        r.iter().find(|(n, l)| *n == name(2) && *l != n2_lease).map(|_| ())
    })
    .await;

    // A dead node's key lives until its lease expires, then goes.
    n1.child.kill().expect("SIGKILL n1");
    n1.child.wait().expect("reap n1");
    assert!(registered(&mut client).await.iter().any(|(n, _)| *n == name(1)), "kept until the TTL runs out");
    wait_until("n1's key to expire", Duration::from_secs(20), || async {
        !registered(&mut etcd.client().await).await.iter().any(|(n, _)| *n == name(1))
    })
    .await;
    n2.shutdown().await.expect("stop n2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = new_ca();
    let (cert, key, ca_file) = issue(&ca, dir.path(), "etcd");
    let tls = EtcdTls { cert, key, ca: ca_file.clone() };
    let etcd = Etcd::start_with(Some(&tls)).await;
    // etcd refuses a client without a certificate...
    let anonymous = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(3))
        .with_tls(etcd_tls(&ca_file, None));
    let refused = match etcd_client::Client::connect([etcd.url.clone()], Some(anonymous)).await {
        Ok(mut c) => c.get("probe", None).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "etcd must require client certificates");
    // ...and a node with `ssl_options` registers and forms its cluster.
    let (node_cert, node_key, _) = issue(&ca, dir.path(), "node");
    let base = free_base(1);
    let mut c = etcd_config(dir.path(), base, 1, &etcd, "10s");
    c.cluster.etcd.ssl_options.cacertfile = Some(ca_file.clone());
    c.cluster.etcd.ssl_options.certfile = Some(node_cert.clone());
    c.cluster.etcd.ssl_options.keyfile = Some(node_key.clone());
    let n1 = Node::start(c, test_tables()).await.expect("n1");
    let opts = etcd_client::ConnectOptions::new().with_tls(etcd_tls(&ca_file, Some((&node_cert, &node_key))));
    let client = etcd_client::Client::connect([etcd.url.clone()], Some(opts)).await.expect("TLS client");
    wait_until("n1 registered over TLS", Duration::from_secs(20), || {
        let mut client = client.clone();
        async move { registered(&mut client).await.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() == [name(1)] }
    })
    .await;
    wait_until("n1 formed its cluster", Duration::from_secs(20), || async {
        n1.runtime().metrics().is_ok_and(|m| m.current_leader == Some(n1.node_id()))
    })
    .await;
    n1.transact(Txn::new().put("kv", "tls", "v")).await.expect("write");
    n1.shutdown().await.expect("stop");
}

/// Nodes whose lookups disagree (two DNS servers with different answers) form nothing
/// until they agree: each shows the list it proposes, and initialises only when every
/// member proposes the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_nodes_whose_lists_disagree_wait_until_they_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_loopbacks(3);
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let a = |i: usize| dns::a("cluster.mnema.test.", ips[i].parse().expect("ip"));
    let (old_server, _old, old_zone) = dns::serve_zone(vec![a(0), a(1)]).await;
    let (new_server, _new, _) = dns::serve_zone(vec![a(0), a(1), a(2)]).await;
    let config = |ip: &str, server: SocketAddr| {
        let mut c = dns_config(dir.path(), &format!("mnema@{ip}"), server, "cluster.mnema.test", DnsRecordType::A);
        c.node.base_port = port;
        c
    };
    let nodes =
        start_together([config(ips[0], old_server), config(ips[1], new_server), config(ips[2], new_server)]).await;
    let names = |n: usize| ips[..n].iter().map(|ip| format!("mnema@{ip}")).collect::<Vec<_>>();
    wait_until("n1 to propose two nodes and n2, n3 three", Duration::from_secs(20), || async {
        let p: Vec<_> = nodes.iter().map(|n| n.status().forming_with).collect();
        p == [names(2), names(3), names(3)]
    })
    .await;
    // Before proposals were compared, n1 (its list seen twice, every node on it answering)
    // initialised a cluster of two here while n2 and n3 formed one of three. Now nobody
    // initialises: watched over three lookup rounds.
    let voters =
        |n: &Node| n.runtime().metrics().map(|m| m.membership_config.membership().voter_ids().count()).unwrap_or(0);
    let watch_until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < watch_until {
        assert!(nodes.iter().all(|n| voters(n) == 0), "a node initialised while proposals differ");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first server catches up: all agree, one cluster of three.
    dns::add(&old_zone, a(2)).await;
    assert_one_cluster(&nodes, "agreed").await;
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dns_discovered_core_that_lost_its_store_comes_back_as_a_new_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_loopbacks(3);
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let records = ips.iter().map(|ip| dns::a("cluster.mnema.test.", ip.parse().expect("ip"))).collect();
    let (server, _dns_server) = dns::serve(records).await;
    let config = |ip: &str| {
        let mut c = dns_config(dir.path(), &format!("mnema@{ip}"), server, "cluster.mnema.test", DnsRecordType::A);
        c.node.base_port = port;
        c
    };
    let nodes = start_together([config(ips[0]), config(ips[1]), config(ips[2])]).await;
    assert_one_cluster(&nodes, "dns-lost").await;
    rebuild_last_and_rejoin_as_new_member(nodes, config(ips[2]), "dns-lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_k8s_discovered_core_that_lost_its_store_comes_back_as_a_new_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port_on_loopbacks(3);
    let ips = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let api = apiserver(&ips, port, Arc::new(AtomicBool::new(false))).await;
    let nodes = start_together([
        k8s_config(dir.path(), ips[0], port, &api),
        k8s_config(dir.path(), ips[1], port, &api),
        k8s_config(dir.path(), ips[2], port, &api),
    ])
    .await;
    assert_one_cluster(&nodes, "k8s-lost").await;
    rebuild_last_and_rejoin_as_new_member(nodes, k8s_config(dir.path(), ips[2], port, &api), "k8s-lost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etcd_discovered_core_that_lost_its_store_comes_back_as_a_new_member() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(4);
    let config = |i| etcd_config(dir.path(), base, i, &etcd, "60s");
    let nodes = start_together([config(1), config(2), config(3)]).await;
    assert_one_cluster(&nodes, "etcd-lost").await;
    rebuild_last_and_rejoin_as_new_member(nodes, config(3), "etcd-lost").await;
}
