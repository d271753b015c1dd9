//! Request ids already applied: what makes a retried batch take effect once.
//!
//! A proposer that cannot tell whether a batch was committed (the leader died after
//! receiving it) sends it again under the same [`RequestId`]. The state machine keeps,
//! per client, the outcomes of its last [`WINDOW`] batches; a batch whose id is there is
//! answered with the stored outcome and not applied again. The table is part of the
//! replicated state: it changes only in apply, is persisted beside the records (reserved
//! table [`TABLE`]), travels in snapshots, and is replayed by replicants, so every node
//! makes the same decision for every entry.
//!
//! Bounds: [`WINDOW`] batches per client (a proposer has far fewer in flight) and
//! [`MAX_CLIENTS`] clients; when full, the client that wrote least recently (by log index)
//! is forgotten. A retry older than its client's window is refused, never re-applied.

use super::keys::{prefix_end, table_prefix};
use super::txn::{BatchOutcome, RequestId};
use crate::codec;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Reserved table name of the applied-request records (user tables may not start with `$`).
pub const TABLE: &str = "$requests";
/// Outcomes kept per client.
pub const WINDOW: usize = 1024;
/// Clients remembered at once.
pub const MAX_CLIENTS: usize = 1024;
const VALUE_VERSION: u8 = 1;

/// What the state machine knows about a request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    New,
    /// Applied before; this was its outcome.
    Done(BatchOutcome),
    /// Older than its client's window: it may or may not have been applied.
    Expired,
}

/// A change to persist beside the tables, in the same write batch as the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Delete keys in `[from, to)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

#[derive(Clone, Debug, Default)]
struct Window {
    last_index: u64,
    done: imbl::OrdMap<u64, Arc<BatchOutcome>>,
}

/// Applied request ids by client.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    clients: imbl::OrdMap<u64, Window>,
}

/// The record key of one request id.
pub fn key(id: RequestId) -> Vec<u8> {
    let mut k = client_prefix(id.client);
    k.extend_from_slice(&id.seq.to_be_bytes());
    k
}

fn client_prefix(client: u64) -> Vec<u8> {
    let mut k = table_prefix(TABLE);
    k.extend_from_slice(&client.to_be_bytes());
    k
}

fn range_of(prefix: Vec<u8>) -> Change {
    // Our prefixes never end in 0xff… only (the first byte is a short length).
    let end = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
    Change::DeleteRange(prefix, end)
}

impl Requests {
    pub fn check(&self, id: RequestId) -> Seen {
        let Some(w) = self.clients.get(&id.client) else { return Seen::New };
        if let Some(o) = w.done.get(&id.seq) {
            return Seen::Done((**o).clone());
        }
        match w.done.get_min() {
            Some((min, _)) if w.done.len() >= WINDOW && id.seq < *min => Seen::Expired,
            _ => Seen::New,
        }
    }

    /// Records that `id` was applied at `index` with `outcome`; `out` gets what to persist.
    pub fn record(&mut self, id: RequestId, index: u64, outcome: &BatchOutcome, out: &mut Vec<Change>) -> Result<()> {
        if !self.clients.contains_key(&id.client) && self.clients.len() >= MAX_CLIENTS {
            let oldest = self.clients.iter().min_by_key(|(c, w)| (w.last_index, **c)).map(|(c, _)| *c);
            if let Some(c) = oldest {
                self.clients.remove(&c);
                out.push(range_of(client_prefix(c)));
            }
        }
        let w = self.clients.entry(id.client).or_default();
        w.last_index = index;
        w.done.insert(id.seq, Arc::new(outcome.clone()));
        out.push(Change::Put(key(id), codec::encode_versioned(VALUE_VERSION, &(index, outcome))?));
        while w.done.len() > WINDOW {
            if let Some(seq) = w.done.get_min().map(|(seq, _)| *seq) {
                w.done.remove(&seq);
                // A point delete: one range tombstone per batch would slow every read.
                out.push(Change::Delete(key(RequestId { client: id.client, seq })));
            }
        }
        Ok(())
    }

    /// Loads one persisted record; `rest` is its key after the table prefix.
    pub fn load(&mut self, rest: &[u8], value: &[u8]) -> Result<()> {
        if rest.len() != 16 {
            return Err(Error::corrupt("request record", format!("key of {} bytes, expected 16", rest.len())));
        }
        let (c, s) = rest.split_at(8);
        let client = u64::from_be_bytes(c.try_into().map_err(|_| Error::corrupt("request record", "client"))?);
        let seq = u64::from_be_bytes(s.try_into().map_err(|_| Error::corrupt("request record", "seq"))?);
        let (index, outcome): (u64, BatchOutcome) = codec::decode_versioned("request record", VALUE_VERSION, value)?;
        let w = self.clients.entry(client).or_default();
        w.last_index = w.last_index.max(index);
        w.done.insert(seq, Arc::new(outcome));
        Ok(())
    }

    /// Number of clients remembered.
    #[cfg(any(test, feature = "test-util"))]
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TxnOutcome;

    fn outcome(n: usize) -> BatchOutcome {
        BatchOutcome { outcomes: vec![TxnOutcome::Applied(vec![]); n] }
    }

    #[test]
    fn window_and_reload() {
        let mut r = Requests::default();
        let mut out = Vec::new();
        let id = |seq| RequestId { client: 7, seq };
        assert_eq!(r.check(id(1)), Seen::New);
        r.record(id(1), 10, &outcome(2), &mut out).unwrap();
        assert_eq!(r.check(id(1)), Seen::Done(outcome(2)));
        for seq in 2..=(WINDOW as u64 + 1) {
            r.record(id(seq), 10 + seq, &outcome(1), &mut out).unwrap();
        }
        assert_eq!(r.check(id(1)), Seen::Expired, "evicted from a full window: refused, not re-applied");
        assert_eq!(r.check(id(WINDOW as u64 + 5)), Seen::New);
        // Replaying the persisted changes rebuilds the same table.
        let mut store = std::collections::BTreeMap::new();
        for c in out {
            match c {
                Change::Put(k, v) => {
                    store.insert(k, v);
                }
                Change::Delete(k) => {
                    store.remove(&k);
                }
                Change::DeleteRange(a, b) => store.retain(|k, _| !(k >= &a && k < &b)),
            }
        }
        assert_eq!(store.len(), WINDOW);
        let mut back = Requests::default();
        let prefix = table_prefix(TABLE);
        for (k, v) in &store {
            back.load(&k[prefix.len()..], v).unwrap();
        }
        assert_eq!(back.check(id(1)), Seen::Expired);
        assert_eq!(back.check(id(2)), Seen::Done(outcome(1)));
        assert!(back.load(b"short", b"").is_err());
    }

    #[test]
    fn least_recent_client_is_forgotten() {
        let mut r = Requests::default();
        let mut out = Vec::new();
        for c in 0..=MAX_CLIENTS as u64 {
            r.record(RequestId { client: c, seq: 1 }, 100 + c, &outcome(1), &mut out).unwrap();
        }
        assert_eq!(r.clients(), MAX_CLIENTS);
        assert_eq!(r.check(RequestId { client: 0, seq: 1 }), Seen::New);
        assert!(matches!(r.check(RequestId { client: 1, seq: 1 }), Seen::Done(_)));
    }
}
