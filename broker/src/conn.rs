//! One MQTT connection: a reader that acts on the client's packets in order and a writer
//! that owns the socket's write half, the outgoing packet ids and the QoS 1 messages in
//! flight.

use crate::broker::Broker;
use crate::message::{Msg, ToClient};
use crate::mqtt::{self, In, Out, Version};
use crate::sessions::DEFAULT_SESSION_EXPIRY_S;
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a new connection may take to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts MQTT connections until `stop` is cancelled; then every connection it accepted
/// ends with it.
pub async fn accept(broker: Arc<Broker>, listener: tokio::net::TcpListener, stop: CancellationToken) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next() => continue,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                conns.spawn(run(broker.clone(), sock));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Queued message ids of the QoS 1 messages in flight, by packet id.
type Inflight = Arc<Mutex<HashMap<u16, Option<u64>>>>;

async fn run(broker: Arc<Broker>, sock: TcpStream) {
    let (mut rd, wr) = sock.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            if let Some(c) = mqtt::read_connect(&mut buf)? {
                return Ok::<_, mqtt::WireError>(Some(c));
            }
            if rd.read_buf(&mut buf).await.map_err(|_| mqtt::WireError::NotConnect)? == 0 {
                return Ok(None);
            }
        }
    })
    .await
    {
        Ok(Ok(Some(c))) => c,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection refused");
            return;
        }
        _ => return,
    };
    let version = connect.version;
    let client = if connect.client_id.is_empty() {
        format!("auto-{}", mnema::schema::messages::new_id())
    } else {
        connect.client_id.clone()
    };
    let persistent = match version {
        Version::V311 => !connect.clean_start,
        Version::V5 => connect.session_expiry_s.is_some_and(|s| s > 0),
    };
    let expiry = match version {
        Version::V311 => DEFAULT_SESSION_EXPIRY_S,
        Version::V5 => u64::from(connect.session_expiry_s.unwrap_or(0)),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let inflight: Inflight = Arc::default();
    let writer = tokio::spawn(write_loop(version, wr, rx, inflight.clone()));
    let keep_alive = match connect.keep_alive_s {
        0 => Duration::from_secs(24 * 3600),
        s => Duration::from_millis(u64::from(s) * 1500),
    };
    // The broker sends the CONNACK, then the session's queued messages.
    let conn = match broker.sessions.connect(&client, persistent, expiry, tx.clone()).await {
        Ok((conn, _present)) => conn,
        Err(e) => {
            tracing::warn!(client = %client, error = %e, "connect failed");
            writer.abort();
            return;
        }
    };
    let end = read_loop(&broker, version, &client, persistent, &mut rd, &mut buf, &tx, &inflight, keep_alive).await;
    if let Err(e) = &end {
        tracing::debug!(client = %client, error = %e, "connection closed");
    }
    drop(tx);
    if let Err(e) = broker.sessions.disconnect(&client, conn, persistent).await {
        tracing::warn!(client = %client, error = %e, "disconnect bookkeeping failed");
    }
    writer.abort();
}

#[derive(Debug, thiserror::Error)]
enum End {
    #[error(transparent)]
    Wire(#[from] mqtt::WireError),
    #[error(transparent)]
    Store(#[from] mnema::Error),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("keep-alive expired")]
    KeepAlive,
    #[error("protocol violation")]
    Protocol,
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    broker: &Broker,
    version: Version,
    client: &str,
    persistent: bool,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    tx: &mpsc::UnboundedSender<ToClient>,
    inflight: &Inflight,
    keep_alive: Duration,
) -> Result<(), End> {
    let send = |o: Out| {
        let _ = tx.send(ToClient::Packet(o));
    };
    loop {
        let packet = match mqtt::read(version, buf)? {
            Some(p) => p,
            None => match tokio::time::timeout(keep_alive, rd.read_buf(buf)).await {
                Err(_) => return Err(End::KeepAlive),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(End::Io(e)),
            },
        };
        match packet {
            In::Publish(mqtt::Publish { topic, payload, qos, retain, pkid }) => {
                let msg =
                    Msg { id: mnema::schema::messages::new_id(), from: client.into(), topic, payload, qos, retain };
                broker.router.publish(msg).await?;
                match qos {
                    0 => {}
                    1 => send(Out::PubAck(pkid)),
                    _ => send(Out::PubRec(pkid)),
                }
            }
            In::PubRel(pkid) => send(Out::PubComp(pkid)),
            In::PubAck(pkid) | In::PubComp(pkid) => {
                let queued = inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&pkid).flatten();
                if let Some(id) = queued {
                    broker.sessions.ack_queued(client, id).await?;
                }
            }
            In::PubRec => {}
            In::Subscribe { pkid, filters } => {
                let (granted, retained) = broker.sessions.subscribe(client, persistent, filters).await?;
                send(Out::SubAck { pkid, granted });
                for m in retained {
                    let _ = tx.send(ToClient::stored(m, true, None));
                }
            }
            In::Unsubscribe { pkid, filters } => {
                broker.sessions.unsubscribe(client, persistent, &filters).await?;
                send(Out::UnsubAck { pkid, filters: filters.len() });
            }
            In::PingReq => send(Out::PingResp),
            In::Disconnect => return Ok(()),
            In::Connect | In::Unexpected => return Err(End::Protocol),
        }
    }
}

async fn write_loop(
    version: Version,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<ToClient>,
    inflight: Inflight,
) {
    let mut next_id: u16 = 0;
    let mut out = BytesMut::with_capacity(4096);
    while let Some(first) = rx.recv().await {
        // Everything already waiting goes out in one write.
        let mut item = Some(first);
        while let Some(t) = item.take().or_else(|| rx.try_recv().ok()) {
            let packet = match t {
                ToClient::Packet(p) => p,
                ToClient::Message { msg, qos, retain, queued } => {
                    let pkid = if qos == 0 {
                        0
                    } else {
                        next_id = next_id.checked_add(1).unwrap_or(1);
                        inflight.lock().unwrap_or_else(|p| p.into_inner()).insert(next_id, queued);
                        next_id
                    };
                    Out::Publish(mqtt::Publish { topic: msg.topic, payload: msg.payload, qos, retain, pkid })
                }
            };
            if let Err(e) = mqtt::write(version, packet, &mut out) {
                tracing::warn!(error = %e, "packet not encoded");
            }
            if out.len() > 64 * 1024 {
                break;
            }
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
    let _ = wr.shutdown().await;
}
