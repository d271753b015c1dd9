//! Values by topic filter, matched against a topic name without visiting every filter: a
//! trie over the filter's levels, with `+` and `#` as children of their own. A publish
//! visits only the levels its topic names (and the wildcards beside them), however many
//! filters are subscribed.

use std::collections::HashMap;

/// Values by topic filter (`a/+/c`, `a/#`, …); see [`TopicIndex::for_each_match`].
pub struct TopicIndex<V> {
    root: Level<V>,
}

struct Level<V> {
    /// The levels below, by exact word.
    words: HashMap<String, Level<V>>,
    /// The level below for `+`.
    plus: Option<Box<Level<V>>>,
    /// The value of the filter that ends here with `#`.
    hash: Option<V>,
    /// The value of the filter that ends exactly here.
    here: Option<V>,
}

impl<V> Default for Level<V> {
    fn default() -> Self {
        Level { words: HashMap::new(), plus: None, hash: None, here: None }
    }
}

impl<V> Level<V> {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.plus.is_none() && self.hash.is_none() && self.here.is_none()
    }
}

impl<V> Default for TopicIndex<V> {
    fn default() -> Self {
        TopicIndex { root: Level::default() }
    }
}

impl<V> TopicIndex<V> {
    /// The value of `filter` (a valid filter), made by `make` if it has none yet.
    pub fn entry(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        let mut level = &mut self.root;
        let mut words = filter.split('/').peekable();
        while let Some(word) = words.next() {
            if word == "#" {
                return level.hash.get_or_insert_with(make);
            }
            level = if word == "+" {
                level.plus.get_or_insert_with(Default::default)
            } else {
                level.words.entry(word.to_string()).or_default()
            };
            if words.peek().is_none() {
                break;
            }
        }
        level.here.get_or_insert_with(make)
    }

    /// The value of `filter`, if it has one.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut level = &mut self.root;
        let mut words = filter.split('/').peekable();
        while let Some(word) = words.next() {
            if word == "#" {
                return level.hash.as_mut();
            }
            level = if word == "+" { level.plus.as_deref_mut()? } else { level.words.get_mut(word)? };
            if words.peek().is_none() {
                break;
            }
        }
        level.here.as_mut()
    }

    /// Removes `filter`'s value; levels left empty go with it.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        fn remove_at<V>(level: &mut Level<V>, words: &[&str]) -> Option<V> {
            let Some((word, rest)) = words.split_first() else { return level.here.take() };
            if *word == "#" {
                return level.hash.take();
            }
            if *word == "+" {
                let below = level.plus.as_deref_mut()?;
                let out = remove_at(below, rest);
                if below.is_empty() {
                    level.plus = None;
                }
                return out;
            }
            let below = level.words.get_mut(*word)?;
            let out = remove_at(below, rest);
            if below.is_empty() {
                level.words.remove(*word);
            }
            out
        }
        let words: Vec<&str> = filter.split('/').collect();
        remove_at(&mut self.root, &words)
    }

    /// Calls `each` with the value of every filter that matches the topic name `topic`, as
    /// MQTT matches them (`mnema::schema::topic::matches`): `+` one level, `#` the rest
    /// (the parent level included), and a topic that starts with `$` matched by no filter
    /// that starts with a wildcard.
    pub fn for_each_match(&self, topic: &str, mut each: impl FnMut(&V)) {
        fn visit<V>(level: &Level<V>, words: &[&str], first: bool, dollar: bool, each: &mut impl FnMut(&V)) {
            let wildcards = !(first && dollar);
            if wildcards && let Some(v) = &level.hash {
                each(v);
            }
            let Some((word, rest)) = words.split_first() else {
                if let Some(v) = &level.here {
                    each(v);
                }
                return;
            };
            if let Some(below) = level.words.get(*word) {
                visit(below, rest, false, dollar, each);
            }
            if wildcards && let Some(below) = &level.plus {
                visit(below, rest, false, dollar, each);
            }
        }
        let words: Vec<&str> = topic.split('/').collect();
        visit(&self.root, &words, true, topic.starts_with('$'), &mut each);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnema::schema::topic::matches;

    /// Levels that make matches, `$` rules and empty levels come up often.
    const LEVELS: [&str; 5] = ["a", "b", "", "$SYS", "a$"];

    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }

        fn topic(&mut self) -> String {
            let n = 1 + self.next(4);
            (0..n).map(|_| LEVELS[self.next(LEVELS.len())]).collect::<Vec<_>>().join("/")
        }

        fn filter(&mut self) -> String {
            let n = 1 + self.next(4);
            let mut words: Vec<&str> = (0..n)
                .map(|_| match self.next(4) {
                    0 => "+",
                    _ => LEVELS[self.next(LEVELS.len())],
                })
                .collect();
            if self.next(3) == 0 {
                words.push("#");
            }
            words.join("/")
        }
    }

    #[test]
    fn the_index_matches_as_the_naive_matcher_and_forgets_what_is_removed() {
        let mut rng = Rng(7);
        for round in 0..200 {
            let filters: Vec<String> = (0..1 + rng.next(12)).map(|_| rng.filter()).collect();
            let mut index = TopicIndex::default();
            for f in &filters {
                *index.entry(f, || 0) += 1;
            }
            let removed = &filters[..filters.len() / 3];
            for f in removed {
                index.remove(f);
            }
            let kept: std::collections::BTreeSet<&String> = filters.iter().filter(|f| !removed.contains(f)).collect();
            for _ in 0..20 {
                let topic = rng.topic();
                let mut found = 0;
                index.for_each_match(&topic, |n| found += n);
                let want: usize =
                    kept.iter().filter(|f| matches(f, &topic)).map(|f| filters.iter().filter(|g| g == f).count()).sum();
                assert_eq!(found, want, "round {round}: {topic} against {kept:?}");
            }
        }
    }

    #[test]
    fn a_removed_filter_leaves_no_empty_level_behind() {
        let mut index = TopicIndex::default();
        *index.entry("a/+/c/#", || 0) = 1;
        *index.entry("a/b", || 0) = 2;
        assert_eq!(index.remove("a/+/c/#"), Some(1));
        assert_eq!(index.remove("a/+/c/#"), None);
        assert_eq!(index.get_mut("a/b").copied(), Some(2));
        assert_eq!(index.remove("a/b"), Some(2));
        assert!(index.root.is_empty());
    }
}
