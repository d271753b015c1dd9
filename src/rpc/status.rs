//! The one mapping between [`Error`] and gRPC's `Status`, both ways.
//!
//! A server answers an error with a status whose code fits its class (for proxies and
//! other gRPC clients) and whose details carry the whole `Error`, encoded by `codec`: the
//! caller decodes it and sees the variant a local call would have returned. A status
//! without our details is a transport failure (or a peer that is not mnema): it becomes
//! [`Error::Transport`], whose kind is read from the status code and the I/O error kind in
//! its causes, never from message text.

use crate::codec::{WIRE_VERSION, decode_versioned, encode_versioned};
use crate::error::{Error, TransportKind};
use tonic::{Code, Status};

/// `err` as a status a mnema caller maps back with [`from_status`].
pub fn to_status(err: &Error) -> Status {
    let code = match err {
        Error::Config { .. }
        | Error::InvalidTxn(_)
        | Error::InvalidTopic { .. }
        | Error::InvalidValue { .. }
        | Error::ShardMismatch { .. }
        | Error::CrossShard { .. }
        | Error::BadExport { .. } => Code::InvalidArgument,
        Error::UnknownTable(_) | Error::UnknownIndex { .. } | Error::NotFound { .. } | Error::NotAMember { .. } => {
            Code::NotFound
        }
        Error::Conflict(_) => Code::Aborted,
        Error::CookieMismatch { .. } => Code::Unauthenticated,
        Error::ForeignCluster { .. } | Error::SchemaMismatch { .. } | Error::CodeMismatch { .. } => {
            Code::PermissionDenied
        }
        Error::NoLeader(_) | Error::Shutdown | Error::Transport { .. } | Error::NodeFailed { .. } => Code::Unavailable,
        Error::Timeout { .. } | Error::NotYetApplied { .. } => Code::DeadlineExceeded,
        Error::NotLeader { .. }
        | Error::IsReplicant { .. }
        | Error::NotRetained { .. }
        | Error::MajorityAtRisk { .. }
        | Error::ShardNotFollowed { .. }
        | Error::Unregistered { .. }
        | Error::Compacted { .. }
        | Error::LocalTable { .. }
        | Error::VersionMismatch { .. }
        | Error::FeatureNotEnabled { .. }
        | Error::UnknownFormat { .. }
        | Error::Refused(_) => Code::FailedPrecondition,
        _ => Code::Internal,
    };
    match encode_versioned(WIRE_VERSION, err) {
        Ok(details) => Status::with_details(code, err.to_string(), details.into()),
        Err(_) => Status::new(code, err.to_string()),
    }
}

/// A refusal `peer` answered, with `peer` named where the refusing side left it blank (it
/// does not know the caller's name for it). Both transports of Raft's messages use it.
pub fn named(peer: &str, err: Error) -> Error {
    match err {
        Error::CookieMismatch { peer: p } if p.is_empty() => Error::CookieMismatch { peer: peer.into() },
        Error::ForeignCluster { peer: p, ours, reason } if p.is_empty() => {
            Error::ForeignCluster { peer: peer.into(), ours, reason }
        }
        Error::VersionMismatch { peer: p, ours, theirs } if p.is_empty() => {
            Error::VersionMismatch { peer: peer.into(), ours, theirs }
        }
        other => other,
    }
}

/// The error a call to `peer` failed with: the server's own `Error` when it sent one, else
/// a transport failure of the kind the status shows.
pub fn from_status(peer: &str, status: Status) -> Error {
    if !status.details().is_empty()
        && let Ok(err) = decode_versioned::<Error>("error details", WIRE_VERSION, status.details())
    {
        return named(peer, err);
    }
    let kind = if could_not_connect(&status) {
        TransportKind::NotConnected
    } else if matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) {
        TransportKind::TimedOut
    } else {
        TransportKind::NoAnswer
    };
    Error::Transport { peer: peer.into(), kind, reason: format!("{:?}: {}", status.code(), status.message()) }
}

/// Whether the peer does not serve the method called (a build that predates it).
pub fn is_unimplemented(status: &Status) -> bool {
    status.code() == Code::Unimplemented
}

/// Whether the status comes from a connection that could not be made: an I/O error of
/// one of these kinds among its causes.
fn could_not_connect(s: &Status) -> bool {
    use std::io::ErrorKind::*;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::{CodeKind, TransportKind};
    use std::path::PathBuf;

    /// One value of every variant: adding a variant without adding it here fails to compile
    /// (the match below is exhaustive inside the crate).
    pub(crate) fn every_variant() -> Vec<Error> {
        let s = || "why".to_string();
        let all = vec![
            Error::Config { key: "node.name".into(), reason: s() },
            Error::NodeNameMismatch { dir: PathBuf::from("/d"), recorded: "a@h".into(), configured: "b@h".into() },
            Error::FormatVersion { dir: PathBuf::from("/d"), found: 9, supported: 1 },
            Error::DamagedState { file: PathBuf::from("/d/db"), reason: s() },
            Error::ForeignIdentity {
                file: PathBuf::from("/d/IDENTITY"),
                ours: "c1".into(),
                theirs: "c2".into(),
                members: "m".into(),
            },
            Error::corrupt("log entry", "short"),
            Error::BadExport { line: 3, column: 7, reason: s() },
            Error::Storage(s()),
            Error::Io { path: PathBuf::from("/d/x"), reason: s() },
            Error::UnknownTable("t".into()),
            Error::InvalidTxn(s()),
            Error::InvalidTopic { topic: "a/#/b".into(), reason: s() },
            Error::InvalidValue { table: "routes".into(), key: "\"k\"".into(), reason: s() },
            Error::Conflict(s()),
            Error::NoLeader(s()),
            Error::NotLeader { node: "a@h".into(), leader: Some("b@h".into()) },
            Error::IsReplicant { node: "r@h".into(), action: "export".into() },
            Error::NotRetained { from: 42 },
            Error::ForeignCluster { peer: "p@h".into(), ours: "c1".into(), reason: s() },
            Error::MajorityAtRisk { name: "a@h".into(), up: 1, remaining: 2, majority: 2 },
            Error::NotAMember { name: "a@h".into(), reason: s() },
            Error::NotFound { table: "t".into(), key: "\"k\"".into() },
            Error::Refused(s()),
            Error::CookieMismatch { peer: "p@h".into() },
            Error::Transport { peer: "p@h".into(), kind: TransportKind::NoAnswer, reason: s() },
            Error::Discovery { source_name: "dns".into(), reason: s() },
            Error::Raft(s()),
            Error::WriteOutcomeUnknown { attempts: 3, last: s() },
            Error::NotYetApplied { index: 7, ms: 100 },
            Error::Timeout { what: s(), ms: 5 },
            Error::NodeFailed { reason: s() },
            Error::Shutdown,
            Error::SchemaMismatch { peer: "p@h".into(), table: "routes".into(), reason: s() },
            Error::ShardMismatch { table: "routes".into(), shard: 0, claimed: 7 },
            Error::UnknownIndex { table: "sessions".into(), index: "by_color".into() },
            Error::CrossShard { first: "routes".into(), first_shard: 1, second: "sessions".into(), second_shard: 2 },
            Error::ShardNotFollowed { node: "r@h".into(), table: "routes".into(), shard: 1 },
            Error::Unregistered { node: "a@h".into(), kind: CodeKind::Rule, name: "json".into(), version: 2 },
            Error::CodeMismatch { peer: "p@h".into(), kind: CodeKind::Extractor, name: "x".into(), ours: 1, theirs: 2 },
            Error::Compacted { from: 3, oldest: 90 },
            Error::LocalTable { table: "subscriptions".into(), action: "watching".into() },
            Error::Invariant(s()),
            Error::Encode { what: "a value".into(), reason: s() },
            Error::task("export", "panicked"),
            Error::VersionMismatch { peer: "p@h".into(), ours: 1, theirs: 3 },
            Error::FeatureNotEnabled { feature: "CreateTable".into(), needs: 1, node: "a@h".into(), announces: 0 },
            Error::UnknownFormat { what: "stream message".into(), found: 3, supported: 2 },
        ];
        for e in &all {
            match e {
                Error::Config { .. }
                | Error::NodeNameMismatch { .. }
                | Error::FormatVersion { .. }
                | Error::DamagedState { .. }
                | Error::ForeignIdentity { .. }
                | Error::Corrupt { .. }
                | Error::BadExport { .. }
                | Error::Storage(_)
                | Error::Io { .. }
                | Error::UnknownTable(_)
                | Error::InvalidTxn(_)
                | Error::InvalidTopic { .. }
                | Error::InvalidValue { .. }
                | Error::Conflict(_)
                | Error::NoLeader(_)
                | Error::NotLeader { .. }
                | Error::IsReplicant { .. }
                | Error::NotRetained { .. }
                | Error::ForeignCluster { .. }
                | Error::MajorityAtRisk { .. }
                | Error::NotAMember { .. }
                | Error::NotFound { .. }
                | Error::Refused(_)
                | Error::CookieMismatch { .. }
                | Error::Transport { .. }
                | Error::Discovery { .. }
                | Error::Raft(_)
                | Error::WriteOutcomeUnknown { .. }
                | Error::NotYetApplied { .. }
                | Error::Timeout { .. }
                | Error::NodeFailed { .. }
                | Error::Shutdown
                | Error::SchemaMismatch { .. }
                | Error::ShardMismatch { .. }
                | Error::UnknownIndex { .. }
                | Error::CrossShard { .. }
                | Error::ShardNotFollowed { .. }
                | Error::Unregistered { .. }
                | Error::CodeMismatch { .. }
                | Error::Compacted { .. }
                | Error::LocalTable { .. }
                | Error::Invariant(_)
                | Error::Encode { .. }
                | Error::TaskFailed { .. }
                | Error::VersionMismatch { .. }
                | Error::FeatureNotEnabled { .. }
                | Error::UnknownFormat { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_error_variant_round_trips_through_a_status() {
        for e in every_variant() {
            let back = from_status("p@h", to_status(&e));
            assert_eq!(back, e, "{e:?} came back as {back:?}");
        }
    }

    #[test]
    fn a_status_without_details_is_a_transport_failure_by_code() {
        match from_status("p@h", Status::deadline_exceeded("slow")) {
            Error::Transport { kind: TransportKind::TimedOut, .. } => {}
            other => panic!("expected a timed-out transport error, got {other:?}"),
        }
        match from_status("p@h", Status::unavailable("connection reset")) {
            Error::Transport { kind: TransportKind::NoAnswer, .. } => {}
            other => panic!("expected a no-answer transport error, got {other:?}"),
        }
    }

    #[test]
    fn a_refusal_names_the_peer_it_came_from() {
        let refused = to_status(&Error::CookieMismatch { peer: String::new() });
        assert_eq!(from_status("b@h", refused), Error::CookieMismatch { peer: "b@h".into() });
    }
}
