//! Clients to peers: one lazily connected channel per address, reused by every call.

use super::auth::AddCookie;
use super::pb::cluster_client::ClusterClient;
use super::pb::raft_client::RaftClient;
use super::pb::replication_client::ReplicationClient;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub type Raft = RaftClient<InterceptedService<Channel, AddCookie>>;
pub type Cluster = ClusterClient<InterceptedService<Channel, AddCookie>>;
pub type Replication = ReplicationClient<InterceptedService<Channel, AddCookie>>;

/// Channels to peers by address.
#[derive(Clone)]
pub struct Peers {
    cookie: AddCookie,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// Addresses this node cannot reach (fault injection: a network partition).
    cut: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// Whether Raft's messages go over frames (`raft.transport`, and no TLS).
    frames: bool,
    /// Peers that answered a frames hello as a build without frames would, and when.
    no_frames: Arc<Mutex<HashMap<String, std::time::Instant>>>,
    /// Whether `no_frames` ever held a peer: until then a call takes no lock for it.
    any_no_frames: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a peer that did not speak frames is called over gRPC before frames are tried
/// again (it may have been upgraded).
const NO_FRAMES_FOR: Duration = Duration::from_secs(60);

/// What a call to a cut-off peer fails with: nothing left this node.
pub const PARTITIONED: &str = "partitioned: no route to this peer";

/// The client side of `inet_tls`: trust only `ca`; present our certificate when mutual.
pub fn client_tls(files: &crate::config::TlsFiles) -> tonic::transport::ClientTlsConfig {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&files.ca));
    if files.mutual { cfg.identity(Identity::from_pem(&files.cert, &files.key)) } else { cfg }
}

/// The host part of `host:port` or `[v6]:port`, as TLS checks it against certificates.
fn host_of(addr: &str) -> &str {
    match addr.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(h, _)| h).unwrap_or(rest),
        None => addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr),
    }
}

impl Peers {
    /// Channels that carry `cookie`, and `cluster` (a node's id) when given; over TLS
    /// when `tls` is given.
    pub fn new(
        cookie: &str,
        cluster: Option<super::auth::ClusterId>,
        protocol: u32,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<Self> {
        Ok(Peers {
            cookie: AddCookie::new(cookie, cluster, protocol)?,
            channels: Default::default(),
            connect_timeout: Duration::from_secs(2),
            frames: tls.is_none(),
            tls,
            cut: Default::default(),
            no_frames: Default::default(),
            any_no_frames: Default::default(),
        })
    }

    /// Sends Raft's messages over gRPC only (`raft.transport = "grpc"`).
    pub fn without_frames(mut self) -> Self {
        self.frames = false;
        self
    }

    /// Whether Raft's messages to `addr` go over frames: `raft.transport` says so, there is
    /// no TLS, and `addr` did not lately answer as a build without frames. A cut-off peer
    /// (fault injection) is an error, as for a gRPC call.
    pub fn frames_to(&self, addr: &str) -> Result<bool> {
        self.check_cut(addr)?;
        if !self.frames {
            return Ok(false);
        }
        if !self.any_no_frames.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(true);
        }
        let mut map = self.no_frames.lock().map_err(|_| Error::Invariant("the peer table's lock is poisoned".into()))?;
        match map.get(addr) {
            Some(since) if since.elapsed() < NO_FRAMES_FOR => Ok(false),
            Some(_) => {
                map.remove(addr);
                Ok(true)
            }
            None => Ok(true),
        }
    }

    /// Records that `addr` does not speak frames (see [`Peers::frames_to`]).
    pub fn no_frames(&self, addr: &str) {
        if let Ok(mut map) = self.no_frames.lock() {
            map.insert(addr.to_string(), std::time::Instant::now());
            self.any_no_frames.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// What every call to a peer announces: this node's cookie, protocol version and
    /// cluster id (see [`AddCookie::credentials`]).
    pub fn credentials(&self) -> (Vec<u8>, u32, String) {
        self.cookie.credentials()
    }

    /// Whether every call to a peer announces the cluster id `id` now.
    pub fn announces(&self, id: &str) -> bool {
        self.cookie.announces(id)
    }

    /// How long a connection may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    fn check_cut(&self, addr: &str) -> Result<()> {
        if self.cut.read().map(|c| c.contains(addr)).unwrap_or(false) {
            return Err(Error::transport(addr, crate::error::TransportKind::NotConnected, PARTITIONED));
        }
        Ok(())
    }

    /// Drops every call to `addrs` from now on, as a network partition would (tests and
    /// drills; both sides must cut each other for a symmetric partition).
    #[cfg(any(test, feature = "test-util"))]
    pub fn partition(&self, addrs: &[&str]) {
        if let Ok(mut c) = self.cut.write() {
            c.extend(addrs.iter().map(|a| a.to_string()));
        }
    }

    /// Ends every partition made with [`Peers::partition`].
    #[cfg(any(test, feature = "test-util"))]
    pub fn heal(&self) {
        if let Ok(mut c) = self.cut.write() {
            c.clear();
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel> {
        self.check_cut(addr)?;
        let mut map = self.channels.lock().map_err(|_| Error::Invariant("the peer table's lock is poisoned".into()))?;
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| Error::config("peer address", format!("{addr}: {e}")))?;
        if let Some(tls) = &self.tls {
            ep = ep
                .tls_config(tls.clone().domain_name(host_of(addr)))
                .map_err(|e| Error::config("cluster.tls", format!("{addr}: {e}")))?;
        }
        let ep = ep
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = ep.connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    pub fn raft(&self, addr: &str) -> Result<Raft> {
        Ok(RaftClient::with_interceptor(self.channel(addr)?, self.cookie.clone())
            .max_decoding_message_size(crate::codec::MAX_DECODE)
            .max_encoding_message_size(crate::codec::MAX_DECODE))
    }

    pub fn replication(&self, addr: &str) -> Result<Replication> {
        Ok(ReplicationClient::with_interceptor(self.channel(addr)?, self.cookie.clone())
            .max_decoding_message_size(crate::codec::MAX_DECODE)
            .max_encoding_message_size(crate::codec::MAX_DECODE))
    }

    /// The status of the node at `addr` (called `name` in errors), answered within `limit`.
    pub async fn node_info(&self, name: &str, addr: &str, limit: Duration) -> Result<crate::status::NodeStatus> {
        let mut client = self.cluster(addr)?;
        let mut req = tonic::Request::new(super::pb::Empty {});
        req.set_timeout(limit);
        match tokio::time::timeout(limit, client.node_info(req)).await {
            Ok(Ok(r)) => super::convert::node_from_pb(r.into_inner()),
            Ok(Err(s)) => Err(status_error(name, s)),
            Err(_) => Err(Error::Timeout { what: format!("status of {name}"), ms: limit.as_millis() as u64 }),
        }
    }

    pub fn cluster(&self, addr: &str) -> Result<Cluster> {
        Ok(ClusterClient::with_interceptor(self.channel(addr)?, self.cookie.clone())
            .max_decoding_message_size(crate::codec::MAX_DECODE)
            .max_encoding_message_size(crate::codec::MAX_DECODE))
    }
}

/// The error a call to `peer` failed with (see `rpc::status`).
pub fn status_error(peer: &str, s: tonic::Status) -> Error {
    super::status::from_status(peer, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection is told apart by its cause, not its wording: a caller may send
    /// the same call again (nothing was sent).
    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let peers = Peers::new("cookie", None, crate::protocol::PROTOCOL, None).unwrap();
        match peers.node_info("gone", &addr, Duration::from_secs(5)).await {
            Err(Error::Transport { kind: crate::error::TransportKind::NotConnected, .. }) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }
        peers.partition(&[addr.as_str()]);
        assert!(matches!(
            peers.cluster(&addr),
            Err(Error::Transport { kind: crate::error::TransportKind::NotConnected, .. })
        ));
    }
}
