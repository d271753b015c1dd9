//! What a Raft frames peer sends (`raft::frame`): a frame's header, the hello, an error
//! reply. Malformed bytes are an error, never a panic, and no length makes it allocate
//! past the frame limit.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mnema::raft::frame::decode_any(data);
});
