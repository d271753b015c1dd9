//! Transport: TLS between nodes (mutual, certificates from config), refusals of an
//! untrusted certificate and of a wrong cookie over TLS, IPv6 loopback, a client's writes
//! pipelined over one stream, and Raft's frames: who they admit, and cores on either
//! transport in one cluster.

use crate::harness::*;
use mnema::config::{DiscoveryStrategy, ProtoDist, TlsFiles};
use mnema::raft::frame::{Hello, Kind};
use mnema::raft::frame_client::{FrameConn, NotMade};
use mnema::{Node, NodeConfig, Txn};
use std::time::Duration;

fn tls_files(files: &(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)) -> TlsFiles {
    TlsFiles {
        cert: std::fs::read(&files.0).expect("cert"),
        key: std::fs::read(&files.1).expect("key"),
        ca: std::fs::read(&files.2).expect("ca"),
        mutual: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_cluster_refuses_untrusted_certificates_and_wrong_cookies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = new_ca();
    let c = Cluster::start_with(3, |cfg| {
        let n = cfg.node.name.split('@').next().unwrap_or("n").to_string();
        let (cert, key, cacert) = issue(&ca, dir.path(), &n);
        cfg.cluster.proto_dist = ProtoDist::InetTls;
        cfg.cluster.tls.certfile = Some(cert);
        cfg.cluster.tls.keyfile = Some(key);
        cfg.cluster.tls.cacertfile = Some(cacert);
    })
    .await;
    let done = c.nodes[1].transact(Txn::new().put("kv", "k", "over tls")).await.expect("write over TLS");
    c.wait_applied(done.index).await;
    for n in &c.nodes {
        assert_eq!(n.get("kv", b"k").expect("get").len(), 1);
    }
    // A client with a certificate from the cluster's CA and the cookie: served.
    let good = issue(&ca, dir.path(), "client");
    let mut ok = mnema::Client::with_tls(&addr(c.base, 1), "test-cookie", Some(&tls_files(&good))).expect("client");
    assert!(ok.node_info().await.is_ok(), "a trusted client is served");
    // The same, with another cookie: refused by the cookie check.
    let mut wrong = mnema::Client::with_tls(&addr(c.base, 1), "other", Some(&tls_files(&good))).expect("client");
    let err = wrong.node_info().await.expect_err("wrong cookie");
    assert!(matches!(err, mnema::Error::CookieMismatch { .. }), "{err}");
    // A certificate from another CA (trusting ours): the handshake fails.
    let rogue = new_ca();
    let mut files = tls_files(&issue(&rogue, dir.path(), "rogue"));
    files.ca = std::fs::read(&good.2).expect("ca");
    let mut untrusted = mnema::Client::with_tls(&addr(c.base, 1), "test-cookie", Some(&files)).expect("client");
    let refused = untrusted.node_info().await;
    assert!(matches!(refused, Err(mnema::Error::Transport { .. })), "an untrusted certificate was served: {refused:?}");
    // Raft frames (plain TCP) to a TLS node: closed unanswered, so Raft stays inside TLS.
    let hello = Hello { protocol: mnema::protocol::PROTOCOL, cookie: b"test-cookie".to_vec(), cluster: String::new() };
    let frames = FrameConn::connect("n1", &addr(c.base, 1), &hello, Duration::from_secs(5)).await;
    assert!(matches!(frames, Err(NotMade::Unsupported)), "a TLS node answered a frames hello");
    // Plain TCP to a TLS node: refused.
    let mut plain = mnema::Client::new(&addr(c.base, 1), "test-cookie").expect("client");
    let refused = plain.node_info().await;
    assert!(matches!(refused, Err(mnema::Error::Transport { .. })), "plain TCP was served by a TLS node: {refused:?}");
    // A node whose certificate the cluster does not trust cannot join it.
    let mut cfg = manual_config(c.dir.path(), c.base, 4);
    let (cert, key, _) = issue(&rogue, dir.path(), "n4");
    cfg.cluster.proto_dist = ProtoDist::InetTls;
    cfg.cluster.tls.certfile = Some(cert);
    cfg.cluster.tls.keyfile = Some(key);
    cfg.cluster.tls.cacertfile = Some(good.2.clone());
    let n4 = Node::start(cfg, test_tables()).await.expect("n4 starts on its own");
    let target = mnema::Peer::parse("t", &name(1), c.base).expect("peer");
    let refused = n4.join(&target).await;
    assert!(matches!(refused, Err(mnema::Error::Transport { .. })), "an untrusted certificate joined: {refused:?}");
    assert_eq!(c.nodes[0].members().expect("members").0.len(), 3, "the membership is unchanged");
    n4.shutdown().await.expect("stop n4");
    // A bad key file stops a node before it serves, naming the key.
    let mut bad = NodeConfig::new("n5@127.0.0.1", c.dir.path().join("n5"));
    bad.cluster.proto_dist = ProtoDist::InetTls;
    let err = Node::start(bad, test_tables()).await.err().expect("no certificates");
    assert!(err.to_string().contains("cluster.tls.certfile"), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ipv6_loopback_cluster_works() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base(3);
    let names: Vec<String> = (1..=3).map(|i| format!("v{i}@[::1]")).collect();
    let mut nodes = Vec::new();
    for n in &names {
        let mut cfg = NodeConfig::new(n, dir.path().join(n.split('@').next().unwrap_or("v")));
        cfg.node.base_port = base;
        cfg.node.cookie = "test-cookie".into();
        cfg.cluster.discovery_strategy = DiscoveryStrategy::Static;
        cfg.cluster.static_.seeds = names.clone();
        cfg.cluster.proto_dist = ProtoDist::Inet6Tcp;
        cfg.raft.heartbeat_interval = "50ms".parse().unwrap();
        cfg.raft.election_timeout = "300ms".parse().unwrap();
        nodes.push(Node::start(cfg, test_tables()).await.expect("start on ::1"));
    }
    assert!(nodes[0].addr().starts_with("[::1]:"), "{}", nodes[0].addr());
    wait_until("a leader over IPv6", Duration::from_secs(20), || async { nodes.iter().any(|n| n.is_leader()) }).await;
    let done = nodes[2].transact(Txn::new().put("kv", "v6", "yes")).await.expect("write over IPv6");
    for n in &nodes {
        n.wait_applied(done.index, Duration::from_secs(10)).await.expect("apply");
        assert_eq!(n.get("kv", b"v6").expect("get").len(), 1);
    }
    let mut bad = NodeConfig::new("v9@127.0.0.1", dir.path().join("v9"));
    bad.cluster.proto_dist = ProtoDist::Inet6Tcp;
    assert!(bad.validate().expect_err("IPv4 host with inet6_tcp").to_string().contains("cluster.proto_dist"));
    for n in nodes {
        n.shutdown().await.expect("stop");
    }
}

/// `Client::pipeline`: many tasks write at once over one stream to a follower; each hears
/// its own outcome (an applied write its index, a refused one its error variant, a failed
/// condition `Conflict`), whatever order the node answers in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_answers_concurrent_writes_each_with_its_own_outcome() {
    let c = Cluster::start(3).await;
    let follower = &c.nodes[c.follower()];
    let client = mnema::Client::new(follower.addr(), COOKIE).expect("client");
    let pipeline = client.pipeline().await.expect("stream opened");
    let tasks: Vec<_> = (0..300u32)
        .map(|i| {
            let p = pipeline.clone();
            tokio::spawn(async move {
                let txn = match i % 3 {
                    0 => mnema::Txn::new().put("kv", format!("k{i}"), format!("v{i}")),
                    // A route whose value is no destination: refused before proposing.
                    1 => mnema::Txn::new().put(mnema::schema::ROUTES, "a/b", "not a destination"),
                    // A condition that fails: the key was never written.
                    _ => mnema::Txn::new().require_value("kv", format!("absent{i}"), "x").put("kv", "never", "x"),
                };
                (i, p.transact(&txn).await)
            })
        })
        .collect();
    let mut last = 0;
    for t in tasks {
        let (i, out) = t.await.expect("task");
        match (i % 3, out) {
            (0, Ok(done)) => last = last.max(done.index),
            (1, Err(mnema::Error::InvalidValue { table, .. })) => assert_eq!(table, mnema::schema::ROUTES),
            (2, Err(mnema::Error::Conflict(_))) => {}
            (kind, other) => panic!("write {i} (kind {kind}): unexpected outcome {other:?}"),
        }
    }
    c.wait_applied(last).await;
    for n in &c.nodes {
        for i in (0..300u32).step_by(3) {
            assert_eq!(
                n.get_one("kv", format!("k{i}").as_bytes()).unwrap().as_deref(),
                Some(format!("v{i}").as_bytes())
            );
        }
        assert!(n.get_one("kv", b"never").unwrap().is_none());
    }
    c.shutdown().await;
}

/// A pipeline to a node that stops: the write then fails with a `Transport` error (its
/// outcome told apart by the kind), and a pipeline to an address nothing listens on is
/// refused at open as never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_to_a_stopped_node_fails_with_a_transport_error() {
    let mut c = Cluster::start(3).await;
    let f = c.follower();
    let client = mnema::Client::new(c.nodes[f].addr(), COOKIE).expect("client");
    let pipeline = client.pipeline().await.expect("stream opened");
    pipeline.transact(&mnema::Txn::new().put("kv", "before", "v")).await.expect("written");
    let addr = c.nodes[f].addr().to_string();
    c.nodes.remove(f).shutdown().await.expect("shutdown");
    let err = pipeline.transact(&mnema::Txn::new().put("kv", "after", "v")).await.unwrap_err();
    assert!(matches!(err, mnema::Error::Transport { .. }), "{err:?}");
    let refused = mnema::Client::new(&addr, COOKIE).expect("client").pipeline().await.err().expect("refused");
    assert!(refused.never_sent(), "{refused:?}");
    c.shutdown().await;
}

/// A Raft frames connection is admitted as a gRPC call is: the cluster's cookie and a
/// protocol version at most one away, and each Raft request the cluster's id; then it
/// carries requests to Raft, and a frame that is no request ends it with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_frames_admit_only_the_clusters_cookie_version_and_id_to_raft() {
    let c = Cluster::start(3).await;
    let id = c.nodes[0].status().cluster_id;
    let to = addr(c.base, 1);
    let hello = |cookie: &str, protocol: u32, cluster: &str| Hello {
        protocol,
        cookie: cookie.as_bytes().to_vec(),
        cluster: cluster.to_string(),
    };
    let within = Duration::from_secs(5);
    let ours = mnema::protocol::PROTOCOL;
    match FrameConn::connect("n1", &to, &hello("other", ours, &id), within).await {
        Err(NotMade::Failed(mnema::Error::CookieMismatch { peer })) => assert_eq!(peer, "n1"),
        Err(other) => panic!("expected CookieMismatch, got {other:?}"),
        Ok(_) => panic!("a wrong cookie was admitted"),
    }
    match FrameConn::connect("n1", &to, &hello(mnema::testing::COOKIE, ours + 2, &id), within).await {
        Err(NotMade::Failed(mnema::Error::VersionMismatch { theirs, .. })) => assert_eq!(theirs, ours + 2),
        Err(other) => panic!("expected VersionMismatch, got {other:?}"),
        Ok(_) => panic!("a version two away was admitted"),
    }
    // A vote for term 0 reaches Raft, which refuses it (its term is higher).
    let vote = openraft::raft::VoteRequest::<u64> { vote: openraft::Vote::new(0, 9), last_log_id: None };
    let bytes = mnema::raft::wire::encode(&vote).expect("encode");
    // Another cluster's caller may connect (a connection also carries forwarded writes,
    // which the gRPC `Cluster` service takes from anyone with the cookie), but none of
    // its Raft requests reaches Raft.
    let Ok(mut foreign) =
        FrameConn::connect("n1", &to, &hello(mnema::testing::COOKIE, ours, "another-cluster"), within).await
    else {
        panic!("a hello with the cookie was refused");
    };
    match foreign.call("n1", Kind::Vote, &bytes).await {
        Ok(Err(mnema::Error::ForeignCluster { peer, .. })) => assert_eq!(peer, "n1"),
        other => panic!("expected ForeignCluster, got {other:?}"),
    }
    let Ok(mut conn) = FrameConn::connect("n1", &to, &hello(mnema::testing::COOKIE, ours, &id), within).await else {
        panic!("the cluster's own hello was refused");
    };
    let reply = conn.call("n1", Kind::Vote, &bytes).await.expect("an exchange").expect("an answer");
    let reply: mnema::raft::wire::VoteReply = mnema::raft::wire::decode("vote reply", reply).expect("decode");
    assert!(!reply.expect("Raft answered").vote_granted);
    // Bytes that are no request: the peer's error, then the end of the connection.
    match conn.call("n1", Kind::Append, &[1, 0xff, 0xff, 0xff]).await {
        Ok(Err(mnema::Error::Corrupt { .. })) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match conn.call("n1", Kind::Ok, &[]).await {
        Ok(Err(mnema::Error::Corrupt { .. })) => {}
        other => panic!("expected Corrupt for a reply sent as a request, got {other:?}"),
    }
    assert!(matches!(conn.call("n1", Kind::Vote, &bytes).await, Err(mnema::Error::Transport { .. })), "closed");
    c.shutdown().await;
}

/// Cores on either Raft transport form one cluster: a core on gRPC calls the others over
/// gRPC, they call it over frames, and writes through each commit everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cores_on_grpc_and_on_frames_form_one_cluster() {
    let c = Cluster::start_with(3, |cfg| {
        if cfg.node.name.starts_with("n1@") {
            cfg.raft.transport = mnema::config::RaftTransport::Grpc;
        }
    })
    .await;
    let mut last = 0;
    for (i, n) in c.nodes.iter().enumerate() {
        last = n.transact(Txn::new().put("kv", format!("k{i}"), "v")).await.expect("write").index;
    }
    c.wait_applied(last).await;
    for n in &c.nodes {
        for i in 0..c.nodes.len() {
            assert_eq!(n.get("kv", format!("k{i}").as_bytes()).expect("get").len(), 1, "k{i} on {}", n.name());
        }
    }
    c.shutdown().await;
}

/// A `Client`'s transactions go over frames where the node speaks them, and answer as
/// they do over gRPC: the same committed write, the same error variant for a refused one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clients_transactions_go_over_frames_and_answer_as_over_grpc() {
    let http = crate::harness::free_base(8);
    let c = Cluster::start_with(3, |cfg| {
        let i = mnema::testing::number_of(&cfg.node.name).expect("harness name");
        cfg.http.listen = Some(format!("127.0.0.1:{}", http + i));
    })
    .await;
    let f = c.follower();
    let i = mnema::testing::number_of(c.nodes[f].name()).expect("harness name");
    let admitted =
        |m: &std::collections::HashMap<String, f64>| crate::observe::value(m, "mnema_raft_frames_connections_total");
    let before = admitted(&crate::observe::scrape(http + i).await);
    let mut framed = mnema::Client::new(&addr(c.base, i), mnema::testing::COOKIE).expect("client");
    let mut grpc = framed.clone().without_frames();
    let a = framed.transact(&Txn::new().put("kv", "a", "1")).await.expect("over frames");
    let after = admitted(&crate::observe::scrape(http + i).await);
    assert!(after > before, "the client's frames connection was admitted");
    let b = grpc.transact(&Txn::new().put("kv", "b", "2")).await.expect("over gRPC");
    assert!(b.index > a.index);
    for client in [&mut framed, &mut grpc] {
        match client.transact(&Txn::new().put("no_such_table", "k", "v")).await {
            Err(mnema::Error::UnknownTable(t)) => assert_eq!(t, "no_such_table"),
            other => panic!("expected UnknownTable, got {other:?}"),
        }
    }
    c.wait_applied(b.index).await;
    for n in &c.nodes {
        assert_eq!(n.get("kv", b"a").expect("get").len(), 1);
        assert_eq!(n.get("kv", b"b").expect("get").len(), 1);
    }
    c.shutdown().await;
}
