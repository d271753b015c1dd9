//! The wildcard index of a topic-keyed table: a persistent trie of MQTT topic filters.
//!
//! Only filters with a `+` or `#` level go in; exact filters are found by the table's own
//! hash lookup. The trie shares structure between versions like the tables it indexes
//! (each node's children are an `imbl` map), so it is cloned and updated with the table in
//! the apply loop and published with it: a reader sees the table and its index at the same
//! applied index.
//!
//! Matching follows MQTT 3.1.1/5.0 §4.7: `+` matches exactly one level (possibly empty),
//! `#` matches the parent level and any number of levels below it, and neither matches a
//! first level starting with `$` (`$SYS/…` topics need a filter starting with `$SYS`).

use super::Blob;
use super::KeyHasher;
use std::sync::Arc;

type Children = imbl::GenericHashMap<Blob, Node, KeyHasher, imbl::shared_ptr::DefaultSharedPtr>;

#[derive(Clone, Debug, Default)]
struct Node {
    children: Children,
    /// The whole filter, when one ends at this node.
    filter: Option<Blob>,
}

/// Wildcard filters, matched against topic names.
#[derive(Clone, Debug, Default)]
pub struct TopicTrie {
    root: Node,
    len: usize,
}

/// Whether a filter has a `+` or `#` level.
pub fn is_wildcard(filter: &[u8]) -> bool {
    filter.split(|b| *b == b'/').any(|l| l == b"+" || l == b"#")
}

impl TopicTrie {
    /// Number of filters held.
    #[cfg(any(test, feature = "test-util"))]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(any(test, feature = "test-util"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `filter`; returns whether it was new.
    pub fn insert(&mut self, filter: &[u8]) -> bool {
        let mut node = &mut self.root;
        for level in filter.split(|b| *b == b'/') {
            node = node.children.entry(Arc::from(level)).or_default();
        }
        let new = node.filter.is_none();
        node.filter = Some(Arc::from(filter));
        self.len += usize::from(new);
        new
    }

    /// Removes `filter`; returns whether it was there. Empty branches are pruned.
    pub fn remove(&mut self, filter: &[u8]) -> bool {
        let levels: Vec<&[u8]> = filter.split(|b| *b == b'/').collect();
        let removed = remove(&mut self.root, &levels);
        self.len -= usize::from(removed);
        removed
    }

    pub fn clear(&mut self) {
        *self = TopicTrie::default();
    }

    /// Calls `found` with every filter that matches `topic` (a topic name, no wildcards).
    pub fn matches(&self, topic: &[u8], mut found: impl FnMut(&Blob)) {
        let dollar = topic.first() == Some(&b'$');
        walk(&self.root, Some(topic), !dollar, &mut found);
    }
}

fn remove(node: &mut Node, levels: &[&[u8]]) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        return node.filter.take().is_some();
    };
    let Some(child) = node.children.get_mut(*first) else { return false };
    let removed = remove(child, rest);
    if removed && child.filter.is_none() && child.children.is_empty() {
        node.children.remove(*first);
    }
    removed
}

/// `rest`: the topic's levels not yet matched (`None`: all matched). `wild`: whether `+`
/// and `#` may match at this level (not at a `$` first level). No allocation per call.
fn walk(node: &Node, rest: Option<&[u8]>, wild: bool, found: &mut impl FnMut(&Blob)) {
    if wild && let Some(f) = node.children.get(&b"#"[..]).and_then(|h| h.filter.as_ref()) {
        found(f);
    }
    let Some(rest) = rest else {
        if let Some(f) = &node.filter {
            found(f);
        }
        return;
    };
    let (first, tail) = match rest.iter().position(|b| *b == b'/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if let Some(child) = node.children.get(first) {
        walk(child, tail, true, found);
    }
    if wild && let Some(child) = node.children.get(&b"+"[..]) {
        walk(child, tail, true, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::topic;
    use crate::schema::topic::strategies::{filter, topic_name};
    use proptest::prelude::*;

    fn matched(t: &TopicTrie, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        t.matches(topic.as_bytes(), |f| out.push(String::from_utf8_lossy(f).into_owned()));
        out.sort();
        out
    }

    #[test]
    fn spec_examples() {
        let mut t = TopicTrie::default();
        for f in [
            "sport/tennis/player1/#",
            "sport/#",
            "#",
            "+",
            "+/+",
            "/+",
            "sport/+/player1",
            "$SYS/#",
            "+/monitor/Clients",
        ] {
            assert!(t.insert(f.as_bytes()));
        }
        assert!(!t.insert(b"#"), "a filter is held once");
        assert_eq!(matched(&t, "sport/tennis/player1"), ["#", "sport/#", "sport/+/player1", "sport/tennis/player1/#"]);
        assert_eq!(matched(&t, "sport"), ["#", "+", "sport/#"], "`#` matches its parent level");
        assert_eq!(matched(&t, "/finance"), ["#", "+/+", "/+"]);
        assert_eq!(matched(&t, "$SYS/monitor/Clients"), ["$SYS/#"], "no `+`/`#` at a `$` first level");
        assert!(t.remove(b"sport/#"));
        assert!(!t.remove(b"sport/#"));
        assert_eq!(matched(&t, "sport"), ["#", "+"]);
        assert_eq!(t.len(), 8);
    }

    proptest! {
        #[test]
        fn trie_agrees_with_the_naive_matcher(
            filters in prop::collection::vec(filter(), 0..40),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            topics in prop::collection::vec(topic_name(), 1..20),
        ) {
            let mut t = TopicTrie::default();
            let mut held: std::collections::BTreeSet<String> = Default::default();
            for f in &filters {
                prop_assert!(topic::validate_filter(f).is_ok(), "generator made an invalid filter {f}");
                if is_wildcard(f.as_bytes()) {
                    t.insert(f.as_bytes());
                    held.insert(f.clone());
                }
            }
            for ix in removed {
                if held.is_empty() { break; }
                let f = held.iter().nth(ix.index(held.len())).cloned().unwrap();
                prop_assert!(t.remove(f.as_bytes()));
                held.remove(&f);
            }
            prop_assert_eq!(t.len(), held.len());
            for topic in &topics {
                let expected: Vec<String> = held.iter().filter(|f| topic::matches(f, topic)).cloned().collect();
                prop_assert_eq!(matched(&t, topic), expected, "topic {}", topic);
            }
        }
    }
}
