//! What an operator sees of a running node: Prometheus metrics (`/metrics`), liveness
//! (`/health`) and readiness (`/ready`), served over HTTP on `http.listen`.
//!
//! Counters and histograms the write path updates live in the runtime
//! (`runtime::Instruments`, atomics only); everything else is read from the node's status,
//! its tables and RocksDB when a scrape comes. This module reads the runtime (a feature
//! layer); only the composition root (`node`) imports it.

mod http;
mod log_filter;
mod metrics;

pub(crate) use http::serve;
pub use log_filter::is_peer_failure_noise;
