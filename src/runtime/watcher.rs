//! Watches: a node's change feed, read by one task per watcher (`Node::watch`,
//! `Node::snapshot_and_watch`, the gRPC `Watch` stream).
//!
//! A watcher's task reads the node's ring (`engine::feed`) from the index it needs next,
//! filters what it reads by its spec and hands the events to a bounded channel; the apply
//! never waits for it. A watcher that cannot keep up (its channel full while the ring moves
//! on) finds, when it reads again, that the ring no longer holds its next index: it ends
//! with [`Error::Compacted`].

use super::Runtime;
use crate::engine::feed::{WatchEvent, WatchSpec};
use crate::engine::{Blob, KeyRange, Scope};
use crate::error::{Error, Result};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// Events buffered for a watcher that has not read them yet.
const BUFFERED: usize = 256;
/// Entries a watcher's task takes from the ring at a time.
const READ_AT_ONCE: usize = 256;

/// The changes of the watched tables, one [`WatchEvent`] per committed log entry that
/// touched them, in log order: a [`futures::Stream`], or [`Watch::next`]. It ends after an
/// error ([`Error::Compacted`], [`Error::Shutdown`], a transport failure of a remote one);
/// dropping it stops the watcher.
pub struct Watch {
    rx: mpsc::Receiver<Result<WatchEvent>>,
    /// Why the watch ended, told apart from the events so that it never waits for room
    /// among them: read once they are all read (a node's own watcher sets it).
    end: Option<oneshot::Receiver<Error>>,
    ended: bool,
}

/// The sending side of a node's own watch: its events, and why it ended.
pub(crate) struct WatchTx {
    events: mpsc::Sender<Result<WatchEvent>>,
    end: oneshot::Sender<Error>,
}

impl WatchTx {
    /// Ends the watch with `e`: the reader gets it after every event sent before.
    fn fail(self, e: Error) {
        let _ = self.end.send(e);
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("ended", &self.ended).finish()
    }
}

impl Watch {
    pub(crate) fn new(rx: mpsc::Receiver<Result<WatchEvent>>) -> Self {
        Watch { rx, end: None, ended: false }
    }

    /// A watch and the sender that feeds it (a remote watch's: its error is one more
    /// message).
    pub(crate) fn channel() -> (mpsc::Sender<Result<WatchEvent>>, Watch) {
        let (tx, rx) = mpsc::channel(BUFFERED);
        (tx, Watch::new(rx))
    }

    /// A node's own watch and what feeds it.
    fn local() -> (WatchTx, Watch) {
        let (events, rx) = mpsc::channel(BUFFERED);
        let (end, end_rx) = oneshot::channel();
        (WatchTx { events, end }, Watch { rx, end: Some(end_rx), ended: false })
    }

    /// What the channel's end means: the error set beside it, if any.
    fn closed(&mut self) -> Option<Result<WatchEvent>> {
        self.ended = true;
        self.end.take().and_then(|mut end| end.try_recv().ok()).map(Err)
    }

    /// The next event; `None` once the watch ended (after an error, or its node stopped).
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        if self.ended {
            return None;
        }
        match self.rx.recv().await {
            Some(Ok(e)) => Some(Ok(e)),
            Some(Err(e)) => {
                self.ended = true;
                Some(Err(e))
            }
            None => self.closed(),
        }
    }
}

impl futures::Stream for Watch {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(e))) => Poll::Ready(Some(Ok(e))),
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(self.closed()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The records of the watched tables at one applied index: where a watch that follows
/// from the next index starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSnapshot {
    /// The applied index the records are at.
    pub index: u64,
    /// `(table, key, value)`: every record of the watched tables (keys with the spec's
    /// prefix), table by table, in key order for ordered tables.
    pub records: Vec<(Arc<str>, Blob, Blob)>,
}

impl Runtime {
    /// Applied entries and (estimated) bytes the change feed's ring holds now.
    pub fn feed_size(&self) -> (usize, usize) {
        self.feed.size()
    }

    /// Checks `spec` against this node: replicated tables it has (or declares), in shards
    /// it follows.
    fn check_watch(&self, spec: &WatchSpec) -> Result<()> {
        if spec.tables.is_empty() {
            return Err(Error::InvalidTxn("a watch names at least one table".into()));
        }
        for table in &spec.tables {
            // An unknown table, or one of a shard this replicant does not follow: refused.
            if self.place(table)?.def().scope == Scope::Local {
                return Err(Error::LocalTable { table: table.clone(), action: "watching".into() });
            }
        }
        Ok(())
    }

    /// Starts a watch of `spec` (see [`Watch`]): from `spec.from_index`, or the next entry
    /// this node applies. [`Error::Compacted`] at once when this node's feed no longer
    /// holds that index; an index not applied yet is waited for.
    pub fn watch(self: &Arc<Self>, spec: WatchSpec) -> Result<Watch> {
        self.check_watch(&spec)?;
        let from = spec.from_index.unwrap_or_else(|| self.applied_index() + 1);
        let oldest = self.feed.oldest();
        if from < oldest {
            return Err(Error::Compacted { from, oldest });
        }
        let (tx, watch) = Watch::local();
        let rt = self.clone();
        self.spawn(async move { rt.run_watcher(spec, from, tx).await });
        Ok(watch)
    }

    /// The records of `spec`'s tables at one applied index, and a watch from the next
    /// index: nothing lost between them, nothing seen twice. ([`Error::Compacted`] in the
    /// rare case this node's feed dropped the next index meanwhile: call again.)
    pub fn snapshot_and_watch(self: &Arc<Self>, spec: WatchSpec) -> Result<(WatchSnapshot, Watch)> {
        self.check_watch(&spec)?;
        let snapshot = self.watch_snapshot(&spec)?;
        let watch = self.watch(WatchSpec { from_index: Some(snapshot.index + 1), ..spec })?;
        Ok((snapshot, watch))
    }

    /// The records of `spec`'s tables at one applied index: on a core from one RocksDB
    /// snapshot (every replicated table is on disc, with the applied index beside it), on a
    /// replicant from one view of its memory.
    fn watch_snapshot(&self, spec: &WatchSpec) -> Result<WatchSnapshot> {
        let range = match &spec.prefix {
            Some(p) => KeyRange::prefix(p.clone()),
            None => KeyRange::all(),
        };
        let mut records = Vec::new();
        if self.is_replicant() {
            let view = self.view();
            for table in &spec.tables {
                if let Ok(ix) = view.catalog.lookup(table) {
                    let name = view.catalog.name_arc(ix);
                    for (k, v) in view.table(ix).range_read(&range) {
                        records.push((name.clone(), k, v));
                    }
                }
            }
            return Ok(WatchSnapshot { index: view.applied, records });
        }
        let snap = crate::storage::data_snapshot::DataSnapshot::take(&self.db);
        let index = snap.applied_index()?;
        let catalog = snap.catalog()?;
        for table in &spec.tables {
            let Some(decl) = catalog.get(table) else { continue };
            let name: Arc<str> = Arc::from(table.as_str());
            let mut prefix = crate::engine::keys::table_prefix(table);
            if decl.kind != crate::engine::Kind::Bag
                && let Some(p) = &spec.prefix
            {
                prefix.extend_from_slice(p);
            }
            snap.for_each_with_prefix(&prefix, |k, v| {
                let (_, rest) = crate::engine::keys::split_table(k)?;
                let (key, value) = crate::engine::keys::split_record(decl.kind, rest, v)?;
                if spec.prefix.as_ref().is_none_or(|p| key.starts_with(p)) {
                    records.push((name.clone(), Blob::from(key), Blob::from(value)));
                }
                Ok(true)
            })?;
        }
        Ok(WatchSnapshot { index, records })
    }

    /// A watcher's task: from `next` on, the ring's entries through `spec`, into `tx`.
    async fn run_watcher(&self, spec: WatchSpec, mut next: u64, tx: WatchTx) {
        let mut pushed = self.feed.subscribe();
        loop {
            pushed.borrow_and_update();
            let entries = match self.feed.read_from(next, READ_AT_ONCE) {
                Ok(e) => e,
                Err(e) => return tx.fail(e),
            };
            if entries.is_empty() {
                tokio::select! {
                    changed = pushed.changed() => if changed.is_err() { return },
                    _ = tx.events.closed() => return,
                    _ = self.stopped() => return tx.fail(Error::Shutdown),
                }
                continue;
            }
            for entry in entries {
                next = entry.index + 1;
                let Some(event) = spec.event(entry.index, &entry.changes) else { continue };
                tokio::select! {
                    sent = tx.events.send(Ok(event)) => if sent.is_err() { return },
                    _ = self.stopped() => return tx.fail(Error::Shutdown),
                }
            }
        }
    }
}
