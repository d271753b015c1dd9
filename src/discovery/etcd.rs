//! `etcd` discovery: every node registers itself in etcd under a lease it keeps alive, and
//! reads the others' registrations.
//!
//! Keys, under `root` = `/{cluster.etcd.prefix}/{cluster.name}/`:
//! - `nodes/{node name}` → [`EtcdRegistration`] (address and role), attached to the node's
//!   lease: a node that dies disappears after `cluster.etcd.node_ttl`; one that stops
//!   cleanly revokes its lease and disappears at once.
//! - `formed` → the name of the node that forms the cluster, written by one transaction
//!   that succeeds only if the key does not exist (see `cluster::bootstrap`), also under
//!   that node's lease so a node that dies before forming frees the claim.
//!
//! When etcd says the lease is gone (the node was cut off from etcd longer than the TTL) the
//! node registers again under a new lease.

use super::{EtcdRegistration, etcd_node};
use crate::config::{EtcdConfig, Role};
use crate::error::{Error, Result};
use crate::name::Peer;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
};
use std::time::Duration;
use tokio::sync::watch;

fn err(e: impl std::fmt::Display) -> Error {
    Error::discovery("etcd", e)
}

/// A client for the configured servers (TLS with `https://` ones).
pub async fn connect(cfg: &EtcdConfig) -> Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
    if let Some(tls) = &cfg.tls {
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(Identity::from_pem(cert, key));
        }
        opts = opts.with_tls(t);
    }
    Client::connect(&cfg.endpoints, Some(opts)).await.map_err(err)
}

/// The registry as one node reads it (discovery, the formation claim): a client made on
/// first use and kept, dropped after a failed call so that the next one reconnects.
pub struct Registry {
    cfg: EtcdConfig,
    client: Option<Box<Client>>,
}

impl Registry {
    pub fn new(cfg: EtcdConfig) -> Self {
        Registry { cfg, client: None }
    }

    /// The registered cores now, sorted by name.
    pub async fn cores(&mut self) -> Result<Vec<Peer>> {
        let found = match connected(&self.cfg, &mut self.client).await {
            Ok(c) => registrations(c, &self.cfg.root).await,
            Err(e) => Err(e),
        };
        let found = self.forget_on_error(found)?;
        Ok(found.into_iter().filter(|(_, role)| *role == Role::Core).map(|(p, _)| p).collect())
    }

    /// See `claim_formation`.
    pub async fn claim_formation(&mut self, name: &str, lease: i64) -> Result<String> {
        let holder = match connected(&self.cfg, &mut self.client).await {
            Ok(c) => claim_formation(c, &self.cfg.root, name, lease).await,
            Err(e) => Err(e),
        };
        self.forget_on_error(holder)
    }

    /// After a failed call, reconnect next time (etcd restarted or moved).
    fn forget_on_error<T>(&mut self, res: Result<T>) -> Result<T> {
        if res.is_err() {
            self.client = None;
        }
        res
    }
}

async fn connected<'a>(cfg: &EtcdConfig, client: &'a mut Option<Box<Client>>) -> Result<&'a mut Client> {
    match client {
        Some(c) => Ok(c),
        None => Ok(client.insert(Box::new(connect(cfg).await?))),
    }
}

/// The registered nodes now, sorted by name. A registration that does not decode is
/// skipped (and logged): someone else's key must not stop discovery.
async fn registrations(client: &mut Client, root: &str) -> Result<Vec<(Peer, Role)>> {
    let prefix = format!("{root}nodes/");
    let resp = client.get(prefix, Some(GetOptions::new().with_prefix())).await.map_err(err)?;
    let mut out = Vec::new();
    for kv in resp.kvs() {
        match etcd_node(root, kv.key(), kv.value()) {
            Ok(node) => out.push(node),
            Err(e) => tracing::warn!(error = %e, "skipping an etcd registration"),
        }
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

/// Claims the formation of the cluster for `name` unless another node holds it; returns
/// the holder's name (`name` itself when this call or an earlier one of ours won).
async fn claim_formation(client: &mut Client, root: &str, name: &str, lease: i64) -> Result<String> {
    let key = format!("{root}formed");
    let txn = Txn::new().when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
        key.as_str(),
        name,
        Some(PutOptions::new().with_lease(lease)),
    )]);
    if client.txn(txn).await.map_err(err)?.succeeded() {
        return Ok(name.to_string());
    }
    let resp = client.get(key.as_str(), None).await.map_err(err)?;
    match resp.kvs().first() {
        Some(kv) => Ok(String::from_utf8_lossy(kv.value()).into_owned()),
        // Its holder's lease ended between the two calls: nobody holds it now.
        None => Err(err("the formation claim vanished; retrying")),
    }
}

/// Keeps `me` registered until `stopping`, then revokes the lease. Publishes the current
/// lease id (`None` while unregistered) for the formation claim.
pub async fn keep_registered(
    cfg: EtcdConfig,
    name: String,
    me: EtcdRegistration,
    lease_tx: watch::Sender<Option<i64>>,
    stopping: tokio_util::sync::CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = one_lease(&cfg, &name, &me, &lease_tx, &stopping).await;
        lease_tx.send_replace(None);
        if stopping.is_cancelled() {
            return;
        }
        match outcome {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "etcd registration lost; registering again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopping.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One lease's life: grant, put, keep alive every third of the TTL. Returns `Ok` when etcd
/// says the lease expired or on `stopping` (after revoking it), an error when etcd cannot
/// be reached.
async fn one_lease(
    cfg: &EtcdConfig,
    name: &str,
    me: &EtcdRegistration,
    lease_tx: &watch::Sender<Option<i64>>,
    stopping: &tokio_util::sync::CancellationToken,
) -> Result<()> {
    let granted = tokio::select! {
        r = async {
            let mut client = connect(cfg).await?;
            let lease = client.lease_grant(cfg.ttl_secs, None).await.map_err(err)?.id();
            Ok::<_, Error>((client, lease))
        } => Some(r?),
        _ = stopping.cancelled() => None,
    };
    let Some((mut client, lease)) = granted else { return Ok(()) };
    // From here on, stopping revokes the lease.
    let mut kept_client = client.clone();
    let kept = tokio::select! {
        r = keep_alive(&mut kept_client, cfg, name, me, lease, lease_tx) => r,
        _ = stopping.cancelled() => Ok(()),
    };
    if stopping.is_cancelled() {
        // Leaving cleanly: disappear now, not a TTL later.
        let _ = tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(lease)).await;
    }
    kept
}

async fn keep_alive(
    client: &mut Client,
    cfg: &EtcdConfig,
    name: &str,
    me: &EtcdRegistration,
    lease: i64,
    lease_tx: &watch::Sender<Option<i64>>,
) -> Result<()> {
    let key = format!("{}nodes/{name}", cfg.root);
    client.put(key, me.encode(), Some(PutOptions::new().with_lease(lease))).await.map_err(err)?;
    tracing::info!(lease, ttl_secs = cfg.ttl_secs, "registered in etcd");
    lease_tx.send_replace(Some(lease));
    let (mut keeper, mut answers) = client.lease_keep_alive(lease).await.map_err(err)?;
    let every = Duration::from_secs_f64(cfg.ttl_secs as f64 / 3.0);
    let ttl = Duration::from_secs(cfg.ttl_secs as u64);
    loop {
        tokio::time::sleep(every).await;
        keeper.keep_alive().await.map_err(err)?;
        match tokio::time::timeout(ttl, answers.message()).await {
            Ok(Ok(Some(a))) if a.ttl() > 0 => {}
            Ok(Ok(Some(_))) => {
                tracing::warn!(lease, "etcd let this node's lease expire");
                return Ok(());
            }
            Ok(Ok(None)) => return Err(err("the keep-alive stream ended")),
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => return Err(err(format!("no keep-alive answer within {ttl:?}"))),
        }
    }
}
