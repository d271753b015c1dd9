//! A subscription filter as a client gives it: plain, or `$share/<group>/<filter>`.

use mnema::schema::routes::Dest;
use mnema::schema::topic::validate_filter;

/// A subscription filter as the client gave it: plain, or `$share/<group>/<filter>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    Plain(String),
    Shared { group: String, filter: String },
}

impl Filter {
    /// Parses and validates a SUBSCRIBE filter.
    pub fn parse(raw: &str) -> std::result::Result<Filter, String> {
        let f = match raw.strip_prefix("$share/") {
            Some(rest) => {
                let (group, filter) = rest.split_once('/').ok_or("`$share/` needs a group and a filter")?;
                if group.is_empty() || group.contains(['+', '#']) {
                    return Err(format!("bad share group `{group}`"));
                }
                Filter::Shared { group: group.into(), filter: filter.into() }
            }
            None => Filter::Plain(raw.into()),
        };
        validate_filter(f.filter()).map_err(|e| e.to_string())?;
        Ok(f)
    }

    /// The topic filter routes are keyed by.
    pub fn filter(&self) -> &str {
        match self {
            Filter::Plain(f) | Filter::Shared { filter: f, .. } => f,
        }
    }

    /// The route this node records for a subscription of this filter.
    pub fn dest(&self, me: &str) -> Dest {
        match self {
            Filter::Plain(_) => Dest::Node(me.into()),
            Filter::Shared { group, .. } => Dest::Shared { group: group.clone(), node: me.into() },
        }
    }

    /// As a session stores it (the client's own text).
    pub fn raw(&self) -> String {
        match self {
            Filter::Plain(f) => f.clone(),
            Filter::Shared { group, filter } => format!("$share/{group}/{filter}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_parse_into_group_and_filter_and_bad_ones_are_refused() {
        assert_eq!(
            Filter::parse("$share/g1/a/+").unwrap(),
            Filter::Shared { group: "g1".into(), filter: "a/+".into() }
        );
        assert_eq!(Filter::parse("a/#").unwrap(), Filter::Plain("a/#".into()));
        assert_eq!(Filter::parse("$share/g1/a/+").unwrap().raw(), "$share/g1/a/+");
        for bad in ["$share/g1", "$share//a", "$share/g+/a", "a/#/b", ""] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
