//! Table declarations as data: what a `CreateTable` log entry, a `$catalog` record, an
//! export and a node's status carry of a replicated table, and the checks between nodes.
//!
//! A [`Declaration`] names its code (record rule, index extractors) by name and version;
//! a node turns it back into a [`TableDef`] through its registry (`engine::registry`).
//! Two nodes of one cluster must not apply the same log differently, so:
//! - a table both declare at start must be declared the same (kind, storage, topic index,
//!   shard, rule and indexes with their versions): [`first_difference`];
//! - code both register under one name must have one version: [`code_mismatch`].
//!
//! Tables one node declares and another does not are no conflict: the cluster's tables
//! are the catalog in the log, and a node creates what it declares and the log lacks.

use super::table::{Index, Kind, Scope, ShardId, Storage, TableDef};
use crate::error::{CodeKind, Error, Result};
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

/// A replicated table as declared: what the log, snapshots and exports hold of it.
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
    /// Its shard.
    pub shard: ShardId,
}

/// Longest table or index name.
pub const MAX_NAME: usize = 200;

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
            shard: def.shard,
        }
    }

    /// Whether the declaration makes a table (a deterministic check: every node decides
    /// the same for a `CreateTable` entry): a name of 1..=200 bytes not starting with `$`,
    /// a topic index only on an in-memory bag, secondary indexes only on tables held in
    /// memory, index names of 1..=200 bytes, each once.
    pub fn validate(&self) -> Result<()> {
        validate_table(&self.name, self.kind, self.storage, self.index, self.indexes.iter().map(|i| i.name.as_str()))
    }

    /// The code the declaration names, with its kind.
    pub fn code(&self) -> impl Iterator<Item = (CodeKind, &CodeRef)> + '_ {
        let rule = self.rule.iter().map(|r| (CodeKind::Rule, r));
        rule.chain(self.indexes.iter().map(|i| (CodeKind::Extractor, &i.extractor)))
    }

    /// The declaration in a line, for errors and `mnema ctl table list`.
    pub fn shown(&self) -> String {
        let rule = self.rule.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "none".into());
        let indexes: Vec<String> = self.indexes.iter().map(|i| format!("{} ({})", i.name, i.extractor)).collect();
        format!(
            "{:?} {:?} shard {} index {:?} rule {rule} indexes [{}]",
            self.kind,
            self.storage,
            self.shard,
            self.index,
            indexes.join(", ")
        )
    }
}

/// The checks of [`Declaration::validate`], on a table's parts.
pub(crate) fn validate_table<'a>(
    name: &str,
    kind: Kind,
    storage: Storage,
    index: Index,
    indexes: impl Iterator<Item = &'a str>,
) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::InvalidTxn(format!("table name `{name}` must be 1..={MAX_NAME} bytes")));
    }
    if name.starts_with('$') {
        return Err(Error::InvalidTxn(format!("table name `{name}`: names starting with `$` are reserved")));
    }
    let in_memory = storage != Storage::DiscOnly;
    if index == Index::Topic && (kind != Kind::Bag || !in_memory) {
        return Err(Error::InvalidTxn(format!("table `{name}`: a topic index needs an in-memory bag")));
    }
    let mut seen: Vec<&str> = Vec::new();
    for ix in indexes {
        if !in_memory {
            return Err(Error::InvalidTxn(format!(
                "table `{name}`: secondary indexes need a table held in memory, not disc_only"
            )));
        }
        if ix.is_empty() || ix.len() > MAX_NAME {
            return Err(Error::InvalidTxn(format!("table `{name}`: index name `{ix}` must be 1..={MAX_NAME} bytes")));
        }
        if seen.contains(&ix) {
            return Err(Error::InvalidTxn(format!("table `{name}`: index `{ix}` declared twice")));
        }
        seen.push(ix);
    }
    Ok(())
}

/// The declarations of `defs`' replicated tables, by name.
pub fn declarations(defs: &[TableDef]) -> Vec<Declaration> {
    let mut out: Vec<Declaration> =
        defs.iter().filter(|d| d.scope == Scope::Replicated).map(Declaration::of).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A piece of code a node registered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Registered {
    /// A rule or an extractor.
    pub kind: CodeKind,
    /// Its name and version.
    pub code: CodeRef,
}

/// What a node says of its schema to the others: the replicated tables it declared at
/// start, and the code it registered (in its status, a join and a subscription).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// Its replicated table declarations, by name.
    pub declared: Vec<Declaration>,
    /// Every rule and extractor it registered, by kind and name.
    pub registry: Vec<Registered>,
    /// The code the tables of its catalog (as it applied it) name: what a node must have
    /// to follow its log.
    pub uses: Vec<Registered>,
}

impl SchemaInfo {
    /// Whether the node said nothing (an older peer, or a client).
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty() && self.registry.is_empty()
    }

    /// The code `catalog`'s tables name, each once.
    pub fn code_of(catalog: &[Declaration]) -> Vec<Registered> {
        let mut out: Vec<Registered> = catalog
            .iter()
            .flat_map(|d| d.code().map(|(kind, code)| Registered { kind, code: code.clone() }))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The first code `other` uses that this node has not registered under that version.
    pub fn lacks_code_of<'a>(&self, other: &'a SchemaInfo) -> Option<&'a Registered> {
        other.uses.iter().find(|u| self.registered(u.kind, &u.code.name) != Some(u.code.version))
    }

    /// [`Error::Unregistered`] naming `node` (whose schema this is) when it lacks code
    /// `other` uses: it could not apply `other`'s log.
    pub fn must_have_code_of(&self, node: &str, other: &SchemaInfo) -> Result<()> {
        match self.lacks_code_of(other) {
            Some(r) => Err(Error::Unregistered {
                node: node.to_string(),
                kind: r.kind,
                name: r.code.name.clone(),
                version: r.code.version,
            }),
            None => Ok(()),
        }
    }

    /// The version of `kind` `name` the node registered.
    pub fn registered(&self, kind: CodeKind, name: &str) -> Option<u32> {
        self.registry.iter().find(|r| r.kind == kind && r.code.name == name).map(|r| r.code.version)
    }
}

/// The first table (by name) that both `ours` and `theirs` declare, but differently, and how.
pub fn first_difference(ours: &[Declaration], theirs: &[Declaration]) -> Option<(String, String)> {
    ours.iter().find_map(|x| {
        let y = theirs.iter().find(|y| y.name == x.name)?;
        (x != y).then(|| (x.name.clone(), format!("here {}, there {}", x.shown(), y.shown())))
    })
}

/// The first code both register under one name with different versions: (kind, name,
/// ours, theirs).
pub fn code_mismatch(ours: &[Registered], theirs: &[Registered]) -> Option<(CodeKind, String, u32, u32)> {
    ours.iter().find_map(|x| {
        let y = theirs.iter().find(|y| y.kind == x.kind && y.code.name == x.code.name)?;
        (x.code.version != y.code.version).then(|| (x.kind, x.code.name.clone(), x.code.version, y.code.version))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, kind: Kind) -> Declaration {
        Declaration {
            name: name.into(),
            kind,
            storage: Storage::Disc,
            index: Index::None,
            rule: None,
            indexes: vec![],
            shard: 0,
        }
    }

    #[test]
    fn a_table_both_declare_differently_is_named_and_one_sided_tables_are_no_conflict() {
        let ours = vec![decl("a", Kind::Set), decl("b", Kind::Bag), decl("c", Kind::Set)];
        assert_eq!(first_difference(&ours, &ours), None);
        let theirs = vec![decl("a", Kind::Set), decl("b", Kind::Set), decl("c", Kind::Bag)];
        assert_eq!(first_difference(&ours, &theirs).map(|d| d.0), Some("b".into()));
        let fewer = vec![decl("a", Kind::Set), decl("c", Kind::Set), decl("new", Kind::Bag)];
        assert_eq!(first_difference(&ours, &fewer), None, "created through the log, not a conflict");
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
        let sharded = vec![Declaration { shard: 3, ..decl("a", Kind::Set) }];
        assert_eq!(first_difference(&sharded, &ours[..1]).map(|d| d.0), Some("a".into()), "the shard counts");
    }

    #[test]
    fn one_name_registered_under_two_versions_is_a_mismatch() {
        let reg = |kind, name: &str, version| Registered { kind, code: CodeRef { name: name.into(), version } };
        let ours = vec![reg(CodeKind::Rule, "json", 1), reg(CodeKind::Extractor, "owner", 1)];
        let theirs = vec![reg(CodeKind::Rule, "json", 1), reg(CodeKind::Extractor, "owner", 2), reg(CodeKind::Rule, "x", 7)];
        assert_eq!(code_mismatch(&ours, &theirs), Some((CodeKind::Extractor, "owner".into(), 1, 2)));
        assert_eq!(code_mismatch(&ours, &ours), None);
        // A rule and an extractor may share a name.
        let other_kind = vec![reg(CodeKind::Extractor, "json", 5)];
        assert_eq!(code_mismatch(&ours, &other_kind), None);
    }

    #[test]
    fn bad_declarations_are_refused_the_same_way_everywhere() {
        let ok = decl("t", Kind::Set);
        assert!(ok.validate().is_ok());
        for bad in [
            decl("", Kind::Set),
            decl("$x", Kind::Set),
            decl(&"n".repeat(MAX_NAME + 1), Kind::Set),
            Declaration { index: Index::Topic, ..decl("t", Kind::Set) },
            Declaration { storage: Storage::DiscOnly, index: Index::Topic, ..decl("t", Kind::Bag) },
            Declaration {
                storage: Storage::DiscOnly,
                indexes: vec![IndexDecl { name: "i".into(), extractor: CodeRef { name: "e".into(), version: 1 } }],
                ..decl("t", Kind::Set)
            },
            Declaration {
                indexes: vec![
                    IndexDecl { name: "i".into(), extractor: CodeRef { name: "e".into(), version: 1 } },
                    IndexDecl { name: "i".into(), extractor: CodeRef { name: "f".into(), version: 1 } },
                ],
                ..decl("t", Kind::Set)
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidTxn(_))), "{bad:?}");
        }
    }
}
