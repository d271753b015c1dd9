//! Replication from cores to replicants (Mria's second role, without its re-bootstraps).
//!
//! A replicant holds no Raft state. It subscribes to one core with the index it has
//! applied; the core streams the applied log entries from there on, or, when those are no
//! longer retained (or the replicant starts empty), a consistent snapshot of the tables
//! followed by the entries after the snapshot's index. Raft indexes are the same on every
//! core, so a replicant whose core dies resumes on another at `applied + 1`.
//!
//! - [`stream`]: the messages on the wire and their decoder (fuzzed).
//! - [`applier`]: the replicant's checks and apply of a stream, pure (no network, no disk).
//! - `log_server`: the core side, one task per subscribed replicant.
//! - `replicant`: the replicant side: choosing a core, failover, status.
//! - `streams`: this feature's state on a core: the replicants streaming from it and the
//!   log their streams hold (the runtime reads both through views it is lent).
//!
//! Not here: forwarding writes (the node's write path does that for cores and replicants).

pub mod applier;
pub mod stream;

#[cfg(feature = "server")]
pub mod log_server;
#[cfg(feature = "server")]
pub mod replicant;
#[cfg(feature = "server")]
pub(crate) mod streams;
