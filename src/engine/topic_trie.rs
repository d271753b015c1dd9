//! The wildcard index of a topic-keyed table: a persistent trie of MQTT topic filters.
//!
//! Only filters with a `+` or `#` level go in; exact filters are found by the table's own
//! hash lookup. Each filter's values (a route's destinations) are held at its node, so a
//! match reads them where it finds the filter, without a second lookup in the table.
//!
//! **Layout, for the match walk.** A node keeps its `+` child and the values of its `#`
//! child in fields of their own: a walk looks at them without hashing a word. Its other
//! children are found by word: a short sorted list while there are few (most nodes have
//! one to a handful; words up to [`Word::INLINE`] bytes sit inline, so the scan does not
//! chase a pointer per word), a hash map beyond [`FEW`].
//!
//! **Persistence.** Nodes are reference-counted and copied on write (`Arc::make_mut`), and
//! the large child maps are `imbl` maps: cloning the trie is one pointer copy, and a change
//! copies only the path it touches. The apply loop clones and updates it with the table and
//! publishes both in one swap, so a reader sees the table and its index at the same
//! applied index.
//!
//! Matching follows MQTT 3.1.1/5.0 §4.7: `+` matches exactly one level (possibly empty),
//! `#` matches the parent level and any number of levels below it, and neither matches a
//! first level starting with `$` (`$SYS/…` topics need a filter starting with `$SYS`).
//! A `#` that is not the last level (never valid in a filter; the catalog refuses it) is
//! held as an ordinary word, which no topic name contains: it matches nothing.

use super::Blob;
use super::KeyHasher;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Children kept in a sorted list up to this many; a hash map beyond.
pub const FEW: usize = 8;

/// One level of a filter, inline when short.
#[derive(Clone)]
pub enum Word {
    /// Up to [`Word::INLINE`] bytes: the length, then the bytes.
    Inline(u8, [u8; Word::INLINE]),
    /// Longer.
    Heap(Blob),
}

impl Word {
    /// The longest word held inline.
    pub const INLINE: usize = 22;

    fn new(bytes: &[u8]) -> Word {
        if bytes.len() <= Self::INLINE {
            let mut inline = [0u8; Self::INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            // Fits in a u8: at most INLINE (22).
            Word::Inline(bytes.len() as u8, inline)
        } else {
            Word::Heap(Arc::from(bytes))
        }
    }

    /// The word's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Word::Inline(n, b) => &b[..usize::from(*n).min(Self::INLINE)],
            Word::Heap(b) => b,
        }
    }
}

impl PartialEq for Word {
    fn eq(&self, other: &Word) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Word {}

impl Hash for Word {
    /// As the bytes hash, so a map of words is searched with a `&[u8]`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl Borrow<[u8]> for Word {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A node's children by word, beyond [`FEW`].
type ChildMap<V> = imbl::GenericHashMap<Word, Arc<Node<V>>, KeyHasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A node's children by word (not `+`, and not a last `#`).
#[derive(Clone, Debug)]
enum Children<V> {
    /// Sorted by word.
    Few(Vec<(Word, Arc<Node<V>>)>),
    Many(ChildMap<V>),
}

impl<V> Default for Children<V> {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

/// A filter held at a node: the whole filter (shared with the table's key) and its values.
#[derive(Clone, Debug)]
struct Leaf<V> {
    filter: Blob,
    value: V,
}

#[derive(Clone, Debug)]
struct Node<V> {
    children: Children<V>,
    /// The `+` child.
    plus: Option<Arc<Node<V>>>,
    /// The filter `<this node's path>/#`.
    hash: Option<Arc<Leaf<V>>>,
    /// The filter that ends at this node.
    end: Option<Leaf<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node { children: Children::default(), plus: None, hash: None, end: None }
    }
}

/// Wildcard filters and a value for each, matched against topic names.
#[derive(Clone, Debug)]
pub struct TopicTrie<V> {
    root: Arc<Node<V>>,
    len: usize,
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie { root: Arc::default(), len: 0 }
    }
}

/// Whether a filter has a `+` or `#` level.
pub fn is_wildcard(filter: &[u8]) -> bool {
    filter.split(|b| *b == b'/').any(|l| l == b"+" || l == b"#")
}

/// One level of a filter, as the trie files it.
enum Level<'a> {
    Word(&'a [u8]),
    Plus,
    /// `#` as the last level.
    Hash,
}

fn levels(filter: &[u8]) -> impl Iterator<Item = Level<'_>> {
    let last = filter.split(|b| *b == b'/').count() - 1;
    filter.split(|b| *b == b'/').enumerate().map(move |(i, l)| match l {
        b"+" => Level::Plus,
        b"#" if i == last => Level::Hash,
        w => Level::Word(w),
    })
}

impl<V> Node<V> {
    fn child(&self, word: &[u8]) -> Option<&Arc<Node<V>>> {
        match &self.children {
            Children::Few(list) => list.iter().find(|(w, _)| w.as_bytes() == word).map(|(_, n)| n),
            Children::Many(map) => map.get(word),
        }
    }

    fn is_empty(&self) -> bool {
        let no_children = match &self.children {
            Children::Few(list) => list.is_empty(),
            Children::Many(map) => map.is_empty(),
        };
        no_children && self.plus.is_none() && self.hash.is_none() && self.end.is_none()
    }
}

impl<V: Clone> Node<V> {
    /// The child for `word`, made if missing, ready to change.
    fn child_mut(&mut self, word: &[u8]) -> &mut Node<V> {
        // A list that is full and lacks `word` becomes a map first.
        if let Children::Few(list) = &mut self.children
            && list.len() >= FEW
            && list.binary_search_by(|(w, _)| w.as_bytes().cmp(word)).is_err()
        {
            self.children = Children::Many(list.drain(..).collect());
        }
        let slot = match &mut self.children {
            Children::Few(list) => match list.binary_search_by(|(w, _)| w.as_bytes().cmp(word)) {
                Ok(at) => &mut list[at].1,
                Err(at) => {
                    list.insert(at, (Word::new(word), Arc::default()));
                    &mut list[at].1
                }
            },
            Children::Many(map) => map.entry(Word::new(word)).or_default(),
        };
        Arc::make_mut(slot)
    }

    /// Removes the child for `word` (when it became empty).
    fn drop_child(&mut self, word: &[u8]) {
        match &mut self.children {
            Children::Few(list) => list.retain(|(w, _)| w.as_bytes() != word),
            Children::Many(map) => {
                map.remove(word);
                if map.len() <= FEW / 2 {
                    let mut list: Vec<(Word, Arc<Node<V>>)> = map.iter().map(|(w, n)| (w.clone(), n.clone())).collect();
                    list.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                    self.children = Children::Few(list);
                }
            }
        }
    }
}

impl<V: Clone> TopicTrie<V> {
    /// Number of filters held.
    #[cfg(any(test, feature = "test-util"))]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(any(test, feature = "test-util"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds `value` for `filter` (replacing the one it had); returns whether the filter
    /// was new. `filter` is kept as given (share it with the table's key).
    pub fn set(&mut self, filter: &Blob, value: V) -> bool {
        let mut node = Arc::make_mut(&mut self.root);
        let leaf = Leaf { filter: filter.clone(), value };
        let mut hash_leaf = None;
        for level in levels(filter) {
            match level {
                Level::Word(w) => node = node.child_mut(w),
                Level::Plus => node = Arc::make_mut(node.plus.get_or_insert_with(Arc::default)),
                Level::Hash => {
                    hash_leaf = Some(leaf.clone());
                    break;
                }
            }
        }
        let new = match hash_leaf {
            Some(leaf) => node.hash.replace(Arc::new(leaf)).is_none(),
            None => node.end.replace(leaf).is_none(),
        };
        self.len += usize::from(new);
        new
    }

    /// Removes `filter`; returns whether it was there. Empty branches are pruned.
    pub fn remove(&mut self, filter: &[u8]) -> bool {
        let path: Vec<Level<'_>> = levels(filter).collect();
        let removed = remove(&mut self.root, &path);
        self.len -= usize::from(removed);
        removed
    }

    pub fn clear(&mut self) {
        *self = TopicTrie::default();
    }
}

impl<V> TopicTrie<V> {
    /// Calls `found` with every filter that matches `topic` (a topic name, no wildcards)
    /// and its value. No allocation.
    pub fn matches(&self, topic: &[u8], mut found: impl FnMut(&Blob, &V)) {
        let dollar = topic.first() == Some(&b'$');
        walk(&self.root, Some(topic), !dollar, &mut found);
    }
}

/// Removes the filter at `path` below `node`; returns whether it was there. A node left
/// empty is dropped by its parent.
fn remove<V: Clone>(node: &mut Arc<Node<V>>, path: &[Level<'_>]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return node.end.is_some() && Arc::make_mut(node).end.take().is_some();
    };
    match first {
        Level::Hash => node.hash.is_some() && Arc::make_mut(node).hash.take().is_some(),
        Level::Plus => {
            if node.plus.is_none() {
                return false;
            }
            let n = Arc::make_mut(node);
            let Some(child) = n.plus.as_mut() else { return false };
            let removed = remove(child, rest);
            if removed && child.is_empty() {
                n.plus = None;
            }
            removed
        }
        Level::Word(w) => {
            if node.child(w).is_none() {
                return false;
            }
            let n = Arc::make_mut(node);
            let slot = match &mut n.children {
                Children::Few(list) => list.iter_mut().find(|(x, _)| x.as_bytes() == *w).map(|(_, c)| c),
                Children::Many(map) => map.get_mut(*w),
            };
            let Some(child) = slot else { return false };
            let removed = remove(child, rest);
            if removed && child.is_empty() {
                n.drop_child(w);
            }
            removed
        }
    }
}

/// `rest`: the topic's levels not yet matched (`None`: all matched). `wild`: whether `+`
/// and `#` may match at this level (not at a `$` first level).
fn walk<V>(node: &Node<V>, rest: Option<&[u8]>, wild: bool, found: &mut impl FnMut(&Blob, &V)) {
    if wild && let Some(leaf) = &node.hash {
        found(&leaf.filter, &leaf.value);
    }
    let Some(rest) = rest else {
        if let Some(leaf) = &node.end {
            found(&leaf.filter, &leaf.value);
        }
        return;
    };
    let (first, tail) = match rest.iter().position(|b| *b == b'/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if let Some(child) = node.child(first) {
        walk(child, tail, true, found);
    }
    if wild && let Some(child) = &node.plus {
        walk(child, tail, true, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::topic;
    use crate::schema::topic::strategies::{filter, topic_name};
    use proptest::prelude::*;

    fn matched(t: &TopicTrie<u32>, topic: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        t.matches(topic.as_bytes(), |f, v| out.push((String::from_utf8_lossy(f).into_owned(), *v)));
        out.sort();
        out
    }

    fn names(found: Vec<(String, u32)>) -> Vec<String> {
        found.into_iter().map(|(f, _)| f).collect()
    }

    fn set(t: &mut TopicTrie<u32>, f: &str, v: u32) -> bool {
        t.set(&Blob::from(f.as_bytes()), v)
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
            assert!(set(&mut t, f, 1));
        }
        assert!(!set(&mut t, "#", 2), "a filter is held once");
        assert_eq!(matched(&t, "sport")[0], ("#".to_string(), 2), "setting again replaces the value");
        assert_eq!(names(matched(&t, "sport/tennis/player1")), ["#", "sport/#", "sport/+/player1", "sport/tennis/player1/#"]);
        assert_eq!(names(matched(&t, "sport")), ["#", "+", "sport/#"], "`#` matches its parent level");
        assert_eq!(names(matched(&t, "/finance")), ["#", "+/+", "/+"]);
        assert_eq!(names(matched(&t, "$SYS/monitor/Clients")), ["$SYS/#"], "no `+`/`#` at a `$` first level");
        assert!(t.remove(b"sport/#"));
        assert!(!t.remove(b"sport/#"));
        assert_eq!(names(matched(&t, "sport")), ["#", "+"]);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn a_hash_inside_a_filter_matches_nothing() {
        let mut t = TopicTrie::default();
        set(&mut t, "a/#/b", 1);
        set(&mut t, "a/+/#", 2);
        assert_eq!(names(matched(&t, "a/x/b")), ["a/+/#"]);
        assert!(t.remove(b"a/#/b"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_clone_keeps_its_version_while_the_original_changes() {
        let mut t = TopicTrie::default();
        for i in 0..(3 * FEW as u32) {
            set(&mut t, &format!("w/{i}/+"), i);
        }
        let before = t.clone();
        for i in 0..(3 * FEW as u32) {
            assert!(t.remove(format!("w/{i}/+").as_bytes()));
        }
        set(&mut t, "w/1/+", 99);
        assert_eq!(matched(&before, "w/1/x"), [("w/1/+".to_string(), 1)]);
        assert_eq!(before.len(), 3 * FEW);
        assert_eq!(matched(&t, "w/1/x"), [("w/1/+".to_string(), 99)]);
        assert_eq!(matched(&t, "w/2/x"), []);
        assert!(t.root.child(b"w").is_some_and(|w| matches!(w.children, Children::Few(_))), "a shrunk map is a list again");
    }

    #[test]
    fn long_words_are_held_and_matched() {
        let long = "x".repeat(Word::INLINE + 1);
        let mut t = TopicTrie::default();
        set(&mut t, &format!("{long}/+"), 1);
        set(&mut t, &format!("{}/+", &long[1..]), 2);
        assert_eq!(matched(&t, &format!("{long}/a")), [(format!("{long}/+"), 1)]);
        assert_eq!(matched(&t, &format!("{}/a", &long[1..])), [(format!("{}/+", &long[1..]), 2)]);
    }

    /// A level from a wider alphabet than `topic::strategies`: enough siblings to move a
    /// node's children from the list to the map and back, and words too long to inline.
    fn wide_level() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop_oneof![Just("a"), Just("b"), Just(""), Just("$SYS"), Just("a$")].prop_map(String::from),
            3 => (0..(3 * FEW)).prop_map(|i| format!("w{i}")),
            1 => (0..3usize).prop_map(|i| format!("{i}{}", "long".repeat(Word::INLINE / 4 + 1))),
        ]
    }

    fn wide_filter() -> impl Strategy<Value = String> {
        let lvl = prop_oneof![4 => wide_level(), 2 => Just("+".to_string())];
        (prop::collection::vec(lvl, 1..8), any::<bool>()).prop_map(|(mut ls, hash)| {
            if hash {
                ls.push("#".into());
            }
            ls.join("/")
        })
    }

    fn wide_topic() -> impl Strategy<Value = String> {
        prop::collection::vec(wide_level(), 1..9).prop_map(|ls| ls.join("/"))
    }

    fn both<T: std::fmt::Debug>(a: impl Strategy<Value = T>, b: impl Strategy<Value = T>) -> impl Strategy<Value = T> {
        prop_oneof![a, b]
    }

    proptest! {
        #[test]
        fn trie_agrees_with_the_naive_matcher(
            filters in prop::collection::vec(both(filter(), wide_filter()), 0..80),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            topics in prop::collection::vec(both(topic_name(), wide_topic()), 1..20),
        ) {
            let mut t = TopicTrie::default();
            let mut held: std::collections::BTreeMap<String, u32> = Default::default();
            for (i, f) in filters.iter().enumerate() {
                if topic::validate_filter(f).is_err() {
                    continue; // an empty wide filter
                }
                if is_wildcard(f.as_bytes()) {
                    set(&mut t, f, i as u32);
                    held.insert(f.clone(), i as u32);
                }
            }
            let snapshot = (t.clone(), held.clone());
            for ix in removed {
                if held.is_empty() { break; }
                let f = held.keys().nth(ix.index(held.len())).cloned().unwrap();
                prop_assert!(t.remove(f.as_bytes()));
                held.remove(&f);
            }
            prop_assert_eq!(t.len(), held.len());
            for (trie, held) in [(&t, &held), (&snapshot.0, &snapshot.1)] {
                for topic in topics.iter().filter(|t| topic::validate_name(t).is_ok()) {
                    let expected: Vec<(String, u32)> =
                        held.iter().filter(|(f, _)| topic::matches(f, topic)).map(|(f, v)| (f.clone(), *v)).collect();
                    prop_assert_eq!(matched(trie, topic), expected, "topic {}", topic);
                }
            }
        }
    }
}
