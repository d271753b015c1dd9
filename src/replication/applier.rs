//! The replicant's side of a stream, without network or disk: checks every message and
//! turns them into new in-memory states to publish.
//!
//! Nothing is published from a snapshot until its end message has checked the record
//! count and checksum; entries must follow each other without a gap. Any violation is an
//! error: the replicant then drops the connection and recovers from a core, keeping the
//! state it had published (which is always a state some core had at that index).

use super::stream::{Heartbeat, StartMode, StreamMsg, crc_record};
use crate::engine::NodeSchema;
use crate::engine::apply::{Loader, MemoryOnly, apply_batch};
use crate::engine::members::{MemberEvent, Members, membership_changes};
use crate::engine::memory::{Holding, MemState};
use crate::error::{Error, Result};
use crate::status::ReplicantState;
use std::collections::BTreeSet;
use std::sync::Arc;

enum Phase {
    AwaitStart,
    Bootstrap { work: Box<Loader>, next_seq: u32, records: u64, crc: crc32fast::Hasher, target: u64 },
    Tail { target: u64 },
}

/// What one message asks the replicant to do.
#[derive(Default)]
pub struct Output {
    /// A new state to publish (after a snapshot, or after entries).
    pub publish: Option<MemState>,
    /// Whether that state is a snapshot's (the change feed starts again after it).
    pub bootstrapped: bool,
    /// What each applied entry changed, for the change feed.
    pub feed: Vec<(u64, Vec<crate::engine::feed::Change>)>,
    /// What membership changes among the entries did.
    pub member_events: Vec<MemberEvent>,
    pub heartbeat: Option<Heartbeat>,
}

/// Checks and applies one stream, from its `Start` on.
pub struct Applier {
    schema: Arc<NodeSchema>,
    holding: Holding,
    phase: Phase,
    /// The membership last seen in the stream (events need one to compare with).
    members: Option<Members>,
    /// Tables in a snapshot that the local catalog does not declare (skipped).
    pub unknown_tables: BTreeSet<String>,
}

fn bad(reason: impl std::fmt::Display) -> Error {
    Error::corrupt("replication stream", reason)
}

impl Applier {
    /// An applier for a replicant with `schema`'s code, holding the tables `holding` says;
    /// `members` is the membership the replicant last knew (from an earlier stream).
    pub fn new(schema: Arc<NodeSchema>, holding: Holding, members: Option<Members>) -> Self {
        Applier { schema, holding, phase: Phase::AwaitStart, members, unknown_tables: BTreeSet::new() }
    }

    /// The membership as of what this stream applied (or as the replicant knew it before).
    pub fn members(&self) -> Option<&Members> {
        self.members.as_ref()
    }



    /// The state this stream puts the replicant in, given what it has applied.
    pub fn state(&self, applied: u64) -> ReplicantState {
        match &self.phase {
            Phase::AwaitStart => ReplicantState::Connecting,
            Phase::Bootstrap { .. } => ReplicantState::Bootstrap,
            Phase::Tail { target } if applied < *target => ReplicantState::LocalReplay,
            Phase::Tail { .. } => ReplicantState::Normal,
        }
    }

    /// Handles one message; `current` is the state the replicant has published.
    pub fn handle(&mut self, msg: StreamMsg, current: &MemState) -> Result<Output> {
        let mut out = Output::default();
        match (msg, &mut self.phase) {
            (StreamMsg::Start { mode: StartMode::Snapshot, core_applied, .. }, Phase::AwaitStart) => {
                // A snapshot starts from nothing: its catalog records come first and create
                // the tables the records that follow go into.
                self.phase = Phase::Bootstrap {
                    work: Box::new(Loader::new(MemState::with_holding(
                        Arc::new(self.schema.empty_catalog()),
                        self.holding.clone(),
                    ))),
                    next_seq: 0,
                    records: 0,
                    crc: crc32fast::Hasher::new(),
                    target: core_applied,
                };
            }
            (StreamMsg::Start { mode: StartMode::Entries { from }, core_applied, .. }, Phase::AwaitStart) => {
                if from != current.applied + 1 {
                    return Err(bad(format!("entries start at {from}; this replicant needs {}", current.applied + 1)));
                }
                self.phase = Phase::Tail { target: core_applied };
            }
            (StreamMsg::Start { .. }, _) => return Err(bad("a second start message")),
            (_, Phase::AwaitStart) => return Err(bad("the stream does not begin with a start message")),
            (StreamMsg::SnapshotChunk { seq, records }, Phase::Bootstrap { work, next_seq, records: n, crc, .. }) => {
                if seq != *next_seq {
                    return Err(bad(format!("snapshot chunk {seq} where chunk {next_seq} was due")));
                }
                *next_seq += 1;
                for (k, v) in records.iter() {
                    crc_record(crc, k, v);
                    *n += 1;
                    if let Some(name) = work.record(k, v)? {
                        self.unknown_tables.insert(name.to_string());
                    }
                }
            }
            (
                StreamMsg::SnapshotEnd { index, records, crc: sent },
                Phase::Bootstrap { records: n, crc, target, .. },
            ) => {
                if records != *n {
                    return Err(bad(format!("snapshot end counts {records} records, {n} arrived")));
                }
                if sent != crc.clone().finalize() {
                    return Err(bad("snapshot checksum mismatch"));
                }
                if index < current.applied {
                    return Err(bad(format!(
                        "snapshot at {index} is older than the {} already applied",
                        current.applied
                    )));
                }
                let target = *target;
                let Phase::Bootstrap { work, .. } = std::mem::replace(&mut self.phase, Phase::Tail { target }) else {
                    return Err(bad("internal: phase changed"));
                };
                let mut work = work.finish();
                work.applied = index;
                out.publish = Some(work);
                out.bootstrapped = true;
            }
            (StreamMsg::SnapshotChunk { .. } | StreamMsg::SnapshotEnd { .. }, Phase::Tail { .. }) => {
                return Err(bad("snapshot data outside a snapshot"));
            }
            (StreamMsg::Entries { .. }, Phase::Bootstrap { .. }) => {
                return Err(bad("entries before the snapshot ended"));
            }
            (StreamMsg::Entries { entries, heartbeat }, Phase::Tail { .. }) => {
                out.heartbeat = Some(heartbeat);
                let mut work = current.clone();
                for e in &entries {
                    if e.index != work.applied + 1 {
                        return Err(bad(format!("entry {} where {} was due", e.index, work.applied + 1)));
                    }
                    if let Some(batch) = &e.batch {
                        let mut changes = Vec::new();
                        apply_batch(&mut work, &mut MemoryOnly, batch, e.index, &mut changes)?;
                        out.feed.push((e.index, changes));
                    }
                    work.applied = e.index;
                }
                if !entries.is_empty() {
                    out.publish = Some(work);
                }
            }
            (StreamMsg::Heartbeat(hb), _) => out.heartbeat = Some(hb),
            (StreamMsg::Members { index, members }, Phase::Tail { .. }) => {
                // After the snapshot or the entries it describes, never ahead of them.
                if index > current.applied {
                    return Err(bad(format!("membership at {index}, entries applied to {}", current.applied)));
                }
                learn_members(&mut self.members, members, index, &mut out);
            }
            (StreamMsg::Members { .. }, Phase::Bootstrap { .. }) => {
                return Err(bad("membership inside a snapshot"));
            }
        }
        Ok(out)
    }
}

/// Takes the membership `known` to `after` (at `index`), telling `out` what changed
/// (nothing when there is no earlier membership to compare with).
fn learn_members(known: &mut Option<Members>, after: Members, index: u64, out: &mut Output) {
    if let Some(before) = known {
        out.member_events.extend(membership_changes(before, &after, index));
    }
    *known = Some(after);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys::record_key;
    use crate::engine::{Batch, Declared, Kind, Storage, TableDef, Txn};
    use crate::replication::stream::StreamEntry;

    fn table() -> TableDef {
        TableDef::replicated("t", Kind::Set, Storage::DiscOnly)
    }

    fn schema() -> Arc<NodeSchema> {
        Arc::new(NodeSchema::new(Declared::new(vec![table()]), "r@h").unwrap())
    }

    /// A replicant's state holding table `t`.
    fn state() -> MemState {
        let mut s = MemState::with_holding(Arc::new(schema().empty_catalog()), Holding::replicant(&[]));
        s.add_table(table());
        s
    }

    /// The catalog record of table `t`, as a core's snapshot sends it first.
    fn catalog_record() -> (Vec<u8>, Vec<u8>) {
        let decl = crate::engine::Declaration::of(&table());
        (crate::engine::catalog::record_key("t"), crate::engine::catalog::encode_record(&decl).unwrap())
    }

    fn entry(index: u64, key: &str) -> StreamEntry {
        StreamEntry { index, batch: Some(Batch::new(vec![Txn::new().put("t", key, "v")], None)) }
    }

    fn snapshot(records: &[(&str, &str)], index: u64) -> Vec<StreamMsg> {
        let recs: Vec<(Vec<u8>, Vec<u8>)> = std::iter::once(catalog_record())
            .chain(records.iter().map(|(k, v)| (record_key("t", Kind::Set, k.as_bytes(), b""), v.as_bytes().to_vec())))
            .collect();
        let mut crc = crc32fast::Hasher::new();
        recs.iter().for_each(|(k, v)| crc_record(&mut crc, k, v));
        vec![
            StreamMsg::Start { core: "c".into(), mode: StartMode::Snapshot, core_applied: index + 1 },
            StreamMsg::SnapshotChunk { seq: 0, records: recs.iter().cloned().collect() },
            StreamMsg::SnapshotEnd { index, records: recs.len() as u64, crc: crc.finalize() },
        ]
    }

    /// Feeds messages, publishing as a replicant would; returns the state and the first error.
    fn run(msgs: Vec<StreamMsg>) -> (MemState, Option<Error>, Applier) {
        let mut state = state();
        let mut a = Applier::new(schema(), Holding::replicant(&[]), None);
        for m in msgs {
            match a.handle(m, &state) {
                Ok(out) => {
                    if let Some(s) = out.publish {
                        state = s;
                    }
                }
                Err(e) => return (state, Some(e), a),
            }
        }
        (state, None, a)
    }

    #[test]
    fn snapshot_then_entries() {
        let mut msgs = snapshot(&[("a", "1"), ("b", "2")], 5);
        msgs.push(StreamMsg::Entries { entries: vec![entry(6, "c")], heartbeat: Heartbeat::default() });
        let (s, err, a) = run(msgs);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(s.applied, 6);
        assert_eq!(s.tables[0].len(), 3, "disc_only tables are held in memory on a replicant");
        assert_eq!(a.state(s.applied), ReplicantState::Normal);
    }

    #[test]
    fn a_bad_snapshot_publishes_nothing() {
        let mut bad_crc = snapshot(&[("a", "1")], 5);
        if let StreamMsg::SnapshotEnd { crc, .. } = &mut bad_crc[2] {
            *crc ^= 1;
        }
        let mut lost_chunk = snapshot(&[("a", "1")], 5);
        lost_chunk.remove(1);
        let mut repeated = snapshot(&[("a", "1")], 5);
        repeated.insert(2, repeated[1].clone());
        let mut altered = snapshot(&[("a", "1")], 5);
        if let StreamMsg::SnapshotChunk { records, .. } = &mut altered[1] {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = records.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            pairs[1].1 = b"evil".to_vec();
            *records = pairs.into_iter().collect();
        }
        for (what, msgs) in [("crc", bad_crc), ("lost", lost_chunk), ("repeated", repeated), ("altered", altered)] {
            let (s, err, _) = run(msgs);
            assert!(err.is_some(), "{what}: accepted");
            assert_eq!((s.applied, s.tables[0].len()), (0, 0), "{what}: published");
        }
    }

    #[test]
    fn gaps_and_bad_order_are_errors() {
        let cases: Vec<(&str, Vec<StreamMsg>)> = vec![
            ("gap", {
                let mut m = snapshot(&[], 5);
                m.push(StreamMsg::Entries {
                    entries: vec![entry(6, "a"), entry(8, "b")],
                    heartbeat: Heartbeat::default(),
                });
                m
            }),
            ("repeat", {
                let mut m = snapshot(&[], 5);
                m.push(StreamMsg::Entries { entries: vec![entry(6, "a")], heartbeat: Heartbeat::default() });
                m.push(StreamMsg::Entries { entries: vec![entry(6, "a")], heartbeat: Heartbeat::default() });
                m
            }),
            ("no start", vec![StreamMsg::Entries { entries: vec![entry(1, "a")], heartbeat: Heartbeat::default() }]),
            (
                "wrong resume point",
                vec![StreamMsg::Start { core: "c".into(), mode: StartMode::Entries { from: 3 }, core_applied: 3 }],
            ),
            ("membership ahead of the entries", {
                let mut m = snapshot(&[], 5);
                m.push(StreamMsg::Members { index: 6, members: vec![] });
                m.push(StreamMsg::Entries { entries: vec![entry(6, "b")], heartbeat: Heartbeat::default() });
                m
            }),
            ("entries inside a snapshot", {
                let mut m = snapshot(&[], 5);
                m.insert(2, StreamMsg::Entries { entries: vec![entry(6, "a")], heartbeat: Heartbeat::default() });
                m
            }),
        ];
        for (what, msgs) in cases {
            let (s, err, _) = run(msgs);
            assert!(err.is_some(), "{what}: accepted");
            assert!(s.applied <= 6, "{what}");
            assert!(s.tables[0].get_one(b"b").is_none(), "{what}: applied past the fault");
        }
    }

    #[test]
    fn membership_messages_tell_what_changed_since_the_one_before() {
        let m = |v: &[(&str, bool)]| v.iter().map(|(n, b)| (n.to_string(), *b)).collect::<Members>();
        let mut state = state();
        let mut a = Applier::new(schema(), Holding::replicant(&[]), None);
        let mut events = Vec::new();
        let mut msgs = snapshot(&[], 5);
        msgs.push(StreamMsg::Members { index: 5, members: m(&[("a", true)]) });
        msgs.push(StreamMsg::Entries { entries: vec![entry(6, "x")], heartbeat: Heartbeat::default() });
        msgs.push(StreamMsg::Members { index: 6, members: m(&[("a", true), ("b", false)]) });
        for msg in msgs {
            let out = a.handle(msg, &state).unwrap();
            if let Some(s) = out.publish {
                state = s;
            }
            events.extend(out.member_events);
        }
        assert_eq!(events, vec![MemberEvent::Joined { name: "b".into(), voter: false, index: 6 }]);
        // The next stream starts from what this one knew.
        let mut next = Applier::new(schema(), Holding::replicant(&[]), a.members().cloned());
        next.handle(StreamMsg::Start { core: "c".into(), mode: StartMode::Entries { from: 7 }, core_applied: 6 }, &state)
            .unwrap();
        let out = next.handle(StreamMsg::Members { index: 6, members: m(&[("a", true)]) }, &state).unwrap();
        assert_eq!(out.member_events, vec![MemberEvent::Removed { name: "b".into(), index: 6 }]);
    }

    #[test]
    fn resume_goes_through_local_replay() {
        let mut state = state();
        state.applied = 4;
        let mut a = Applier::new(schema(), Holding::replicant(&[]), None);
        a.handle(StreamMsg::Start { core: "c".into(), mode: StartMode::Entries { from: 5 }, core_applied: 6 }, &state)
            .unwrap();
        assert_eq!(a.state(state.applied), ReplicantState::LocalReplay);
        let s = a
            .handle(
                StreamMsg::Entries { entries: vec![entry(5, "a"), entry(6, "b")], heartbeat: Heartbeat::default() },
                &state,
            )
            .unwrap()
            .publish
            .unwrap();
        assert_eq!(a.state(s.applied), ReplicantState::Normal);
    }
}
