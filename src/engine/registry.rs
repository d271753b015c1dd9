//! The code a node has for tables: its record rules and index extractors by name and
//! version. A [`Declaration`] from the log, a snapshot or an export names its code; the
//! registry turns it into a [`TableDef`] that can check and index records, or says what
//! is missing ([`Error::Unregistered`]).
//!
//! A node registers the code of every table it declares at start, and whatever else its
//! [`Schema`](crate::Schema) adds: tables created at runtime may name only code every node
//! registered.

use super::declaration::{Declaration, Registered};
use super::table::{Extractor, Scope, TableDef, ValueRule};
use crate::error::{CodeKind, Error, Result};
use std::collections::BTreeMap;

/// Rules and extractors by name, of one node.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// The node whose code this is (named in [`Error::Unregistered`]).
    node: String,
    rules: BTreeMap<&'static str, ValueRule>,
    extractors: BTreeMap<&'static str, Extractor>,
}

fn twice(kind: CodeKind, name: &str, a: u32, b: u32) -> Error {
    Error::InvalidTxn(format!("{kind} `{name}` is registered as version {a} and as version {b}: one name, one version"))
}

impl Registry {
    /// The same registry, as node `node`'s.
    pub fn for_node(mut self, node: &str) -> Self {
        self.node = node.to_string();
        self
    }

    /// Adds `rule`; the same name under another version is refused.
    pub fn add_rule(&mut self, rule: ValueRule) -> Result<()> {
        match self.rules.get(rule.name()) {
            Some(r) if r.version_number() != rule.version_number() => {
                Err(twice(CodeKind::Rule, rule.name(), r.version_number(), rule.version_number()))
            }
            _ => {
                self.rules.insert(rule.name(), rule);
                Ok(())
            }
        }
    }

    /// Adds `extractor`; the same name under another version is refused.
    pub fn add_extractor(&mut self, extractor: Extractor) -> Result<()> {
        match self.extractors.get(extractor.name()) {
            Some(e) if e.version_number() != extractor.version_number() => Err(twice(
                CodeKind::Extractor,
                extractor.name(),
                e.version_number(),
                extractor.version_number(),
            )),
            _ => {
                self.extractors.insert(extractor.name(), extractor);
                Ok(())
            }
        }
    }

    /// Adds the code of `def` (its rule and its indexes' extractors).
    pub fn add_table(&mut self, def: &TableDef) -> Result<()> {
        if let Some(rule) = def.rule {
            self.add_rule(rule)?;
        }
        def.indexes.iter().try_for_each(|i| self.add_extractor(i.extractor))
    }

    /// The registry of `defs`' code.
    pub fn of_tables(defs: &[TableDef]) -> Result<Registry> {
        let mut r = Registry::default();
        defs.iter().try_for_each(|d| r.add_table(d))?;
        Ok(r)
    }

    /// Everything registered, by kind and name.
    pub fn registered(&self) -> Vec<Registered> {
        let rules = self.rules.values().map(|r| Registered {
            kind: CodeKind::Rule,
            code: super::declaration::CodeRef { name: r.name().into(), version: r.version_number() },
        });
        let extractors = self.extractors.values().map(|e| Registered {
            kind: CodeKind::Extractor,
            code: super::declaration::CodeRef { name: e.name().into(), version: e.version_number() },
        });
        rules.chain(extractors).collect()
    }

    /// Whether `kind` `name` is registered under `version`.
    #[cfg(any(test, feature = "test-util"))]
    pub fn has(&self, kind: CodeKind, name: &str, version: u32) -> bool {
        match kind {
            CodeKind::Rule => self.rules.get(name).is_some_and(|r| r.version_number() == version),
            CodeKind::Extractor => self.extractors.get(name).is_some_and(|e| e.version_number() == version),
        }
    }

    /// The replicated table `decl` declares, with this node's code for it
    /// ([`Error::Unregistered`] naming this node and the first code it lacks).
    pub fn resolve(&self, decl: &Declaration) -> Result<TableDef> {
        let missing = |kind, code: &super::declaration::CodeRef| Error::Unregistered {
            node: self.node.clone(),
            kind,
            name: code.name.clone(),
            version: code.version,
        };
        let rule = match &decl.rule {
            None => None,
            Some(code) => match self.rules.get(code.name.as_str()) {
                Some(r) if r.version_number() == code.version => Some(*r),
                _ => return Err(missing(CodeKind::Rule, code)),
            },
        };
        let mut def = TableDef::new(&decl.name, decl.kind, Scope::Replicated, decl.storage).with_shard(decl.shard);
        def.index = decl.index;
        def.rule = rule;
        for ix in &decl.indexes {
            match self.extractors.get(ix.extractor.name.as_str()) {
                Some(e) if e.version_number() == ix.extractor.version => def = def.with_index(&ix.name, *e),
                _ => return Err(missing(CodeKind::Extractor, &ix.extractor)),
            }
        }
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{IndexKeys, Kind, Storage};

    fn digits(_: &[u8], v: &[u8]) -> std::result::Result<(), String> {
        if v.iter().all(u8::is_ascii_digit) { Ok(()) } else { Err("not digits".into()) }
    }

    fn first(_: &[u8], v: &[u8], out: &mut IndexKeys) -> std::result::Result<(), String> {
        out.push(&v[..v.len().min(1)]);
        Ok(())
    }

    #[test]
    fn a_declaration_resolves_to_the_same_table_or_names_the_code_missing() {
        let def = TableDef::replicated("t", Kind::Set, Storage::Disc)
            .with_rule(ValueRule::new("digits", digits))
            .with_index("first", Extractor::new("first", first))
            .with_shard(4);
        let reg = Registry::of_tables(std::slice::from_ref(&def)).unwrap().for_node("a@h");
        let decl = Declaration::of(&def);
        let back = reg.resolve(&decl).unwrap();
        assert_eq!(Declaration::of(&back), decl);
        assert!(back.check_record(b"k", b"12").is_ok() && back.check_record(b"k", b"x").is_err());
        // Another version of the rule: not this node's code.
        let mut v2 = decl.clone();
        v2.rule.as_mut().unwrap().version = 2;
        match reg.resolve(&v2) {
            Err(Error::Unregistered { kind: CodeKind::Rule, name, version: 2, node }) => {
                assert_eq!((name.as_str(), node.as_str()), ("digits", "a@h"))
            }
            other => panic!("{other:?}"),
        }
        let empty = Registry::default();
        assert!(matches!(empty.resolve(&decl), Err(Error::Unregistered { kind: CodeKind::Rule, .. })));
        let mut unruled = decl.clone();
        unruled.rule = None;
        assert!(matches!(empty.resolve(&unruled), Err(Error::Unregistered { kind: CodeKind::Extractor, .. })));
    }

    #[test]
    fn one_name_under_two_versions_is_refused_within_a_node() {
        let mut reg = Registry::default();
        reg.add_rule(ValueRule::new("digits", digits)).unwrap();
        reg.add_rule(ValueRule::new("digits", digits)).unwrap();
        assert!(reg.add_rule(ValueRule::new("digits", digits).version(2)).is_err());
        assert_eq!(reg.registered().len(), 1);
    }
}
