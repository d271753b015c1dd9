//! `mnema-broker`: run one broker node, or a pseudo-distributed cluster of them.

use clap::{Parser, Subcommand};
use mnema::NodeConfig;
use mnema::config::DiscoveryStrategy;
use mnema_broker::{BrokerConfig, RouteReads, Running, start};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "mnema-broker", version, about = "An MQTT 3.1.1/5.0 broker on mnema")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one broker node until SIGINT or SIGTERM.
    Start {
        /// The mnema node's TOML config (as `mnema start`); MNEMA_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where MQTT clients connect.
        #[arg(long, default_value = "0.0.0.0:1883", env = "MNEMA_BROKER_MQTT")]
        mqtt: String,
        /// Where other broker nodes forward publishes to.
        #[arg(long, default_value = "0.0.0.0:5370", env = "MNEMA_BROKER_FORWARD")]
        forward: String,
        /// The forwarding address other nodes use (default: --forward).
        #[arg(long, env = "MNEMA_BROKER_FORWARD_ADVERTISE")]
        forward_advertise: Option<String>,
        /// How publishes read the routes table.
        #[arg(long, value_enum, default_value_t = RouteReadsArg::Linearizable)]
        route_reads: RouteReadsArg,
    },
    /// Run NODES broker nodes on loopback (one mnema core each), print their MQTT ports,
    /// serve until Ctrl-C.
    DevCluster {
        #[arg(long, default_value = "./broker-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// mnema's base port (node i listens on base + i).
        #[arg(long, default_value_t = 4470)]
        base_port: u16,
        /// Node i serves MQTT on this + i - 1.
        #[arg(long, default_value_t = 1883)]
        mqtt_port: u16,
        /// Node i forwards on this + i - 1.
        #[arg(long, default_value_t = 5370)]
        forward_port: u16,
        /// Start, print, stop (for scripts and CI).
        #[arg(long)]
        once: bool,
    },
}

/// `--route-reads`: the command line's names for [`RouteReads`].
#[derive(Clone, Copy, clap::ValueEnum)]
enum RouteReadsArg {
    /// Each publish waits for this node to have applied what was committed when it arrived.
    Linearizable,
    /// Read this node's copy as it is.
    Local,
}

impl From<RouteReadsArg> for RouteReads {
    fn from(arg: RouteReadsArg) -> RouteReads {
        match arg {
            RouteReadsArg::Linearizable => RouteReads::Linearizable,
            RouteReadsArg::Local => RouteReads::Local,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    {
        // Without openraft's lines about peers that do not answer and stale messages
        // (`mnema::is_peer_failure_noise`), as `mnema start` logs.
        use tracing_subscriber::{filter::filter_fn, fmt, prelude::*};
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mnema_broker=info"));
        let quiet = filter_fn(|m| !mnema::is_peer_failure_noise(m));
        tracing_subscriber::registry()
            .with(fmt::layer().with_writer(std::io::stderr).with_filter(filter).with_filter(quiet))
            .init();
    }
    let res = match Cli::parse().cmd {
        Cmd::Start { config, mqtt, forward, forward_advertise, route_reads } => {
            run_one(config, mqtt, forward, forward_advertise, route_reads.into()).await
        }
        Cmd::DevCluster { dir, nodes, base_port, mqtt_port, forward_port, once } => {
            dev_cluster(dir, nodes, base_port, mqtt_port, forward_port, once).await
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_one(
    config: Option<PathBuf>,
    mqtt: String,
    forward: String,
    forward_advertise: Option<String>,
    route_reads: RouteReads,
) -> mnema::Result<()> {
    let node = NodeConfig::load(config.as_deref())?;
    let mut cfg = BrokerConfig::new(node, &mqtt, &forward);
    cfg.forward_advertise = forward_advertise;
    cfg.route_reads = route_reads;
    let running = start(cfg).await?;
    ready(&running);
    tokio::select! {
        r = wait_for_signal() => r?,
        e = running.node().failed() => return Err(e),
    }
    running.shutdown().await
}

/// The line scripts and tests wait for.
fn ready(r: &Running) {
    println!("{} ready: mqtt {} forward {}", r.node().name(), r.mqtt_addr(), r.forward_addr());
}

async fn dev_cluster(
    dir: PathBuf,
    nodes: u16,
    base_port: u16,
    mqtt_port: u16,
    forward_port: u16,
    once: bool,
) -> mnema::Result<()> {
    if nodes == 0 {
        return Err(mnema::Error::config("--nodes", "must be at least 1"));
    }
    let names: Vec<String> = (1..=nodes).map(|i| format!("broker{i}@127.0.0.1")).collect();
    let starts = names.iter().enumerate().map(|(i, name)| {
        let mut c = NodeConfig::new(name, dir.join(format!("broker{}", i + 1)));
        c.node.base_port = base_port;
        c.cluster.discovery_strategy = DiscoveryStrategy::Static;
        c.cluster.static_.seeds = names.clone();
        let i = i as u16;
        c.http.listen = Some(format!("127.0.0.1:{}", base_port + 1000 + i + 1));
        start(BrokerConfig::new(c, &format!("127.0.0.1:{}", mqtt_port + i), &format!("127.0.0.1:{}", forward_port + i)))
    });
    // Together: each waits for a leader, which needs a majority started.
    let mut running = Vec::new();
    for r in futures::future::join_all(starts).await {
        running.push(r?);
    }
    for r in &running {
        ready(r);
    }
    println!(
        "try: mosquitto_sub -p {mqtt_port} -t 'demo/#' -v   and   mosquitto_pub -p {} -t demo/1 -m hello",
        mqtt_port + nodes - 1
    );
    if !once {
        wait_for_signal().await?;
    }
    for r in running {
        r.shutdown().await?;
    }
    Ok(())
}

async fn wait_for_signal() -> mnema::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| mnema::Error::io("SIGTERM handler", e))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
