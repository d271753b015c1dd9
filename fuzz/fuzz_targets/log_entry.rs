//! A stored Raft log entry: any bytes decode to an entry or an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = mnema::raft::wire::decode_entry(data) {
        // What decodes must encode and decode to the same entry.
        let again = mnema::raft::wire::encode_entry(&entry).expect("re-encode");
        let back = mnema::raft::wire::decode_entry(&again).expect("decode own encoding");
        assert_eq!(format!("{back:?}"), format!("{entry:?}"));
    }
});
