//! Config files and node names.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = mnema::NodeConfig::from_toml(text) {
            let _ = c.validate();
        }
        let _ = mnema::Peer::parse("fuzz", text, 4370);
        let _ = mnema::config::parse_duration("fuzz", text);
    }
});
