//! Forwarded batches, client transactions, the replies of a write stream and what nodes
//! say of their schema (versioned bincode from the network), and catalog records (from
//! disc or a snapshot).
#![no_main]
use mnema::codec::{WIRE_VERSION, decode_versioned};
use mnema::engine::declaration::{Declaration, SchemaInfo};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = decode_versioned::<mnema::engine::Batch>("batch", WIRE_VERSION, data);
    let _ = decode_versioned::<Result<mnema::Committed, mnema::Error>>("transact reply", WIRE_VERSION, data);
    let cat = mnema::engine::Catalog::new(mnema::schema::broker_tables()).expect("catalog");
    if let Ok(txn) = decode_versioned::<mnema::engine::Txn>("txn", WIRE_VERSION, data) {
        let _ = cat.check(&txn, mnema::Scope::Replicated);
        let _ = cat.shard_of(&txn);
    }
    if let Ok(info) = decode_versioned::<SchemaInfo>("schema", WIRE_VERSION, data) {
        let _ = info.lacks_code_of(&info);
    }
    for decl in [
        decode_versioned::<Declaration>("declaration", WIRE_VERSION, data).ok(),
        mnema::engine::catalog::decode_record(data).ok(),
    ]
    .into_iter()
    .flatten()
    {
        if decl.validate().is_ok() {
            let _ = cat.registry().resolve(&decl);
        }
    }
});
