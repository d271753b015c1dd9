//! Transactions: the unit of atomic change, and the payload of a Raft log entry.
//!
//! A [`Txn`] is a list of [`Op`]s on the tables of one shard. The proposer group-commits
//! many transactions into one [`Batch`] (one log entry, one fsync); every node applies a
//! batch's transactions in order, each atomically, and returns one [`TxnOutcome`] each.

use serde::{Deserialize, Serialize};

pub use super::table::{DEFAULT_SHARD, ShardId};

/// One change to one table. Keys and values are bytes; the typed layer encodes them.
/// (`serde_bytes`: encoded as one run of bytes, not byte by byte; the same bincode bytes.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Set: replace the value. Bag: add the value (a no-op if that exact value is there).
    Put {
        /// The table.
        table: String,
        #[serde(with = "serde_bytes")]
        /// The record's key.
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        /// The value.
        value: Vec<u8>,
    },
    /// Remove the key with all its values.
    Delete {
        /// The table.
        table: String,
        #[serde(with = "serde_bytes")]
        /// The record's key.
        key: Vec<u8>,
    },
    /// Bag only: remove one value of a key.
    DeleteObject {
        /// The table.
        table: String,
        #[serde(with = "serde_bytes")]
        /// The record's key.
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        /// The value.
        value: Vec<u8>,
    },
    /// Remove every record of the table.
    Clear {
        /// The table.
        table: String,
    },
    /// Set or ordered_set: put only if the key is absent; the outcome says which happened.
    PutIfAbsent {
        /// The table.
        table: String,
        #[serde(with = "serde_bytes")]
        /// The record's key.
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        /// The value.
        value: Vec<u8>,
    },
    /// Set or ordered_set: a condition, checked before any op of the transaction runs.
    /// `value: None` requires the key absent; `Some(v)` requires it present with value `v`.
    /// If any condition fails the whole transaction fails with [`Error::Conflict`](crate::Error::Conflict).
    Require {
        /// The table.
        table: String,
        #[serde(with = "serde_bytes")]
        /// The record's key.
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        /// `None`: the key must be absent; `Some(v)`: present with value `v`.
        value: Option<Vec<u8>>,
    },
    /// Creates a replicated table (alone in its transaction). Applied at one log index on
    /// every node; an identical table already there makes it a no-op (`Exists`), a table of
    /// that name declared otherwise rejects it.
    CreateTable {
        /// The table, its code named by name and version.
        declaration: super::declaration::Declaration,
    },
    /// Drops a replicated table and every record of it (alone in its transaction).
    DropTable {
        /// The table.
        table: String,
    },
}

impl Op {
    /// The table the op changes.
    pub fn table(&self) -> &str {
        match self {
            Op::Put { table, .. }
            | Op::Delete { table, .. }
            | Op::DeleteObject { table, .. }
            | Op::Clear { table }
            | Op::PutIfAbsent { table, .. }
            | Op::Require { table, .. }
            | Op::DropTable { table } => table,
            Op::CreateTable { declaration } => &declaration.name,
        }
    }

    /// Whether the op creates or drops a table.
    pub fn changes_catalog(&self) -> bool {
        matches!(self, Op::CreateTable { .. } | Op::DropTable { .. })
    }
}

/// What one op did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// Done (for `Require`: the condition held).
    Done,
    /// `PutIfAbsent` stored its value.
    Inserted,
    /// `PutIfAbsent` found the key present and changed nothing.
    Exists,
}

/// A list of ops applied atomically: all of them, in order, or none.
///
/// ```
/// use mnema::{Op, Txn};
/// // Move a session's owner only if it is still what was read: a conditional write.
/// let txn = Txn::new()
///     .require_value("sessions", "client1", r#"{"owner":"a"}"#)
///     .put("sessions", "client1", r#"{"owner":"b"}"#)
///     .delete("client_status", "client1");
/// assert_eq!(txn.ops.len(), 3);
/// assert!(matches!(&txn.ops[0], Op::Require { value: Some(_), .. }));
/// ```
///
/// A failed `require_*` makes the whole transaction fail with
/// [`Error::Conflict`](crate::Error::Conflict), changing nothing:
///
/// ```no_run
/// # async fn demo(node: mnema::Node) -> mnema::Result<()> {
/// use mnema::{Error, Txn};
/// match node.transact(Txn::new().require_absent("rules", "r1").put("rules", "r1", "{}")).await {
///     Ok(done) => println!("stored at index {}", done.index),
///     Err(Error::Conflict(why)) => println!("someone wrote r1 first: {why}"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The shard the transaction belongs to: its tables' shard. A node fills it in from the
    /// tables when it is left at [`DEFAULT_SHARD`]; a transaction whose shard is not its
    /// tables' is refused ([`Error::ShardMismatch`](crate::Error::ShardMismatch)).
    pub shard: ShardId,
    /// The ops, applied in order, all or none.
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds a [`Op::Put`].
    pub fn put(mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put { table: table.into(), key: key.into(), value: value.into() });
        self
    }

    /// Adds a [`Op::Delete`].
    pub fn delete(mut self, table: &str, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Delete { table: table.into(), key: key.into() });
        self
    }

    /// Adds a [`Op::DeleteObject`] (bags only).
    pub fn delete_object(mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::DeleteObject { table: table.into(), key: key.into(), value: value.into() });
        self
    }

    /// Adds a [`Op::Clear`].
    pub fn clear(mut self, table: &str) -> Self {
        self.ops.push(Op::Clear { table: table.into() });
        self
    }

    /// Adds a [`Op::PutIfAbsent`] (sets and ordered sets).
    pub fn put_if_absent(mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::PutIfAbsent { table: table.into(), key: key.into(), value: value.into() });
        self
    }

    /// The transaction applies only if `key` is absent from `table`.
    pub fn require_absent(mut self, table: &str, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Require { table: table.into(), key: key.into(), value: None });
        self
    }

    /// The transaction applies only if `key` holds exactly `value` (compare-and-set).
    pub fn require_value(mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Require { table: table.into(), key: key.into(), value: Some(value.into()) });
        self
    }
}

impl Txn {
    /// Adds a [`Op::CreateTable`] of `def` (replicated; alone in its transaction).
    pub fn create_table(mut self, def: &super::TableDef) -> Self {
        self.ops.push(Op::CreateTable { declaration: super::declaration::Declaration::of(def) });
        self
    }

    /// Adds a [`Op::DropTable`] (alone in its transaction).
    pub fn drop_table(mut self, table: &str) -> Self {
        self.ops.push(Op::DropTable { table: table.into() });
        self
    }

    /// Whether the transaction creates or drops a table.
    pub fn changes_catalog(&self) -> bool {
        self.ops.iter().any(Op::changes_catalog)
    }
}

/// What a transaction did, as every node computed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Applied; one result per op.
    Applied(Vec<OpResult>),
    /// Not applied at all, for the reason given (the same on every node).
    Rejected(String),
    /// Not applied: a `Require` condition did not hold (read again and retry).
    Conflict(String),
}

/// Names one batch across retries: the proposing process and a number it never reuses.
///
/// A batch whose id the state machine has already applied is not applied again; the
/// stored outcome is returned instead, so a write can be retried after any failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// Random per process start.
    pub client: u64,
    pub seq: u64,
}

/// The application payload of one Raft log entry: many callers' transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub txns: Vec<Txn>,
    /// Who proposed them, under which ids (set by proposers that may retry).
    pub requests: Requests,
}

/// The request ids of a [`Batch`]'s transactions.
///
/// Encoded as an `Option<RequestId>` was (`None` ⇄ `None`, `One` ⇄ `Some`), so entries of
/// earlier builds decode unchanged; `Merged` is new.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requests {
    /// No id: the batch is never sent again.
    #[default]
    None,
    /// One proposer's batch under one id.
    One(RequestId),
    /// Batches of several proposers that the leader merged into one entry, in order: each
    /// part covers the next `txns` transactions and is applied, or answered from its stored
    /// outcome, on its own.
    Merged(Vec<Part>),
}

/// One proposer's request id and the range of a [`Batch`]'s transactions it brought.
pub type PartRange = (Option<RequestId>, std::ops::Range<usize>);

/// One proposer's transactions within a merged [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub request: Option<RequestId>,
    pub txns: u32,
}

impl Batch {
    /// One proposer's batch.
    pub fn new(txns: Vec<Txn>, request: Option<RequestId>) -> Batch {
        let requests = match request {
            Some(id) => Requests::One(id),
            None => Requests::None,
        };
        Batch { txns, requests }
    }

    /// Each proposer's request id and range of transactions, in order. An error (the
    /// reason) where the parts do not cover the transactions exactly: a damaged entry.
    pub fn parts(&self) -> std::result::Result<Vec<PartRange>, String> {
        let n = self.txns.len();
        match &self.requests {
            Requests::None => Ok(vec![(None, 0..n)]),
            Requests::One(id) => Ok(vec![(Some(*id), 0..n)]),
            Requests::Merged(parts) => {
                let mut at = 0usize;
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    let end = at.checked_add(p.txns as usize).filter(|&e| e <= n);
                    let Some(end) = end else {
                        return Err(format!("merged parts cover more than the batch's {n} transactions"));
                    };
                    out.push((p.request, at..end));
                    at = end;
                }
                if at != n {
                    return Err(format!("merged parts cover {at} of the batch's {n} transactions"));
                }
                Ok(out)
            }
        }
    }

    /// Whether every transaction has a request id: only then may the batch be sent again
    /// after an unknown outcome.
    pub fn retryable(&self) -> bool {
        match &self.requests {
            Requests::None => false,
            Requests::One(_) => true,
            Requests::Merged(parts) => parts.iter().all(|p| p.request.is_some()),
        }
    }

    /// One batch of `batches`, in order; each keeps its request ids. Returns it and the
    /// number of transactions each input brought (to split the outcome with).
    pub fn merge(batches: Vec<Batch>) -> (Batch, Vec<usize>) {
        let lens: Vec<usize> = batches.iter().map(|b| b.txns.len()).collect();
        if batches.len() == 1 {
            return (batches.into_iter().next().unwrap_or_default(), lens);
        }
        let mut txns = Vec::with_capacity(lens.iter().sum());
        let mut parts = Vec::new();
        for b in batches {
            let n = b.txns.len();
            match b.requests {
                Requests::None => parts.push(Part { request: None, txns: n as u32 }),
                Requests::One(id) => parts.push(Part { request: Some(id), txns: n as u32 }),
                Requests::Merged(p) => parts.extend(p),
            }
            txns.extend(b.txns);
        }
        (Batch { txns, requests: Requests::Merged(parts) }, lens)
    }
}

/// The state machine's answer to one log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// One per transaction, in order.
    pub outcomes: Vec<TxnOutcome>,
}

impl BatchOutcome {
    /// The outcome cut into consecutive pieces of `lens` transactions (as [`Batch::merge`]
    /// counted them); `None` if the lengths do not add up.
    pub fn split(self, lens: &[usize]) -> Option<Vec<BatchOutcome>> {
        if lens.iter().sum::<usize>() != self.outcomes.len() {
            return None;
        }
        let mut rest = self.outcomes.into_iter();
        Some(lens.iter().map(|&n| BatchOutcome { outcomes: rest.by_ref().take(n).collect() }).collect())
    }
}

/// What a committed write returns to its caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The Raft log index the write committed at. Waiting until a node has applied this
    /// index gives read-your-writes on that node.
    pub index: u64,
    /// One result per op, in order.
    pub results: Vec<OpResult>,
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    /// Log entries written by earlier builds must decode: the bytes of a batch are fixed.
    #[test]
    fn a_batch_encodes_to_the_same_bytes_as_ever() {
        let batch = Batch {
            txns: vec![Txn {
                shard: 0,
                ops: vec![
                    Op::Put { table: "t".into(), key: b"k".to_vec(), value: vec![0, 255] },
                    Op::Require { table: "t".into(), key: b"k".to_vec(), value: Some(b"v".to_vec()) },
                    Op::Require { table: "t".into(), key: vec![], value: None },
                    Op::DeleteObject { table: "t".into(), key: b"k".to_vec(), value: b"v".to_vec() },
                ],
            }],
            requests: Requests::One(RequestId { client: 1, seq: 300 }),
        };
        let bytes = crate::codec::encode(&batch).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "010004000174016b0200ff050174016b0101760501740000020174016b01760101fb2c01");
        assert_eq!(crate::codec::decode::<Batch>("batch", &bytes).unwrap(), batch);
        // Without an id, as before too.
        let bare = Batch::new(vec![], None);
        assert_eq!(crate::codec::encode(&bare).unwrap(), vec![0, 0]);
    }

    #[test]
    fn merged_batches_keep_each_proposers_id_and_split_their_outcomes_back() {
        let id = |seq| Some(RequestId { client: 9, seq });
        let t = || Txn::new().put("t", "k", "v");
        let (merged, lens) = Batch::merge(vec![
            Batch::new(vec![t(), t()], id(1)),
            Batch::new(vec![t()], id(2)),
            Batch::new(vec![t(), t(), t()], id(3)),
        ]);
        assert_eq!(lens, vec![2, 1, 3]);
        let parts = merged.parts().unwrap();
        assert_eq!(parts, vec![(id(1), 0..2), (id(2), 2..3), (id(3), 3..6)]);
        assert!(merged.retryable());
        // A merged batch merged again (a leader that lost leadership sends it on) keeps its parts.
        let (again, _) = Batch::merge(vec![merged.clone(), Batch::new(vec![t()], None)]);
        assert_eq!(again.parts().unwrap().len(), 4);
        assert!(!again.retryable(), "a part without an id makes the whole batch unsafe to resend");
        let bytes = crate::codec::encode(&merged).unwrap();
        assert_eq!(crate::codec::decode::<Batch>("batch", &bytes).unwrap(), merged);
        let outcome = BatchOutcome { outcomes: (0..6).map(|i| TxnOutcome::Rejected(i.to_string())).collect() };
        let pieces = outcome.clone().split(&lens).unwrap();
        assert_eq!(pieces[1].outcomes, vec![TxnOutcome::Rejected("2".into())]);
        assert_eq!(pieces[2].outcomes.len(), 3);
        assert!(outcome.split(&[1, 1]).is_none());
    }

    #[test]
    fn parts_that_do_not_cover_the_transactions_are_refused() {
        let t = || Txn::new().put("t", "k", "v");
        for counts in [vec![1u32], vec![1, 2], vec![u32::MAX, 1]] {
            let b = Batch {
                txns: vec![t(), t()],
                requests: Requests::Merged(counts.iter().map(|&n| Part { request: None, txns: n }).collect()),
            };
            assert!(b.parts().is_err(), "{counts:?}");
        }
    }
}
