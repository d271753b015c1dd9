//! Which of openraft's log lines a node's log leaves out.
//!
//! openraft 0.9 logs at ERROR every replication call, vote request and leadership check
//! that a peer did not answer: a paused or restarting peer fills a healthy cluster's log
//! with errors every heartbeat. mnema's Raft network (`raft/peer_log.rs`) tells the same at
//! WARN instead, once a peer has failed for a while, then every few seconds, and at INFO
//! when it answers again. Its core also warns of every stale message it ignores (the
//! third vote of an election already won, a reply from a replication session just
//! replaced): part of every election, nothing an operator acts on.

/// Whether `meta` is one of openraft's ERROR events about a peer that did not answer (a
/// replication call, a vote request, a leadership check), which mnema's own network logs
/// instead, or one of its WARN events about a stale message its core ignores or a
/// replication call that failed. `mnema
/// start` drops them; a broker with its own subscriber can too:
///
/// ```no_run
/// use tracing_subscriber::{filter::filter_fn, prelude::*};
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().with_filter(filter_fn(|m| !mnema::is_peer_failure_noise(m))))
///     .init();
/// ```
pub fn is_peer_failure_noise(meta: &tracing::Metadata<'_>) -> bool {
    if !meta.is_event() {
        return false;
    }
    // Every WARN of openraft's core is about a stale message it ignores; replication's
    // WARN repeats each failed call's error before its own handling: a higher vote seen
    // (an election), a closed session, or the RPC and storage errors it then logs at ERROR
    // (the storage ones stay, below); the replication handler's WARNs are a replication
    // call or heartbeat to a peer that did not answer (a peer stopping or not started yet).
    if *meta.level() == tracing::Level::WARN {
        return matches!(
            meta.target(),
            "openraft::core::raft_core" | "openraft::replication" | "openraft::engine::handler::replication_handler"
        );
    }
    if *meta.level() != tracing::Level::ERROR {
        return false;
    }
    let has = |f: &str| meta.fields().field(f).is_some();
    match meta.target() {
        // `RPCError` (a replication call failed or timed out); its storage errors carry
        // `error`, not `err`, and stay.
        "openraft::replication" => has("err") && !has("error"),
        // A vote request or a leadership check that timed out or failed, naming its
        // `target`; the core's own failures carry no target and stay.
        "openraft::core::raft_core" => has("target") && has("error"),
        _ => false,
    }
}
