//! A replication stream as a replicant receives it: a sequence of messages from a core,
//! each decoded and then checked and applied; and each frame decoded as a message of the
//! watch stream a client reads. No step may panic; bad input is an error.
#![no_main]
use mnema::engine::memory::{Holding, MemState};
use mnema::engine::{Declared, Kind, NodeSchema, Storage, TableDef};
use mnema::replication::applier::Applier;
use std::sync::Arc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The code of three tables; the stream's catalog records and entries create them.
    let schema = Arc::new(
        NodeSchema::new(
            Declared::new(vec![
                TableDef::replicated("s", Kind::Set, Storage::Disc),
                TableDef::replicated("b", Kind::Bag, Storage::Ram),
                TableDef::replicated("o", Kind::OrderedSet, Storage::DiscOnly),
            ]),
            "fuzz@h",
        )
        .expect("schema"),
    );
    let holding = Holding::replicant(&[0]);
    let mut state = MemState::with_holding(Arc::new(schema.empty_catalog()), holding.clone());
    // A replicant that knew a membership from an earlier stream: `Members` messages are
    // compared with it.
    let known = Some(vec![("a@h".to_string(), true), ("b@h".to_string(), false)]);
    let mut applier = Applier::new(schema, holding, known);
    // Messages are framed as a u16 LE length then that many bytes.
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let (msg, tail) = body.split_at(len.min(body.len()));
        rest = tail;
        // The watch stream a client reads is decoded the same way (one message per frame).
        if let Ok(mnema::engine::feed::wire::WatchMsg::Event { index, changes }) = mnema::engine::feed::wire::decode(msg) {
            let _ = mnema::engine::feed::wire::event_from_wire(index, changes);
        }
        let Ok(msg) = mnema::replication::stream::decode(msg) else { return };
        match applier.handle(msg, &state) {
            Ok(out) => {
                if let Some(s) = out.publish {
                    state = s;
                }
            }
            Err(_) => return,
        }
    }
});
