//! A node registration read back from etcd (etcd discovery): any key or value someone
//! wrote under the prefix is an error or a node, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (key, value) = data.split_at(split);
    let _ = mnema::discovery::etcd_node("/mnemacl/mnema/", key, value.get(1..).unwrap_or_default());
});
