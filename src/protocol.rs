//! The protocol version nodes announce to each other, and what each version reads.
//!
//! A cluster is upgraded one node at a time, so for a while it runs two builds. Each build
//! speaks one protocol version, [`PROTOCOL`], and talks to peers one version older and one
//! newer:
//!
//! - **Every call** between nodes (Raft, join, replication streams, forwarded writes,
//!   status) carries the caller's version in the `x-mnema-protocol` header. A server
//!   refuses a caller more than one version away with [`Error::VersionMismatch`] naming
//!   both versions, before it decodes anything of the call. A call without the header
//!   comes from a build before versions were announced: version 0.
//! - **Every node announces** its version in its status (`NodeStatus::protocol`, and a
//!   core lists each replicant's in `Subscriber::protocol`).
//! - **New kinds of log entry** are gated like feature flags. Each kind of [`Op`] has the
//!   version that introduced it ([`since`]). A node proposing a transaction that holds a
//!   kind newer than the oldest version some member announces is refused with
//!   [`Error::FeatureNotEnabled`] naming that member: the entry is never written where a
//!   member could not read it. Once the last node runs the new build, the kind is proposed.
//! - **A node can announce an older version** than its build speaks (`node.protocol`,
//!   one version back at most). During a rolling upgrade this keeps the new kinds off
//!   until every node is upgraded and the setting is removed, so that the upgrade can be
//!   rolled back node by node.
//!
//! The versions:
//!
//! | version | what it added |
//! |---|---|
//! | 0 | builds before versions were announced (no header) |
//! | 1 | the `x-mnema-protocol` header and `protocol` fields; tables created and dropped through the log (`Op::CreateTable`, `Op::DropTable`) |
//!
//! What the versions of the encodings themselves are (a log entry's, a stream message's,
//! an error's) is pinned by the golden files under `tests/golden/`: a test fails when one
//! changes without its version.

use crate::engine::{Op, Txn};
use crate::error::{Error, Result};

/// The protocol version this build speaks.
pub const PROTOCOL: u32 = 1;

/// The oldest version this build talks to (and may announce): one before its own.
pub const OLDEST: u32 = PROTOCOL.saturating_sub(1);

/// The gRPC metadata key every call carries the caller's version in.
pub const HEADER: &str = "x-mnema-protocol";

/// Whether a peer announcing `theirs` may talk to this build: one version older or newer.
pub fn compatible(theirs: u32) -> bool {
    theirs.abs_diff(PROTOCOL) <= 1
}

/// [`Error::VersionMismatch`] unless a peer announcing `theirs` may talk to this build.
pub fn check(peer: &str, theirs: u32) -> Result<()> {
    if compatible(theirs) {
        Ok(())
    } else {
        Err(Error::VersionMismatch { peer: peer.to_string(), ours: PROTOCOL, theirs })
    }
}

/// The version that introduced `op`'s kind: a member announcing an older one cannot read it.
pub fn since(op: &Op) -> u32 {
    match op {
        Op::Put { .. }
        | Op::Delete { .. }
        | Op::DeleteObject { .. }
        | Op::Clear { .. }
        | Op::PutIfAbsent { .. }
        | Op::Require { .. } => 0,
        Op::CreateTable { .. } | Op::DropTable { .. } => 1,
    }
}

/// The version every member must announce before `txn` may be proposed, and the kind of
/// op that needs it (the newest of the transaction's).
pub fn needed(txn: &Txn) -> (u32, &'static str) {
    txn.ops.iter().map(|op| (since(op), kind(op))).max_by_key(|(v, _)| *v).unwrap_or((0, "none"))
}

/// Whether every version this build talks to reads `txn` (then no member need be asked).
// OLDEST is 0 in this release, which makes the comparison look constant to clippy.
#[allow(clippy::absurd_extreme_comparisons)]
pub fn every_version_reads(txn: &Txn) -> bool {
    needed(txn).0 <= OLDEST
}

/// The name of `op`'s kind, as errors show it.
pub fn kind(op: &Op) -> &'static str {
    match op {
        Op::Put { .. } => "Put",
        Op::Delete { .. } => "Delete",
        Op::DeleteObject { .. } => "DeleteObject",
        Op::Clear { .. } => "Clear",
        Op::PutIfAbsent { .. } => "PutIfAbsent",
        Op::Require { .. } => "Require",
        Op::CreateTable { .. } => "CreateTable",
        Op::DropTable { .. } => "DropTable",
    }
}

/// [`Error::FeatureNotEnabled`] for the first member (by name, with the version it
/// announces) that cannot read `txn`.
pub fn every_member_reads<'a>(txn: &Txn, members: impl IntoIterator<Item = (&'a str, u32)>) -> Result<()> {
    let (needs, kind) = needed(txn);
    match members.into_iter().find(|(_, v)| *v < needs) {
        None => Ok(()),
        Some((node, announces)) => {
            Err(Error::FeatureNotEnabled { feature: kind.to_string(), needs, node: node.to_string(), announces })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_talks_to_one_version_either_side_and_no_further() {
        assert!(compatible(PROTOCOL) && compatible(PROTOCOL + 1) && compatible(PROTOCOL - 1));
        match check("p@h", PROTOCOL + 2) {
            Err(Error::VersionMismatch { peer, ours, theirs }) => {
                assert_eq!((peer.as_str(), ours, theirs), ("p@h", PROTOCOL, PROTOCOL + 2))
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }

    #[test]
    fn a_transaction_needs_the_version_of_its_newest_op() {
        let plain = Txn::new().put("t", "k", "v");
        assert_eq!(needed(&plain).0, 0);
        assert!(every_member_reads(&plain, [("a@h", 0)]).is_ok());
        let drop = Txn::new().drop_table("t");
        assert_eq!(needed(&drop), (1, "DropTable"));
        match every_member_reads(&drop, [("a@h", 1), ("b@h", 0)]) {
            Err(Error::FeatureNotEnabled { feature, needs, node, announces }) => {
                assert_eq!((feature.as_str(), needs, node.as_str(), announces), ("DropTable", 1, "b@h", 0))
            }
            other => panic!("expected FeatureNotEnabled, got {other:?}"),
        }
        assert!(every_member_reads(&drop, [("a@h", 1), ("b@h", 2)]).is_ok());
    }
}
