//! Raft's network, server side over frames (`raft::frame`): one task per connection,
//! reading a request, handing it to [`RaftService::handle`] (the gRPC service's own
//! handling) or, for a forwarded batch, to the node's [`Writes`] (the gRPC `Cluster.Write`
//! call's own handling), and writing the reply, in turn.

use super::frame::{self, Kind, MAGIC};
use super::service::{Call, RaftService};
use crate::error::Error;
use crate::rpc::auth::CheckCookie;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio_util::sync::CancellationToken;

/// How long a caller has to send its magic and hello once connected.
const HELLO_WITHIN: Duration = Duration::from_secs(5);

/// An answer on its way.
pub type Answer<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Error>> + Send + 'a>>;

/// Where forwarded batches and clients' transactions go: the node's write path, as the
/// gRPC `Cluster.Write` and `Cluster.Transact` calls reach it (the composition implements
/// it; this module knows no runtime).
pub trait Writes: Send + Sync + 'static {
    /// Serves a forwarded (`relay` false) or relayed batch, in its encoded form, and
    /// returns the encoded answer.
    fn serve<'a>(&'a self, batch: &'a [u8], relay: bool) -> Answer<'a>;

    /// Serves a client's transaction, in its encoded form, and returns the encoded answer.
    fn transact<'a>(&'a self, txn: &'a [u8]) -> Answer<'a>;
}

/// What a connection's serving needs: the Raft service, the write path and the caller
/// check.
#[derive(Clone)]
pub struct FrameServer {
    service: Arc<RaftService>,
    writes: Arc<dyn Writes>,
    check: CheckCookie,
    admitted: prometheus_client::metrics::counter::Counter,
}

impl FrameServer {
    /// Serves frames connections to `service` and `writes`, admitting callers `check`
    /// admits (the check of the gRPC Raft service: its cluster id is asked of Raft's
    /// requests only, as the gRPC `Cluster` service asks it of none), and counting them in
    /// `admitted`.
    pub fn new(
        service: Arc<RaftService>,
        writes: Arc<dyn Writes>,
        check: CheckCookie,
        admitted: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        FrameServer { service, writes, check, admitted }
    }

    /// Serves one connection until the caller closes it, sends something malformed, or
    /// `stop` is cancelled. `peer` names the caller in the log.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, peer: String, stop: CancellationToken) {
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        let hello = tokio::select! {
            _ = stop.cancelled() => return,
            h = tokio::time::timeout(HELLO_WITHIN, read_hello(&mut r, &mut buf)) => match h {
                Ok(Ok(hello)) => hello,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "closed a Raft frames connection that sent no valid hello");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "closed a Raft frames connection that sent no hello in time");
                    return;
                }
            },
        };
        if let Err(e) = self.check.admit_caller(&hello.cookie, hello.protocol, &peer) {
            let _ = answer(&mut w, Err(e)).await;
            return;
        }
        if answer(&mut w, Ok(Vec::new())).await.is_err() {
            return;
        }
        self.admitted.inc();
        loop {
            let kind = tokio::select! {
                _ = stop.cancelled() => return,
                k = frame::read(&mut r, &mut buf) => match k {
                    Ok(Some(k)) => k,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "a Raft frames connection broke");
                        return;
                    }
                },
            };
            let reply = match kind {
                Kind::Append | Kind::Vote | Kind::Snapshot => {
                    let call = match kind {
                        Kind::Append => Call::Append,
                        Kind::Vote => Call::Vote,
                        _ => Call::Snapshot,
                    };
                    // The cluster id may have changed since the hello (this node joined
                    // another cluster), so it is asked of each request.
                    match self.check.same_cluster_as(&hello.cluster) {
                        Ok(()) => self.service.handle(call, &buf).await,
                        Err(e) => Err(e),
                    }
                }
                Kind::Forward | Kind::Relay => self.writes.serve(&buf, kind == Kind::Relay).await,
                Kind::Transact => self.writes.transact(&buf).await,
                Kind::Hello | Kind::Ok | Kind::Err => {
                    let e = Error::corrupt("Raft frame", format!("a {kind:?} frame where a request belongs"));
                    let _ = answer(&mut w, Err(e)).await;
                    return;
                }
            };
            if answer(&mut w, reply).await.is_err() {
                return;
            }
            // A large frame (a snapshot chunk, a big forwarded batch) leaves no large buffer
            // behind on a connection that may then idle in a peer's pool.
            if buf.capacity() > KEEP_BUFFER {
                buf = Vec::new();
            }
        }
    }
}

/// The most buffer an idle connection keeps.
const KEEP_BUFFER: usize = 1 << 20;

/// Reads the magic and the hello frame.
async fn read_hello<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<frame::Hello, Error> {
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).await.map_err(|e| Error::corrupt("Raft frames magic", e))?;
    if magic != MAGIC {
        return Err(Error::corrupt("Raft frames magic", "not mnema's Raft frames"));
    }
    match frame::read_within(r, buf, frame::MAX_HELLO).await {
        Ok(Some(Kind::Hello)) => frame::decode_hello(buf),
        Ok(Some(other)) => Err(Error::corrupt("Raft frames hello", format!("a {other:?} frame first"))),
        Ok(None) => Err(Error::corrupt("Raft frames hello", "the connection ended before it")),
        Err(e) => Err(Error::corrupt("Raft frames hello", e)),
    }
}

/// Writes a reply: `Ok` with the answer's bytes, or `Err` with the error.
async fn answer<W: AsyncWrite + Unpin>(w: &mut W, reply: Result<Vec<u8>, Error>) -> std::io::Result<()> {
    match reply {
        Ok(bytes) => frame::write(w, Kind::Ok, &bytes).await,
        Err(e) => {
            let bytes = frame::encode_error(&e)
                .or_else(|_| frame::encode_error(&Error::Encode { what: "an error".into(), reason: e.to_string() }))
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            frame::write(w, Kind::Err, &bytes).await
        }
    }
}
