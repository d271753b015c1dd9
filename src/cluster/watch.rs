//! The `Watch` gRPC stream: a node's change feed to a remote watcher ([`crate::Client`]),
//! message by message as `engine::feed::wire` encodes them.

use crate::engine::feed::WatchSpec;
use crate::engine::feed::wire::{self, WatchMsg, WireRecord};
use crate::error::Result;
use crate::rpc::pb;
use crate::runtime::{ServiceRoom, Watch};
use tokio::sync::mpsc;
use tonic::Status;

/// Records per message of a snapshot (also cut at about 1 MiB).
const CHUNK_RECORDS: usize = 4096;
const CHUNK_BYTES: usize = 1 << 20;

type Tx = mpsc::Sender<std::result::Result<pb::Payload, Status>>;

/// The stream of `req`: refused at once (unknown table, a local one, an index the feed no
/// longer holds), else a task of the node pumps the snapshot (if asked) and the events.
pub(crate) fn serve(node: &ServiceRoom, req: pb::WatchRequest) -> Result<tokio_stream::wrappers::ReceiverStream<std::result::Result<pb::Payload, Status>>> {
    let spec = WatchSpec { tables: req.tables, prefix: req.prefix, from_index: req.from_index };
    let (snapshot, watch) = if req.snapshot {
        let (s, w) = node.snapshot_and_watch(spec)?;
        (Some(s), w)
    } else {
        (None, node.watch(spec)?)
    };
    let (tx, rx) = mpsc::channel(16);
    node.tasks().spawn(pump(snapshot, watch, tx));
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn send(tx: &Tx, msg: &WatchMsg) -> bool {
    match wire::encode(msg) {
        Ok(data) => tx.send(Ok(pb::Payload { data })).await.is_ok(),
        Err(e) => {
            let _ = tx.send(Err(crate::rpc::status::to_status(&e))).await;
            false
        }
    }
}

async fn pump(snapshot: Option<crate::runtime::WatchSnapshot>, mut watch: Watch, tx: Tx) {
    if let Some(s) = snapshot {
        let (mut chunk, mut bytes) = (Vec::new(), 0usize);
        for (table, key, value) in s.records {
            bytes += key.len() + value.len();
            chunk.push(WireRecord { table: table.to_string(), key: key.to_vec(), value: value.to_vec() });
            if (chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES)
                && !send(&tx, &WatchMsg::Records(std::mem::take(&mut chunk))).await
            {
                return;
            }
            if chunk.is_empty() {
                bytes = 0;
            }
        }
        if !chunk.is_empty() && !send(&tx, &WatchMsg::Records(chunk)).await {
            return;
        }
        if !send(&tx, &WatchMsg::SnapshotEnd { index: s.index }).await {
            return;
        }
    }
    loop {
        tokio::select! {
            next = watch.next() => match next {
                Some(Ok(event)) => {
                    if !send(&tx, &wire::event_to_wire(&event)).await {
                        return;
                    }
                }
                Some(Err(e)) => {
                    send(&tx, &WatchMsg::End(e)).await;
                    return;
                }
                None => return,
            },
            _ = tx.closed() => return,
        }
    }
}
