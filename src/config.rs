//! Node configuration: a TOML file whose keys mirror `emqx.conf`, each overridable by an
//! environment variable in EMQX's style (`MNEMA_NODE__NAME`, `MNEMA_CLUSTER__STATIC__SEEDS`).
//!
//! [`NodeConfig::load`] layers defaults, the file and the environment, then [`NodeConfig::validate`]
//! checks every key before anything is opened; an error names the key and the reason.

mod reference;
pub use reference::reference;

use crate::error::{Error, Result};
use crate::name::{NodeName, Peer};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cookie EMQX ships with; a node still using it logs a warning.
pub const DEFAULT_COOKIE: &str = "mnemasecretcookie";

/// A positive duration as the config writes it: `250ms`, `5s`, `5m`, `1h`. Parsed when the
/// config is read (a bad value is an error naming its key), so code holding a config holds
/// checked durations.
///
/// ```
/// use mnema::config::Interval;
/// let i: Interval = "250ms".parse().unwrap();
/// assert_eq!(i.get(), std::time::Duration::from_millis(250));
/// assert_eq!(i.to_string(), "250ms");
/// assert!("0s".parse::<Interval>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(Duration);

impl Interval {
    /// `ms` milliseconds; `None` for 0.
    pub const fn from_millis(ms: u64) -> Option<Interval> {
        if ms == 0 { None } else { Some(Interval(Duration::from_millis(ms))) }
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Interval {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_duration("duration", s).map(Interval)
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl schemars::JsonSchema for Interval {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Interval".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration_text(&s).map(Interval).map_err(serde::de::Error::custom)
    }
}

/// An [`Interval`] that may be turned off (`off`, `false` or `0`).
pub type Switch = Option<Interval>;

mod switch {
    use super::Interval;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Interval>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(i) => s.collect_str(i),
            None => s.serialize_str("off"),
        }
    }

    /// `off`, `false` and `0` (also as a boolean or a number: how the environment layer
    /// reads them) turn it off; anything else must be a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Interval>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            Flag(bool),
            Number(u64),
        }
        match Given::deserialize(d)? {
            Given::Flag(false) | Given::Number(0) => Ok(None),
            Given::Flag(true) => Err(serde::de::Error::custom("`true` is not a duration; give one, like 5m")),
            Given::Number(n) => Err(serde::de::Error::custom(format!("`{n}` has no unit; write 5m, 90s, …"))),
            Given::Text(s) => match s.trim() {
                "off" | "false" | "0" => Ok(None),
                other => super::parse_duration_text(other).map(|d| Some(Interval(d))).map_err(serde::de::Error::custom),
            },
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// A node's whole configuration, by section as in `emqx.conf`.
pub struct NodeConfig {
    /// `[node]`: who this node is and where its data lives.
    pub node: NodeSection,
    /// `[cluster]`: how the cluster is found and formed.
    pub cluster: ClusterSection,
    /// `[raft]`: Raft and write-path tuning.
    pub raft: RaftSection,
    /// `[replicant]`: how a replicant streams (ignored by cores).
    pub replicant: ReplicantSection,
    /// `[http]`: the operator's endpoint (`/metrics`, `/health`, `/ready`).
    pub http: HttpSection,
    /// `[log]`: what `mnema start` logs, and how (a broker linking the crate installs its
    /// own `tracing` subscriber and may read these).
    pub log: LogSection,
    /// `[feed]`: the change feed watchers read (`Node::watch`, `mnema ctl table watch`).
    pub feed: FeedSection,
}

/// The change feed: every node keeps the changes of its recently applied log entries in a
/// ring, for watchers to read and to resume from. A watcher that falls behind the ring, or
/// resumes before it, is told `Compacted` and starts again from a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSection {
    /// Log entries with changes the ring keeps, at most.
    pub ring_entries: usize,
    /// Bytes of keys and values the ring keeps, at most.
    pub ring_bytes: usize,
}

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection { ring_entries: 100_000, ring_bytes: 64 << 20 }
    }
}

/// The operator's HTTP endpoint: Prometheus metrics at `/metrics`, `/health` (the process
/// serves) and `/ready` (a core knows a leader and has applied the commit index; a
/// replicant streams in state `normal`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// `host:port` to serve on (e.g. `0.0.0.0:8081`); unset: no endpoint.
    pub listen: Option<String>,
}

/// Log output of `mnema start` (to stderr).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a `tracing` filter
    /// (`info,openraft=warn`). `RUST_LOG`, when set, wins.
    pub level: String,
    /// `text` (one line per event) or `json` (one JSON object per line).
    pub formatter: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info,openraft=warn".into(), formatter: LogFormat::Text }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// How a replicant streams its copy (ignored by cores).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicantSection {
    /// Cores to stream from (`name@host[:port]`); empty: `cluster.static.seeds`. With the
    /// `dns`, `etcd` and `k8s` strategies, the cores discovery finds are added.
    #[serde(deserialize_with = "string_list")]
    pub cores: Vec<String>,
    /// The shards this replicant follows: it holds and serves the tables of those only
    /// (a read of another shard's table is refused, never answered empty); its writes to
    /// any shard are forwarded as usual. Empty: every shard. Each listed shard must hold a
    /// table the node declares.
    pub shards: Vec<u16>,
    /// With no message (entries or heartbeat) from its core for this long, a replicant
    /// moves to another core.
    pub stall_timeout: Interval,
}

impl Default for ReplicantSection {
    fn default() -> Self {
        ReplicantSection { cores: Vec::new(), shards: Vec::new(), stall_timeout: Interval(Duration::from_secs(2)) }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[node]`.
pub struct NodeSection {
    /// `name@host`, immutable for the life of the data dir.
    pub name: String,
    /// Shared secret every RPC between nodes carries.
    pub cookie: String,
    /// Where the node keeps `IDENTITY`, RocksDB and snapshots.
    pub data_dir: PathBuf,
    /// Core (a Raft member) or replicant (a read-only copy).
    pub role: Role,
    /// Port of `name@host` is `base_port` + the number the name ends with.
    pub base_port: u16,
    /// Where to listen, if not the address the port rule gives (e.g. `0.0.0.0:4370`).
    pub listen: Option<String>,
    /// `host:port` peers reach this node at, if not the address the port rule gives (a node
    /// named by a DNS name only discovery knows, behind NAT, or on a non-standard port).
    pub advertise: Option<String>,
    /// How often the leader deletes expired sessions, retained messages and bans.
    pub expiry_sweep_interval: Interval,
    /// The protocol version this node announces, if not its build's own: at most one
    /// version older. During a rolling upgrade, set it to the old version on each upgraded
    /// node so that no kind of log entry the old build cannot read is written until every
    /// node runs the new one (then remove it, one node at a time). See `mnema::protocol`.
    pub protocol: Option<u32>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
/// A node's role.
pub enum Role {
    /// A Raft member: votes, stores the log, applies.
    Core,
    /// A stateless copy streamed from a core; forwards its writes.
    Replicant,
}

impl Role {
    /// `core` or `replicant`, as the config writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Core => "core",
            Role::Replicant => "replicant",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster]`.
pub struct ClusterSection {
    /// The cluster's name (part of static seeds' cluster id, of etcd keys).
    pub name: String,
    /// How the nodes find each other.
    pub discovery_strategy: DiscoveryStrategy,
    #[serde(rename = "static")]
    /// `[cluster.static]`: the seed list.
    pub static_: StaticSection,
    /// A member unreachable for this long is removed by the leader and its routes purged;
    /// `off` disables it.
    #[serde(with = "switch")]
    #[schemars(with = "String")]
    pub autoclean: Switch,
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

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.dns]`.
pub struct DnsSection {
    /// The name whose records list the nodes, e.g. `mnema.example.com`.
    pub name: String,
    /// Which records to ask for.
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecordType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// SRV records: target and port.
    Srv,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.etcd]`.
pub struct EtcdSection {
    /// Client URLs (`http://` or `https://`), a list or comma-separated.
    #[serde(deserialize_with = "string_list")]
    pub server: Vec<String>,
    /// Keys live under `{prefix}/{cluster.name}/`.
    pub prefix: String,
    /// A node's key lives this long after its last keep-alive.
    pub node_ttl: Interval,
    /// For `https://` servers: the CA that signs etcd's certificate, and optionally this
    /// node's client certificate.
    pub ssl_options: EtcdTlsSection,
}

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            server: vec!["http://127.0.0.1:2379".into()],
            prefix: "mnemacl".into(),
            node_ttl: Interval(Duration::from_secs(60)),
            ssl_options: EtcdTlsSection::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.etcd.ssl_options]`: PEM files.
pub struct EtcdTlsSection {
    /// The CA that signs etcd's certificate.
    pub cacertfile: Option<PathBuf>,
    /// This node's client certificate.
    pub certfile: Option<PathBuf>,
    /// Its key.
    pub keyfile: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.k8s]`.
pub struct K8sSection {
    /// e.g. `https://kubernetes.default.svc:443`.
    pub apiserver: String,
    /// The headless service whose Endpoints list the pods.
    pub service_name: String,
    /// How a pod's address becomes a node's host.
    pub address_type: K8sAddressType,
    /// The service's namespace.
    pub namespace: String,
    /// With `address_type = "dns"`: the DNS suffix of pod names.
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum K8sAddressType {
    /// The pod's IP address.
    Ip,
    /// `<ip-with-dashes>.<namespace>.<suffix>`.
    Dns,
    /// The pod's hostname.
    Hostname,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
/// Transport between nodes.
pub enum ProtoDist {
    /// TCP over IPv4.
    InetTcp,
    /// TCP over IPv6 (hosts written `[addr]`).
    Inet6Tcp,
    /// TLS over TCP (`[cluster.tls]`).
    InetTls,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.tls]`: PEM files for `inet_tls`.
pub struct TlsSection {
    /// This node's certificate chain.
    pub certfile: Option<PathBuf>,
    /// Its private key.
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
    /// This node's certificate chain.
    pub cert: Vec<u8>,
    /// Its private key.
    pub key: Vec<u8>,
    /// The CA every node's certificate must be signed by.
    pub ca: Vec<u8>,
    /// Require certificates from callers too.
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

#[derive(Clone, Copy, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
/// How nodes find each other (`cluster.discovery_strategy`).
pub enum DiscoveryStrategy {
    /// No discovery: `mnema ctl cluster join` forms the cluster.
    Manual,
    /// A fixed seed list (`cluster.static.seeds`).
    Static,
    /// A DNS name's A, AAAA or SRV records.
    Dns,
    /// Registrations in etcd.
    Etcd,
    /// A Kubernetes service's Endpoints.
    K8s,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
/// `[cluster.static]`.
pub struct StaticSection {
    #[serde(deserialize_with = "string_list")]
    /// The cores, `name@host[:port]`, a list or comma-separated.
    pub seeds: Vec<String>,
}

/// Raft and write-path tuning. Durations are written `150ms`, `2s`, `5m`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Interval,
    /// How long the leader's lease lasts: a follower that has not heard from the leader
    /// for this long gives its vote, and between 1.25× and 1.5× this after the leader's
    /// last heartbeat asks the other voters for theirs (a pre-vote, drawn afresh each
    /// time); it campaigns once a majority would vote for it. At least 3 heartbeats. The first write after a leader fails is acknowledged about 2× this
    /// later at most (`docs/operations.md`, failover).
    pub election_timeout: Interval,
    /// Build a snapshot (and compact the log) after this many entries.
    pub snapshot_after_entries: u64,
    /// Most transactions group-committed into one log entry.
    pub max_batch_txns: usize,
    /// Most batches in flight at once; more callers wait and so batch better.
    pub max_inflight_batches: usize,
    /// How long a write waits for a leader and for its commit.
    pub write_timeout: Interval,
    /// Times a write is sent again after a failure that leaves its outcome unknown (the
    /// leader died or the connection broke mid-call). Request ids make this safe: a batch
    /// already applied is not applied again.
    pub write_retries: u32,
    /// Pause before the first such retry; doubled each time, up to 1s.
    pub write_retry_backoff: Interval,
    /// How Raft's messages between cores, and the writes followers and replicants forward
    /// to the leader, travel: `frames` (a TCP connection per replication stream, and a pool
    /// per peer for forwards, each carrying one request, then its reply; about 100 µs less
    /// per round trip than gRPC) or `grpc`. Both are served on the node's one port. With
    /// `cluster.proto_dist = "inet_tls"` they use gRPC (inside TLS) whatever this says, and
    /// a peer whose build has no frames is called over gRPC. This is what the node sends;
    /// it serves frames (to peers and to `Client`s) unless it runs TLS.
    pub transport: RaftTransport,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
/// How Raft's messages travel between cores.
pub enum RaftTransport {
    /// Framed requests and replies over plain TCP (`inet_tcp`, `inet6_tcp`).
    #[default]
    Frames,
    /// gRPC calls, as every other call between nodes.
    Grpc,
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
            expiry_sweep_interval: Interval(Duration::from_secs(10)),
            protocol: None,
        }
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            name: "mnema".into(),
            discovery_strategy: DiscoveryStrategy::Manual,
            static_: StaticSection::default(),
            autoclean: Some(Interval(Duration::from_secs(300))),
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
            heartbeat_interval: Interval(Duration::from_millis(100)),
            election_timeout: Interval(Duration::from_secs(1)),
            snapshot_after_entries: 20_000,
            max_batch_txns: 4096,
            max_inflight_batches: 8,
            write_timeout: Interval(Duration::from_secs(10)),
            write_retries: 5,
            write_retry_backoff: Interval(Duration::from_millis(50)),
            transport: RaftTransport::Frames,
        }
    }
}

/// The checked form of a config: what the node actually runs with.
#[derive(Clone, Debug)]
// The runtime reads them; the fuzzing build (without `server`) has no runtime.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
#[non_exhaustive]
pub struct Validated {
    pub(crate) name: NodeName,
    pub(crate) node_id: u64,
    /// Address peers use to reach this node.
    pub(crate) advertise: String,
    /// Address this node binds.
    pub(crate) listen: String,
    pub(crate) seeds: Vec<Peer>,
    pub(crate) role: Role,
    /// Cores a replicant streams from (empty for a core).
    pub(crate) cores: Vec<Peer>,
    /// Set with `inet_tls`.
    pub(crate) tls: Option<TlsFiles>,
    /// `cluster.dns.servers`, parsed (empty: the system's).
    pub(crate) dns_servers: Vec<std::net::SocketAddr>,
    /// Set with the `etcd` strategy.
    pub(crate) etcd: Option<EtcdConfig>,
    /// The config it was checked from: the one copy every part of the node reads.
    pub(crate) config: NodeConfig,
}

/// The `etcd` strategy as a node runs it.
#[derive(Clone, Debug)]
// The runtime reads them; the fuzzing build (without `server`) has no runtime.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
#[doc(hidden)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    /// `{prefix}/{cluster.name}/`: node keys are under `nodes/`, the formation claim is `formed`.
    pub(crate) root: String,
    /// Lease TTL in whole seconds (etcd's unit), at least 1.
    pub(crate) ttl_secs: i64,
    /// PEM: the CA, and optionally this node's certificate and key (for `https://`).
    pub(crate) tls: Option<EtcdTlsFiles>,
}

#[derive(Clone, Debug)]
// The runtime reads them; the fuzzing build (without `server`) has no runtime.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
#[doc(hidden)]
pub struct EtcdTlsFiles {
    pub(crate) ca: Vec<u8>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
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
        let ttl = self.node_ttl.get();
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

    /// Checks every key, section by section; the first bad one is the error.
    pub fn validate(&self) -> Result<Validated> {
        let node = self.node.validate()?;
        let cluster = self.cluster.validate(&node.name, self.node.base_port)?;
        self.raft.validate()?;
        if let Some(l) = &self.http.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(Error::config("http.listen", format!("`{l}` is not host:port (an IP address and a port)")));
        }
        let cores = self.replicant.validate(&self.node, &self.cluster, &node.name)?;
        if self.feed.ring_entries == 0 {
            return Err(Error::config("feed.ring_entries", "must be at least 1"));
        }
        if self.feed.ring_bytes < 1024 {
            return Err(Error::config("feed.ring_bytes", "must be at least 1024"));
        }
        Ok(Validated {
            node_id: node.name.node_id(),
            name: node.name,
            advertise: node.advertise,
            listen: node.listen,
            seeds: cluster.seeds,
            role: self.node.role,
            cores,
            tls: cluster.tls,
            dns_servers: cluster.dns_servers,
            etcd: cluster.etcd,
            config: self.clone(),
        })
    }
}

/// What `[node]` gives once checked.
struct NodeChecked {
    name: NodeName,
    advertise: String,
    listen: String,
}

impl NodeSection {
    fn validate(&self) -> Result<NodeChecked> {
        let name = NodeName::parse("node.name", &self.name)?;
        if self.cookie.is_empty() {
            return Err(Error::config("node.cookie", "must not be empty"));
        }
        // Every call carries it as gRPC metadata, which is visible ASCII only.
        if let Some(c) = self.cookie.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(Error::config(
                "node.cookie",
                format!("{c:?} is not allowed: use printable ASCII characters only"),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::config("node.data_dir", "must not be empty"));
        }
        let advertise = match &self.advertise {
            Some(a) => host_port("node.advertise", a)?,
            None => name.default_addr(self.base_port)?,
        };
        let listen = match &self.listen {
            Some(l) => host_port("node.listen", l)?,
            None => advertise.clone(),
        };
        if let Some(v) = self.protocol
            && !(crate::protocol::OLDEST..=crate::protocol::PROTOCOL).contains(&v)
        {
            return Err(Error::config(
                "node.protocol",
                format!(
                    "{v} is not a version this build can announce: {} to {}",
                    crate::protocol::OLDEST,
                    crate::protocol::PROTOCOL
                ),
            ));
        }
        Ok(NodeChecked { name, advertise, listen })
    }
}

/// What `[cluster]` gives once checked.
struct ClusterChecked {
    seeds: Vec<Peer>,
    tls: Option<TlsFiles>,
    dns_servers: Vec<std::net::SocketAddr>,
    etcd: Option<EtcdConfig>,
}

impl ClusterSection {
    fn validate(&self, name: &NodeName, base_port: u16) -> Result<ClusterChecked> {
        let seeds = self
            .static_
            .seeds
            .iter()
            .map(|s| Peer::parse("cluster.static.seeds", s, base_port))
            .collect::<Result<Vec<_>>>()?;
        match self.discovery_strategy {
            DiscoveryStrategy::Manual | DiscoveryStrategy::Etcd => {}
            DiscoveryStrategy::Static if seeds.is_empty() => {
                return Err(Error::config("cluster.static.seeds", "the static strategy needs at least one seed"));
            }
            DiscoveryStrategy::Static => {}
            DiscoveryStrategy::K8s => {
                if self.k8s.service_name.is_empty() {
                    return Err(Error::config("cluster.k8s.service_name", "the k8s strategy needs the service's name"));
                }
                if !(self.k8s.apiserver.starts_with("http://") || self.k8s.apiserver.starts_with("https://")) {
                    return Err(Error::config("cluster.k8s.apiserver", "must be an http:// or https:// URL"));
                }
            }
            DiscoveryStrategy::Dns => {
                if self.dns.name.trim().is_empty() {
                    return Err(Error::config("cluster.dns.name", "the dns strategy needs the name to look up"));
                }
            }
        }
        if !self.autoheal {
            return Err(Error::config(
                "cluster.autoheal",
                "cannot be turned off: Raft always heals a partition itself (the minority side \
                 refuses writes while cut off and catches up when the network returns)",
            ));
        }
        let dns_servers = self.dns.servers.iter().map(|s| parse_name_server(s)).collect::<Result<_>>()?;
        let etcd = match self.discovery_strategy {
            DiscoveryStrategy::Etcd => Some(self.etcd.validate(&self.name)?),
            _ => None,
        };
        let tls = match self.proto_dist {
            ProtoDist::InetTls => Some(TlsFiles {
                cert: read_pem("cluster.tls.certfile", &self.tls.certfile, INET_TLS)?,
                key: read_pem("cluster.tls.keyfile", &self.tls.keyfile, INET_TLS)?,
                ca: read_pem("cluster.tls.cacertfile", &self.tls.cacertfile, INET_TLS)?,
                mutual: self.tls.mutual,
            }),
            ProtoDist::Inet6Tcp if !name.host().starts_with('[') => {
                return Err(Error::config(
                    "cluster.proto_dist",
                    format!("inet6_tcp needs an IPv6 host in node.name, written [addr]; `{}` is not", name.host()),
                ));
            }
            _ => None,
        };
        Ok(ClusterChecked { seeds, tls, dns_servers, etcd })
    }
}

impl RaftSection {
    fn validate(&self) -> Result<()> {
        if self.election_timeout.get() < self.heartbeat_interval.get() * 3 {
            return Err(Error::config("raft.election_timeout", "must be at least 3 heartbeat intervals"));
        }
        if self.max_batch_txns == 0 {
            return Err(Error::config("raft.max_batch_txns", "must be at least 1"));
        }
        if self.max_inflight_batches == 0 {
            return Err(Error::config("raft.max_inflight_batches", "must be at least 1"));
        }
        if self.snapshot_after_entries == 0 {
            return Err(Error::config("raft.snapshot_after_entries", "must be at least 1"));
        }
        Ok(())
    }
}

impl ReplicantSection {
    /// The cores a replicant streams from (none for a core).
    fn validate(&self, node: &NodeSection, cluster: &ClusterSection, name: &NodeName) -> Result<Vec<Peer>> {
        if node.role == Role::Core {
            return Ok(Vec::new());
        }
        let (key, list) = if self.cores.is_empty() {
            ("cluster.static.seeds", &cluster.static_.seeds)
        } else {
            ("replicant.cores", &self.cores)
        };
        let cores = list.iter().map(|s| Peer::parse(key, s, node.base_port)).collect::<Result<Vec<_>>>()?;
        let discovers = matches!(
            cluster.discovery_strategy,
            DiscoveryStrategy::Dns | DiscoveryStrategy::Etcd | DiscoveryStrategy::K8s
        );
        if cores.is_empty() && !discovers {
            return Err(Error::config(
                "replicant.cores",
                "a replicant needs cores to stream from: set replicant.cores or cluster.static.seeds, \
                 or use the dns, etcd or k8s strategy",
            ));
        }
        if cores.iter().any(|p| p.name == *name) {
            return Err(Error::config(key, "a replicant cannot list itself as a core"));
        }
        Ok(cores)
    }
}

impl Validated {
    /// The protocol version this node announces (`node.protocol`, else its build's).
    #[cfg(feature = "server")]
    pub(crate) fn protocol(&self) -> u32 {
        self.config.node.protocol.unwrap_or(crate::protocol::PROTOCOL)
    }

    /// `raft.heartbeat_interval`.
    pub fn heartbeat(&self) -> Duration {
        self.config.raft.heartbeat_interval.get()
    }

    /// `raft.election_timeout`.
    pub fn election_timeout(&self) -> Duration {
        self.config.raft.election_timeout.get()
    }

    /// `raft.write_timeout`.
    pub fn write_timeout(&self) -> Duration {
        self.config.raft.write_timeout.get()
    }

    /// `raft.write_retry_backoff`.
    pub fn write_retry_backoff(&self) -> Duration {
        self.config.raft.write_retry_backoff.get()
    }

    /// `replicant.stall_timeout`.
    pub fn stall_timeout(&self) -> Duration {
        self.config.replicant.stall_timeout.get()
    }

    /// `node.expiry_sweep_interval`.
    pub fn expiry_sweep_interval(&self) -> Duration {
        self.config.node.expiry_sweep_interval.get()
    }

    /// `cluster.autoclean` (`None`: off).
    pub fn autoclean(&self) -> Option<Duration> {
        self.config.cluster.autoclean.map(Interval::get)
    }

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

/// Parses `250ms`, `5s`, `5m`, `1h`; an error names `key`.
pub fn parse_duration(key: &str, s: &str) -> Result<Duration> {
    parse_duration_text(s).map_err(|reason| Error::config(key, reason))
}

fn parse_duration_text(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 250ms, 5s or 5m"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(format!("`{s}` is not a positive duration like 250ms, 5s or 5m")),
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
        c.cluster.static_.seeds = vec!["a@b".into()];
        c.raft.heartbeat_interval = "1s".parse().unwrap();
        match c.validate() {
            Err(Error::Config { key, .. }) => assert_eq!(key, "raft.election_timeout", "3 heartbeats at least"),
            other => panic!("expected a config error, got {other:?}"),
        }
        // A duration is checked when the config is read, naming its key.
        match NodeConfig::from_toml("[raft]\nheartbeat_interval = \"soon\"") {
            Err(Error::Config { key, .. }) => assert_eq!(key, "raft.heartbeat_interval"),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn durations_round_trip_and_off_turns_autoclean_off() {
        for s in ["250ms", "5s", "5m", "1h", "90s"] {
            assert_eq!(s.parse::<Interval>().unwrap().to_string(), s);
        }
        let c = NodeConfig::from_toml("[cluster]\nautoclean = \"off\"").unwrap();
        assert_eq!(c.cluster.autoclean, None);
        let c = NodeConfig::from_toml("[cluster]\nautoclean = \"90s\"").unwrap();
        assert_eq!(c.cluster.autoclean.map(Interval::get), Some(Duration::from_secs(90)));
        // Defaults serialise to what they parse from (the env layer reads them back).
        let text = toml_of(&NodeConfig::default());
        assert_eq!(NodeConfig::from_toml(&text).unwrap(), NodeConfig::default());
    }

    fn toml_of(c: &NodeConfig) -> String {
        let v = serde_json::to_value(c).unwrap();
        let mut out = String::new();
        if let serde_json::Value::Object(sections) = v {
            for (name, section) in sections {
                out.push_str(&format!("[{name}]\n"));
                if let serde_json::Value::Object(keys) = section {
                    for (k, v) in keys {
                        if !v.is_object() && !v.is_null() {
                            out.push_str(&format!("{k} = {v}\n"));
                        }
                    }
                }
            }
        }
        out
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
        match NodeConfig::from_toml("[replicant]\nstall_timeout = \"never\"") {
            Err(Error::Config { key, .. }) => assert_eq!(key, "replicant.stall_timeout"),
            other => panic!("expected a config error, got {other:?}"),
        }
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
