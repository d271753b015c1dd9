//! Raft's network, client side over frames (`raft::frame`): one TCP connection per
//! openraft connection (a replication stream, or one election's vote), one request and its
//! reply at a time.

use super::frame::{self, Hello, Kind, MAGIC};
use crate::error::{Error, TransportKind};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A connection that said hello and was admitted.
pub struct FrameConn {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    buf: Vec<u8>,
    /// The cluster id the hello announced: the peer admits each request under it.
    cluster: String,
}

/// Why no frames connection was made.
#[derive(Debug)]
pub enum NotMade {
    /// The peer does not speak frames (a build without them): its answer to the hello was
    /// no frame, or it closed the connection. Its gRPC service is the way to it.
    Unsupported,
    /// The peer refused the hello (its error), or could not be reached.
    Failed(Error),
}

impl FrameConn {
    /// Connects to `addr` (the peer `name`) and says `hello`, waiting at most `within` for
    /// the connection and the answer.
    pub async fn connect(name: &str, addr: &str, hello: &Hello, within: Duration) -> Result<FrameConn, NotMade> {
        let made = tokio::time::timeout(within, async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| NotMade::Failed(Error::transport(name, TransportKind::NotConnected, e)))?;
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            let mut conn = FrameConn { r: BufReader::new(r), w, buf: Vec::new(), cluster: hello.cluster.clone() };
            let hello = frame::encode_hello(hello).map_err(NotMade::Failed)?;
            let mut first = MAGIC.to_vec();
            first.extend_from_slice(&frame::encode(Kind::Hello, &hello).map_err(NotMade::Failed)?);
            conn.w
                .write_all(&first)
                .await
                .map_err(|e| NotMade::Failed(Error::transport(name, TransportKind::NotConnected, e)))?;
            match frame::read(&mut conn.r, &mut conn.buf).await {
                Ok(Some(Kind::Ok)) => Ok(conn),
                Ok(Some(Kind::Err)) => Err(match frame::decode_error(&conn.buf) {
                    Ok(e) => NotMade::Failed(crate::rpc::status::named(name, e)),
                    Err(_) => NotMade::Unsupported,
                }),
                // No frame, the end of the stream, or bytes that are no frame of ours.
                Ok(Some(_)) | Ok(None) | Err(_) => Err(NotMade::Unsupported),
            }
        })
        .await;
        made.unwrap_or_else(|_| {
            let reason = format!("no answer to the Raft frames hello within {within:?}");
            Err(NotMade::Failed(Error::transport(name, TransportKind::TimedOut, reason)))
        })
    }

    /// The cluster id this connection's hello announced. A caller whose node has adopted
    /// another since (it joined or left a cluster) makes a new connection: a gRPC call
    /// announces the current id each time, and so must this.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Sends one request and returns the reply's bytes, or the error the peer answered
    /// (the inner result). The outer error is a broken exchange (an I/O failure, or a reply
    /// that is no frame of ours): the connection is unusable, and the caller drops it.
    pub async fn call(&mut self, name: &str, kind: Kind, payload: &[u8]) -> Result<Result<&[u8], Error>, Error> {
        // The request may have been received and acted on: whatever breaks the exchange
        // leaves its outcome unknown (`NoAnswer`), as a gRPC call broken midway does.
        let broken = |e: &dyn std::fmt::Display| Error::transport(name, TransportKind::NoAnswer, e);
        frame::write(&mut self.w, kind, payload).await.map_err(|e| broken(&e))?;
        match frame::read(&mut self.r, &mut self.buf).await.map_err(|e| broken(&e))? {
            Some(Kind::Ok) => Ok(Ok(&self.buf)),
            Some(Kind::Err) => match frame::decode_error(&self.buf) {
                Ok(e) => Ok(Err(crate::rpc::status::named(name, e))),
                Err(e) => Err(broken(&e)),
            },
            Some(other) => Err(broken(&format!("a {other:?} frame where a reply belongs"))),
            None => Err(broken(&"the peer closed the connection")),
        }
    }
}

impl FrameConn {
    /// One exchange, as [`FrameConn::call`]: the reply's bytes or the failure, and the
    /// connection back when the exchange was whole (a broken one is dropped here).
    pub async fn exchange(mut self, name: &str, kind: Kind, payload: &[u8]) -> (Option<FrameConn>, Result<Vec<u8>, Error>) {
        match self.call(name, kind, payload).await.map(|answer| answer.map(<[u8]>::to_vec)) {
            Ok(answer) => (Some(self), answer),
            Err(broken) => (None, Err(broken)),
        }
    }

    /// Whether the peer closed this idle connection (or sent what no request asked for):
    /// such a connection is not used again.
    fn is_stale(&self) -> bool {
        if !self.r.buffer().is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.r.get_ref().try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            // The end of the stream, bytes no request asked for, or a failure.
            _ => true,
        }
    }
}

/// A frames connection to the peer `name` at `addr`, its hello announcing what every gRPC
/// call of `peers` announces, made within `within`; `None` if the peer does not speak
/// frames (recorded in `peers`, so that the caller and the next calls use gRPC).
pub async fn open(
    peers: &crate::rpc::client::Peers,
    name: &str,
    addr: &str,
    within: Duration,
) -> Option<Result<FrameConn, Error>> {
    let (cookie, protocol, cluster) = peers.credentials();
    match FrameConn::connect(name, addr, &Hello { protocol, cookie, cluster }, within).await {
        Ok(conn) => Some(Ok(conn)),
        Err(NotMade::Failed(e)) => Some(Err(e)),
        Err(NotMade::Unsupported) => {
            tracing::info!(peer = %name, "peer does not speak frames; calling it over gRPC");
            peers.no_frames(addr);
            None
        }
    }
}

/// Idle frames connections by peer address, for calls that may run several at once (the
/// writes a follower or replicant forwards: up to `raft.max_inflight_batches`): a call
/// takes one (or makes one) and gives it back after a whole exchange.
pub struct Pool {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<FrameConn>>>,
    /// The most idle connections kept per peer.
    keep: usize,
}

impl Default for Pool {
    /// A pool for a node's forwards: 16 idle connections per peer at most (a node has
    /// `raft.max_inflight_batches` forwards in flight).
    fn default() -> Self {
        Pool::keeping(16)
    }
}

impl Pool {
    /// A pool that keeps at most `keep` idle connections per peer (as many as calls run at
    /// once, or each call beyond them makes a connection).
    pub fn keeping(keep: usize) -> Self {
        Pool { idle: Default::default(), keep }
    }

    /// Sends one request to the peer `name` at `addr` and returns the reply's bytes or the
    /// failure, as [`FrameConn::call`] does; `None` where `peers` does not send to `addr`
    /// over frames ([`Peers::frames_to`](crate::rpc::client::Peers::frames_to): frames off,
    /// TLS, or a peer without them): the caller uses gRPC. A connection idle since its
    /// node's cluster id changed, or closed by the peer, is not used. A connection made
    /// fails with `NotConnected` (nothing was sent) when the peer cannot be reached.
    pub async fn call(
        &self,
        peers: &crate::rpc::client::Peers,
        name: &str,
        addr: &str,
        kind: Kind,
        payload: &[u8],
    ) -> Option<Result<Vec<u8>, Error>> {
        match peers.frames_to(addr) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(cut) => return Some(Err(cut)),
        }
        let conn = match self.take(peers, addr) {
            Some(conn) => conn,
            None => match open(peers, name, addr, peers.connect_timeout()).await? {
                Ok(conn) => conn,
                Err(e) => return Some(Err(e)),
            },
        };
        let (back, answer) = conn.exchange(name, kind, payload).await;
        if let Some(conn) = back {
            self.give_back(addr, conn);
        }
        Some(answer)
    }

    fn take(&self, peers: &crate::rpc::client::Peers, addr: &str) -> Option<FrameConn> {
        let mut idle = self.idle.lock().ok()?;
        let conns = idle.get_mut(addr)?;
        while let Some(conn) = conns.pop() {
            if peers.announces(conn.cluster()) && !conn.is_stale() {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, addr: &str, conn: FrameConn) {
        if let Ok(mut idle) = self.idle.lock() {
            match idle.get_mut(addr) {
                Some(conns) if conns.len() >= self.keep => {}
                Some(conns) => conns.push(conn),
                None => {
                    idle.insert(addr.to_string(), vec![conn]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::client::Peers;
    use tokio::io::AsyncReadExt;

    /// A peer that answers each connection's first request with its own bytes, then closes
    /// the connection (as a node that restarted would have).
    async fn one_answer_per_connection() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tx.send(()).unwrap();
                let mut magic = [0u8; 8];
                s.read_exact(&mut magic).await.unwrap();
                let mut buf = Vec::new();
                frame::read(&mut s, &mut buf).await.unwrap();
                frame::write(&mut s, Kind::Ok, &[]).await.unwrap();
                assert_eq!(frame::read(&mut s, &mut buf).await.unwrap(), Some(Kind::Forward));
                frame::write(&mut s, Kind::Ok, &buf).await.unwrap();
            }
        });
        (addr, rx)
    }

    /// An idle pooled connection the peer has closed is not used: the next call makes a
    /// new one, and does not fail with an unknown outcome.
    #[tokio::test]
    async fn a_pooled_connection_the_peer_closed_is_not_used() {
        let (addr, mut accepted) = one_answer_per_connection().await;
        let peers = Peers::new("secret", None, crate::protocol::PROTOCOL, None).unwrap();
        let pool = Pool::default();
        let first = pool.call(&peers, "peer", &addr, Kind::Forward, b"one").await;
        assert_eq!(first.unwrap().unwrap(), b"one");
        let within = std::time::Duration::from_secs(5);
        tokio::time::timeout(within, accepted.recv()).await.unwrap();
        // The peer closes the idle connection; its end of the stream reaches this side.
        tokio::time::timeout(within, async {
            loop {
                if pool.idle.lock().unwrap().get(&addr).is_some_and(|c| c.iter().all(FrameConn::is_stale)) {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the closed connection seen as stale");
        let second = pool.call(&peers, "peer", &addr, Kind::Forward, b"two").await;
        assert_eq!(second.unwrap().unwrap(), b"two", "answered over a new connection");
        tokio::time::timeout(within, accepted.recv()).await.expect("a second connection");
    }
}
