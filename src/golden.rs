//! Golden files: the bytes of every wire and file form this release writes, pinned under
//! `tests/golden/` (one file per form and version: `<form>.v<version>.txt`, a line per
//! sample, `<name> <hex>`).
//!
//! The test fails when
//! - a form encodes a sample otherwise than its file for the current version holds (the
//!   encoding changed: bump the form's version, keep a decoder of the old bytes, and
//!   bless the new file);
//! - any file, of any version, no longer decodes (a later release must read what an
//!   earlier one wrote: the rolling upgrade of `mnema::protocol`);
//! - a sample has no line yet (bless it).
//!
//! Bless (write the current version's files) with `MNEMA_BLESS=1 cargo test --lib golden`.

use crate::engine::{Batch, BatchOutcome, Declaration, Op, OpResult, RequestId, Txn, TxnOutcome};
use crate::error::Result;
use crate::raft::types::{Entry, NodeInfo};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One form: its name, current version, samples, and a decoder that re-encodes what it
/// decoded (so a file is checked to decode and to mean the same bytes).
struct Form {
    name: &'static str,
    version: u8,
    samples: Vec<(String, Vec<u8>)>,
    reencode: fn(&[u8]) -> Result<Vec<u8>>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex in a golden file")).collect()
}

fn parse(text: &str) -> BTreeMap<String, Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, bytes) = l.split_once(' ').expect("`<name> <hex>`");
            (name.to_string(), unhex(bytes.trim()))
        })
        .collect()
}

fn txns() -> Vec<Txn> {
    let decl = Declaration::of(&crate::TableDef::replicated("t", crate::Kind::OrderedSet, crate::Storage::Disc));
    vec![
        Txn {
            shard: 0,
            ops: vec![
                Op::Require { table: "t".into(), key: b"k".to_vec(), value: None },
                Op::Put { table: "t".into(), key: b"k".to_vec(), value: b"v".to_vec() },
                Op::Delete { table: "t".into(), key: b"d".to_vec() },
                Op::DeleteObject { table: "b".into(), key: b"k".to_vec(), value: b"v".to_vec() },
                Op::PutIfAbsent { table: "t".into(), key: b"n".to_vec(), value: vec![0, 255] },
                Op::Require { table: "t".into(), key: b"k".to_vec(), value: Some(b"v".to_vec()) },
                Op::Clear { table: "c".into() },
            ],
        },
        Txn { shard: 2, ops: vec![Op::CreateTable { declaration: decl }] },
        Txn { shard: 0, ops: vec![Op::DropTable { table: "t".into() }] },
    ]
}

fn batches() -> Vec<(&'static str, Batch)> {
    let id = RequestId { client: 0x0123_4567_89ab_cdef, seq: 42 };
    let merged = Batch {
        txns: txns(),
        requests: crate::engine::txn::Requests::Merged(vec![
            crate::engine::txn::Part { request: Some(id), txns: 1 },
            crate::engine::txn::Part { request: None, txns: 2 },
        ]),
    };
    vec![("unnamed", Batch::new(txns(), None)), ("one", Batch::new(txns(), Some(id))), ("merged", merged)]
}

fn log_entries() -> Vec<(String, Entry)> {
    let log_id = |term, index| openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index);
    let mut out = vec![("blank".to_string(), Entry { log_id: log_id(1, 1), payload: openraft::EntryPayload::Blank })];
    for (name, b) in batches() {
        out.push((
            format!("normal-{name}"),
            Entry { log_id: log_id(2, 7), payload: openraft::EntryPayload::Normal(b) },
        ));
    }
    let nodes: BTreeMap<u64, NodeInfo> = [1u64, 2, 3]
        .into_iter()
        .map(|i| (i, NodeInfo { name: format!("n{i}@127.0.0.1"), addr: format!("127.0.0.1:437{i}") }))
        .collect();
    let voters = std::collections::BTreeSet::from([1u64, 2]);
    let membership = crate::raft::types::Membership::new(vec![voters], nodes);
    out.push((
        "membership".into(),
        Entry { log_id: log_id(3, 9), payload: openraft::EntryPayload::Membership(membership) },
    ));
    out
}

/// One form of the Raft service's messages (`raft::wire`, `RPC_VERSION`).
fn raft_form<T: serde::Serialize + serde::de::DeserializeOwned>(name: &'static str, samples: Vec<(&str, T)>) -> Form {
    use crate::raft::wire;
    Form {
        name,
        version: wire::RPC_VERSION,
        samples: samples.into_iter().map(|(n, v)| (n.to_string(), wire::encode(&v).expect("encode"))).collect(),
        reencode: |b| wire::encode(&wire::decode::<T>("golden", b)?),
    }
}

fn raft_forms() -> Vec<Form> {
    use crate::raft::pre_vote::{PreVoteReply, PreVoteRequest};
    use crate::raft::wire::{AppendReply, AppendRequest, SnapshotReply, SnapshotRequest, VoteReply, VoteReq};
    use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse, VoteResponse};
    let log_id = |term, index| openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index);
    let vote = openraft::Vote::new_committed(3, 1);
    let entries: Vec<Entry> = log_entries().into_iter().map(|(_, e)| e).collect();
    let append = |entries: Vec<Entry>| AppendRequest {
        vote,
        prev_log_id: Some(log_id(2, 6)),
        leader_commit: Some(log_id(2, 5)),
        entries,
    };
    let stopped = || crate::raft::types::RaftError::Fatal(openraft::error::Fatal::Stopped);
    let membership = log_entries()
        .into_iter()
        .find_map(|(_, e)| match e.payload {
            openraft::EntryPayload::Membership(m) => Some(m),
            _ => None,
        })
        .expect("a membership sample");
    let meta = crate::raft::types::SnapshotMeta {
        last_log_id: Some(log_id(3, 9)),
        last_membership: crate::raft::types::StoredMembership::new(Some(log_id(3, 9)), membership),
        snapshot_id: "3-9-1".into(),
    };
    vec![
        raft_form("raft-append-request", vec![("entries", append(entries)), ("heartbeat", append(Vec::new()))]),
        raft_form::<AppendReply>(
            "raft-append-reply",
            vec![
                ("success", Ok(AppendEntriesResponse::Success)),
                ("partial", Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(3, 8))))),
                ("conflict", Ok(AppendEntriesResponse::Conflict)),
                ("higher-vote", Ok(AppendEntriesResponse::HigherVote(openraft::Vote::new(4, 2)))),
                ("stopped", Err(stopped())),
            ],
        ),
        raft_form::<VoteReq>(
            "raft-vote-request",
            vec![("vote", openraft::raft::VoteRequest::new(openraft::Vote::new(4, 2), Some(log_id(3, 9))))],
        ),
        raft_form::<VoteReply>(
            "raft-vote-reply",
            vec![
                (
                    "granted",
                    Ok(VoteResponse {
                        vote: openraft::Vote::new(4, 2),
                        vote_granted: true,
                        last_log_id: Some(log_id(3, 9)),
                    }),
                ),
                ("refused", Ok(VoteResponse { vote, vote_granted: false, last_log_id: None })),
                ("stopped", Err(stopped())),
            ],
        ),
        raft_form::<SnapshotRequest>(
            "raft-snapshot-request",
            vec![(
                "chunk",
                openraft::raft::InstallSnapshotRequest {
                    vote,
                    meta,
                    offset: 1 << 20,
                    data: vec![0, 1, 255],
                    done: false,
                },
            )],
        ),
        raft_form::<SnapshotReply>(
            "raft-snapshot-reply",
            vec![
                ("done", Ok(InstallSnapshotResponse { vote })),
                ("stopped", Err(crate::raft::types::RaftError::Fatal(openraft::error::Fatal::Stopped))),
            ],
        ),
        raft_form(
            "pre-vote-request",
            vec![
                ("candidate", PreVoteRequest { candidate: 2, last_log_id: Some(log_id(3, 9)) }),
                ("empty-log", PreVoteRequest { candidate: 2, last_log_id: None }),
            ],
        ),
        raft_form(
            "pre-vote-reply",
            vec![
                ("granted", PreVoteReply::Granted),
                ("leader-alive", PreVoteReply::LeaderAlive),
                ("log-ahead", PreVoteReply::LogAhead),
                ("gives-no-votes", PreVoteReply::GivesNoVotes),
            ],
        ),
    ]
}

fn forms() -> Vec<Form> {
    use crate::codec::{WIRE_VERSION, decode_versioned, encode_versioned};
    let mut out = Vec::new();

    let samples =
        log_entries().into_iter().map(|(n, e)| (n, crate::raft::wire::encode_entry(&e).expect("encode"))).collect();
    out.push(Form {
        name: "log-entry",
        version: crate::raft::wire::ENTRY_VERSION,
        samples,
        reencode: |b| crate::raft::wire::encode_entry(&crate::raft::wire::decode_entry(b)?),
    });

    // What a follower forwards to the leader, a client sends, and what comes back.
    let mut samples: Vec<(String, Vec<u8>)> = batches()
        .into_iter()
        .map(|(n, b)| (format!("batch-{n}"), encode_versioned(WIRE_VERSION, &b).expect("encode")))
        .collect();
    let outcome = BatchOutcome {
        outcomes: vec![
            TxnOutcome::Applied(vec![OpResult::Done, OpResult::Inserted, OpResult::Exists]),
            TxnOutcome::Rejected("why".into()),
            TxnOutcome::Conflict("who".into()),
        ],
    };
    samples.push(("reply".into(), encode_versioned(WIRE_VERSION, &(7u64, outcome)).expect("encode")));
    samples.push(("txn".into(), encode_versioned(WIRE_VERSION, &txns()[0]).expect("encode")));
    out.push(Form {
        name: "forward",
        version: WIRE_VERSION,
        samples,
        reencode: |b| {
            // Each sample is one of three types; the first that decodes re-encodes.
            decode_versioned::<Batch>("batch", WIRE_VERSION, b)
                .and_then(|v| encode_versioned(WIRE_VERSION, &v))
                .or_else(|_| {
                    decode_versioned::<(u64, BatchOutcome)>("reply", WIRE_VERSION, b)
                        .and_then(|v| encode_versioned(WIRE_VERSION, &v))
                })
                .or_else(|_| {
                    decode_versioned::<Txn>("txn", WIRE_VERSION, b).and_then(|v| encode_versioned(WIRE_VERSION, &v))
                })
        },
    });

    // Raft frames (`raft::frame`): the magic, a header of each kind, a hello.
    use crate::raft::frame::{self, Hello, Kind, MAGIC};
    let mut samples: Vec<(String, Vec<u8>)> = vec![("magic".into(), MAGIC.to_vec())];
    for kind in [
        Kind::Hello,
        Kind::Append,
        Kind::Vote,
        Kind::Snapshot,
        Kind::Forward,
        Kind::Relay,
        Kind::Transact,
        Kind::Ok,
        Kind::Err,
    ] {
        samples.push((format!("header-{kind:?}"), frame::encode_header(kind, 300).expect("header").to_vec()));
    }
    let hello = Hello { protocol: crate::protocol::PROTOCOL, cookie: b"cookie".to_vec(), cluster: "c1".into() };
    samples.push(("hello".into(), frame::encode_hello(&hello).expect("hello")));
    out.push(Form {
        name: "raft-frames",
        version: frame::VERSION,
        samples,
        reencode: |b| {
            if b == MAGIC {
                return Ok(b.to_vec());
            }
            if let Some(h) = b.first_chunk::<{ frame::HEADER_LEN }>()
                && b.len() == frame::HEADER_LEN
            {
                let (kind, len) = frame::decode_header(h)?;
                return Ok(frame::encode_header(kind, len)?.to_vec());
            }
            frame::encode_hello(&frame::decode_hello(b)?)
        },
    });

    let samples = crate::rpc::status::tests::every_variant()
        .into_iter()
        .map(|e| {
            let debug = format!("{e:?}");
            let name = debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("error").to_string();
            (name, encode_versioned(WIRE_VERSION, &e).expect("encode"))
        })
        .collect();
    out.push(Form {
        name: "error",
        version: WIRE_VERSION,
        samples,
        reencode: |b| {
            encode_versioned(WIRE_VERSION, &decode_versioned::<crate::Error>("error details", WIRE_VERSION, b)?)
        },
    });

    use crate::replication::stream::{self, Heartbeat, StartMode, StreamEntry, StreamMsg};
    let hb = Heartbeat { committed: 9, core_applied: 8, leader: Some(("n1@h".into(), "h:1".into())) };
    let members: crate::engine::members::Members =
        [("n1@h".to_string(), true), ("n4@h".to_string(), false)].into_iter().collect();
    let msgs = vec![
        ("start-snapshot", StreamMsg::Start { core: "n1@h".into(), mode: StartMode::Snapshot, core_applied: 5 }),
        (
            "start-entries",
            StreamMsg::Start { core: "n1@h".into(), mode: StartMode::Entries { from: 6 }, core_applied: 5 },
        ),
        ("chunk", StreamMsg::SnapshotChunk { seq: 3, records: [(b"k".to_vec(), vec![0, 255])].into_iter().collect() }),
        ("snapshot-end", StreamMsg::SnapshotEnd { index: 5, records: 1, crc: 0xdead_beef }),
        (
            "entries",
            StreamMsg::Entries {
                entries: vec![
                    StreamEntry { index: 6, batch: Some(batches().remove(1).1) },
                    StreamEntry { index: 7, batch: None },
                ],
                heartbeat: hb.clone(),
            },
        ),
        ("heartbeat", StreamMsg::Heartbeat(hb)),
        ("members", StreamMsg::Members { index: 7, members }),
    ];
    out.push(Form {
        name: "stream",
        version: stream::STREAM_VERSION,
        samples: msgs.into_iter().map(|(n, m)| (n.to_string(), stream::encode(&m).expect("encode"))).collect(),
        reencode: |b| stream::encode(&stream::decode(b)?),
    });

    use crate::engine::feed::wire::{self as watch, WatchMsg, WireChange, WireOp, WireRecord};
    let change = |op| WireChange { table: "t".into(), key: b"k".to_vec(), op };
    let msgs = vec![
        (
            "records",
            WatchMsg::Records(vec![WireRecord { table: "t".into(), key: b"k".to_vec(), value: b"v".to_vec() }]),
        ),
        ("snapshot-end", WatchMsg::SnapshotEnd { index: 4 }),
        (
            "event",
            WatchMsg::Event {
                index: 5,
                changes: vec![
                    change(WireOp::Put(b"v".to_vec())),
                    change(WireOp::Delete),
                    change(WireOp::DeleteObject(b"v".to_vec())),
                    change(WireOp::Clear),
                    change(WireOp::Created),
                    change(WireOp::Dropped),
                ],
            },
        ),
        ("end", WatchMsg::End(crate::Error::Compacted { from: 3, oldest: 90 })),
    ];
    out.push(Form {
        name: "watch",
        version: watch::WATCH_VERSION,
        samples: msgs.into_iter().map(|(n, m)| (n.to_string(), watch::encode(&m).expect("encode"))).collect(),
        reencode: |b| watch::encode(&watch::decode(b)?),
    });

    // A Raft snapshot file: a header, records, the end with the count.
    use crate::engine::snapshot_format::{SnapshotReader, SnapshotWriter, VERSION as SNAPSHOT_VERSION};
    let mut w = SnapshotWriter::new(Vec::new()).expect("write");
    w.record(b"k1", b"v1").expect("write");
    w.record(b"", &[0, 255]).expect("write");
    let (file, _) = w.finish().expect("write");
    out.push(Form {
        name: "snapshot",
        version: SNAPSHOT_VERSION,
        samples: vec![("two-records".into(), file)],
        reencode: |b| {
            let mut r = SnapshotReader::new(b)?;
            let mut w = SnapshotWriter::new(Vec::new()).map_err(|e| crate::Error::io("snapshot", e))?;
            while let Some((k, v)) = r.next_record()? {
                w.record(&k, &v).map_err(|e| crate::Error::io("snapshot", e))?;
            }
            Ok(w.finish().map_err(|e| crate::Error::io("snapshot", e))?.0)
        },
    });

    // openraft's messages between cores, and the pre-vote.
    out.extend(raft_forms());

    // A catalog record: how a created table is stored.
    let decl = Declaration::of(&crate::TableDef::replicated("t", crate::Kind::Bag, crate::Storage::Ram));
    out.push(Form {
        name: "catalog-record",
        version: 1,
        samples: vec![("bag".into(), crate::engine::catalog::encode_record(&decl).expect("encode"))],
        reencode: |b| crate::engine::catalog::encode_record(&crate::engine::catalog::decode_record(b)?),
    });
    out
}

#[test]
fn every_wire_and_file_form_decodes_its_golden_bytes_and_encodes_them_unchanged() {
    let bless = std::env::var_os("MNEMA_BLESS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for form in forms() {
        let current = dir().join(format!("{}.v{}.txt", form.name, form.version));
        if bless {
            let mut text = format!(
                "# The {} form, version {} (src/golden.rs): `<sample> <hex>`. Written by MNEMA_BLESS=1.\n",
                form.name, form.version
            );
            for (name, bytes) in &form.samples {
                text.push_str(&format!("{name} {}\n", hex(bytes)));
            }
            std::fs::create_dir_all(dir()).expect("golden dir");
            std::fs::write(&current, text).expect("write golden file");
        }
        let Ok(text) = std::fs::read_to_string(&current) else {
            problems.push(format!("{}: missing (a new version? bless it)", current.display()));
            continue;
        };
        let golden = parse(&text);
        for (name, bytes) in &form.samples {
            match golden.get(name) {
                None => problems.push(format!("{} {name}: no golden bytes (bless them)", form.name)),
                Some(g) if g != bytes => problems.push(format!(
                    "{} {name}: encodes otherwise than version {} did: bump the version and keep a decoder of the old bytes",
                    form.name, form.version
                )),
                Some(_) => {}
            }
        }
        // Every file of the form, of any version, still decodes to the same meaning.
        for entry in std::fs::read_dir(dir()).expect("golden dir").flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if !file.starts_with(&format!("{}.v", form.name)) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).expect("read golden file");
            for (name, bytes) in parse(&text) {
                match (form.reencode)(&bytes) {
                    Ok(again) if again == bytes => {}
                    Ok(_) => problems.push(format!("{file} {name}: decodes, but to something else")),
                    Err(e) => problems.push(format!("{file} {name}: no longer decodes: {e}")),
                }
            }
        }
    }
    assert!(problems.is_empty(), "golden files:\n{}", problems.join("\n"));
}

#[test]
fn an_export_document_is_read_as_ever() {
    use crate::backup::format::{DocWriter, Header, read};
    let header = Header {
        applied_index: 7,
        node: "n1@h".into(),
        cluster: "mnema".into(),
        cluster_id: "c1".into(),
        exported_at_ms: 1_700_000_000_000,
        config: serde_json::json!({"name": "mnema"}),
    };
    let def = crate::TableDef::replicated("t", crate::Kind::Set, crate::Storage::Disc);
    let mut w = DocWriter::new(Vec::new(), &header).expect("write");
    w.table(&Declaration::of(&def)).expect("write");
    w.record(b"k", b"v").expect("write");
    let (doc, _) = w.finish().expect("write");
    let path = dir().join("export.v2.json");
    if std::env::var_os("MNEMA_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(dir()).expect("golden dir");
        std::fs::write(&path, &doc).expect("write golden export");
    }
    let golden = std::fs::read(&path).expect("tests/golden/export.v2.json (bless it)");
    assert_eq!(String::from_utf8_lossy(&doc), String::from_utf8_lossy(&golden), "the export document changed");
    let catalog = crate::engine::Catalog::new(vec![def]).expect("catalog");
    let mut records = 0;
    let summary = read(&golden[..], &catalog, &mut |e| {
        if matches!(e, crate::backup::format::Event::Record { .. }) {
            records += 1;
        }
        Ok(())
    })
    .expect("the golden export reads");
    assert_eq!((summary.header, records), (header, 1));
}
