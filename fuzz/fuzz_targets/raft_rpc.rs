//! Raft RPC payloads from peers (append entries, vote, snapshot chunk).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mnema::raft::wire::decode_any_request(data);
});
