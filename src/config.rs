//! Node configuration: a TOML file whose keys mirror `emqx.conf`, each overridable by an
//! environment variable in EMQX's style (`MNEMA_NODE__NAME`, `MNEMA_CLUSTER__STATIC__SEEDS`).
//!
//! [`NodeConfig::load`] layers defaults, the file and the environment, then [`NodeConfig::validate`]
//! checks every key before anything is opened; an error names the key and the reason.

use crate::error::{Error, Result};
use crate::name::{NodeName, Peer};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cookie EMQX ships with; a node still using it logs a warning.
pub const DEFAULT_COOKIE: &str = "mnemasecretcookie";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub cluster: ClusterSection,
    pub raft: RaftSection,
    pub replicant: ReplicantSection,
}

/// How a replicant streams its copy (ignored by cores).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicantSection {
    /// Cores to stream from (`name@host[:port]`); empty: `cluster.static.seeds`. With the
    /// `dns`, `etcd` and `k8s` strategies, the cores discovery finds are added.
    #[serde(deserialize_with = "string_list")]
    pub cores: Vec<String>,
    /// Shards to replicate; empty: all.
    pub shards: Vec<u16>,
    /// With no message (entries or heartbeat) from its core for this long, a replicant
    /// moves to another core.
    pub stall_timeout: String,
}

impl Default for ReplicantSection {
    fn default() -> Self {
        ReplicantSection { cores: Vec::new(), shards: Vec::new(), stall_timeout: "2s".into() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// `name@host`, immutable for the life of the data dir.
    pub name: String,
    /// Shared secret every RPC between nodes carries.
    pub cookie: String,
    pub data_dir: PathBuf,
    pub role: Role,
    /// Port of `name@host` is `base_port` + the number the name ends with.
    pub base_port: u16,
    /// Where to listen, if not the address the port rule gives (e.g. `0.0.0.0:4370`).
    pub listen: Option<String>,
    /// `host:port` peers reach this node at, if not the address the port rule gives (a node
    /// named by a DNS name only discovery knows, behind NAT, or on a non-standard port).
    pub advertise: Option<String>,
    /// How often the leader deletes expired sessions, retained messages and bans.
    pub expiry_sweep_interval: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Core,
    Replicant,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    pub name: String,
    pub discovery_strategy: DiscoveryStrategy,
    #[serde(rename = "static")]
    pub static_: StaticSection,
    /// A member unreachable for this long is removed by the leader and its routes purged;
    /// `off` disables it.
    pub autoclean: String,
    /// EMQX's partition autoheal. Raft heals by itself: after a partition the minority
    /// side catches up from the leader with no restart, so only `true` is accepted.
    pub autoheal: bool,
    /// Transport between nodes: `inet_tcp`, `inet6_tcp` (IPv6 hosts) or `inet_tls`.
    pub proto_dist: ProtoDist,
    /// The `k8s` strategy: where the service's Endpoints are.
    pub k8s: K8sSection,
    /// Certificates for `inet_tls` (PEM files).
    pub tls: TlsSection,
    /// The `dns` strategy: which name to look up, and how.
    pub dns: DnsSection,
    /// The `etcd` strategy: where to register and discover.
    pub etcd: EtcdSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// The name whose records list the nodes, e.g. `mnema.example.com`.
    pub name: String,
    pub record_type: DnsRecordType,
    /// Name servers (`ip` or `ip:port`) to ask; empty: the system's (`/etc/resolv.conf`).
    #[serde(deserialize_with = "string_list")]
    pub servers: Vec<String>,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection { name: String::new(), record_type: DnsRecordType::A, servers: Vec::new() }
    }
}

/// `a`/`aaaa`: each address is a node `{app}@{address}` on the port the name rule gives;
/// `srv`: each record is a node `{app}@{target}` at the record's port.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecordType {
    A,
    Aaaa,
    Srv,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSection {
    /// Client URLs (`http://` or `https://`), a list or comma-separated.
    #[serde(deserialize_with = "string_list")]
    pub server: Vec<String>,
    /// Keys live under `{prefix}/{cluster.name}/`.
    pub prefix: String,
    /// A node's key lives this long after its last keep-alive.
    pub node_ttl: String,
    /// For `https://` servers: the CA that signs etcd's certificate, and optionally this
    /// node's client certificate.
    pub ssl_options: EtcdTlsSection,
}

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            server: vec!["http://127.0.0.1:2379".into()],
            prefix: "mnemacl".into(),
            node_ttl: "1m".into(),
            ssl_options: EtcdTlsSection::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdTlsSection {
    pub cacertfile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct K8sSection {
    /// e.g. `https://kubernetes.default.svc:443`.
    pub apiserver: String,
    pub service_name: String,
    pub address_type: K8sAddressType,
    pub namespace: String,
    pub suffix: String,
}

impl Default for K8sSection {
    fn default() -> Self {
        K8sSection {
            apiserver: "https://kubernetes.default.svc:443".into(),
            service_name: String::new(),
            address_type: K8sAddressType::Ip,
            namespace: "default".into(),
            suffix: "pod.cluster.local".into(),
        }
    }
}

/// How a pod address becomes a node's host.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum K8sAddressType {
    Ip,
    Dns,
    Hostname,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProtoDist {
    InetTcp,
    Inet6Tcp,
    InetTls,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// This node's certificate chain.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    /// The CA that signs every node's certificate; peers with others are refused.
    pub cacertfile: Option<PathBuf>,
    /// Require a certificate from callers too (mutual TLS).
    pub mutual: bool,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection { certfile: None, keyfile: None, cacertfile: None, mutual: true }
    }
}

/// The PEM contents `inet_tls` runs with, read at validation.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
    pub mutual: bool,
}

fn read_pem(key: &str, path: &Option<PathBuf>, required_with: &str) -> Result<Vec<u8>> {
    let p = path.as_ref().ok_or_else(|| Error::config(key, format!("required with {required_with}")))?;
    let bytes = std::fs::read(p).map_err(|e| Error::config(key, format!("{}: {e}", p.display())))?;
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        return Err(Error::config(key, format!("{} is not a PEM file", p.display())));
    }
    Ok(bytes)
}

const INET_TLS: &str = "cluster.proto_dist = \"inet_tls\"";

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryStrategy {
    Manual,
    Static,
    Dns,
    Etcd,
    K8s,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StaticSection {
    #[serde(deserialize_with = "string_list")]
    pub seeds: Vec<String>,
}

/// Raft and write-path tuning. Durations are written `150ms`, `2s`, `5m`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    pub heartbeat_interval: String,
    pub election_timeout: String,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_after_entries: u64,
    /// Most transactions group-committed into one log entry.
    pub max_batch_txns: usize,
    /// Most batches in flight at once; more callers wait and so batch better.
    pub max_inflight_batches: usize,
    /// How long a write waits for a leader and for its commit.
    pub write_timeout: String,
    /// Times a write is sent again after a failure that leaves its outcome unknown (the
    /// leader died or the connection broke mid-call). Request ids make this safe: a batch
    /// already applied is not applied again.
    pub write_retries: u32,
    /// Pause before the first such retry; doubled each time, up to 1s.
    pub write_retry_backoff: String,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: "mnema@127.0.0.1".into(),
            cookie: DEFAULT_COOKIE.into(),
            data_dir: PathBuf::from("/opt/emqx/data"),
            role: Role::Core,
            base_port: 4370,
            listen: None,
            advertise: None,
            expiry_sweep_interval: "10s".into(),
        }
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            name: "mnema".into(),
            discovery_strategy: DiscoveryStrategy::Manual,
            static_: StaticSection::default(),
            autoclean: "5m".into(),
            autoheal: true,
            proto_dist: ProtoDist::InetTcp,
            k8s: K8sSection::default(),
            tls: TlsSection::default(),
            dns: DnsSection::default(),
            etcd: EtcdSection::default(),
        }
    }
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            heartbeat_interval: "100ms".into(),
            election_timeout: "1s".into(),
            snapshot_after_entries: 20_000,
            max_batch_txns: 4096,
            max_inflight_batches: 8,
            write_timeout: "10s".into(),
            write_retries: 5,
            write_retry_backoff: "50ms".into(),
        }
    }
}

/// The checked form of a config: what the node actually runs with.
#[derive(Clone, Debug)]
pub struct Validated {
    pub name: NodeName,
    pub node_id: u64,
    /// Address peers use to reach this node.
    pub advertise: String,
    /// Address this node binds.
    pub listen: String,
    pub seeds: Vec<Peer>,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub write_timeout: Duration,
    pub write_retry_backoff: Duration,
    pub role: Role,
    /// Cores a replicant streams from (empty for a core).
    pub cores: Vec<Peer>,
    pub stall_timeout: Duration,
    pub expiry_sweep_interval: Duration,
    /// `None`: autoclean off.
    pub autoclean: Option<Duration>,
    /// Set with `inet_tls`.
    pub tls: Option<TlsFiles>,
    /// `cluster.dns.servers`, parsed (empty: the system's).
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Set with the `etcd` strategy.
    pub etcd: Option<EtcdConfig>,
}

/// The `etcd` strategy as a node runs it.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    /// `{prefix}/{cluster.name}/`: node keys are under `nodes/`, the formation claim is `formed`.
    pub root: String,
    /// Lease TTL in whole seconds (etcd's unit), at least 1.
    pub ttl_secs: i64,
    /// PEM: the CA, and optionally this node's certificate and key (for `https://`).
    pub tls: Option<EtcdTlsFiles>,
}

#[derive(Clone, Debug)]
pub struct EtcdTlsFiles {
    pub ca: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdSection {
    fn validate(&self, cluster_name: &str) -> Result<EtcdConfig> {
        if self.server.is_empty() {
            return Err(Error::config("cluster.etcd.server", "the etcd strategy needs at least one server URL"));
        }
        let mut https = 0;
        for url in &self.server {
            match url.split_once("://") {
                Some(("https", rest)) if !rest.is_empty() => https += 1,
                Some(("http", rest)) if !rest.is_empty() => {}
                _ => return Err(Error::config("cluster.etcd.server", format!("`{url}` is not an http(s):// URL"))),
            }
        }
        if https != 0 && https != self.server.len() {
            return Err(Error::config("cluster.etcd.server", "mixes http:// and https:// servers"));
        }
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            return Err(Error::config("cluster.etcd.prefix", "must not be empty"));
        }
        let ttl = parse_duration("cluster.etcd.node_ttl", &self.node_ttl)?;
        if ttl < Duration::from_secs(1) {
            return Err(Error::config("cluster.etcd.node_ttl", "must be at least 1s"));
        }
        let tls = if https > 0 {
            const WITH: &str = "https:// etcd servers";
            let o = &self.ssl_options;
            let identity = match (&o.certfile, &o.keyfile) {
                (None, None) => None,
                (Some(_), Some(_)) => Some((
                    read_pem("cluster.etcd.ssl_options.certfile", &o.certfile, WITH)?,
                    read_pem("cluster.etcd.ssl_options.keyfile", &o.keyfile, WITH)?,
                )),
                _ => return Err(Error::config("cluster.etcd.ssl_options", "certfile and keyfile go together")),
            };
            Some(EtcdTlsFiles { ca: read_pem("cluster.etcd.ssl_options.cacertfile", &o.cacertfile, WITH)?, identity })
        } else {
            None
        };
        Ok(EtcdConfig {
            endpoints: self.server.clone(),
            root: format!("/{prefix}/{cluster_name}/"),
            ttl_secs: ttl.as_secs_f64().ceil() as i64,
            tls,
        })
    }
}

/// Every key of the config, dotted and lower case (`node.name`, `cluster.static.seeds`),
/// sections included: what `MNEMA_*` variables may set.
fn known_keys() -> std::collections::HashSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&key, v, out);
                out.insert(key);
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    if let Ok(v) = serde_json::to_value(NodeConfig::default()) {
        walk("", &v, &mut out);
    }
    out
}

/// `host:port` with a port in 1..=65535 (`[v6]:port` for IPv6 addresses).
fn host_port(key: &str, s: &str) -> Result<String> {
    let bad = |why: &str| Error::config(key, format!("`{s}` {why}"));
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("is not host:port"))?;
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad("needs a port in 1..=65535")),
        Ok(_) => Ok(s.to_string()),
    }
}

/// `ip` (port 53), `ip:port` or `[ipv6]:port`.
fn parse_name_server(s: &str) -> Result<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok((ip, 53).into());
    }
    s.parse().map_err(|_| Error::config("cluster.dns.servers", format!("`{s}` is not ip, ip:port or [ipv6]:port")))
}

impl NodeConfig {
    /// A config for `name` with its data under `data_dir`, everything else default.
    pub fn new(name: &str, data_dir: impl Into<PathBuf>) -> Self {
        let mut c = NodeConfig::default();
        c.node.name = name.into();
        c.node.data_dir = data_dir.into();
        c
    }

    /// Defaults, then `file` (if any), then `MNEMA_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(NodeConfig::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(Error::config("--config", format!("{} does not exist", f.display())));
            }
            if !f.is_file() {
                return Err(Error::config("--config", format!("{} is not a file", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        // EMQX style: only `MNEMA_SECTION__KEY` variables naming a config key are config;
        // others (`MNEMA_CTL_NODE`, a typo) are ignored with a warning, never fatal.
        let known = known_keys();
        for (var, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
            let Some(rest) = var.strip_prefix("MNEMA_") else { continue };
            if !known.contains(&rest.to_ascii_lowercase().replace("__", ".")) {
                tracing::warn!(variable = %var, "ignored: not a config key (MNEMA_SECTION__KEY, e.g. MNEMA_NODE__NAME)");
            }
        }
        fig = fig.merge(
            Env::prefixed("MNEMA_").split("__").filter(move |k| known.contains(&k.as_str().to_ascii_lowercase())),
        );
        fig.extract().map_err(|e| {
            let key = e.path.join(".");
            Error::config(if key.is_empty() { "(file)" } else { &key }, e.kind)
        })
    }

    /// Parses a TOML document (for tests and embedding), without the environment.
    pub fn from_toml(text: &str) -> Result<Self> {
        Figment::from(Serialized::defaults(NodeConfig::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| Error::config(&e.path.join("."), e.kind))
    }

    /// Checks every key; the first bad one is the error.
    pub fn validate(&self) -> Result<Validated> {
        let name = NodeName::parse("node.name", &self.node.name)?;
        if self.node.cookie.is_empty() {
            return Err(Error::config("node.cookie", "must not be empty"));
        }
        // Every call carries it as gRPC metadata, which is visible ASCII only.
        if let Some(c) = self.node.cookie.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(Error::config(
                "node.cookie",
                format!("{c:?} is not allowed: use printable ASCII characters only"),
            ));
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(Error::config("node.data_dir", "must not be empty"));
        }
        let advertise = match &self.node.advertise {
            Some(a) => host_port("node.advertise", a)?,
            None => name.default_addr(self.node.base_port)?,
        };
        let listen = match &self.node.listen {
            Some(l) => host_port("node.listen", l)?,
            None => advertise.clone(),
        };
        let seeds = self
            .cluster
            .static_
            .seeds
            .iter()
            .map(|s| Peer::parse("cluster.static.seeds", s, self.node.base_port))
            .collect::<Result<Vec<_>>>()?;
        match self.cluster.discovery_strategy {
            DiscoveryStrategy::Manual => {}
            DiscoveryStrategy::Static if seeds.is_empty() => {
                return Err(Error::config("cluster.static.seeds", "the static strategy needs at least one seed"));
            }
            DiscoveryStrategy::Static => {}
            DiscoveryStrategy::K8s => {
                if self.cluster.k8s.service_name.is_empty() {
                    return Err(Error::config("cluster.k8s.service_name", "the k8s strategy needs the service's name"));
                }
                if !(self.cluster.k8s.apiserver.starts_with("http://")
                    || self.cluster.k8s.apiserver.starts_with("https://"))
                {
                    return Err(Error::config("cluster.k8s.apiserver", "must be an http:// or https:// URL"));
                }
            }
            DiscoveryStrategy::Dns => {
                if self.cluster.dns.name.trim().is_empty() {
                    return Err(Error::config("cluster.dns.name", "the dns strategy needs the name to look up"));
                }
            }
            DiscoveryStrategy::Etcd => {}
        }
        if !self.cluster.autoheal {
            return Err(Error::config(
                "cluster.autoheal",
                "cannot be turned off: Raft always heals a partition itself (the minority side \
                 refuses writes while cut off and catches up when the network returns)",
            ));
        }
        let dns_servers = self.cluster.dns.servers.iter().map(|s| parse_name_server(s)).collect::<Result<_>>()?;
        let etcd = match self.cluster.discovery_strategy {
            DiscoveryStrategy::Etcd => Some(self.cluster.etcd.validate(&self.cluster.name)?),
            _ => None,
        };
        let heartbeat = parse_duration("raft.heartbeat_interval", &self.raft.heartbeat_interval)?;
        let election_timeout = parse_duration("raft.election_timeout", &self.raft.election_timeout)?;
        if election_timeout < heartbeat * 3 {
            return Err(Error::config("raft.election_timeout", "must be at least 3 heartbeat intervals"));
        }
        let write_timeout = parse_duration("raft.write_timeout", &self.raft.write_timeout)?;
        if self.raft.max_batch_txns == 0 {
            return Err(Error::config("raft.max_batch_txns", "must be at least 1"));
        }
        if self.raft.max_inflight_batches == 0 {
            return Err(Error::config("raft.max_inflight_batches", "must be at least 1"));
        }
        if self.raft.snapshot_after_entries == 0 {
            return Err(Error::config("raft.snapshot_after_entries", "must be at least 1"));
        }
        let write_retry_backoff = parse_duration("raft.write_retry_backoff", &self.raft.write_retry_backoff)?;
        let stall_timeout = parse_duration("replicant.stall_timeout", &self.replicant.stall_timeout)?;
        let expiry_sweep_interval = parse_duration("node.expiry_sweep_interval", &self.node.expiry_sweep_interval)?;
        let tls = match self.cluster.proto_dist {
            ProtoDist::InetTls => Some(TlsFiles {
                cert: read_pem("cluster.tls.certfile", &self.cluster.tls.certfile, INET_TLS)?,
                key: read_pem("cluster.tls.keyfile", &self.cluster.tls.keyfile, INET_TLS)?,
                ca: read_pem("cluster.tls.cacertfile", &self.cluster.tls.cacertfile, INET_TLS)?,
                mutual: self.cluster.tls.mutual,
            }),
            ProtoDist::Inet6Tcp if !name.host().starts_with('[') => {
                return Err(Error::config(
                    "cluster.proto_dist",
                    format!("inet6_tcp needs an IPv6 host in node.name, written [addr]; `{}` is not", name.host()),
                ));
            }
            _ => None,
        };
        let autoclean = match self.cluster.autoclean.trim() {
            "off" | "false" | "0" => None,
            other => Some(parse_duration("cluster.autoclean", other)?),
        };
        let cores = match self.node.role {
            Role::Core => Vec::new(),
            Role::Replicant => {
                let (key, list) = if self.replicant.cores.is_empty() {
                    ("cluster.static.seeds", &self.cluster.static_.seeds)
                } else {
                    ("replicant.cores", &self.replicant.cores)
                };
                let cores =
                    list.iter().map(|s| Peer::parse(key, s, self.node.base_port)).collect::<Result<Vec<_>>>()?;
                let discovers = matches!(
                    self.cluster.discovery_strategy,
                    DiscoveryStrategy::Dns | DiscoveryStrategy::Etcd | DiscoveryStrategy::K8s
                );
                if cores.is_empty() && !discovers {
                    return Err(Error::config(
                        "replicant.cores",
                        "a replicant needs cores to stream from: set replicant.cores or cluster.static.seeds, \
                         or use the dns, etcd or k8s strategy",
                    ));
                }
                if cores.iter().any(|p| p.name == name) {
                    return Err(Error::config(key, "a replicant cannot list itself as a core"));
                }
                cores
            }
        };
        Ok(Validated {
            node_id: name.node_id(),
            name,
            advertise,
            listen,
            seeds,
            heartbeat,
            election_timeout,
            write_timeout,
            write_retry_backoff,
            role: self.node.role,
            cores,
            stall_timeout,
            expiry_sweep_interval,
            autoclean,
            tls,
            dns_servers,
            etcd,
        })
    }
}

impl Validated {
    /// The cluster id a new data dir starts with. Static seeds all derive the same id from
    /// the cluster name and the seed list, so the one cluster they form has one id; a
    /// manual node is a cluster of its own (a fresh random id) until it joins another.
    pub fn initial_cluster_id(&self, cluster_name: &str, strategy: DiscoveryStrategy) -> String {
        let in_seeds = self.seeds.iter().any(|p| p.name == self.name);
        if strategy == DiscoveryStrategy::Static && in_seeds {
            derived_cluster_id(cluster_name, self.seeds.iter().map(|p| p.name.as_str()))
        } else {
            format!("{:016x}", random_u64())
        }
    }
}

/// The cluster id nodes that discover the same member list derive alike.
pub fn derived_cluster_id<'a>(cluster_name: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.dedup();
    format!("{:016x}", crate::name::fnv1a(format!("{cluster_name}\n{}", names.join("\n")).as_bytes()))
}

/// A random number, different in every process and call (ids, not cryptography).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// Parses `250ms`, `5s`, `5m`, `1h`.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| Error::config(key, format!("`{s}` is not a duration like 250ms, 5s or 5m")))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(Error::config(key, format!("`{s}` is not a positive duration like 250ms, 5s or 5m"))),
    }
}

/// A list given as a TOML array, or as one string `a, b` / `[a, b]` (how env vars carry lists).
fn string_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        One(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(v) => v,
        Either::One(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().trim_matches('"').to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_and_validation() {
        let c = NodeConfig::from_toml(
            r#"
            [node]
            name = "mnema2@127.0.0.1"
            data_dir = "/tmp/x"
            [cluster]
            discovery_strategy = "static"
            static.seeds = ["mnema1@127.0.0.1", "mnema2@127.0.0.1:9999"]
            "#,
        )
        .unwrap();
        let v = c.validate().unwrap();
        assert_eq!(v.advertise, "127.0.0.1:4372");
        assert_eq!(v.seeds[0].addr, "127.0.0.1:4371");
        assert_eq!(v.seeds[1].addr, "127.0.0.1:9999");

        let err = NodeConfig::from_toml("[node]\nnmae = \"x\"").unwrap_err().to_string();
        assert!(err.contains("nmae"), "{err}");
        let err = NodeConfig::from_toml("[node]\nrole = \"boss\"").unwrap_err().to_string();
        assert!(err.contains("node.role"), "{err}");
        let mut c = NodeConfig::default();
        c.cluster.discovery_strategy = DiscoveryStrategy::Static;
        assert!(c.validate().unwrap_err().to_string().contains("cluster.static.seeds"));
        c.raft.heartbeat_interval = "soon".into();
        c.cluster.static_.seeds = vec!["a@b".into()];
        assert!(c.validate().unwrap_err().to_string().contains("raft.heartbeat_interval"));
    }

    #[test]
    fn replicant_needs_cores_other_than_itself() {
        let mut c = NodeConfig::new("r4@127.0.0.1", "/tmp/r");
        c.node.role = Role::Replicant;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("replicant.cores"), "{err}");
        c.cluster.static_.seeds = vec!["c1@127.0.0.1".into(), "r4@127.0.0.1".into()];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("cluster.static.seeds") && err.contains("itself"), "{err}");
        c.replicant.cores = vec!["c1@127.0.0.1".into(), "c2@127.0.0.1:9000".into()];
        let v = c.validate().unwrap();
        assert_eq!(v.cores.iter().map(|p| p.addr.as_str()).collect::<Vec<_>>(), ["127.0.0.1:4371", "127.0.0.1:9000"]);
        c.replicant.stall_timeout = "never".into();
        assert!(c.validate().unwrap_err().to_string().contains("replicant.stall_timeout"));
    }

    #[test]
    fn dns_and_etcd_sections_are_checked() {
        let c = NodeConfig::from_toml(
            r#"
            node.advertise = "10.0.0.5:5000"
            [cluster]
            discovery_strategy = "dns"
            dns = { name = "mnema.example.com", record_type = "srv", servers = "127.0.0.1:5353, ::1" }
            "#,
        )
        .unwrap();
        let v = c.validate().unwrap();
        assert_eq!(v.advertise, "10.0.0.5:5000");
        assert_eq!(v.dns_servers, ["127.0.0.1:5353".parse().unwrap(), "[::1]:53".parse().unwrap()]);
        let key_of = |toml: &str| NodeConfig::from_toml(toml).and_then(|c| c.validate()).unwrap_err().to_string();
        assert!(key_of("cluster.discovery_strategy = \"dns\"").contains("cluster.dns.name"));
        assert!(key_of("cluster.dns.servers = [\"ns1\"]").contains("cluster.dns.servers"));
        assert!(key_of("cluster.dns.record_type = \"mx\"").contains("cluster.dns.record_type"));
        assert!(key_of("node.advertise = \"nohost\"").contains("node.advertise"));
        assert!(key_of("cluster.autoheal = false").contains("cluster.autoheal"));
        assert!(NodeConfig::from_toml("cluster.autoheal = true").unwrap().validate().is_ok());

        let c = NodeConfig::from_toml(
            "cluster.discovery_strategy = \"etcd\"\ncluster.name = \"prod\"\n\
             cluster.etcd = { server = \"http://a:2379,http://b:2379\", prefix = \"/emqxcl/\", node_ttl = \"1500ms\" }",
        )
        .unwrap();
        let e = c.validate().unwrap().etcd.unwrap();
        assert_eq!(e.endpoints, ["http://a:2379", "http://b:2379"]);
        assert_eq!((e.root.as_str(), e.ttl_secs), ("/emqxcl/prod/", 2));
        let etcd = |more: &str| key_of(&format!("cluster.discovery_strategy = \"etcd\"\n{more}"));
        assert!(etcd("cluster.etcd.server = \"127.0.0.1:2379\"").contains("cluster.etcd.server"));
        assert!(etcd("cluster.etcd.server = []").contains("cluster.etcd.server"));
        assert!(etcd("cluster.etcd.server = \"http://a:1,https://b:1\"").contains("mixes"));
        assert!(etcd("cluster.etcd.node_ttl = \"500ms\"").contains("cluster.etcd.node_ttl"));
        assert!(etcd("cluster.etcd.prefix = \"/\"").contains("cluster.etcd.prefix"));
        assert!(etcd("cluster.etcd.server = \"https://a:1\"").contains("cluster.etcd.ssl_options.cacertfile"));
    }

    #[test]
    fn seeds_from_a_string() {
        let c = NodeConfig::from_toml("cluster.static.seeds = \"[a1@h, a2@h]\"").unwrap();
        assert_eq!(c.cluster.static_.seeds, vec!["a1@h", "a2@h"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("k", "250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("k", "5m").unwrap(), Duration::from_secs(300));
        for bad in ["", "5", "ms", "0s", "5 days", "-1s"] {
            assert!(parse_duration("k", bad).is_err(), "{bad}");
        }
    }
}
