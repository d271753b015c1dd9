//! Export files given to `mnema ctl data import`: the checked reader must return an error
//! (with a position) on anything malformed, never panic.
#![no_main]
use mnema::backup::format;
use mnema::engine::Catalog;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let catalog = Catalog::new(mnema::schema::broker_tables()).expect("catalog");
    let _ = format::read(data, &catalog, &mut |_| Ok(()));
});
