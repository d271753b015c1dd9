//! RocksDB record keys as read back from disk.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((_, rest)) = mnema::engine::keys::split_table(data) {
        for kind in [mnema::Kind::Set, mnema::Kind::Bag, mnema::Kind::OrderedSet] {
            let _ = mnema::engine::keys::split_record(kind, rest, b"");
        }
    }
});
