//! The core's side of replication: the `Replication` gRPC service, one stream per replicant.
//!
//! A stream starts with entries from the replicant's `applied + 1` when the log still
//! holds them, else with a snapshot read from a RocksDB snapshot (the records and the
//! applied index beside them are one consistent state). Then it follows this core's
//! applied index, reading entries back from the log. A [`Pin`] keeps the entries the
//! stream still needs from being purged, so a long bootstrap cannot lose its tail.
//!
//! Not here: Raft itself (the stream reads what Raft applied), the replicant's checks.

use super::stream::{
    CHUNK_BYTES, CHUNK_RECORDS, ChunkRecords, Heartbeat, MAX_ENTRIES, StartMode, StreamEntry, StreamMsg, crc_record,
};
use crate::engine::{Batch, ShardId};
use crate::error::{Error, Result};
use crate::rpc::pb::{self, replication_server::Replication};
use crate::rpc::status::to_status;
use crate::runtime::LogServing;
use super::streams::Streams;
use crate::storage::data_snapshot::DataSnapshot;
use crate::storage::db::Db;
use crate::storage::log_reader;
use crate::storage::log_store::Pin;
use openraft::EntryPayload;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

type Tx = mpsc::Sender<std::result::Result<pb::Payload, Status>>;

pub struct ReplicationService {
    pub(crate) node: LogServing,
    /// This feature's own state: the streams and the log they hold.
    pub(crate) streams: std::sync::Arc<Streams>,
}

/// Which shards a stream carries.
#[derive(Clone)]
struct Shards(Option<Vec<ShardId>>);

impl Shards {
    fn wants(&self, shard: ShardId) -> bool {
        self.0.as_ref().is_none_or(|s| s.contains(&shard))
    }

    /// The transactions of `batch` in the wanted shards, and every catalog change (a
    /// replicant knows every table, holding those of its shards), each proposer's part
    /// kept apart (with its request id); `None` if none is wanted. A damaged batch goes
    /// whole: the replicant's apply refuses it as every core's did.
    fn filter(&self, batch: &Batch) -> Option<Batch> {
        if self.0.is_none() {
            return Some(batch.clone());
        }
        let Ok(parts) = batch.parts() else { return Some(batch.clone()) };
        let kept: Vec<Batch> = parts
            .into_iter()
            .map(|(request, range)| {
                let txns = batch.txns[range]
                    .iter()
                    .filter(|t| self.wants(t.shard) || t.changes_catalog())
                    .cloned()
                    .collect();
                Batch::new(txns, request)
            })
            .filter(|b| !b.txns.is_empty())
            .collect();
        (!kept.is_empty()).then(|| Batch::merge(kept).0)
    }
}

#[tonic::async_trait]
impl Replication for ReplicationService {
    type SubscribeStream = tokio_stream::wrappers::ReceiverStream<std::result::Result<pb::Payload, Status>>;

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> std::result::Result<Response<Self::SubscribeStream>, Status> {
        if !self.node.is_core() {
            return Err(to_status(&Error::is_replicant(self.node.name().as_str(), "streaming to a replicant")));
        }
        if self.node.refuses_votes() {
            // No Raft state of its own yet (a new core before it forms or joins its cluster,
            // or one rebuilding): it holds no cluster's data. A replicant that bootstrapped
            // from it would keep the id of a cluster this core leaves when it joins, and
            // ignore every core of the real one.
            let e = Error::NoLeader(format!(
                "{} is not a member of a cluster yet: no data to stream",
                self.node.name()
            ));
            return Err(to_status(&e));
        }
        let r = req.into_inner();
        // A replicant declaring tables otherwise, or without the code of a table in the log,
        // would apply this core's entries differently.
        crate::rpc::convert::decode_schema(&r.schema)
            .and_then(|theirs| self.node.check_replicant(&r.replicant, &theirs))
            .map_err(|e| to_status(&e))?;
        let shards = if r.shards.is_empty() {
            Shards(None)
        } else {
            let s = r.shards.iter().map(|s| ShardId::try_from(*s)).collect::<std::result::Result<Vec<_>, _>>();
            let bad = |_| Error::config("replicant.shards", "shard ids are 0..=65535");
            Shards(Some(s.map_err(bad).map_err(|e| to_status(&e))?))
        };
        let (tx, rx) = mpsc::channel(8);
        let (node, streams) = (self.node.clone(), self.streams.clone());
        self.node.tasks().spawn(async move {
            let _registered = streams.register(
                crate::status::Subscriber { name: r.replicant.clone(), addr: r.addr.clone(), protocol: r.protocol },
                node.member_events(),
            );
            tracing::info!(replicant = %r.replicant, applied = r.applied, "replicant subscribed");
            match serve(&node, &streams, &r, shards, &tx).await {
                Ok(()) => tracing::info!(replicant = %r.replicant, "replication stream closed"),
                Err(e) => {
                    tracing::warn!(replicant = %r.replicant, error = %e, "replication stream failed");
                    let _ = tx.send(Err(to_status(&e))).await;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

async fn send(tx: &Tx, msg: &StreamMsg) -> Result<bool> {
    let data = super::stream::encode(msg)?;
    Ok(tx.send(Ok(pb::Payload { data })).await.is_ok())
}

fn heartbeat(node: &LogServing) -> Heartbeat {
    Heartbeat { committed: node.committed_index(), core_applied: node.applied_index(), leader: node.leader_to_tell() }
}

async fn serve(
    node: &LogServing,
    streams: &std::sync::Arc<Streams>,
    req: &pb::SubscribeRequest,
    shards: Shards,
    tx: &Tx,
) -> Result<()> {
    let members = req.features & super::stream::FEATURE_MEMBERS != 0;
    let applied = node.applied_index();
    let from = req.applied + 1;
    let resumable = if req.applied > 0 { streams.pin_log_if_retained(node.db(), from, applied)? } else { None };
    let (pin, next) = match resumable {
        Some(pin) => {
            let start = StreamMsg::Start {
                core: node.name().to_string(),
                mode: StartMode::Entries { from },
                core_applied: applied,
            };
            if !send(tx, &start).await? {
                return Ok(());
            }
            (pin, from)
        }
        None => {
            let (node2, streams2, tx2, shards2) = (node.clone(), streams.clone(), tx.clone(), shards.clone());
            let res = node
                .tasks()
                .spawn_blocking(move || send_snapshot(&node2, &streams2, &shards2, members, &tx2))
                .await
                .map_err(|e| Error::task("snapshot", e))??;
            match res {
                Some((pin, index)) => (pin, index + 1),
                None => return Ok(()),
            }
        }
    };
    let reader = Reader { name: &req.replicant, announces: req.protocol };
    tail(node, shards, members, reader, tx, pin, next).await
}

/// Streams a consistent snapshot; returns the pin on the entries after it and its index
/// (`None`: the replicant went away).
fn send_snapshot(
    node: &LogServing,
    streams: &Streams,
    shards: &Shards,
    members: bool,
    tx: &Tx,
) -> Result<Option<(Pin, u64)>> {
    let blocking_send = |msg: &StreamMsg| -> Result<bool> {
        let data = super::stream::encode(msg)?;
        Ok(tx.blocking_send(Ok(pb::Payload { data })).is_ok())
    };
    let core_applied = node.applied_index();
    let snap = DataSnapshot::take(node.db());
    let index = snap.applied_index()?;
    // Entries after `index` are not applied in this snapshot, so not purgeable yet.
    let pin = streams.pin_log(index + 1)?;
    let start = StreamMsg::Start { core: node.name().to_string(), mode: StartMode::Snapshot, core_applied };
    if !blocking_send(&start)? {
        return Ok(None);
    }
    let (mut seq, mut count, mut crc) = (0u32, 0u64, crc32fast::Hasher::new());
    let mut chunk = ChunkRecords::default();
    let gone = std::cell::Cell::new(false);
    let mut add = |k: &[u8], v: &[u8]| -> Result<bool> {
        crc_record(&mut crc, k, v);
        count += 1;
        chunk.push(k, v);
        if chunk.len() >= CHUNK_RECORDS || chunk.bytes() >= CHUNK_BYTES {
            if !blocking_send(&StreamMsg::SnapshotChunk { seq, records: std::mem::take(&mut chunk) })? {
                gone.set(true);
                return Ok(false);
            }
            seq += 1;
        }
        Ok(true)
    };
    // The catalog first: the replicant creates the tables the records after it go into.
    let catalog = snap.catalog()?;
    let catalog_prefix = crate::engine::keys::table_prefix(crate::engine::catalog::TABLE);
    snap.for_each_with_prefix(&catalog_prefix, &mut add)?;
    // Then the records of the tables in the wanted shards; request records go to everyone.
    snap.for_each_record(|k, v| {
        if gone.get() {
            return Ok(false);
        }
        let (table, _) = crate::engine::keys::split_table(k)?;
        let wanted = if table == crate::engine::catalog::TABLE {
            false
        } else if table == crate::engine::requests::TABLE {
            true
        } else {
            catalog.get(table).is_some_and(|d| shards.wants(d.shard))
        };
        if !wanted {
            return Ok(true);
        }
        add(k, v)
    })?;
    if gone.get() {
        return Ok(None);
    }
    if !chunk.is_empty() && !blocking_send(&StreamMsg::SnapshotChunk { seq, records: chunk })? {
        return Ok(None);
    }
    if !blocking_send(&StreamMsg::SnapshotEnd { index, records: count, crc: crc.finalize() })? {
        return Ok(None);
    }
    if members {
        let members = crate::raft::types::members_of(snap.membership()?.membership());
        if !blocking_send(&StreamMsg::Members { index, members })? {
            return Ok(None);
        }
    }
    tracing::info!(index, records = count, "sent a snapshot to a replicant");
    Ok(Some((pin, index)))
}

/// Reads entries `from..=to` back from the log, each batch filtered to `shards`; and the
/// membership changes among them, as `Members` messages.
fn read_entries(db: &Db, from: u64, to: u64, shards: &Shards) -> Result<(Vec<StreamEntry>, Vec<StreamMsg>)> {
    let entries = log_reader::read_range(db, from, to)?;
    let mut changes = Vec::new();
    let entries = entries
        .into_iter()
        .map(|entry| {
            let index = entry.log_id.index;
            let batch = match &entry.payload {
                EntryPayload::Normal(b) => shards.filter(b),
                EntryPayload::Membership(m) => {
                    changes.push(StreamMsg::Members { index, members: crate::raft::types::members_of(m) });
                    None
                }
                EntryPayload::Blank => None,
            };
            StreamEntry { index, batch }
        })
        .collect();
    Ok((entries, changes))
}

/// The replicant a stream goes to, and the protocol version it announced.
#[derive(Clone, Copy)]
struct Reader<'a> {
    name: &'a str,
    announces: u32,
}

impl Reader<'_> {
    /// [`Error::FeatureNotEnabled`] naming the replicant when `entries` hold a kind of
    /// entry its version cannot read: the stream ends before it is sent. The leader's gate
    /// (`Runtime::members_can_apply`) asks the replicants the cores stream to when a new
    /// kind is proposed, but cannot see one between two streams (restarting, or moving to
    /// another core); this is where every entry a replicant gets passes.
    fn reads(&self, entries: &[StreamEntry]) -> Result<()> {
        if self.announces >= crate::protocol::PROTOCOL {
            return Ok(());
        }
        entries
            .iter()
            .filter_map(|e| e.batch.as_ref())
            .flat_map(|b| &b.txns)
            .try_for_each(|txn| crate::protocol::every_member_reads(txn, [(self.name, self.announces)]))
    }
}

/// Follows this core's applied index from `next` on.
async fn tail(
    node: &LogServing,
    shards: Shards,
    members: bool,
    reader: Reader<'_>,
    tx: &Tx,
    pin: Pin,
    mut next: u64,
) -> Result<()> {
    let mut applied_rx = node.applied_watch();
    let idle = node.heartbeat();
    let instance = node.raft_instance();
    loop {
        if node.raft_instance() != instance {
            return Err(Error::Refused(format!("{} left its cluster; follow another core", node.name())));
        }
        let applied = *applied_rx.borrow_and_update();
        if applied >= next {
            let to = applied.min(next + MAX_ENTRIES as u64 - 1);
            let (entries, changes) = read_entries(node.db(), next, to, &shards)?;
            reader.reads(&entries)?;
            if !send(tx, &StreamMsg::Entries { entries, heartbeat: heartbeat(node) }).await? {
                return Ok(());
            }
            for change in changes.iter().filter(|_| members) {
                if !send(tx, change).await? {
                    return Ok(());
                }
            }
            next = to + 1;
            pin.advance(next);
            continue;
        }
        let idle_now = tokio::select! {
            changed = applied_rx.changed() => match changed {
                Ok(()) => false,
                Err(_) => return Ok(()),
            },
            _ = tokio::time::sleep(idle) => true,
            _ = tx.closed() => return Ok(()),
            _ = node.tasks().stopped() => return Ok(()),
        };
        if idle_now && !send(tx, &StreamMsg::Heartbeat(heartbeat(node))).await? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Txn;

    fn entry(index: u64, txn: Txn) -> StreamEntry {
        StreamEntry { index, batch: Some(Batch::new(vec![txn], None)) }
    }

    #[test]
    fn an_entry_a_replicant_announces_too_old_a_version_for_is_not_streamed_to_it() {
        let entries = [entry(1, Txn::new().put("t", "k", "v")), entry(2, Txn::new().drop_table("t"))];
        let older = Reader { name: "r@h", announces: crate::protocol::OLDEST };
        match older.reads(&entries) {
            Err(Error::FeatureNotEnabled { feature, node, announces, .. }) => {
                assert_eq!((feature.as_str(), node.as_str(), announces), ("DropTable", "r@h", crate::protocol::OLDEST))
            }
            other => panic!("expected FeatureNotEnabled, got {other:?}"),
        }
        assert!(older.reads(&entries[..1]).is_ok(), "a plain write is read by every version");
        let current = Reader { name: "r@h", announces: crate::protocol::PROTOCOL };
        assert!(current.reads(&entries).is_ok());
    }
}
