//! Forwarded batches and client transactions (versioned bincode from the network).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mnema::codec::decode_versioned::<mnema::engine::Batch>("batch", mnema::codec::WIRE_VERSION, data);
    if let Ok(txn) = mnema::codec::decode_versioned::<mnema::engine::Txn>("txn", mnema::codec::WIRE_VERSION, data) {
        let cat = mnema::engine::Catalog::new(mnema::schema::broker_tables()).expect("catalog");
        let _ = cat.check(&txn, mnema::Scope::Replicated);
    }
});
