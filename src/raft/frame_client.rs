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
        let broken = |e: std::io::Error| Error::transport(name, TransportKind::NoAnswer, e);
        frame::write(&mut self.w, kind, payload).await.map_err(broken)?;
        match frame::read(&mut self.r, &mut self.buf).await.map_err(broken)? {
            Some(Kind::Ok) => Ok(Ok(&self.buf)),
            Some(Kind::Err) => Ok(Err(crate::rpc::status::named(name, frame::decode_error(&self.buf)?))),
            Some(other) => Err(Error::corrupt("Raft frames reply", format!("a {other:?} frame"))),
            None => Err(Error::transport(name, TransportKind::NoAnswer, "the peer closed the connection")),
        }
    }
}
