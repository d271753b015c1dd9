//! Many transactions over one stream: the server side of `Client::pipeline`.
//!
//! Each `TaggedWrite` is decoded and proposed through this node as `Transact` does, on a
//! task of its own, so the writes of one stream share the node's group commit; each
//! answer goes back as soon as its write completes, tagged, with the whole `Error` in
//! band. A stream has at most [`MAX_IN_FLIGHT`] writes in flight: past that it reads no
//! more until one completes (HTTP/2 flow control then holds the client).

use crate::codec::{WIRE_VERSION, decode_versioned, encode_versioned};
use crate::engine::{Committed, Txn};
use crate::error::Result;
use crate::rpc::pb;
use crate::rpc::status::to_status;
use crate::runtime::ServiceRoom;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tonic::Status;

/// Most writes of one stream in flight at once.
pub const MAX_IN_FLIGHT: usize = 4096;

pub type ReplyStream = tokio_stream::wrappers::ReceiverStream<std::result::Result<pb::TaggedReply, Status>>;

/// Answers the writes of `incoming` until the client closes its side (the writes in flight
/// are still answered) or the node stops.
pub(crate) fn serve(node: &ServiceRoom, mut incoming: tonic::Streaming<pb::TaggedWrite>) -> ReplyStream {
    let (tx, rx) = mpsc::channel(1024);
    let reader = node.clone();
    node.tasks().spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let next = tokio::select! {
                m = incoming.message() => m,
                _ = reader.tasks().stopped() => break,
            };
            let write = match next {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "a client's write stream failed");
                    break;
                }
            };
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let (node, tx) = (reader.clone(), tx.clone());
            reader.tasks().spawn(async move {
                let _slot = slot;
                let out: Result<Committed> = match decode_versioned::<Txn>("transaction", WIRE_VERSION, &write.txn) {
                    Ok(txn) => node.transact(txn).await,
                    Err(e) => Err(e),
                };
                let reply = encode_versioned(WIRE_VERSION, &out)
                    .map(|reply| pb::TaggedReply { tag: write.tag, reply })
                    .map_err(|e| to_status(&e));
                let _ = tx.send(reply).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
