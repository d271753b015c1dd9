//! Raft's network, server side over frames (`raft::frame`): one task per connection,
//! reading a request, handing it to [`RaftService::handle`] (the gRPC service's own
//! handling) and writing the reply, in turn.

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

/// What a connection's serving needs: the Raft service and the caller check.
#[derive(Clone)]
pub struct FrameServer {
    service: Arc<RaftService>,
    check: CheckCookie,
    admitted: prometheus_client::metrics::counter::Counter,
}

impl FrameServer {
    /// Serves frames connections to `service`, admitting callers `check` admits (the
    /// check of the gRPC Raft service, cluster id included), and counting them in
    /// `admitted`.
    pub fn new(
        service: Arc<RaftService>,
        check: CheckCookie,
        admitted: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        FrameServer { service, check, admitted }
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
        if let Err(e) = self.check.admit(&hello.cookie, hello.protocol, &hello.cluster, &peer) {
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
            let call = match kind {
                Kind::Append => Call::Append,
                Kind::Vote => Call::Vote,
                Kind::Snapshot => Call::Snapshot,
                other => {
                    let e = Error::corrupt("Raft frame", format!("a {other:?} frame where a request belongs"));
                    let _ = answer(&mut w, Err(e)).await;
                    return;
                }
            };
            // The cluster id may have changed since the hello (this node joined another).
            let reply = match self.check.same_cluster_as(&hello.cluster) {
                Ok(()) => self.service.handle(call, &buf).await,
                Err(e) => Err(e),
            };
            if answer(&mut w, reply).await.is_err() {
                return;
            }
        }
    }
}

/// Reads the magic and the hello frame.
async fn read_hello<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<frame::Hello, Error> {
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).await.map_err(|e| Error::corrupt("Raft frames magic", e))?;
    if magic != MAGIC {
        return Err(Error::corrupt("Raft frames magic", "not mnema's Raft frames"));
    }
    match frame::read(r, buf).await {
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
