//! Snapshot files and chunks as received from a leader.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mnema::engine::snapshot_format::verify(data);
});
