//! What the write path and the replicant record as they go, for `/metrics`
//! (`observe::metrics` renders them with the rest of the node's state).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::AtomicU64;

/// What the write path and the replicant record as it goes (atomics; cheap to update).
pub struct Instruments {
    /// Seconds from a transaction's submission to its answer on this node (committed on a
    /// majority and applied here), forwarded writes included.
    pub(crate) write_seconds: Histogram,
    /// Transactions answered with an error.
    pub(crate) write_errors: Counter,
    /// Transactions per batch this node sends (proposes as leader, or forwards).
    pub(crate) batch_txns: Histogram,
    /// Batches this node forwarded to the leader, and the transactions in them.
    pub(crate) forwarded_batches: Counter,
    pub(crate) forwarded_txns: Counter,
    /// A replicant's last bootstrap: seconds from the snapshot's start to its publication,
    /// and the records it carried.
    pub(crate) bootstrap_seconds: Gauge<f64, AtomicU64>,
    pub(crate) bootstrap_records: Gauge,
    /// Campaigns this core started (a pre-vote won first), and pre-votes it lost (no
    /// majority would vote for it: it stayed a follower, its term unchanged).
    pub(crate) campaigns: Counter,
    pub(crate) pre_votes_lost: Counter,
    /// Raft frames connections peers opened to this core and it admitted (`raft::frame`).
    pub(crate) raft_frames_connections: Counter,
}

impl Default for Instruments {
    fn default() -> Self {
        // 0.25 ms … ~8 s, doubling.
        let latency = prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 16);
        // 1 … 4096 transactions, doubling.
        let sizes = prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 13);
        Instruments {
            write_seconds: Histogram::new(latency),
            write_errors: Counter::default(),
            batch_txns: Histogram::new(sizes),
            forwarded_batches: Counter::default(),
            forwarded_txns: Counter::default(),
            bootstrap_seconds: Gauge::default(),
            bootstrap_records: Gauge::default(),
            campaigns: Counter::default(),
            pre_votes_lost: Counter::default(),
            raft_frames_connections: Counter::default(),
        }
    }
}


impl super::Runtime {
    /// The count of Raft frames connections this core admitted, for its listener to add to.
    pub(crate) fn raft_frames_counter(&self) -> Counter {
        self.instruments.raft_frames_connections.clone()
    }
}
