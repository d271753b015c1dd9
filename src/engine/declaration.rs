//! What a node declares of its replicated tables, compared between nodes: two nodes of one
//! cluster that declare a table differently (its kind, storage, topic index, record rule or
//! secondary indexes, with the versions of their code) would
//! apply the same log entries differently, so a node whose declarations differ from its
//! cluster's is refused at start, at join and when a replicant subscribes.

use super::table::{Index, Kind, Scope, Storage, TableDef};
use serde::{Deserialize, Serialize};

/// Named, versioned code a declaration refers to (a record rule or an index extractor).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CodeRef {
    /// The code's name.
    pub name: String,
    /// Its version.
    pub version: u32,
}

impl std::fmt::Display for CodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// One secondary index as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDecl {
    /// The index's name.
    pub name: String,
    /// Its extractor.
    pub extractor: CodeRef,
}

/// One replicated table as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The table's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its storage class.
    pub storage: Storage,
    /// Its topic index.
    pub index: Index,
    /// Its record rule, if it has one.
    pub rule: Option<CodeRef>,
    /// Its secondary indexes, in declaration order.
    pub indexes: Vec<IndexDecl>,
}

impl Declaration {
    /// What `def` declares.
    pub fn of(def: &TableDef) -> Declaration {
        Declaration {
            name: def.name.clone(),
            kind: def.kind,
            storage: def.storage,
            index: def.index,
            rule: def.rule.map(|r| CodeRef { name: r.name().to_string(), version: r.version_number() }),
            indexes: def
                .indexes
                .iter()
                .map(|i| IndexDecl {
                    name: i.name.clone(),
                    extractor: CodeRef { name: i.extractor.name().to_string(), version: i.extractor.version_number() },
                })
                .collect(),
        }
    }
}

/// The declarations of `defs`' replicated tables, by name.
pub fn declarations(defs: &[TableDef]) -> Vec<Declaration> {
    let mut out: Vec<Declaration> =
        defs.iter().filter(|d| d.scope == Scope::Replicated).map(Declaration::of).collect();
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
    let rule = d.rule.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "none".into());
    let indexes: Vec<String> = d.indexes.iter().map(|i| format!("{} ({})", i.name, i.extractor)).collect();
    format!("{:?} {:?} index {:?} rule {rule} indexes [{}]", d.kind, d.storage, d.index, indexes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, kind: Kind) -> Declaration {
        Declaration { name: name.into(), kind, storage: Storage::Disc, index: Index::None, rule: None, indexes: vec![] }
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
        let json = |version| Some(CodeRef { name: "json".into(), version });
        let ruled = vec![Declaration { rule: json(1), ..decl("a", Kind::Set) }];
        assert_eq!(first_difference(&ruled, &ours[..1]).map(|d| d.0), Some("a".into()));
        let bumped = vec![Declaration { rule: json(2), ..decl("a", Kind::Set) }];
        assert_eq!(first_difference(&ruled, &bumped).map(|d| d.0), Some("a".into()), "a rule's version counts");
        let indexed = |version| {
            let extractor = CodeRef { name: "owner".into(), version };
            vec![Declaration { indexes: vec![IndexDecl { name: "by_owner".into(), extractor }], ..decl("a", Kind::Set) }]
        };
        assert_eq!(first_difference(&indexed(1), &ours[..1]).map(|d| d.0), Some("a".into()), "an index counts");
        assert_eq!(first_difference(&indexed(1), &indexed(2)).map(|d| d.0), Some("a".into()));
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
