//! `mnema`: run a node, talk to a running node, or run a local pseudo-distributed cluster.

use clap::{Parser, Subcommand};
use mnema::backup::Progress;
use mnema::config::{DiscoveryStrategy, NodeConfig};
use mnema::{Client, ClusterStatus, Error, MemberStatus, Node, Result, Role, Txn, schema};
use std::path::PathBuf;
use std::process::ExitCode;

/// Prints a line to stdout; a closed pipe (`mnema ctl … | head`) is not an error.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Parser)]
#[command(name = "mnema", version, about = "Embedded replicated table store for MQTT brokers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node in the foreground until SIGINT or SIGTERM.
    Start {
        /// TOML config (keys as in emqx.conf); MNEMA_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Talk to a running node.
    Ctl {
        /// The node: host:port, or name@host (port by the base-port rule).
        #[arg(long, default_value = "mnema@127.0.0.1", env = "MNEMA_CTL_NODE")]
        node: String,
        /// The cluster's cookie (`node.cookie`).
        #[arg(long, env = "MNEMA_NODE__COOKIE", default_value = mnema::config::DEFAULT_COOKIE, hide_env_values = true)]
        cookie: String,
        /// The base port of `--node name@host` (`node.base_port`).
        #[arg(long, default_value_t = 4370)]
        base_port: u16,
        /// For a node running `inet_tls`: this client's certificate (PEM, as in
        /// `cluster.tls`); needs the two options below.
        #[arg(long, requires_all = ["tls_keyfile", "tls_cacertfile"])]
        tls_certfile: Option<PathBuf>,
        /// For a node running `inet_tls`: this client's private key (PEM).
        #[arg(long)]
        tls_keyfile: Option<PathBuf>,
        /// For a node running `inet_tls`: the cluster's CA certificate (PEM).
        #[arg(long)]
        tls_cacertfile: Option<PathBuf>,
        #[command(subcommand)]
        cmd: Box<CtlCmd>,
    },
    /// Work on a stopped node's data dir.
    Data {
        #[command(subcommand)]
        cmd: OfflineDataCmd,
    },
    /// Start a pseudo-distributed cluster on loopback (cores, then replicants streaming
    /// from them), print its status and each node's /metrics, /health and /ready address
    /// (port base + 1000 + i), serve until Ctrl-C. A second run on the same dir recovers
    /// the same data.
    DevCluster {
        /// Where the nodes' data dirs go (one per node, named by the node).
        #[arg(long, default_value = "./data")]
        dir: PathBuf,
        /// How many cores.
        #[arg(long, default_value_t = 3)]
        cores: u16,
        /// How many replicants.
        #[arg(long, default_value_t = 2)]
        replicants: u16,
        /// Node i serves on this port + i (its /metrics on this + 1000 + i).
        #[arg(long, default_value_t = 4370)]
        base_port: u16,
        /// Print the status once the cluster is up, then stop (for scripts and CI).
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Cluster membership: status, join, leave, force-leave.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Read and write records (values are JSON); create, drop and list tables.
    Table {
        #[command(subcommand)]
        cmd: TableCmd,
    },
    /// Export or import every replicated table as JSON.
    Data {
        #[command(subcommand)]
        cmd: DataCmd,
    },
    /// Copy the node's data dir, online, into DIR (a path on the node's machine).
    Backup {
        /// A directory on the node's machine (created; must not exist).
        dir: String,
    },
}

#[derive(Subcommand)]
enum OfflineDataCmd {
    /// Set a damaged or regressed core's Raft state aside (into <data_dir>/damaged-<ms>/,
    /// kept), or mark a new empty data dir as a lost volume's; started again, the node
    /// rejoins its cluster as a new member and catches up.
    Rebuild {
        /// The node's config (the data dir and name come from it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCmd {
    /// Write every replicated table, at one applied index, to FILE (atomically).
    Export {
        /// The export file to write (JSON).
        file: PathBuf,
    },
    /// Check FILE completely, then write it through Raft (cores only).
    Import {
        /// An export file (JSON).
        file: PathBuf,
        /// merge: keep records not in the file; replace: clear each table in the file first.
        #[arg(long, default_value = "merge")]
        mode: String,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// running_nodes / stopped_nodes, leader, roles, applied index of each node.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make the node join the cluster of NODE (name@host or name@host:port); the node's
    /// replicated data is replaced by the cluster's.
    Join {
        /// A member of the cluster to join: name@host or name@host:port.
        peer: String,
    },
    /// Make the node leave its cluster; it becomes a cluster of one, without the data.
    Leave {
        /// Even if the voters left would not have a majority running.
        #[arg(long)]
        force: bool,
    },
    /// Remove another member (e.g. a dead one) from the node's cluster.
    ForceLeave {
        /// The member to remove: its node name.
        node: String,
        /// Even if the voters left would not have a majority running.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum TableCmd {
    /// Write the record KEY → VALUE (JSON) to TABLE, through the leader.
    Put {
        /// The table.
        table: String,
        /// The record's key.
        key: String,
        /// The value (JSON).
        value: String,
    },
    /// Print the values under KEY in TABLE, read on the node.
    Get {
        /// The table.
        table: String,
        /// The record's key.
        key: String,
        /// Read after the leader's read index (from any node): sees every write
        /// acknowledged before the command began.
        #[arg(long)]
        linearizable: bool,
    },
    /// Delete KEY (with all its values) from TABLE, through the leader.
    Delete {
        /// The table.
        table: String,
        /// The key to delete.
        key: String,
    },
    /// Print every record of TABLE as JSON, read on the node.
    Dump {
        /// The table.
        table: String,
    },
    /// Create a replicated table through the log: one entry, applied on every node.
    Create {
        /// The new table's name.
        name: String,
        /// set, bag or ordered_set.
        #[arg(long, default_value = "set")]
        kind: String,
        /// ram, disc or disc_only.
        #[arg(long, default_value = "disc")]
        storage: String,
        /// The shard the table belongs to.
        #[arg(long, default_value_t = 0)]
        shard: u16,
        /// Keys are MQTT topic filters, indexed for wildcard matching (an in-memory bag).
        #[arg(long)]
        topic_index: bool,
        /// The record rule, NAME or NAME@VERSION (default version 1): code every node
        /// registered.
        #[arg(long)]
        rule: Option<String>,
        /// A secondary index, INDEX=EXTRACTOR or INDEX=EXTRACTOR@VERSION; repeatable.
        #[arg(long = "index")]
        indexes: Vec<String>,
    },
    /// Drop a replicated table and every record of it, through the log. (`table delete`
    /// deletes one key.)
    Drop {
        /// The table to drop.
        name: String,
    },
    /// Print TABLE's changes as the node applies them, one JSON line per change, until
    /// interrupted; exits non-zero when the node's feed no longer holds what it must send.
    Watch {
        /// The table to watch.
        table: String,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Start at this log index (to resume: the last index printed + 1).
        #[arg(long)]
        from_index: Option<u64>,
        /// First every record at one index (`"op":"record"`), then the changes after it.
        #[arg(long)]
        snapshot: bool,
    },
    /// The node's tables: scope, kind, storage, shard, rule, indexes, records.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `NAME` or `NAME@VERSION` (version 1 when not given).
fn code_ref(arg: &str, what: &str) -> Result<mnema::CodeRef> {
    let (name, version) = match arg.rsplit_once('@') {
        Some((name, v)) => {
            let version =
                v.parse().map_err(|_| Error::config(what, format!("`{arg}`: the version after @ is a number")))?;
            (name, version)
        }
        None => (arg, 1),
    };
    if name.is_empty() {
        return Err(Error::config(what, format!("`{arg}`: a name is needed")));
    }
    Ok(mnema::CodeRef { name: name.to_string(), version })
}

/// A word of a declaration (`set`, `disc`, …) as its type.
fn word<T: serde::de::DeserializeOwned>(value: &str, what: &str, allowed: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| Error::config(what, format!("`{value}`: use {allowed}")))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `start` logs as its config says (`[log]`); the other commands log warnings only.
    let log = match &cli.cmd {
        Cmd::Start { config } => match NodeConfig::load(config.as_deref()) {
            Ok(c) => c.log,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => mnema::config::LogSection { level: "warn".into(), ..Default::default() },
    };
    init_logging(&log);
    let res = match cli.cmd {
        Cmd::Start { config } => start(config).await,
        Cmd::Ctl { node, cookie, base_port, tls_certfile, tls_keyfile, tls_cacertfile, cmd } => {
            match ctl_tls(tls_certfile, tls_keyfile, tls_cacertfile) {
                Ok(tls) => ctl(&node, &cookie, base_port, tls.as_ref(), *cmd).await,
                Err(e) => Err(e),
            }
        }
        Cmd::Data { cmd: OfflineDataCmd::Rebuild { config } } => rebuild(config),
        Cmd::DevCluster { dir, cores, replicants, base_port, once } => {
            dev_cluster(dir, cores, replicants, base_port, once).await
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

/// Installs the `tracing` subscriber: `RUST_LOG` if set, else `[log] level`; text or JSON
/// lines on stderr; without openraft's ERROR lines about peers that do not answer, which
/// mnema's Raft network logs itself (`mnema::is_peer_failure_noise`).
fn init_logging(log: &mnema::config::LogSection) {
    use tracing_subscriber::{filter::filter_fn, fmt, prelude::*};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let quiet = filter_fn(|m| !mnema::is_peer_failure_noise(m));
    let layer = fmt::layer().with_writer(std::io::stderr);
    match log.formatter {
        mnema::config::LogFormat::Json => {
            tracing_subscriber::registry().with(layer.json().with_filter(filter).with_filter(quiet)).init()
        }
        mnema::config::LogFormat::Text => {
            let layer = layer.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
            tracing_subscriber::registry().with(layer.with_filter(filter).with_filter(quiet)).init()
        }
    }
}

async fn start(config: Option<PathBuf>) -> Result<()> {
    let config = NodeConfig::load(config.as_deref())?;
    let node = Node::start(config, schema::broker_tables()).await?;
    out!("{} is running on {}", node.name(), node.addr());
    tokio::select! {
        r = wait_for_signal() => r?,
        // A Raft that stopped after a storage failure (a full disk): exit non-zero so a
        // supervisor restarts the process, never run on as a member in name only.
        e = node.failed() => return Err(e),
    }
    eprintln!("stopping {}", node.name());
    node.shutdown().await
}

fn rebuild(config: Option<PathBuf>) -> Result<()> {
    let config = NodeConfig::load(config.as_deref())?;
    // A lost volume: a new, empty data dir gets the node's identity, so that the node
    // knows at start that it lived before and rejoins as a new member.
    let aside = mnema::rebuild_data_dir(&config)?;
    out!(
        "{}: Raft state set aside in {}; start the node and it rejoins its cluster as a new member",
        config.node.name,
        aside.display()
    );
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

fn resolve_addr(node: &str, base_port: u16) -> Result<String> {
    if node.contains('@') { Ok(mnema::Peer::parse("--node", node, base_port)?.addr) } else { Ok(node.to_string()) }
}

/// The client side of `inet_tls` for `mnema ctl`, from its three PEM files.
fn ctl_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<Option<mnema::config::TlsFiles>> {
    let (Some(cert), Some(key), Some(ca)) = (cert, key, ca) else { return Ok(None) };
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| Error::io(p, e));
    Ok(Some(mnema::config::TlsFiles { cert: read(&cert)?, key: read(&key)?, ca: read(&ca)?, mutual: true }))
}

async fn ctl(
    node: &str,
    cookie: &str,
    base_port: u16,
    tls: Option<&mnema::config::TlsFiles>,
    cmd: CtlCmd,
) -> Result<()> {
    let mut client = Client::with_tls(&resolve_addr(node, base_port)?, cookie, tls)?;
    match cmd {
        CtlCmd::Cluster { cmd: ClusterCmd::Status { json } } => {
            let status = client.status().await?;
            print_status(&status, json);
        }
        CtlCmd::Cluster { cmd: ClusterCmd::Join { peer } } => {
            let leader = client.join(&peer).await?;
            out!("joined the cluster of {peer}; leader: {}", leader.as_deref().unwrap_or("(unknown)"));
        }
        CtlCmd::Cluster { cmd: ClusterCmd::Leave { force } } => {
            client.leave(force).await?;
            out!("left the cluster; {node} is now a cluster of one");
        }
        CtlCmd::Cluster { cmd: ClusterCmd::ForceLeave { node: member, force } } => {
            client.force_leave(&member, force).await?;
            out!("{member} removed from the cluster");
        }
        CtlCmd::Table { cmd } => table_cmd(&mut client, cmd).await?,
        CtlCmd::Data { cmd: DataCmd::Export { file } } => export_cmd(&mut client, &file).await?,
        CtlCmd::Data { cmd: DataCmd::Import { file, mode } } => import_cmd(&mut client, &file, &mode).await?,
        CtlCmd::Backup { dir } => {
            let started = std::time::Instant::now();
            let r = client.backup(&dir).await?;
            out!(
                "backup of {node} in {} on its machine: {:.1} MiB, applied index >= {}, {:.1} s",
                r.dir.display(),
                r.bytes as f64 / 1048576.0,
                r.applied_index,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn progress(what: &'static str) -> Progress {
    Progress::new(what, std::time::Duration::from_secs(1), |line| eprintln!("{line}"))
}

async fn export_cmd(client: &mut Client, file: &std::path::Path) -> Result<()> {
    let tmp = mnema::backup::temp_beside(file);
    let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut p = progress("export");
    let written = client.export(&mut w, &mut p).await;
    let done = written.and_then(|_| {
        let f = w.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        // What arrived must be a whole, valid document before it takes the name.
        let summary = mnema::backup::check_file(&tmp, schema::broker_tables())?;
        std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))?;
        Ok(summary)
    });
    let summary = done.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    p.records = summary.records;
    p.finish();
    out!(
        "exported {} records of {} tables at applied index {} from {} to {}",
        summary.records,
        summary.tables.len(),
        summary.header.applied_index,
        summary.header.node,
        file.display()
    );
    Ok(())
}

async fn import_cmd(client: &mut Client, file: &std::path::Path, mode: &str) -> Result<()> {
    let mode: mnema::backup::Mode = mode.parse()?;
    let info = client.node_info().await?;
    if info.role != Role::Core {
        return Err(Error::IsReplicant { node: info.name, action: "import".into() });
    }
    let mut p = progress("import");
    let summary = mnema::backup::import_file(file, schema::broker_tables(), mode, client, &mut p).await?;
    out!(
        "imported {} records of {} tables ({mode:?}) from an export at applied index {}",
        summary.records,
        summary.tables.len(),
        summary.header.applied_index
    );
    Ok(())
}

async fn table_cmd(client: &mut Client, cmd: TableCmd) -> Result<()> {
    match cmd {
        TableCmd::Put { table, key, value } => {
            let v: serde_json::Value =
                serde_json::from_str(&value).map_err(|e| Error::InvalidTxn(format!("value is not JSON: {e}")))?;
            let bytes = serde_json::to_vec(&v).map_err(|e| Error::InvalidTxn(e.to_string()))?;
            let c = client.transact(&Txn::new().put(&table, key.as_bytes(), bytes)).await?;
            out!("ok (index {})", c.index);
        }
        TableCmd::Delete { table, key } => {
            let c = client.transact(&Txn::new().delete(&table, key.as_bytes())).await?;
            out!("ok (index {})", c.index);
        }
        TableCmd::Get { table, key, linearizable } => {
            let r = if linearizable {
                client.read_linearizable(&table, Some(key.as_bytes())).await?
            } else {
                client.read(&table, Some(key.as_bytes()), 0).await?
            };
            if r.records.is_empty() {
                return Err(Error::NotFound { table: table.to_string(), key: format!("{key:?}") });
            }
            for (_, value) in r.records {
                out!("{}", value_json(&value));
            }
        }
        TableCmd::Create { name, kind, storage, shard, topic_index, rule, indexes } => {
            let indexes = indexes
                .iter()
                .map(|i| {
                    let (index, extractor) = i
                        .split_once('=')
                        .ok_or_else(|| Error::config("--index", format!("`{i}`: use INDEX=EXTRACTOR")))?;
                    Ok(mnema::IndexDecl { name: index.to_string(), extractor: code_ref(extractor, "--index")? })
                })
                .collect::<Result<Vec<_>>>()?;
            let declaration = mnema::Declaration {
                name,
                kind: word(&kind, "--kind", "set, bag or ordered_set")?,
                storage: word(&storage, "--storage", "ram, disc or disc_only")?,
                index: if topic_index { mnema::Index::Topic } else { mnema::Index::None },
                rule: rule.as_deref().map(|r| code_ref(r, "--rule")).transpose()?,
                indexes,
                shard,
            };
            let c = client.create_table(&declaration).await?;
            let what = if c.results.first() == Some(&mnema::OpResult::Exists) { "exists" } else { "created" };
            out!("{what} (index {})", c.index);
        }
        TableCmd::Watch { table, prefix, from_index, snapshot } => {
            let mut spec = mnema::WatchSpec::table(&table);
            spec.prefix = prefix.map(String::into_bytes);
            spec.from_index = from_index;
            let line = |index: u64, table: &str, key: &[u8], op: &str, value: Option<&[u8]>| {
                let mut l = serde_json::json!({
                    "index": index, "table": table, "key": String::from_utf8_lossy(key), "op": op,
                });
                if let Some(v) = value {
                    l["value"] = value_json(v);
                }
                out!("{l}");
            };
            let mut watch = if snapshot {
                let (snap, watch) = client.snapshot_and_watch(&spec).await?;
                for (t, k, v) in &snap.records {
                    line(snap.index, t, k, "record", Some(v));
                }
                watch
            } else {
                client.watch(&spec).await?
            };
            while let Some(event) = watch.next().await {
                let event = event?;
                for c in &event.changes {
                    let value = match &c.op {
                        mnema::ChangeOp::Put(v) | mnema::ChangeOp::DeleteObject(v) => Some(&v[..]),
                        _ => None,
                    };
                    line(event.index, &c.table, &c.key, c.op.as_str(), value);
                }
            }
        }
        TableCmd::Drop { name } => {
            let c = client.drop_table(&name).await?;
            out!("dropped (index {})", c.index);
        }
        TableCmd::List { json } => {
            let tables = client.tables().await?;
            if json {
                let rows: Vec<serde_json::Value> = tables
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "name": t.declaration.name,
                            "scope": if t.scope == mnema::Scope::Local { "local" } else { "replicated" },
                            "declaration": t.declaration,
                            "records": t.records,
                        })
                    })
                    .collect();
                out!("{}", serde_json::Value::Array(rows));
            } else {
                for t in tables {
                    let scope = if t.scope == mnema::Scope::Local { "local" } else { "replicated" };
                    let records = t.records.map(|n| n.to_string()).unwrap_or_else(|| "on disc".into());
                    out!("{}\t{scope}\t{}\trecords {records}", t.declaration.name, t.declaration.shown());
                }
            }
        }
        TableCmd::Dump { table } => {
            // Page by page: the node never sends a whole table in one reply.
            let mut page = mnema::KeyRange::all().limit(Client::PAGE);
            let mut first = true;
            out!("[");
            loop {
                let records = client.range(&table, &page).await?;
                for (k, v) in &records {
                    let row = serde_json::json!({ "key": String::from_utf8_lossy(k), "value": value_json(v) });
                    out!("{}{row}", if first { "" } else { "," });
                    first = false;
                }
                match records.last() {
                    Some(last) if records.len() == Client::PAGE => page = page.after(last),
                    _ => break,
                }
            }
            out!("]");
        }
    }
    Ok(())
}

/// A stored value as JSON: itself if it is JSON, else its bytes in hex.
fn value_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serde_json::json!({ "hex": hex })
    })
}

/// A member's role as the status shows it.
fn role_shown(m: &MemberStatus) -> &'static str {
    match (m.role, m.voter) {
        (Role::Replicant, _) => "replicant",
        (Role::Core, true) => "core",
        (Role::Core, false) => "core (learner)",
    }
}

fn print_status(s: &ClusterStatus, json: bool) {
    let running: Vec<&str> = s.members.iter().filter(|m| m.running).map(|m| m.name.as_str()).collect();
    let stopped: Vec<&str> = s.members.iter().filter(|m| !m.running).map(|m| m.name.as_str()).collect();
    if json {
        let nodes: Vec<serde_json::Value> = s
            .members
            .iter()
            .map(|m| {
                let st = m.status.as_ref();
                let mut node = serde_json::json!({
                    "name": m.name, "addr": m.addr, "role": role_shown(m), "voter": m.voter, "running": m.running,
                    "raft_state": st.and_then(|s| s.raft_role).map(|r| r.as_str()).unwrap_or(""),
                    "applied_index": st.map(|s| s.applied_index).unwrap_or(0), "term": st.map(|s| s.term).unwrap_or(0),
                    "error": m.error.as_deref().unwrap_or(""),
                    "committed": st.map(|s| s.committed).unwrap_or(0),
                    "write_retries": st.map(|s| s.write_retries).unwrap_or(0),
                    "protocol": st.map(|s| s.protocol),
                });
                if let Some(r) = st.and_then(|s| s.replicant.as_ref()) {
                    node["replicant"] = serde_json::json!({
                        "state": r.state.as_str(), "upstream": r.upstream.as_deref().unwrap_or(""), "lag_entries": r.lag_entries, "lag_ms": r.lag_ms,
                        "bootstraps": r.bootstraps, "resumes": r.resumes, "transitions": r.transitions,
                    });
                }
                node
            })
            .collect();
        let doc = serde_json::json!({
            "cluster": s.cluster, "cluster_id": s.cluster_id, "leader": s.leader,
            "running_nodes": running, "stopped_nodes": stopped, "nodes": nodes,
        });
        out!("{doc:#}");
        return;
    }
    let leader = s.leader.as_deref().unwrap_or("(none)");
    out!("Cluster status: {} (id {})  leader: {leader}", s.cluster, s.cluster_id);
    out!("running_nodes: [{}]", running.join(", "));
    out!("stopped_nodes: [{}]", stopped.join(", "));
    out!(
        "{:<24} {:<15} {:<13} {:>9} {:>5} {:<22} {:<24}",
        "NODE",
        "ROLE",
        "STATE",
        "APPLIED",
        "PROTO",
        "ADDR",
        "UPSTREAM (LAG)"
    );
    for m in &s.members {
        let st = m.status.as_ref();
        let (state, upstream) = match (st.and_then(|s| s.replicant.as_ref()), m.running) {
            (_, false) => ("stopped", String::new()),
            (Some(r), true) => (
                r.state.as_str(),
                format!("{} ({} entries, {} ms)", r.upstream.as_deref().unwrap_or("-"), r.lag_entries, r.lag_ms),
            ),
            (None, true) => (st.and_then(|s| s.raft_role).map(|r| r.as_str()).unwrap_or(""), String::new()),
        };
        let applied = st.map(|s| s.applied_index).unwrap_or(0);
        let protocol = st.map(|s| s.protocol.to_string()).unwrap_or_else(|| "-".into());
        out!(
            "{:<24} {:<15} {:<13} {:>9} {:>5} {:<22} {:<24}",
            m.name,
            role_shown(m),
            state,
            applied,
            protocol,
            m.addr,
            upstream
        );
    }
}

async fn dev_cluster(dir: PathBuf, cores: u16, replicants: u16, base_port: u16, once: bool) -> Result<()> {
    if cores == 0 {
        return Err(Error::config("--cores", "must be at least 1"));
    }
    let names: Vec<String> = (1..=cores).map(|i| format!("mnema{i}@127.0.0.1")).collect();
    // Node i's /metrics, /health and /ready on base_port + 1000 + i.
    let http_port = |name: &str| {
        let ordinal = mnema::NodeName::parse("node.name", name).map(|n| n.ordinal()).unwrap_or(0);
        base_port.saturating_add(1000).saturating_add(ordinal)
    };
    let config = |name: &str| {
        let mut c = NodeConfig::new(name, dir.join(name.split('@').next().unwrap_or(name)));
        c.node.base_port = base_port;
        c.http.listen = Some(format!("127.0.0.1:{}", http_port(name)));
        c.cluster.discovery_strategy = DiscoveryStrategy::Static;
        c.cluster.static_.seeds = names.clone();
        c
    };
    let mut nodes = Vec::new();
    for name in &names {
        nodes.push(Node::start(config(name), schema::broker_tables()).await?);
    }
    wait_until_formed(&nodes[0], 0).await?;
    // Replicants are numbered after the cores (their ports follow the cores' ports).
    for i in 1..=replicants {
        let mut c = config(&format!("mnema{}@127.0.0.1", cores + i));
        c.node.role = Role::Replicant;
        nodes.push(Node::start(c, schema::broker_tables()).await?);
    }
    let status = wait_until_formed(&nodes[0], replicants as usize).await?;
    out!("pseudo-distributed cluster of {cores} cores and {replicants} replicants under {}", dir.display());
    print_status(&status, false);
    for n in &nodes {
        out!("{:<24} http://127.0.0.1:{}/metrics  /health  /ready", n.name(), http_port(n.name()));
    }
    out!("try: mnema ctl --node mnema1@127.0.0.1 table put rules r1 '{{\"sql\":\"SELECT * FROM t\"}}'");
    if !once {
        out!("serving; Ctrl-C to stop");
        wait_for_signal().await?;
    }
    for n in nodes {
        n.shutdown().await?;
    }
    Ok(())
}

/// Waits (bounded) until every member is running, a leader is known, and `replicants`
/// replicants stream in state `normal`.
async fn wait_until_formed(node: &Node, replicants: usize) -> Result<ClusterStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = node.cluster_status().await?;
        let normal = s
            .members
            .iter()
            .filter(|m| {
                m.status
                    .as_ref()
                    .and_then(|st| st.replicant.as_ref())
                    .is_some_and(|r| r.state == mnema::ReplicantState::Normal)
            })
            .count();
        if s.leader.is_some() && s.members.iter().all(|m| m.running) && normal >= replicants {
            return Ok(s);
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout { what: "the dev cluster to elect a leader".into(), ms: 30_000 });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every subcommand, option and argument under `cmd` without a help line.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} <{id}>"));
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(path.clone());
            }
            undocumented(sub, &path, out);
        }
    }

    #[test]
    fn every_command_option_and_argument_has_a_help_line() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "mnema", &mut missing);
        assert!(missing.is_empty(), "no help line:\n{}", missing.join("\n"));
    }
}
