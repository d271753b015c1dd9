//! Load through the broker on mnema, with a Rust MQTT client (rumqttc), loopback only:
//! `cargo bench --profile perf -p mnema-broker --bench broker_load`.
//!
//! Three broker nodes in this process (one mnema core each, default Raft timings). 12
//! subscribers, 4 per node; publisher j (on node j mod 3) sends QoS 1 messages to the
//! topic of subscriber j+1, which is always on another node, so every message is routed
//! across nodes. Two shapes: 12 publishers with 64 messages in flight each (throughput),
//! and 1 publisher with 1 in flight (latency without queueing). Each payload carries its
//! send time; subscribers record the end-to-end latency.
//! Runs once with `--route-reads linearizable` (the default) and once with `local`, then,
//! if Debian's `mosquitto` broker is installed, against one mosquitto process as the peer
//! (a single node: nothing to route), with the same clients.
//!
//! Bounded: `MNEMA_BROKER_LOAD_SECS` seconds per run (default 10) and at most
//! `MNEMA_BROKER_LOAD_MAX` messages per publisher (default 200000).

use mnema_broker::{BrokerConfig, RouteReads, Running};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 12;
const NODES: usize = 3;
const PAYLOAD: usize = 64;
/// Load shapes: every publisher with 64 QoS 1 messages in flight (throughput), and one
/// publisher with one in flight (latency without queueing).
const SHAPES: [(&str, usize, u16); 2] = [("12 publishers x 64 in flight", 12, 64), ("1 publisher x 1 in flight", 1, 1)];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Outcome {
    acked: u64,
    delivered: u64,
    secs: f64,
    latencies_ns: Vec<u64>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// Runs the load against `ports` (subscriber k and publisher k on `ports[k % len]`):
/// `publishers` of the 12 publish, each with up to `inflight` messages unacknowledged.
async fn load(ports: &[u16], publishers: usize, inflight: u16, secs: u64, max: u64) -> Outcome {
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // Subscribers first, each confirmed subscribed (SUBACK) before any publish.
    let mut subscribed = Vec::new();
    for k in 0..CLIENTS {
        let mut o = MqttOptions::new(format!("sub-{k}"), "127.0.0.1", ports[k % ports.len()]);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(o, 1024);
        client.subscribe(format!("load/{k}"), QoS::AtLeastOnce).await.expect("subscribe");
        let (tx, rx) = tokio::sync::oneshot::channel();
        subscribed.push(rx);
        let (stop, delivered, lat) = (stop.clone(), delivered.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut tx = Some(tx);
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        if let Some(t) = tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        if let Some(sent) = p.payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) {
                            let now = epoch.elapsed().as_nanos() as u64;
                            mine.push(now.saturating_sub(sent));
                        }
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => panic!("subscriber {k}: {e}"),
                }
            }
            lat.lock().expect("latencies").extend(mine);
        }));
    }
    for rx in subscribed {
        tokio::time::timeout(Duration::from_secs(30), rx).await.expect("SUBACK within 30 s").expect("SUBACK");
    }
    let started = Instant::now();
    for j in 0..publishers {
        let mut o = MqttOptions::new(format!("pub-{j}"), "127.0.0.1", ports[j % ports.len()]);
        o.set_keep_alive(Duration::from_secs(30)).set_inflight(inflight);
        let (client, mut events) = AsyncClient::new(o, usize::from(inflight));
        let (stop_e, acked) = (stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            while !stop_e.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(e)) => panic!("publisher {j}: {e}"),
                }
            }
        }));
        let stop = stop.clone();
        let topic = format!("load/{}", (j + 1) % CLIENTS);
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < max && !stop.load(Ordering::Relaxed) {
                let mut payload = vec![0u8; PAYLOAD];
                payload[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
                // Waits while `inflight` messages are unacknowledged: a closed loop.
                if client.publish(&topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                    break;
                }
                sent += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let secs = started.elapsed().as_secs_f64();
    let (a, d) = (acked.load(Ordering::Relaxed), delivered.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let mut latencies_ns = std::mem::take(&mut *lat.lock().expect("latencies"));
    latencies_ns.sort_unstable();
    Outcome { acked: a, delivered: d, secs, latencies_ns }
}

async fn mnema_cluster(reads: RouteReads) -> (Vec<Running>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = NODES as u16;
    let base = mnema::testing::free_base(n);
    let (mqtt, fwd) = (mnema::testing::free_base(n), mnema::testing::free_base(n));
    let starts = (1..=n).map(|i| {
        let mut node = mnema::testing::config(dir.path(), base, i, n);
        // Deployment timings, not the test harness's fast ones.
        node.raft = Default::default();
        let mut cfg = BrokerConfig::new(node, &format!("127.0.0.1:{}", mqtt + i), &format!("127.0.0.1:{}", fwd + i));
        cfg.route_reads = reads;
        mnema_broker::start(cfg)
    });
    let mut nodes = Vec::new();
    for r in futures::future::join_all(starts).await {
        nodes.push(r.expect("broker node"));
    }
    (nodes, dir)
}

fn row(name: &str, o: &Outcome) -> String {
    format!(
        "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
        o.acked as f64 / o.secs,
        o.delivered as f64 / o.secs,
        pct(&o.latencies_ns, 0.5),
        pct(&o.latencies_ns, 0.99),
        o.latencies_ns.last().copied().unwrap_or(0) as f64 / 1e6,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let secs = setting("MNEMA_BROKER_LOAD_SECS", 10);
    let max = setting("MNEMA_BROKER_LOAD_MAX", 200_000);
    let mut rows = Vec::new();
    for (label, reads) in [
        ("mnema-broker, 3 nodes, route reads linearizable", RouteReads::Linearizable),
        ("mnema-broker, 3 nodes, route reads local", RouteReads::Local),
    ] {
        let (nodes, _dir) = mnema_cluster(reads).await;
        let ports: Vec<u16> = nodes.iter().map(|n| n.mqtt_addr().port()).collect();
        for (shape, publishers, inflight) in SHAPES {
            let o = load(&ports, publishers, inflight, secs, max).await;
            eprintln!("{label}, {shape}: {} acked, {} delivered in {:.1} s", o.acked, o.delivered, o.secs);
            rows.push((format!("{label}, {shape}"), o));
        }
        for n in nodes {
            n.shutdown().await.expect("shutdown");
        }
    }
    if std::process::Command::new("mosquitto").arg("-h").output().is_ok() {
        let port = mnema::testing::free_base(1) + 1;
        let mut child = std::process::Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (shape, publishers, inflight) in SHAPES {
            let o = load(&[port], publishers, inflight, secs, max).await;
            rows.push((format!("mosquitto 2.0, one node (peer; no routing, no replication), {shape}"), o));
        }
        let _ = child.kill();
        let _ = child.wait();
    } else {
        eprintln!("mosquitto not installed (apt-get install mosquitto): no peer row");
    }
    println!("\n| Run | publishes acked/s | messages delivered/s | e2e p50 ms | e2e p99 ms | e2e max ms |");
    println!("|---|---|---|---|---|---|");
    for (label, o) in &rows {
        println!("{}", row(label, o));
    }
    let rate = |o: &Outcome| o.delivered as f64 / o.secs;
    for (shape, _, _) in SHAPES {
        let of = |prefix: &str| rows.iter().find(|(l, _)| l.starts_with(prefix) && l.ends_with(shape)).map(|(_, o)| o);
        if let Some(p) = of("mosquitto") {
            for (label, _) in [
                ("mnema-broker, 3 nodes, route reads linearizable", 0),
                ("mnema-broker, 3 nodes, route reads local", 0),
            ] {
                if let Some(m) = of(label) {
                    println!(
                        "{label} / mosquitto, {shape}: delivered/s {:.2}, e2e p50 {:.2}",
                        rate(m) / rate(p),
                        pct(&m.latencies_ns, 0.5) / pct(&p.latencies_ns, 0.5).max(f64::MIN_POSITIVE)
                    );
                }
            }
        }
    }
}
