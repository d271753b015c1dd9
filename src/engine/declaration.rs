//! What a node declares of its replicated tables, compared between nodes: two nodes of one
//! cluster that declare a table differently (its kind, storage, index or record rule) would
//! apply the same log entries differently, so a node whose declarations differ from its
//! cluster's is refused at start, at join and when a replicant subscribes.

use super::table::{Index, Kind, Scope, Storage, TableDef};
use serde::{Deserialize, Serialize};

/// One replicated table as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The table's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its storage class.
    pub storage: Storage,
    /// Its index.
    pub index: Index,
    /// The name of its record rule, if it has one.
    pub rule: Option<String>,
}

/// The declarations of `defs`' replicated tables, by name.
pub fn declarations(defs: &[TableDef]) -> Vec<Declaration> {
    let mut out: Vec<Declaration> = defs
        .iter()
        .filter(|d| d.scope == Scope::Replicated)
        .map(|d| Declaration {
            name: d.name.clone(),
            kind: d.kind,
            storage: d.storage,
            index: d.index,
            rule: d.rule.map(|r| r.name().to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The first table (by name) that `ours` and `theirs` declare differently, and how.
pub fn first_difference(ours: &[Declaration], theirs: &[Declaration]) -> Option<(String, String)> {
    let (mut a, mut b) = (ours.iter().peekable(), theirs.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(x), None) => return Some((x.name.clone(), "declared here, not there".into())),
            (None, Some(y)) => return Some((y.name.clone(), "declared there, not here".into())),
            (Some(x), Some(y)) if x.name < y.name => {
                return Some((x.name.clone(), "declared here, not there".into()));
            }
            (Some(x), Some(y)) if x.name > y.name => {
                return Some((y.name.clone(), "declared there, not here".into()));
            }
            (Some(x), Some(y)) if x != y => {
                return Some((x.name.clone(), format!("here {}, there {}", shown(x), shown(y))));
            }
            _ => {
                a.next();
                b.next();
            }
        }
    }
}

fn shown(d: &Declaration) -> String {
    format!("{:?} {:?} index {:?} rule {}", d.kind, d.storage, d.index, d.rule.as_deref().unwrap_or("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, kind: Kind) -> Declaration {
        Declaration { name: name.into(), kind, storage: Storage::Disc, index: Index::None, rule: None }
    }

    #[test]
    fn the_first_differing_table_is_named() {
        let ours = vec![decl("a", Kind::Set), decl("b", Kind::Bag), decl("c", Kind::Set)];
        assert_eq!(first_difference(&ours, &ours), None);
        let theirs = vec![decl("a", Kind::Set), decl("b", Kind::Set), decl("c", Kind::Bag)];
        assert_eq!(first_difference(&ours, &theirs).map(|d| d.0), Some("b".into()));
        let fewer = vec![decl("a", Kind::Set), decl("c", Kind::Set)];
        assert_eq!(first_difference(&ours, &fewer), Some(("b".into(), "declared here, not there".into())));
        assert_eq!(first_difference(&fewer, &ours), Some(("b".into(), "declared there, not here".into())));
        let ruled = vec![Declaration { rule: Some("json".into()), ..decl("a", Kind::Set) }];
        assert_eq!(first_difference(&ruled, &ours[..1]).map(|d| d.0), Some("a".into()));
    }

    #[test]
    fn local_tables_are_not_compared() {
        let defs = vec![
            TableDef::replicated("r", Kind::Set, Storage::Disc),
            TableDef::local("l", Kind::Bag, Storage::Ram),
        ];
        assert_eq!(declarations(&defs).iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["r"]);
    }
}
