//! `RAFT_MARK` files read from a data dir at start: damaged bytes are an error, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mnema::storage::raft_mark::decode(data);
});
