//! Change feeds: what a committed log entry changed ([`Change`]), what a watcher asks for
//! ([`WatchSpec`]) and receives ([`WatchEvent`]), and the node's ring of recent changes
//! ([`FeedRing`]) that watchers read from.
//!
//! The apply (the same on cores and replicants, `engine::apply`) hands over the changes of
//! the transactions it applied, entry by entry, as it already holds them (the keys and
//! values it stored); the node pushes them into the ring after it publishes the state. The
//! ring is bounded in entries and bytes; pushing drops the oldest, and takes a lock only
//! for as long as it takes to append and drop, never waiting for a reader. Watchers read
//! from the ring on tasks of their own and filter there; one that falls behind what the
//! ring holds, or asks for an index before it, is told so ([`Error::Compacted`]) and starts
//! again from a snapshot.

use super::Blob;
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a change did to its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    /// The key now holds this value (a bag: gained it).
    Put(Blob),
    /// The key and all its values went.
    Delete,
    /// A bag key lost this value.
    DeleteObject(Blob),
    /// Every record of the table went.
    Clear,
    /// The table was created (the key is empty).
    Created,
    /// The table was dropped with its records (the key is empty).
    Dropped,
}

impl ChangeOp {
    /// The op's name, as `mnema ctl table watch` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeOp::Put(_) => "put",
            ChangeOp::Delete => "delete",
            ChangeOp::DeleteObject(_) => "delete_object",
            ChangeOp::Clear => "clear",
            ChangeOp::Created => "created",
            ChangeOp::Dropped => "dropped",
        }
    }

    /// Whether the change concerns the whole table rather than one key.
    pub fn whole_table(&self) -> bool {
        matches!(self, ChangeOp::Clear | ChangeOp::Created | ChangeOp::Dropped)
    }
}

/// One change of one committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The table.
    pub table: Arc<str>,
    /// The key (empty for a change of the whole table).
    pub key: Blob,
    /// What happened to it.
    pub op: ChangeOp,
}

impl Change {
    /// Bytes it keeps in the ring (its key and value, and a fixed part).
    fn bytes(&self) -> usize {
        let value = match &self.op {
            ChangeOp::Put(v) | ChangeOp::DeleteObject(v) => v.len(),
            _ => 0,
        };
        64 + self.key.len() + value
    }
}

/// The changes one committed log entry made to the watched tables, in the order its
/// transactions applied them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The entry's Raft log index.
    pub index: u64,
    /// Its changes.
    pub changes: Vec<Change>,
}

/// What to watch: one or more replicated tables, the keys starting with a prefix (changes
/// of a whole table pass whatever the prefix), from a log index on.
///
/// ```
/// use mnema::WatchSpec;
/// // Routes of `sensors/…`, every change from index 1,200 on.
/// let spec = WatchSpec::table("routes").prefix("sensors/").from_index(1_200);
/// assert_eq!(spec.tables, ["routes"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSpec {
    /// The tables.
    pub tables: Vec<String>,
    /// Only keys starting with this.
    pub prefix: Option<Vec<u8>>,
    /// The first index to report (`None`: the next entry applied after the watch starts).
    pub from_index: Option<u64>,
}

impl WatchSpec {
    /// Changes of `table`.
    pub fn table(table: &str) -> Self {
        WatchSpec { tables: vec![table.to_string()], ..Self::default() }
    }

    /// Changes of each of `tables`.
    pub fn tables<'a>(tables: impl IntoIterator<Item = &'a str>) -> Self {
        WatchSpec { tables: tables.into_iter().map(String::from).collect(), ..Self::default() }
    }

    /// Only keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// From log index `index` on (to resume after the last event seen: its index + 1).
    pub fn from_index(mut self, index: u64) -> Self {
        self.from_index = Some(index);
        self
    }

    /// Whether `change` is one this spec asks for.
    pub fn wants(&self, change: &Change) -> bool {
        self.tables.iter().any(|t| **t == *change.table)
            && (change.op.whole_table() || self.prefix.as_ref().is_none_or(|p| change.key.starts_with(p)))
    }

    /// The event of the entry `index` with `changes`, as this spec sees it (`None`: nothing
    /// of it is watched).
    pub fn event(&self, index: u64, changes: &[Change]) -> Option<WatchEvent> {
        let mine: Vec<Change> = changes.iter().filter(|c| self.wants(c)).cloned().collect();
        (!mine.is_empty()).then_some(WatchEvent { index, changes: mine })
    }
}

/// One committed entry's changes, as the ring holds them.
#[derive(Debug)]
pub struct FeedEntry {
    /// The entry's index.
    pub index: u64,
    /// Every change its applied transactions made.
    pub changes: Vec<Change>,
    bytes: usize,
}

/// The ring's limits.
#[derive(Clone, Copy, Debug)]
pub struct RingLimits {
    /// Entries held at most.
    pub entries: usize,
    /// Bytes of keys and values held at most.
    pub bytes: usize,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<Arc<FeedEntry>>,
    bytes: usize,
    /// The lowest index whose changes, if any, the ring still holds: a watcher may start
    /// at it or after.
    oldest: u64,
}

/// A node's recent changes, entry by entry: written by its apply, read by its watchers.
#[derive(Debug)]
pub struct FeedRing {
    ring: Mutex<Ring>,
    limits: RingLimits,
    /// The last index pushed (or reset to): watchers wait on it.
    last: watch::Sender<u64>,
}

impl FeedRing {
    /// An empty ring whose history starts after `applied`.
    pub fn new(limits: RingLimits, applied: u64) -> Self {
        FeedRing {
            ring: Mutex::new(Ring { entries: VecDeque::new(), bytes: 0, oldest: applied + 1 }),
            limits,
            last: watch::channel(applied).0,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Ring>> {
        self.ring.lock().map_err(|_| Error::Invariant("the change feed's ring lock was poisoned".into()))
    }

    /// Appends the changes of entries applied up to `applied` (entries without changes are
    /// left out), dropping the oldest beyond the limits. Never waits for a reader.
    pub fn push(&self, entries: Vec<(u64, Vec<Change>)>, applied: u64) {
        if let Ok(mut r) = self.lock() {
            for (index, changes) in entries {
                if changes.is_empty() {
                    continue;
                }
                let bytes = changes.iter().map(Change::bytes).sum();
                r.bytes += bytes;
                r.entries.push_back(Arc::new(FeedEntry { index, changes, bytes }));
            }
            while r.entries.len() > self.limits.entries || (r.bytes > self.limits.bytes && r.entries.len() > 1) {
                let Some(gone) = r.entries.pop_front() else { break };
                r.bytes -= gone.bytes;
                r.oldest = gone.index + 1;
            }
        }
        self.last.send_replace(applied);
    }

    /// Forgets every change: the node's state was replaced at `applied` (a snapshot
    /// installed, a replicant's bootstrap), so no history before it can be told.
    pub fn reset(&self, applied: u64) {
        if let Ok(mut r) = self.lock() {
            r.entries.clear();
            r.bytes = 0;
            r.oldest = applied + 1;
        }
        self.last.send_replace(applied);
    }

    /// The lowest index a watcher may start at.
    pub fn oldest(&self) -> u64 {
        self.lock().map(|r| r.oldest).unwrap_or(u64::MAX)
    }

    /// Up to `max` entries with an index of `from` or more, in order; [`Error::Compacted`]
    /// when the ring no longer holds everything from `from` on.
    pub fn read_from(&self, from: u64, max: usize) -> Result<Vec<Arc<FeedEntry>>> {
        let r = self.lock()?;
        if from < r.oldest {
            return Err(Error::Compacted { from, oldest: r.oldest });
        }
        let start = r.entries.partition_point(|e| e.index < from);
        Ok(r.entries.iter().skip(start).take(max).cloned().collect())
    }

    /// Follows the last index pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// Entries and bytes held now.
    pub fn size(&self) -> (usize, usize) {
        self.lock().map(|r| (r.entries.len(), r.bytes)).unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: &str, key: &str) -> Change {
        Change { table: table.into(), key: Blob::from(key.as_bytes()), op: ChangeOp::Put(Blob::from(&b"v"[..])) }
    }

    #[test]
    fn the_ring_keeps_the_latest_within_its_limits_and_says_what_it_lost() {
        let ring = FeedRing::new(RingLimits { entries: 3, bytes: 1 << 20 }, 10);
        assert_eq!(ring.oldest(), 11);
        ring.push((11..=15).map(|i| (i, vec![put("t", "k")])).collect(), 15);
        assert_eq!(ring.size().0, 3);
        assert_eq!(ring.oldest(), 13, "11 and 12 went");
        assert!(matches!(ring.read_from(12, 10), Err(Error::Compacted { from: 12, oldest: 13 })));
        let got: Vec<u64> = ring.read_from(13, 10).unwrap().iter().map(|e| e.index).collect();
        assert_eq!(got, [13, 14, 15]);
        assert!(ring.read_from(16, 10).unwrap().is_empty(), "an index not applied yet: nothing, no error");
        // Entries without changes take no room; bytes bound the ring too.
        ring.push(vec![(16, vec![])], 16);
        assert_eq!(ring.size().0, 3);
        let small = FeedRing::new(RingLimits { entries: 100, bytes: 200 }, 0);
        small.push((1..=5).map(|i| (i, vec![put("t", "k")])).collect(), 5);
        assert!(small.size().1 <= 200 && small.size().0 < 5);
        // A reset forgets everything before its index.
        ring.reset(20);
        assert!(matches!(ring.read_from(15, 10), Err(Error::Compacted { oldest: 21, .. })));
    }

    #[test]
    fn a_spec_takes_its_tables_and_prefix_and_whole_table_changes() {
        let spec = WatchSpec::tables(["a", "b"]).prefix("x/");
        let clear = Change { table: "a".into(), key: Blob::from(&b""[..]), op: ChangeOp::Clear };
        let changes = vec![put("a", "x/1"), put("a", "y/1"), put("c", "x/2"), put("b", "x/3"), clear.clone()];
        let e = spec.event(7, &changes).unwrap();
        assert_eq!(e.changes, vec![put("a", "x/1"), put("b", "x/3"), clear]);
        assert!(spec.event(8, &[put("c", "x/1")]).is_none());
    }
}

/// The `Watch` stream's messages between a node and a [`Client`](crate::Client), as on
/// the wire (versioned bincode, one message per gRPC message).
pub mod wire {
    use super::{Change, ChangeOp, WatchEvent};
    use crate::codec;
    use crate::engine::Blob;
    use crate::error::{Error, Result};
    use serde::{Deserialize, Serialize};

    /// This build's version of the watch stream.
    pub const WATCH_VERSION: u8 = 1;

    /// What a change did, on the wire.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum WireOp {
        Put(#[serde(with = "serde_bytes")] Vec<u8>),
        Delete,
        DeleteObject(#[serde(with = "serde_bytes")] Vec<u8>),
        Clear,
        Created,
        Dropped,
    }

    /// One change, on the wire.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WireChange {
        pub table: String,
        #[serde(with = "serde_bytes")]
        pub key: Vec<u8>,
        pub op: WireOp,
    }

    /// One record of a snapshot, on the wire.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct WireRecord {
        pub table: String,
        #[serde(with = "serde_bytes")]
        pub key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        pub value: Vec<u8>,
    }

    /// A message of the watch stream: snapshot records (when asked for) until the end of
    /// the snapshot, then events; an error ends it.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum WatchMsg {
        Records(Vec<WireRecord>),
        SnapshotEnd { index: u64 },
        Event { index: u64, changes: Vec<WireChange> },
        End(Error),
    }

    /// A message's bytes.
    pub fn encode(msg: &WatchMsg) -> Result<Vec<u8>> {
        codec::encode_versioned(WATCH_VERSION, msg)
    }

    /// A message from its bytes (an error on anything malformed or of another version).
    pub fn decode(bytes: &[u8]) -> Result<WatchMsg> {
        codec::decode_versioned("watch message", WATCH_VERSION, bytes)
    }

    /// An event for the wire.
    pub fn event_to_wire(e: &WatchEvent) -> WatchMsg {
        let changes = e
            .changes
            .iter()
            .map(|c| WireChange {
                table: c.table.to_string(),
                key: c.key.to_vec(),
                op: match &c.op {
                    ChangeOp::Put(v) => WireOp::Put(v.to_vec()),
                    ChangeOp::Delete => WireOp::Delete,
                    ChangeOp::DeleteObject(v) => WireOp::DeleteObject(v.to_vec()),
                    ChangeOp::Clear => WireOp::Clear,
                    ChangeOp::Created => WireOp::Created,
                    ChangeOp::Dropped => WireOp::Dropped,
                },
            })
            .collect();
        WatchMsg::Event { index: e.index, changes }
    }

    /// An event from the wire.
    pub fn event_from_wire(index: u64, changes: Vec<WireChange>) -> WatchEvent {
        let changes = changes
            .into_iter()
            .map(|c| Change {
                table: c.table.into(),
                key: Blob::from(c.key),
                op: match c.op {
                    WireOp::Put(v) => ChangeOp::Put(v.into()),
                    WireOp::Delete => ChangeOp::Delete,
                    WireOp::DeleteObject(v) => ChangeOp::DeleteObject(v.into()),
                    WireOp::Clear => ChangeOp::Clear,
                    WireOp::Created => ChangeOp::Created,
                    WireOp::Dropped => ChangeOp::Dropped,
                },
            })
            .collect();
        WatchEvent { index, changes }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn messages_round_trip_and_garbage_is_an_error() {
            let e = WatchEvent {
                index: 9,
                changes: vec![
                    Change { table: "t".into(), key: Blob::from(&b"k"[..]), op: ChangeOp::Put(Blob::from(&b"v"[..])) },
                    Change { table: "t".into(), key: Blob::from(&b""[..]), op: ChangeOp::Clear },
                ],
            };
            let bytes = encode(&event_to_wire(&e)).unwrap();
            match decode(&bytes).unwrap() {
                WatchMsg::Event { index, changes } => assert_eq!(event_from_wire(index, changes), e),
                other => panic!("{other:?}"),
            }
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
            assert!(decode(&[9, 1, 2]).is_err(), "another version");
        }
    }
}
