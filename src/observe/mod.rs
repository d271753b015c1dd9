//! What an operator sees of a running node: Prometheus metrics (`/metrics`), liveness
//! (`/health`) and readiness (`/ready`), served over HTTP on `http.listen`.
//!
//! Counters and histograms the write path updates live in [`Instruments`] (one per node,
//! updated with atomics only); everything else is read from the node's status, its tables
//! and RocksDB when a scrape comes. This module reads the runtime; nothing below the
//! runtime (engine, storage, raft) imports it.

mod http;
mod metrics;

pub(crate) use http::serve;
pub(crate) use metrics::Instruments;
