//! End to end with Debian's `mosquitto-clients`: three `mnema-broker` processes on
//! loopback, each over its own mnema core, and real `mosquitto_sub` / `mosquitto_pub`
//! clients (`apt-get install mosquitto-clients`; `.ci/setup` installs it).
//!
//! Every wait is bounded; a subscriber is known to be subscribed when mosquitto_sub
//! reports its SUBACK (`-d`), and a QoS 1 publish has been routed when mosquitto_pub
//! exits (the broker acknowledges after delivering or queueing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// One `mnema-broker start` process.
struct BrokerProc {
    child: Child,
    mqtt: u16,
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    nodes: Vec<Option<BrokerProc>>,
    /// The mnema cores' base port: core `i` serves gRPC on `base + i`.
    base: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Three broker nodes, one mnema core each, formed by static seeds.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let n = 3;
        let base = mnema::testing::free_base(n);
        let mqtt_base = mnema::testing::free_base(n);
        let fwd_base = mnema::testing::free_base(n);
        let mut pending = Vec::new();
        for i in 1..=n {
            let cfg = mnema::testing::config(dir.path(), base, i, n);
            let file = dir.path().join(format!("n{i}.toml"));
            std::fs::write(&file, toml::to_string(&cfg).expect("config as TOML")).expect("write config");
            pending.push(spawn(&file, mqtt_base + i, fwd_base + i));
        }
        let nodes = pending.into_iter().map(|(p, ready)| Some(wait_ready(p, ready))).collect();
        Cluster { nodes, base, _dir: dir }
    }

    /// Node `i`'s MQTT port (1-based).
    fn port(&self, i: usize) -> u16 {
        self.nodes[i - 1].as_ref().expect("node running").mqtt
    }

    /// A mnema client of node `i`'s core (its store, over gRPC).
    fn store(&self, i: u16) -> mnema::Client {
        mnema::Client::new(&format!("127.0.0.1:{}", self.base + i), "test-cookie").expect("client")
    }

    /// SIGKILL node `i`.
    fn kill(&mut self, i: usize) {
        drop(self.nodes[i - 1].take());
    }
}

fn spawn(config: &Path, mqtt: u16, forward: u16) -> (BrokerProc, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnema-broker"))
        .args(["start", "--config"])
        .arg(config)
        .args(["--mqtt", &format!("127.0.0.1:{mqtt}"), "--forward", &format!("127.0.0.1:{forward}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mnema-broker");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (BrokerProc { child, mqtt }, rx)
}

fn wait_ready(p: BrokerProc, lines: mpsc::Receiver<String>) -> BrokerProc {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(" ready: ") => return p,
            Ok(_) => {}
            Err(e) => panic!("broker on MQTT port {} not ready: {e}", p.mqtt),
        }
    }
}

/// A running `mosquitto_sub`: its received messages as `topic payload` lines.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sub {
    /// Starts `mosquitto_sub` on `port` with `args` and waits for its SUBACK (or its first
    /// message, or its exit).
    fn start(port: u16, args: &[&str]) -> Sub {
        // stdbuf: mosquitto_sub's stdout is block-buffered into a pipe otherwise.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-F", ">> %t %p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients)");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let (subacked_tx, subacked) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("received SUBACK") {
                    let _ = subacked_tx.send(());
                } else if let Some(m) = line.strip_prefix(">> ") {
                    // A resumed session's queued messages may come before the SUBACK.
                    let _ = subacked_tx.send(());
                    let _ = tx.send(m.to_string());
                }
            }
        });
        match subacked.recv_timeout(WAIT) {
            // Exited already (`-C n` satisfied by queued messages): `finish` collects them.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(e) => panic!("mosquitto_sub got no SUBACK: {e}"),
        }
        Sub { child, lines: rx }
    }

    /// The next message, waiting at most [`WAIT`].
    fn next(&self) -> String {
        self.lines.recv_timeout(WAIT).expect("no message within the wait")
    }

    /// Messages up to and including the first equal to `last`.
    fn until(&self, last: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let m = self.next();
            let done = m == last;
            got.push(m);
            if done {
                return got;
            }
        }
    }

    /// Waits for the process to exit by itself (`-C`, `-E`).
    fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.child.try_wait().expect("wait").is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "mosquitto_sub did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = Vec::new();
        // The reader thread ends at EOF; collect what it forwarded.
        while let Ok(m) = self.lines.recv_timeout(Duration::from_secs(5)) {
            got.push(m);
        }
        got
    }
}

/// Runs `mosquitto_pub` to completion (QoS 1: it exits after the PUBACK).
fn publish(port: u16, topic: &str, payload: &str, args: &[&str]) {
    let status = Command::new("timeout")
        .args(["30", "mosquitto_pub", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic, "-m", payload])
        .args(args)
        .status()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(status.success(), "mosquitto_pub {topic} on {port}: {status}");
}

#[test]
fn a_subscriber_on_one_node_receives_what_a_publisher_on_another_node_sends() {
    let c = Cluster::start();
    for v in ["mqttv311", "mqttv5"] {
        let topic = format!("cross/{v}");
        let sub = Sub::start(c.port(1), &["-V", v, "-q", "1", "-t", &topic]);
        publish(c.port(3), &topic, "from node 3", &["-V", v, "-q", "1"]);
        assert_eq!(sub.next(), format!("{topic} from node 3"));
        publish(c.port(2), &topic, "qos 0 from node 2", &["-V", v]);
        assert_eq!(sub.next(), format!("{topic} qos 0 from node 2"));
    }
}

#[test]
fn a_persistent_session_gets_its_qos1_messages_on_reconnect_to_another_node() {
    let c = Cluster::start();
    for (v, id) in [("mqttv311", "p311"), ("mqttv5", "p5")] {
        let topic = format!("persist/{id}");
        let mut args = vec!["-V", v, "-q", "1", "-c", "-i", id, "-t", &topic];
        if v == "mqttv5" {
            args.extend(["-x", "600"]);
        }
        // Subscribe, then leave (-E: exit once subscribed).
        Sub::start(c.port(1), &[args.as_slice(), &["-E"]].concat()).finish();
        publish(c.port(3), &topic, "one", &["-q", "1"]);
        publish(c.port(3), &topic, "two", &["-q", "1"]);
        let back = Sub::start(c.port(2), &[args.as_slice(), &["-C", "2"]].concat());
        assert_eq!(back.finish(), vec![format!("{topic} one"), format!("{topic} two")]);
    }
}

#[test]
fn a_persistent_session_gets_its_qos1_messages_after_its_node_was_killed() {
    let mut c = Cluster::start();
    let args = ["-q", "1", "-c", "-i", "survivor", "-t", "killed/+"];
    Sub::start(c.port(1), &[args.as_slice(), &["-E"]].concat()).finish();
    let (p2, p3) = (c.port(2), c.port(3));
    c.kill(1);
    publish(p3, "killed/a", "while node 1 is down", &["-q", "1"]);
    let back = Sub::start(p2, &[args.as_slice(), &["-C", "1"]].concat());
    assert_eq!(back.finish(), vec!["killed/a while node 1 is down".to_string()]);
    // The session now lives on node 2: a new message reaches it there, live.
    let live = Sub::start(p2, &args);
    publish(p3, "killed/b", "live on node 2", &["-q", "1"]);
    assert_eq!(live.next(), "killed/b live on node 2");
}

#[test]
fn retained_messages_reach_new_subscribers_on_every_node() {
    let c = Cluster::start();
    publish(c.port(2), "retained/x", "kept", &["-q", "1", "-r"]);
    for i in 1..=3 {
        for v in ["mqttv311", "mqttv5"] {
            let sub = Sub::start(c.port(i), &["-V", v, "-t", "retained/+", "-C", "1"]);
            assert_eq!(sub.finish(), vec!["retained/x kept".to_string()], "node {i}, {v}");
        }
    }
    // An empty retained payload deletes it: a later subscriber sees only what follows.
    publish(c.port(1), "retained/x", "", &["-q", "1", "-r"]);
    let sub = Sub::start(c.port(3), &["-t", "retained/+"]);
    publish(c.port(1), "retained/y", "live", &["-q", "1"]);
    assert_eq!(sub.next(), "retained/y live");
}

#[test]
fn a_wildcard_subscriber_gets_exactly_the_matching_topics() {
    let c = Cluster::start();
    let sub = Sub::start(c.port(1), &["-q", "1", "-t", "w/+/c", "-t", "x/#", "-t", "end"]);
    let topics = ["w/b/c", "w/b/c/d", "w/c", "x", "x/y/z", "y/x", "w//c", "wx/b/c"];
    for t in topics {
        publish(c.port(3), t, t, &["-q", "1"]);
    }
    publish(c.port(3), "end", "end", &["-q", "1"]);
    let got = sub.until("end end");
    let want: Vec<String> = ["w/b/c", "x", "x/y/z", "w//c", "end"].iter().map(|t| format!("{t} {t}")).collect();
    assert_eq!(got, want);
}

#[test]
fn system_topics_stay_out_of_multi_level_wildcards() {
    let c = Cluster::start();
    let all = Sub::start(c.port(1), &["-q", "1", "-t", "#"]);
    let sys = Sub::start(c.port(2), &["-q", "1", "-t", "$SYS/#"]);
    publish(c.port(3), "$SYS/brokers/uptime", "42", &["-q", "1"]);
    publish(c.port(3), "plain", "after", &["-q", "1"]);
    assert_eq!(all.next(), "plain after", "`#` must not match a `$` topic");
    assert_eq!(sys.next(), "$SYS/brokers/uptime 42");
}

#[test]
fn a_shared_subscription_delivers_each_message_to_one_member() {
    let c = Cluster::start();
    let a = Sub::start(c.port(1), &["-q", "1", "-t", "$share/g/jobs/+", "-t", "jobs-end"]);
    let b = Sub::start(c.port(2), &["-q", "1", "-t", "$share/g/jobs/+", "-t", "jobs-end"]);
    let n = 10;
    for i in 0..n {
        publish(c.port(3), &format!("jobs/{i}"), &i.to_string(), &["-q", "1"]);
    }
    publish(c.port(3), "jobs-end", "done", &["-q", "1"]);
    let mut got: Vec<String> = a.until("jobs-end done").into_iter().chain(b.until("jobs-end done")).collect();
    got.retain(|m| m != "jobs-end done");
    got.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("jobs/{i} {i}")).collect();
    want.sort();
    assert_eq!(got, want, "each job exactly once across the group");
}

/// `client`'s status as node `i`'s store has it, once `want` accepts it (30 s at most).
fn status_until(
    c: &Cluster,
    i: u16,
    client: &str,
    what: &str,
    want: impl Fn(&mnema::schema::client_status::ClientStatus) -> bool,
) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let store = rt.block_on(async { c.store(i) });
    let deadline = Instant::now() + WAIT;
    loop {
        let s = rt.block_on(mnema::schema::client_status::get(&store, client));
        if let Ok(Some(s)) = &s
            && want(s)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not in {WAIT:?}; last status {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_nodes_clients_are_marked_offline_by_the_cluster() {
    let mut c = Cluster::start();
    let _sub = Sub::start(c.port(3), &["-q", "1", "-i", "on-node-3", "-t", "dead/+"]);
    let on3 = mnema::testing::name(3);
    status_until(&c, 1, "on-node-3", "online on node 3", |s| s.online && s.node == on3);
    c.kill(3);
    // Node 3 went down without a word: the leader's membership events mark its clients offline.
    status_until(&c, 1, "on-node-3", "marked offline", |s| !s.online && s.node == on3);
}
