//! What a node reports about itself: typed values a caller can branch on (no strings to
//! compare). Pure data: the runtime fills them in, gRPC carries them, `mnema ctl` prints them.

use serde::{Deserialize, Serialize};

/// A replicant's state, as Mria names them (plus `connecting`, between cores).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicantState {
    /// Looking for a core to stream from.
    Connecting,
    /// Receiving a snapshot.
    Bootstrap,
    /// Applying the entries the core had already applied when the stream began.
    LocalReplay,
    /// Caught up; applying entries as the core applies them.
    Normal,
}

impl ReplicantState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicantState::Connecting => "connecting",
            ReplicantState::Bootstrap => "bootstrap",
            ReplicantState::LocalReplay => "local_replay",
            ReplicantState::Normal => "normal",
        }
    }
}
