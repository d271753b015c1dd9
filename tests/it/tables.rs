//! The broker's tables on a running cluster.

use crate::harness::*;
use mnema::ReplicantState;
use mnema::schema::routes::{Dest, Route};
use std::time::Duration;

fn route(filter: &str, dest: &Dest) -> Route {
    Route { filter: filter.into(), dest: dest.clone() }
}

/// What `Routes::for_each_match` (the publish path's match) visits, sorted.
fn visited(node: &mnema::Node, topic: &str) -> Vec<Route> {
    let mut out = Vec::new();
    node.routes()
        .for_each_match(topic, |f, d| out.push(Route { filter: f.into(), dest: d.to_dest() }))
        .expect("for_each_match");
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_match_on_every_node_and_purge_node_removes_exactly_one_nodes_routes() {
    let c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    let (n1, n2, n3) = (Dest::Node("n1".into()), Dest::Node("n2".into()), Dest::Node("n3".into()));
    let shared = Dest::Shared { group: "g".into(), node: "n1".into() };
    let adds = [("t/1", &n1), ("t/+", &n2), ("t/#", &n1), ("#", &n3), ("t/1", &shared), ("$SYS/#", &n2), ("u", &n1)];
    let mut last = 0;
    for (i, (f, d)) in adds.iter().enumerate() {
        last = c.nodes[i % 3].routes().add(f, d).await.expect("add route").index;
    }
    c.wait_applied(last).await;
    r.wait_applied(last, Duration::from_secs(20)).await.expect("replicant");
    let mut expected =
        vec![route("t/1", &n1), route("t/1", &shared), route("t/+", &n2), route("t/#", &n1), route("#", &n3)];
    expected.sort();
    for node in c.nodes.iter().chain(std::iter::once(&r)) {
        assert_eq!(node.routes().match_routes("t/1").expect("match"), expected, "on {}", node.name());
        assert_eq!(visited(node, "t/1"), expected, "the publish path's match, on {}", node.name());
        assert_eq!(node.routes().match_routes("$SYS/broker").expect("match"), vec![route("$SYS/#", &n2)]);
    }
    let bad_filter = c.nodes[0].routes().add("t/#/x", &n1).await;
    assert!(matches!(bad_filter, Err(mnema::Error::InvalidTopic { .. })), "a bad filter is refused: {bad_filter:?}");
    let wildcard = c.nodes[0].routes().match_routes("t/+");
    assert!(matches!(wildcard, Err(mnema::Error::InvalidTopic { .. })), "a wildcard is not a topic name");
    let wildcard = c.nodes[0].routes().for_each_match("t/+", |_, _| panic!("visited a route for a bad topic"));
    assert!(matches!(wildcard, Err(mnema::Error::InvalidTopic { .. })), "the publish path validates too");

    assert_eq!(c.nodes[1].routes().purge_node("n1").await.expect("purge"), 4);
    let done = c.nodes[1].routes().add("v", &n2).await.expect("add").index;
    c.wait_applied(done).await;
    r.wait_applied(done, Duration::from_secs(20)).await.expect("replicant");
    let mut rest = vec![route("t/+", &n2), route("#", &n3)];
    rest.sort();
    for node in c.nodes.iter().chain(std::iter::once(&r)) {
        assert_eq!(node.routes().match_routes("t/1").expect("match"), rest, "on {}", node.name());
        assert_eq!(visited(node, "t/1"), rest, "the publish path's match, on {}", node.name());
        assert_eq!(node.routes().match_routes("u").expect("match"), vec![route("#", &n3)], "on {}", node.name());
        assert_eq!(node.routes().match_routes("$SYS/x").expect("match"), vec![route("$SYS/#", &n2)]);
    }
    // A replicant's fresh bootstrap rebuilds the wildcard index from the snapshot.
    r.shutdown().await.expect("stop replicant");
    let r = c.replicant(4).await;
    wait_until("replicant normal", Duration::from_secs(20), || async {
        r.replicant_status().is_some_and(|s| s.state == ReplicantState::Normal)
    })
    .await;
    assert_eq!(r.routes().match_routes("t/1").expect("match"), rest);
    r.shutdown().await.expect("stop replicant");
    c.shutdown().await;
}

use mnema::schema::messages::{self, Message};
use mnema::schema::{alarms, banned, client_status, configs, dashboard_users, proxy_subscriptions, retained, sessions};

fn msg(from: &str, topic: &str, payload: &str) -> Message {
    Message {
        id: messages::new_id(),
        from: from.into(),
        qos: 1,
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        ts_ms: mnema::schema::time::now_ms(),
        retain: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_status_and_the_per_node_client_list_agree_on_every_node() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let now = mnema::schema::time::now_ms();

    // Online status and the per-node client list.
    client_status::connected(a, "dev1", "n1@127.0.0.1", now).await.expect("connected");
    let last = client_status::connected(b, "dev2", "n1@127.0.0.1", now).await.expect("connected").index;
    c.wait_applied(last).await;
    for n in &c.nodes {
        let s = client_status::get(n, "dev1").await.expect("read").expect("present");
        assert!(s.online && s.node == "n1@127.0.0.1" && s.online_at_ms == now && s.offline_at_ms.is_none());
        assert_eq!(client_status::online_on(n, "n1@127.0.0.1").await.expect("list"), ["dev1", "dev2"]);
    }
    let last = client_status::disconnected(b, "dev1", now + 5).await.expect("offline").index;
    c.wait_applied(last).await;
    for n in &c.nodes {
        let s = client_status::get(n, "dev1").await.expect("read").expect("present");
        assert!(!s.online && s.offline_at_ms == Some(now + 5) && s.online_at_ms == now, "{s:?}");
        assert_eq!(client_status::online_on(n, "n1@127.0.0.1").await.expect("list"), ["dev2"]);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxy_subscriptions_are_listed_on_every_node_and_bad_filters_refused() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);

    // Proxy subscriptions read at connect.
    let sub = |f: &str, qos| proxy_subscriptions::ProxySub { filter: f.into(), qos };
    proxy_subscriptions::add(a, "dev1", &sub("cmd/dev1/#", 1)).await.expect("proxy sub");
    let last = proxy_subscriptions::add(b, "dev1", &sub("broadcast", 0)).await.expect("proxy sub").index;
    let bad = proxy_subscriptions::add(a, "dev1", &sub("a/#/b", 0)).await;
    assert!(matches!(bad, Err(mnema::Error::InvalidTopic { .. })), "bad filter refused: {bad:?}");
    c.wait_applied(last).await;
    for n in &c.nodes {
        assert_eq!(
            proxy_subscriptions::list(n, "dev1").await.expect("list"),
            vec![sub("broadcast", 0), sub("cmd/dev1/#", 1)]
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_for_an_offline_persistent_client_follow_its_session_to_another_node() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let now = mnema::schema::time::now_ms();

    // A persistent client goes offline; messages for it are kept and fetched in order.
    let (s, resumed) = sessions::open(a, "sub1", "n1@127.0.0.1", 3600, now).await.expect("session");
    assert!(!resumed && s.owner == "n1@127.0.0.1");
    sessions::subscribe(a, "sub1", "pubsub/t", 1, now).await.expect("subscribe");
    sessions::close(a, "sub1", now + 1).await.expect("offline");
    let mut sent_topic = Vec::new();
    let mut sent_queue = Vec::new();
    for i in 0..3 {
        let m = msg("pub", "pubsub/t", &format!("t{i}"));
        messages::publish_to_topic(&c.nodes[i % 3], &m).await.expect("publish");
        sent_topic.push(m);
        let q = msg("pub", "queue/sub1", &format!("q{i}"));
        messages::publish_to_queue(&c.nodes[(i + 1) % 3], &q, "sub1").await.expect("queue");
        sent_queue.push(q);
    }
    // It comes back on another node: the session moves there, subscriptions intact.
    let (s, resumed) = sessions::open(b, "sub1", "n2@127.0.0.1", 3600, now + 2).await.expect("resume");
    assert!(resumed && s.owner == "n2@127.0.0.1" && s.subscriptions.get("pubsub/t") == Some(&1), "{s:?}");
    let last = b.applied_index();
    c.wait_applied(last).await;
    for n in &c.nodes {
        assert_eq!(messages::missed(n, "sub1", "pubsub/t").await.expect("missed"), sent_topic, "on {}", n.name());
        assert_eq!(messages::queued(n, "sub1").await.expect("queued"), sent_queue, "on {}", n.name());
    }
    messages::ack_topic(b, "sub1", "pubsub/t", sent_topic[1].id).await.expect("ack");
    for q in &sent_queue[..2] {
        messages::ack_queued(b, "sub1", q.id).await.expect("ack");
    }
    let last = b.applied_index();
    c.wait_applied(last).await;
    for n in &c.nodes {
        assert_eq!(messages::missed(n, "sub1", "pubsub/t").await.expect("missed"), sent_topic[2..].to_vec());
        assert_eq!(messages::queued(n, "sub1").await.expect("queued"), sent_queue[2..].to_vec(), "acked ones are gone");
    }
    // The session is n2's now, not n1's: what a broker restarting on n1 would restore.
    sessions::open(a, "other", "n1@127.0.0.1", 60, now + 3).await.expect("session");
    let owners = |owner: &'static str| async move {
        sessions::owned_by(b, owner).await.expect("owned_by").into_iter().map(|s| s.client_id).collect::<Vec<_>>()
    };
    c.wait_applied(a.applied_index()).await;
    assert_eq!(owners("n2@127.0.0.1").await, vec!["sub1".to_string()]);
    assert_eq!(owners("n1@127.0.0.1").await, vec!["other".to_string()]);
    // A clean start discards the session; discarding nothing says so.
    assert!(sessions::remove(b, "sub1").await.expect("remove"));
    assert!(!sessions::remove(b, "sub1").await.expect("remove again"));
    assert!(sessions::get(b, "sub1").await.expect("get").is_none());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retained_messages_match_wildcards_and_an_empty_payload_deletes() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let a = &c.nodes[0];

    // Retained messages matched by a wildcard; an empty payload deletes.
    for t in ["sensors/1/temp", "sensors/2/temp", "sensors/2/hum", "other"] {
        retained::retain(a, &msg("pub", t, t), None).await.expect("retain");
    }
    retained::retain(a, &msg("pub", "other", ""), None).await.expect("delete retained");
    let last = a.applied_index();
    c.wait_applied(last).await;
    for n in &c.nodes {
        let got: Vec<String> = retained::match_retained(n, "sensors/+/temp")
            .await
            .expect("match")
            .into_iter()
            .map(|r| r.msg.topic)
            .collect();
        assert_eq!(got, ["sensors/1/temp", "sensors/2/temp"]);
        assert_eq!(retained::match_retained(n, "#").await.expect("match").len(), 3);
        assert!(retained::get(n, "other").await.expect("get").is_none());
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_ids_set_from_every_node_at_once_are_gap_free() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let now = mnema::schema::time::now_ms();

    // Config changes from every node at once: ids 1..=N, no gap, no repeat.
    let sets = (0..12).map(|i| {
        let n = &c.nodes[i % 3];
        async move { configs::set(n, &format!("k{}", i % 4), &format!("\"v{i}\""), now).await }
    });
    let mut ids: Vec<u64> = futures_ids(sets).await;
    ids.sort();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    // Each set returned once applied on its own node: the highest of them covers all.
    let last = c.nodes.iter().map(|n| n.applied_index()).max().unwrap_or(0);
    c.wait_applied(last).await;
    for n in &c.nodes {
        let log = configs::changes_since(n, 0).await.expect("log");
        assert_eq!(log.iter().map(|ch| ch.txn_id).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
        assert_eq!(configs::changes_since(n, 10).await.expect("log").len(), 2);
        let entry = configs::get(n, "k1").await.expect("get").expect("set");
        assert!(log.iter().any(|ch| ch.txn_id == entry.txn_id && ch.value == entry.value));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_subscriptions_stay_on_their_node_and_rules_and_cluster_nodes_are_records() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let now = mnema::schema::time::now_ms();

    // Local subscriptions stay on their node; rules and cluster nodes are plain records.
    use mnema::schema::{cluster_nodes, rules, subscriptions};
    subscriptions::subscribe(&c.nodes[0], "t/#", "client-a").expect("subscribe");
    subscriptions::subscribe(&c.nodes[0], "t/#", "client-b").expect("subscribe");
    subscriptions::unsubscribe(&c.nodes[0], "t/#", "client-a").expect("unsubscribe");
    assert!(matches!(subscriptions::subscribe(&c.nodes[0], "t/#/x", "c"), Err(mnema::Error::InvalidTopic { .. })));
    assert_eq!(subscriptions::subscribers(&c.nodes[0], "t/#").await.expect("read"), ["client-b"]);
    let rule = rules::Rule {
        id: "r1".into(),
        sql: "SELECT * FROM \"t/#\"".into(),
        actions: vec!["republish".into()],
        enable: true,
        description: String::new(),
        created_at_ms: now,
    };
    rules::put(&c.nodes[1], &rule).await.expect("rule");
    let rec = cluster_nodes::NodeRecord {
        name: "n1@127.0.0.1".into(),
        role: "core".into(),
        addr: "x".into(),
        joined_at_ms: now,
    };
    let last = cluster_nodes::register(&c.nodes[2], &rec).await.expect("node record").index;
    c.wait_applied(last).await;
    for n in &c.nodes[1..] {
        assert!(
            subscriptions::subscribers(n, "t/#").await.expect("read").is_empty(),
            "local table replicated to {}",
            n.name()
        );
    }
    for n in &c.nodes {
        assert_eq!(rules::get(n, "r1").await.expect("get"), Some(rule.clone()));
        assert_eq!(cluster_nodes::list(n).await.expect("list"), vec![rec.clone()]);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alarms_activate_and_deactivate_on_every_node() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let now = mnema::schema::time::now_ms();

    // Alarms.
    alarms::activate(&c.nodes[0], "high_cpu", "cpu 95%", "{}", now).await.expect("activate");
    let a = alarms::deactivate(&c.nodes[1], "high_cpu", now + 10).await.expect("deactivate");
    assert!(!a.active && a.activated_at_ms == now && a.deactivated_at_ms == Some(now + 10));
    assert!(matches!(alarms::deactivate(&c.nodes[1], "nope", now).await, Err(mnema::Error::NotFound { .. })));
    assert!(alarms::list(&c.nodes[1], true).await.expect("list").is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_passwords_verify_and_only_argon2id_hashes_reach_the_disc() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;

    // Dashboard users: verify, and the password is nowhere in the data dirs.
    let password = "Pa55-unique-7f3a9c-word";
    dashboard_users::add(&c.nodes[0], "admin", password, "administrator", "").await.expect("add user");
    assert!(matches!(
        dashboard_users::add(&c.nodes[1], "admin", "other", "viewer", "").await,
        Err(mnema::Error::Conflict(_))
    ));
    let last = c.nodes[0].applied_index();
    c.wait_applied(last).await;
    for n in &c.nodes {
        assert!(dashboard_users::verify(n, "admin", password).await.expect("verify"));
        assert!(!dashboard_users::verify(n, "admin", "Pa55-unique-7f3a9c-worD").await.expect("verify"));
        assert!(!dashboard_users::verify(n, "nobody", password).await.expect("verify"));
        assert!(
            dashboard_users::get(n, "admin").await.expect("get").expect("user").password_hash.starts_with("$argon2id$")
        );
    }
    let dir = c.shutdown().await;
    // After shutdown every write is in the files; none holds the password.
    let hits = grep_dir(dir.path(), password.as_bytes());
    assert!(hits.is_empty(), "password found in {hits:?}");
    assert!(!grep_dir(dir.path(), b"$argon2id$").is_empty(), "the check looks in the right files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_sweeps_what_expired_through_raft_on_every_node() {
    let c = Cluster::start_with(3, |cfg| cfg.node.expiry_sweep_interval = "100ms".parse().unwrap()).await;
    let now = mnema::schema::time::now_ms();

    // Expiry, swept by the leader through Raft: gone on every node.
    let expired_retained = msg("pub", "old/news", "x");
    retained::retain(&c.nodes[0], &expired_retained, Some(now.saturating_sub(1))).await.expect("retain");
    retained::retain(&c.nodes[0], &msg("pub", "fresh/news", "x"), Some(now + 3_600_000)).await.expect("retain");
    sessions::open(&c.nodes[1], "gone", "n2@127.0.0.1", 0, now).await.expect("session");
    sessions::close(&c.nodes[1], "gone", now).await.expect("close");
    sessions::open(&c.nodes[1], "stays", "n2@127.0.0.1", 3600, now).await.expect("session");
    let ban = |who: &str, until| banned::Ban {
        kind: banned::BanKind::ClientId,
        who: who.into(),
        by: "admin".into(),
        reason: "test".into(),
        at_ms: now,
        until_ms: until,
    };
    banned::ban(&c.nodes[2], &ban("short", Some(now.saturating_sub(1)))).await.expect("ban");
    banned::ban(&c.nodes[2], &ban("forever", None)).await.expect("ban");
    wait_until("the sweep to remove what expired, on every node", Duration::from_secs(20), || async {
        for n in &c.nodes {
            let swept = retained::get(n, "old/news").await.ok().flatten().is_none()
                && sessions::get(n, "gone").await.ok().flatten().is_none()
                && banned::list(n).await.map(|l| l.len() == 1).unwrap_or(false);
            if !swept {
                return false;
            }
        }
        true
    })
    .await;
    for n in &c.nodes {
        assert!(retained::get(n, "fresh/news").await.expect("get").is_some());
        assert!(sessions::get(n, "stays").await.expect("get").is_some());
        assert!(banned::is_banned(n, banned::BanKind::ClientId, "forever", now).await.expect("ban"));
    }
    c.shutdown().await;
}

async fn futures_ids(sets: impl Iterator<Item = impl std::future::Future<Output = mnema::Result<u64>>>) -> Vec<u64> {
    let handles: Vec<_> = sets.collect();
    let mut out = Vec::new();
    for r in futures_join(handles).await {
        out.push(r.expect("config set"));
    }
    out
}

async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let mut pinned: Vec<_> = fs.into_iter().map(Box::pin).collect();
    // Poll all together: a simple join without an extra dependency.
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

/// Files under `dir` whose bytes contain `needle`.
fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files_under(dir).into_iter().filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle)).map(|(p, _)| p).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_typed_tables_run_on_a_remote_client_as_on_a_node() {
    use mnema::schema::{messages, rules, sessions, subscriptions};
    let c = Cluster::start(3).await;
    let client = mnema::Client::new(&addr(c.base, 2), "test-cookie").expect("client");
    let rule = rules::Rule {
        id: "r1".into(),
        sql: "SELECT * FROM \"t/#\"".into(),
        actions: vec!["republish".into()],
        enable: true,
        description: String::new(),
        created_at_ms: 1,
    };
    let done = rules::put(&client, &rule).await.expect("a write through the client");
    c.wait_applied(done.index).await;
    assert_eq!(rules::get(&c.nodes[0], "r1").await.expect("read on a node"), Some(rule.clone()));
    assert_eq!(rules::get(&client, "r1").await.expect("read through the client"), Some(rule));
    // A conditional read-modify-write through the client.
    let (_, resumed) = sessions::open(&client, "c1", "n2@127.0.0.1", 60, 5).await.expect("session");
    assert!(!resumed);
    sessions::subscribe(&client, "c1", "a/+", 1, 6).await.expect("subscribe");
    c.wait_applied(c.nodes[1].applied_index()).await;
    let on_node = sessions::get(&c.nodes[2], "c1").await.expect("read").expect("the session");
    assert_eq!(on_node.subscriptions.get("a/+"), Some(&1));
    // Prefix reads give what a node's own read gives.
    for i in 0..3 {
        messages::publish_to_queue(&client, &msg("pub", "q", &format!("m{i}")), "c1").await.expect("queue");
    }
    c.wait_applied(c.nodes[1].applied_index()).await;
    let through_client = messages::queued(&client, "c1").await.expect("queued");
    assert_eq!(through_client.len(), 3);
    assert_eq!(through_client, messages::queued(&c.nodes[0], "c1").await.expect("queued"));
    // Local tables belong to their node: not written through a client.
    assert!(matches!(subscriptions::subscribe(&client, "t/1", "s"), Err(mnema::Error::Refused(_))));
    c.shutdown().await;
}

/// A table handle reads what `get_one` reads, on a core (in memory and on disc only) and
/// on a replicant, and follows later writes; bags and unknown tables are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_handle_reads_the_nodes_current_copy_and_refuses_bags_and_unknown_tables() {
    let c = Cluster::start(3).await;
    let r = c.replicant(4).await;
    let leader = &c.nodes[c.leader()];
    let kv = leader.table("kv").expect("kv");
    let big = leader.table("big").expect("big (disc only)");
    let on_replicant = r.table("kv").expect("kv on a replicant");
    assert_eq!(kv.get_one(b"k").expect("read"), None);
    let done = leader.transact(mnema::Txn::new().put("kv", "k", "v1").put("big", "k", "b1")).await.expect("write");
    r.wait_applied(done.index, Duration::from_secs(20)).await.expect("replicant applied");
    assert_eq!(kv.get_one(b"k").expect("read").as_deref(), Some(&b"v1"[..]), "a handle taken before the write sees it");
    assert_eq!(big.get_one(b"k").expect("read").as_deref(), Some(&b"b1"[..]));
    assert_eq!(on_replicant.get_one(b"k").expect("read").as_deref(), Some(&b"v1"[..]));
    assert_eq!(kv.with_one(b"k", |v| v.map(<[u8]>::len)).expect("read"), Some(2));
    assert_eq!(kv.get_one(b"k").expect("read"), leader.get_one("kv", b"k").expect("read"));
    assert!(matches!(leader.table("bag").expect("bag").get_one(b"k"), Err(mnema::Error::InvalidTxn(_))));
    assert!(matches!(leader.table("no_such_table"), Err(mnema::Error::UnknownTable(_))));
    // Handles do not hold their node open; afterwards memory reads the last state.
    r.shutdown().await.expect("a replicant with live handles shuts down");
    assert_eq!(on_replicant.get_one(b"k").expect("read").as_deref(), Some(&b"v1"[..]));
    drop(kv);
    c.shutdown().await;
    assert!(matches!(big.get_one(b"k"), Err(mnema::Error::Shutdown)));
}
