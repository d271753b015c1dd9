//! Topic names and filters from clients, and stored route destinations: validation,
//! matching and the wildcard trie must never panic, and the trie must agree with the
//! reference matcher on whatever validates.
#![no_main]
use mnema::engine::topic_trie::{TopicTrie, is_wildcard};
use mnema::schema::{routes, topic};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let owned = routes::decode_dest(data);
    let borrowed = routes::decode_dest_ref(data);
    assert_eq!(owned.ok(), borrowed.ok().map(|d| d.to_dest()), "the two decoders disagree");
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Lines: filters, then (after an empty line) topics.
    let (filters, topics) = text.split_once("\n\n").unwrap_or((text, "a/b"));
    let mut trie = TopicTrie::default();
    let mut held = Vec::new();
    for (i, f) in filters.lines().enumerate() {
        if topic::validate_filter(f).is_ok() && is_wildcard(f.as_bytes()) {
            trie.set(&std::sync::Arc::from(f.as_bytes()), i);
            held.push(f);
        }
    }
    for t in topics.lines() {
        if topic::validate_name(t).is_err() {
            continue;
        }
        let mut got = Vec::new();
        trie.matches(t.as_bytes(), |f, _| got.push(f.to_vec()));
        got.sort();
        got.dedup();
        let mut want: Vec<Vec<u8>> = held.iter().filter(|f| topic::matches(f, t)).map(|f| f.as_bytes().to_vec()).collect();
        want.sort();
        want.dedup();
        assert_eq!(got, want, "trie and reference disagree on {t:?}");
    }
});
