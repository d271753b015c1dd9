//! MQTT topic names and filters: validation, and the reference matcher.
//!
//! Rules (MQTT 3.1.1 §4.7, 5.0 §4.7): at least one byte, at most 65,535 bytes, no NUL;
//! levels are separated by `/` and may be empty. In a filter `+` must be a whole level and
//! `#` a whole level and the last one. A topic name has neither.

use std::fmt;

/// Longest topic or filter MQTT can carry (a UTF-8 string with a 16-bit length).
pub const MAX_LEN: usize = 65_535;

/// Why a topic name or filter is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicError {
    /// Empty name or filter.
    Empty,
    /// Longer than MQTT allows (65,535 bytes): its length.
    TooLong(usize),
    /// Contains U+0000.
    Nul,
    /// `+` or `#` inside a level, e.g. `a+/b`.
    WildcardInLevel,
    /// `#` not the last level.
    HashNotLast,
    /// A wildcard in a topic name (where one publishes).
    WildcardInName,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => write!(f, "empty topic"),
            TopicError::TooLong(n) => write!(f, "topic of {n} bytes, more than {MAX_LEN}"),
            TopicError::Nul => write!(f, "topic contains NUL"),
            TopicError::WildcardInLevel => write!(f, "`+` and `#` must be a whole level"),
            TopicError::HashNotLast => write!(f, "`#` must be the last level"),
            TopicError::WildcardInName => write!(f, "a topic name cannot contain `+` or `#`"),
        }
    }
}

impl std::error::Error for TopicError {}

fn common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_LEN {
        return Err(TopicError::TooLong(s.len()));
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Checks a subscription's topic filter.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    common(filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        match *l {
            "+" => {}
            "#" if i + 1 == levels.len() => {}
            "#" => return Err(TopicError::HashNotLast),
            l if l.contains(['+', '#']) => return Err(TopicError::WildcardInLevel),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a topic name (what a message is published to).
pub fn validate_name(topic: &str) -> Result<(), TopicError> {
    common(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Whether `filter` matches `topic`, level by level: the reference the trie is tested against.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), topic.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Random topic names and filters over a small alphabet of levels (`a`, `b`, empty, `$SYS`,
/// `a$`), so that matches, `$` rules and empty levels all come up often.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$SYS".to_string()),
            Just("a$".to_string()),
        ]
    }

    /// An empty result is replaced by the nearest valid value (two empty levels).
    fn non_empty(s: String) -> String {
        if s.is_empty() { "/".into() } else { s }
    }

    pub fn filter() -> impl Strategy<Value = String> {
        let lvl = prop_oneof![4 => level(), 2 => Just("+".to_string())];
        (prop::collection::vec(lvl, 1..5), any::<bool>()).prop_map(|(mut ls, hash)| {
            if hash {
                ls.push("#".into());
            }
            non_empty(ls.join("/"))
        })
    }

    pub fn topic_name() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..6).prop_map(|ls| non_empty(ls.join("/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in ["a", "a/b", "/", "a//b", "+", "#", "a/+/b", "a/#", "+/+/#", "$SYS/#"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_filter("a/#/b"), Err(TopicError::HashNotLast));
        assert_eq!(validate_filter("a+/b"), Err(TopicError::WildcardInLevel));
        assert_eq!(validate_filter("a/b#"), Err(TopicError::WildcardInLevel));
        assert_eq!(validate_filter("a\0b"), Err(TopicError::Nul));
        assert_eq!(validate_filter(&"a".repeat(MAX_LEN + 1)), Err(TopicError::TooLong(MAX_LEN + 1)));
        assert_eq!(validate_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a//b"), Ok(()));
    }

    #[test]
    fn reference_matcher() {
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(!matches("a/b", "a/b/c"));
    }
}
