//! A client for a running node, as `mnema ctl` and black-box tests use it.

use crate::backup::BackupInfo;
use crate::engine::{Blob, Committed, Declaration, IndexHit, IndexRange, KeyRange, Op, Txn, WatchSpec};
use crate::error::{Error, Result, TransportKind};
use crate::rpc::client::{Cluster, Peers, status_error};
use crate::rpc::convert;
use crate::rpc::pb;
use crate::runtime::{Watch, WatchSnapshot};
use crate::status::{ClusterStatus, NodeStatus};
use std::collections::HashMap;

/// Records read on a node, and the index it had applied when it read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// `(key, value)` pairs; for a bag, one pair per value.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// The node's applied index at the read.
    pub applied_index: u64,
}

impl From<pb::ReadReply> for Records {
    fn from(r: pb::ReadReply) -> Self {
        Records { records: r.records.into_iter().map(|r| (r.key, r.value)).collect(), applied_index: r.applied_index }
    }
}

fn leader(r: pb::JoinReply) -> Option<String> {
    (!r.leader.is_empty()).then_some(r.leader)
}

/// Writes to one node over one stream (see [`Client::pipeline`]). Cheap to clone: clones
/// share the stream. A stream that fails answers every write in flight with its error (a
/// `Transport` error, outcome unknown: the write may have been applied) and is opened
/// again by the next write.
#[derive(Clone)]
pub struct Pipeline {
    addr: String,
    submit: tokio::sync::mpsc::Sender<Submit>,
}

struct Submit {
    txn: Vec<u8>,
    reply: Reply,
}

/// Writes one stream has in flight at most, client side (the server has its own bound).
const PIPELINE_WINDOW: usize = 4096;

impl Pipeline {
    async fn open(addr: String, client: Cluster) -> Result<Self> {
        let stream = Stream::open(&addr, client.clone()).await?;
        let (submit, rx) = tokio::sync::mpsc::channel(PIPELINE_WINDOW);
        tokio::spawn(drive(addr.clone(), client, stream, rx));
        Ok(Pipeline { addr, submit })
    }

    /// Writes `txn` through the node; returns once the node applied it, as
    /// [`Client::transact`] does, with the same errors.
    pub async fn transact(&self, txn: &Txn) -> Result<Committed> {
        let txn = crate::codec::encode_versioned(crate::codec::WIRE_VERSION, txn)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || Error::transport(&self.addr, TransportKind::NotConnected, "the write stream's task ended");
        self.submit.send(Submit { txn, reply }).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// One open `TransactStream` call.
struct Stream {
    out: tokio::sync::mpsc::Sender<pb::TaggedWrite>,
    replies: tonic::Streaming<pb::TaggedReply>,
}

impl Stream {
    async fn open(addr: &str, mut client: Cluster) -> Result<Self> {
        let (out, rx) = tokio::sync::mpsc::channel(PIPELINE_WINDOW);
        let replies = client
            .transact_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| status_error(addr, s))?
            .into_inner();
        Ok(Stream { out, replies })
    }

    /// Sends `write` under the next tag, its writer waiting in `pending` for the reply.
    async fn send(&mut self, write: Submit, pending: &mut HashMap<u64, Reply>, last_tag: &mut u64) {
        *last_tag += 1;
        pending.insert(*last_tag, write.reply);
        // A closed stream shows as its reply side failing (in `drive`).
        let _ = self.out.send(pb::TaggedWrite { tag: *last_tag, txn: write.txn }).await;
    }
}

/// Where a write's outcome goes.
type Reply = tokio::sync::oneshot::Sender<Result<Committed>>;

/// Decodes a reply of the stream: the write's outcome, or why the reply is unreadable.
pub(crate) fn decode_reply(bytes: &[u8]) -> Result<Committed> {
    crate::codec::decode_versioned::<Result<Committed>>("transact reply", crate::codec::WIRE_VERSION, bytes)?
}

/// Sends the writes of `rx` over the stream and hands each reply to its writer; opens the
/// stream again for the next write after it fails. Ends when every `Pipeline` is dropped
/// and every write in flight is answered.
async fn drive(addr: String, client: Cluster, stream: Stream, mut rx: tokio::sync::mpsc::Receiver<Submit>) {
    let mut stream = Some(stream);
    let mut pending: HashMap<u64, Reply> = HashMap::new();
    let mut next_tag = 0u64;
    let mut callers = true;
    loop {
        if !callers && pending.is_empty() {
            return;
        }
        let Some(open) = stream.as_mut() else {
            // Failed: open again for the next write.
            let Some(first) = rx.recv().await else { return };
            match Stream::open(&addr, client.clone()).await {
                Ok(s) => stream.insert(s).send(first, &mut pending, &mut next_tag).await,
                Err(e) => {
                    let _ = first.reply.send(Err(e));
                }
            }
            continue;
        };
        tokio::select! {
            sub = rx.recv(), if callers => match sub {
                Some(s) => open.send(s, &mut pending, &mut next_tag).await,
                None => {
                    callers = false;
                    // Nothing more to send: the server ends the stream once it answered all.
                    let (closed, _) = tokio::sync::mpsc::channel(1);
                    open.out = closed;
                }
            },
            reply = open.replies.message() => {
                let failure = match reply {
                    Ok(Some(r)) => {
                        if let Some(tx) = pending.remove(&r.tag) {
                            let _ = tx.send(decode_reply(&r.reply));
                        }
                        continue;
                    }
                    Ok(None) => Error::transport(&addr, TransportKind::NoAnswer, "the node ended the write stream"),
                    Err(status) => status_error(&addr, status),
                };
                // Every write in flight has an unknown outcome.
                let failure = match failure {
                    Error::Transport { peer, kind: TransportKind::NotConnected, reason } => {
                        Error::Transport { peer, kind: TransportKind::NoAnswer, reason }
                    }
                    other => other,
                };
                for (_, tx) in pending.drain() {
                    let _ = tx.send(Err(failure.clone()));
                }
                stream = None;
            }
        }
    }
}

/// A client of one node. Cheap to clone: clones share one connection (a tonic channel)
/// and one pool of frames connections, so one `Client` can serve many tasks.
///
/// Without TLS, [`Client::transact`] goes over frames (the framing Raft uses between cores:
/// one TCP connection per write in flight, reused, no HTTP/2) when the node speaks them,
/// else as a gRPC call; every other call is gRPC.
#[derive(Clone)]
pub struct Client {
    addr: String,
    inner: Cluster,
    /// Whether transactions go over frames is its to say (`Peers::frames_to`: not with
    /// TLS, nor after [`Client::without_frames`]).
    peers: Peers,
    /// Frames connections to the node for transactions.
    frames: std::sync::Arc<crate::raft::frame_client::Pool>,
}

/// The most idle frames connections a client keeps (about as many as its writers).
const CLIENT_IDLE_FRAMES: usize = 1024;

impl Client {
    /// Connects (lazily) to the node at `addr` (`host:port`) with `cookie`.
    pub fn new(addr: &str, cookie: &str) -> Result<Self> {
        Self::with_tls(addr, cookie, None)
    }

    /// A client of a node running `inet_tls`.
    pub fn with_tls(addr: &str, cookie: &str, tls: Option<&crate::config::TlsFiles>) -> Result<Self> {
        let peers = Peers::new(cookie, None, crate::protocol::PROTOCOL, tls.map(crate::rpc::client::client_tls))?;
        let frames = std::sync::Arc::new(crate::raft::frame_client::Pool::keeping(CLIENT_IDLE_FRAMES));
        Ok(Client { addr: addr.to_string(), inner: peers.cluster(addr)?, peers, frames })
    }

    /// This client with every call on gRPC, transactions included (a proxy between it and
    /// the node that passes only HTTP/2, for one).
    pub fn without_frames(mut self) -> Self {
        self.peers = self.peers.without_frames();
        self
    }

    fn err(&self, s: tonic::Status) -> Error {
        status_error(&self.addr, s)
    }

    /// The node's own status.
    pub async fn node_info(&mut self) -> Result<NodeStatus> {
        let s = self.inner.node_info(pb::Empty {}).await.map_err(|s| self.err(s))?.into_inner();
        convert::node_from_pb(s)
    }

    /// The cluster as the node sees it.
    pub async fn status(&mut self) -> Result<ClusterStatus> {
        let s = self.inner.status(pb::Empty {}).await.map_err(|s| self.err(s))?.into_inner();
        convert::cluster_from_pb(s)
    }

    /// Asks the node to join the cluster of `peer` (`name@host` or `name@host:port`);
    /// returns the leader that admitted it, if it said.
    pub async fn join(&mut self, peer: &str) -> Result<Option<String>> {
        let req = pb::JoinRequest { name: peer.to_string(), addr: String::new(), schema: Vec::new() };
        self.inner.join_other(req).await.map(|r| leader(r.into_inner())).map_err(|s| self.err(s))
    }

    /// Asks the node's cluster to remove member `name` (`cluster force-leave`).
    pub async fn force_leave(&mut self, name: &str, force: bool) -> Result<()> {
        let req = pb::LeaveRequest { name: name.into(), force };
        self.inner.force_leave(req).await.map(|_| ()).map_err(|s| self.err(s))
    }

    /// Asks the node to leave its cluster (`cluster leave`).
    pub async fn leave(&mut self, force: bool) -> Result<()> {
        let req = pb::LeaveRequest { name: String::new(), force };
        self.inner.leave(req).await.map(|_| ()).map_err(|s| self.err(s))
    }

    /// Writes a transaction through the node (forwarded to the leader); returns once the
    /// node applied it. Errors are the variants a local call returns.
    pub async fn transact(&mut self, txn: &Txn) -> Result<Committed> {
        self.transact_ref(txn).await
    }

    async fn transact_txn(mut self, txn: Txn) -> Result<Committed> {
        self.transact_ref(&txn).await
    }

    async fn transact_ref(&mut self, txn: &Txn) -> Result<Committed> {
        let batch = crate::codec::encode_versioned(crate::codec::WIRE_VERSION, txn)?;
        let kind = crate::raft::frame::Kind::Transact;
        let reply = match self.frames.call(&self.peers, &self.addr, &self.addr, kind, &batch).await.transpose()? {
            Some(reply) => reply,
            None => {
                let req = pb::WriteRequest { batch, relay: false };
                self.inner.transact(req).await.map_err(|s| self.err(s))?.into_inner().reply
            }
        };
        crate::codec::decode_versioned("transact reply", crate::codec::WIRE_VERSION, &reply)
    }

    /// Opens a stream of writes to the node: [`Pipeline::transact`] may be called by any
    /// number of tasks at once, each write is sent at once over the stream and answered as
    /// it completes, so writes share one HTTP/2 stream instead of costing a call each.
    /// Fails (`Transport`, never sent) when the node cannot be reached.
    pub async fn pipeline(&self) -> Result<Pipeline> {
        Pipeline::open(self.addr.clone(), self.inner.clone()).await
    }

    /// Creates the replicated table `declaration` through the node's cluster (see
    /// [`Node::create_table`](crate::Node::create_table)): its rule and extractors are named
    /// by name and version and must be code every node registered.
    pub async fn create_table(&mut self, declaration: &Declaration) -> Result<Committed> {
        self.transact(&Txn { shard: 0, ops: vec![Op::CreateTable { declaration: declaration.clone() }] }).await
    }

    /// Drops the replicated table `name` and every record of it, through the node's cluster.
    pub async fn drop_table(&mut self, name: &str) -> Result<Committed> {
        self.transact(&Txn::new().drop_table(name)).await
    }

    /// The node's tables (see [`Node::tables`](crate::Node::tables)).
    pub async fn tables(&mut self) -> Result<Vec<crate::TableInfo>> {
        let reply = self.inner.tables(pb::Empty {}).await.map_err(|s| self.err(s))?.into_inner();
        convert::tables_from_pb(reply)
    }

    /// The read index of the node, which must be the leader: its commit index, confirmed by
    /// a quorum. A read made after it on any node with `min_applied` set to it is
    /// linearizable.
    pub async fn read_index(&mut self) -> Result<u64> {
        self.inner.read_index(pb::Empty {}).await.map(|r| r.into_inner().index).map_err(|s| self.err(s))
    }

    /// Records of `table` under `key` (or all records with `key = None`), read on the node.
    pub async fn read(&mut self, table: &str, key: Option<&[u8]>, min_applied: u64) -> Result<Records> {
        self.read_with(table, key, min_applied, false).await
    }

    /// Records of `table` under `key` (or all with `key = None`), linearizable, in one call
    /// to any node (core or replicant): the node asks the leader for its read index and
    /// answers once it has applied that index, so the read sees every write acknowledged
    /// before it began.
    pub async fn read_linearizable(&mut self, table: &str, key: Option<&[u8]>) -> Result<Records> {
        self.read_with(table, key, 0, true).await
    }

    async fn read_with(
        &mut self,
        table: &str,
        key: Option<&[u8]>,
        min_applied: u64,
        linearizable: bool,
    ) -> Result<Records> {
        let req = pb::ReadRequest {
            table: table.into(),
            key: key.unwrap_or_default().to_vec(),
            all: key.is_none(),
            min_applied,
            linearizable,
        };
        self.inner.read(req).await.map(|r| r.into_inner().into()).map_err(|s| self.err(s))
    }

    /// The page of `table`'s records `range` selects, read on the node, in its order (see
    /// [`KeyRange`]). Without a limit, the whole range, fetched in pages of
    /// [`Client::PAGE`] records (the node never answers with a whole table at once).
    pub async fn range(&mut self, table: &str, range: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
        if range.limit.is_none() {
            let mut out = Vec::new();
            let mut page = range.clone().limit(Self::PAGE);
            loop {
                let got = self.range_page(table, &page).await?;
                let full = got.len() == Self::PAGE;
                out.extend(got);
                match out.last() {
                    Some(last) if full => page = page.after(last),
                    _ => return Ok(out),
                }
            }
        }
        self.range_page(table, range).await
    }

    /// Records per call when a range read has no limit of its own.
    pub const PAGE: usize = 1000;

    async fn range_page(&mut self, table: &str, range: &KeyRange) -> Result<Vec<(Blob, Blob)>> {
        let req = convert::range_read_to_pb(table, range);
        let reply = self.inner.range_read(req).await.map_err(|s| self.err(s))?.into_inner();
        Ok(reply.records.into_iter().map(|r| (r.key.into(), r.value.into())).collect())
    }

    /// How many records `table` holds on the node.
    pub async fn count(&mut self, table: &str) -> Result<u64> {
        let req = pb::CountRequest { table: table.to_string() };
        self.inner.count(req).await.map(|r| r.into_inner().count).map_err(|s| self.err(s))
    }

    /// The records `range` selects through `table`'s secondary index `index`, read on the
    /// node (the node reads its index; nothing else of the table is sent).
    pub async fn index(&mut self, table: &str, index: &str, range: &IndexRange) -> Result<Vec<IndexHit>> {
        let req = convert::index_read_to_pb(table, index, range);
        let reply = self.inner.index_read(req).await.map_err(|s| self.err(s))?.into_inner();
        Ok(convert::hits_from_pb(reply.hits))
    }

    /// Watches `spec`'s tables on the node (see [`Node::watch`](crate::Node::watch)): its
    /// change feed, streamed. A failure of the connection ends the watch with a
    /// [`Error::Transport`]; watch again from the index after the last event seen.
    pub async fn watch(&mut self, spec: &WatchSpec) -> Result<Watch> {
        let (stream, snapshot) = self.open_watch(spec, false).await?;
        debug_assert!(snapshot.is_none());
        Ok(stream)
    }

    /// The records of `spec`'s tables at one index on the node, and a watch from the next
    /// one (see [`Node::snapshot_and_watch`](crate::Node::snapshot_and_watch)).
    pub async fn snapshot_and_watch(&mut self, spec: &WatchSpec) -> Result<(WatchSnapshot, Watch)> {
        let (stream, snapshot) = self.open_watch(spec, true).await?;
        let snapshot = snapshot.ok_or_else(|| Error::corrupt("watch stream", "no snapshot before the events"))?;
        Ok((snapshot, stream))
    }

    async fn open_watch(&mut self, spec: &WatchSpec, snapshot: bool) -> Result<(Watch, Option<WatchSnapshot>)> {
        use crate::engine::feed::wire::{self, WatchMsg};
        let req = pb::WatchRequest {
            tables: spec.tables.clone(),
            prefix: spec.prefix.clone(),
            from_index: spec.from_index,
            snapshot,
        };
        let mut stream = self.inner.watch(req).await.map_err(|s| self.err(s))?.into_inner();
        let addr = self.addr.clone();
        let next = move |m: std::result::Result<Option<pb::Payload>, tonic::Status>| -> Result<Option<WatchMsg>> {
            match m {
                Ok(Some(p)) => wire::decode(&p.data).map(Some),
                Ok(None) => Ok(None),
                Err(s) => Err(status_error(&addr, s)),
            }
        };
        let addr = self.addr.clone();
        // The snapshot first, whole, when asked for.
        let mut taken = None;
        if snapshot {
            let mut records = Vec::new();
            loop {
                match next(stream.message().await)? {
                    Some(WatchMsg::Records(r)) => records.extend(
                        r.into_iter()
                            .map(|r| (std::sync::Arc::from(r.table.as_str()), Blob::from(r.key), Blob::from(r.value))),
                    ),
                    Some(WatchMsg::SnapshotEnd { index }) => {
                        taken = Some(WatchSnapshot { index, records });
                        break;
                    }
                    Some(WatchMsg::End(e)) => return Err(e),
                    Some(WatchMsg::Event { .. }) | None => {
                        return Err(Error::corrupt("watch stream", "the snapshot did not end before the events"));
                    }
                }
            }
        }
        let (tx, watch) = Watch::channel();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                let out = match next(item) {
                    Ok(Some(WatchMsg::Event { index, changes })) => Ok(wire::event_from_wire(index, changes)),
                    Ok(Some(WatchMsg::End(e))) => Err(e),
                    Ok(Some(_)) => Err(Error::corrupt("watch stream", "snapshot records after the events began")),
                    // The node closed the stream without saying why: it stopped.
                    Ok(None) => {
                        Err(Error::transport(&addr, crate::error::TransportKind::NoAnswer, "the watch stream ended"))
                    }
                    Err(e) => Err(e),
                };
                let end = out.is_err();
                if tx.send(out).await.is_err() || end {
                    return;
                }
            }
        });
        Ok((watch, taken))
    }

    /// Streams the node's export document into `out`; returns the bytes written.
    pub async fn export(
        &mut self,
        out: &mut impl std::io::Write,
        progress: &mut crate::backup::Progress,
    ) -> Result<u64> {
        let mut stream = self.inner.export(pb::Empty {}).await.map_err(|s| self.err(s))?.into_inner();
        let mut n = 0u64;
        while let Some(chunk) = stream.message().await.map_err(|s| self.err(s))? {
            out.write_all(&chunk.data).map_err(|e| Error::io("export output", e))?;
            n += chunk.data.len() as u64;
            progress.add(0, chunk.data.len() as u64);
        }
        Ok(n)
    }

    /// Asks the node to copy its data dir into `dir` (a path on the node's machine).
    pub async fn backup(&mut self, dir: &str) -> Result<BackupInfo> {
        let req = pb::BackupRequest { dir: dir.to_string() };
        let r = self.inner.backup(req).await.map_err(|s| self.err(s))?.into_inner();
        Ok(BackupInfo { dir: r.dir.into(), applied_index: r.applied_index, bytes: r.bytes })
    }
}

/// An import through a remote node (`mnema ctl import`).
impl crate::backup::Submit for Client {
    async fn submit(&mut self, txn: Txn) -> Result<()> {
        self.transact(&txn).await.map(|_| ())
    }
}

/// The typed table modules (`schema`) over gRPC: reads are made on the node this client
/// talks to (a prefix is a range read, paged), writes go through its leader. Local
/// tables are written on their own node only, so `transact_local` is refused.
impl crate::engine::Tables for Client {
    fn node_name(&self) -> &str {
        &self.addr
    }

    async fn transact(&self, txn: Txn) -> Result<Committed> {
        self.clone().transact_txn(txn).await
    }

    fn transact_local(&self, _txn: &Txn) -> Result<Vec<crate::engine::OpResult>> {
        Err(Error::Refused(format!(
            "local tables are written on their own node, not through a client of {}",
            self.addr
        )))
    }

    async fn get(&self, table: &str, key: &[u8]) -> Result<Vec<Blob>> {
        let r = self.clone().read(table, Some(key), 0).await?;
        Ok(r.records.into_iter().map(|(_, v)| v.into()).collect())
    }

    async fn prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Blob, Blob)>> {
        Client::range(&mut self.clone(), table, &KeyRange::prefix(prefix)).await
    }

    async fn range(&self, table: &str, range: KeyRange) -> Result<Vec<(Blob, Blob)>> {
        Client::range(&mut self.clone(), table, &range).await
    }

    async fn count(&self, table: &str) -> Result<u64> {
        Client::count(&mut self.clone(), table).await
    }

    async fn dump(&self, table: &str) -> Result<Vec<(Blob, Blob)>> {
        let r = self.clone().read(table, None, 0).await?.records;
        Ok(r.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    async fn index(&self, table: &str, index: &str, range: IndexRange) -> Result<Vec<IndexHit>> {
        Client::index(&mut self.clone(), table, index, &range).await
    }
}
