//! What a node is started with: the tables it declares and the code it registers
//! ([`Declared`], public), checked into the form the node runs with ([`NodeSchema`]).
//!
//! Local tables are this node's alone and fixed for its life. Declared replicated tables
//! are what the node needs the cluster to have: those the log lacks are created through it
//! (`Op::CreateTable`), those it has must be declared the same. The registry is every rule
//! and extractor the node has code for: its declared tables' and any registered besides
//! them, which tables created at runtime may name.

use super::catalog::Catalog;
use super::declaration::{Declaration, SchemaInfo};
use super::registry::Registry;
use super::table::{Extractor, Scope, TableDef, ValueRule};
use crate::error::{Error, Result};
use std::sync::Arc;

/// The tables a node declares at start, and code it registers besides theirs.
///
/// ```
/// use mnema::{Declared, Extractor, IndexKeys, Kind, Storage, TableDef, ValueRule};
/// fn utf8(_key: &[u8], value: &[u8]) -> Result<(), String> {
///     std::str::from_utf8(value).map(|_| ()).map_err(|e| e.to_string())
/// }
/// // `notes` now; a table created at runtime later may name the `utf8` rule too, since
/// // every node of the cluster registers it.
/// let declared = Declared::new(vec![TableDef::replicated("notes", Kind::Set, Storage::Disc)])
///     .rule(ValueRule::new("utf8", utf8));
/// assert_eq!(declared.tables().len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Declared {
    tables: Vec<TableDef>,
    rules: Vec<ValueRule>,
    extractors: Vec<Extractor>,
}

impl Declared {
    /// `tables`, with their own code.
    pub fn new(tables: Vec<TableDef>) -> Self {
        Declared { tables, ..Default::default() }
    }

    /// Registers `rule` besides the tables' own: tables created at runtime may name it.
    pub fn rule(mut self, rule: ValueRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Registers `extractor` besides the tables' own.
    pub fn extractor(mut self, extractor: Extractor) -> Self {
        self.extractors.push(extractor);
        self
    }

    /// The declared tables.
    pub fn tables(&self) -> &[TableDef] {
        &self.tables
    }
}

impl From<Vec<TableDef>> for Declared {
    fn from(tables: Vec<TableDef>) -> Self {
        Declared::new(tables)
    }
}

/// A node's checked declarations.
#[derive(Debug)]
pub struct NodeSchema {
    /// Its local tables.
    pub local: Arc<Catalog>,
    /// Its declared replicated tables, by name.
    pub replicated: Vec<TableDef>,
    /// Its code.
    pub registry: Arc<Registry>,
}

impl NodeSchema {
    /// Checks `declared` (every table valid, each name once, one version per code name)
    /// for node `node`.
    pub fn new(declared: Declared, node: &str) -> Result<NodeSchema> {
        let mut registry = Registry::of_tables(&declared.tables)?;
        declared.rules.into_iter().try_for_each(|r| registry.add_rule(r))?;
        declared.extractors.into_iter().try_for_each(|e| registry.add_extractor(e))?;
        let registry = Arc::new(registry.for_node(node));
        // One catalog of everything declared checks the names and declarations together.
        Catalog::with_registry(declared.tables.clone(), registry.clone())?;
        let (local, mut replicated): (Vec<TableDef>, Vec<TableDef>) =
            declared.tables.into_iter().partition(|t| t.scope == Scope::Local);
        replicated.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(NodeSchema { local: Arc::new(Catalog::with_registry(local, registry.clone())?), replicated, registry })
    }

    /// The declared replicated table `name`.
    pub fn declares(&self, name: &str) -> Option<&TableDef> {
        self.replicated.iter().find(|d| d.name == name)
    }

    /// An empty replicated catalog with this node's code.
    pub fn empty_catalog(&self) -> Catalog {
        Catalog::empty(self.registry.clone())
    }

    /// What the node says of its schema to the others.
    pub fn info(&self) -> SchemaInfo {
        SchemaInfo {
            declared: self.replicated.iter().map(Declaration::of).collect(),
            registry: self.registry.registered(),
            uses: Vec::new(),
        }
    }

    /// [`Error::Unregistered`] for the first code `decl` names that this node lacks.
    pub fn can_resolve(&self, decl: &Declaration) -> Result<()> {
        self.registry.resolve(decl).map(|_| ())
    }

    /// [`Error::SchemaMismatch`] naming the first table this node declares otherwise than
    /// `catalog` (the cluster's, as the log made it) has it.
    pub fn check_against(&self, catalog: &Catalog) -> Result<()> {
        for decl in catalog.declarations() {
            if let Some(ours) = self.declares(&decl.name)
                && Declaration::of(ours) != decl
            {
                return Err(Error::SchemaMismatch {
                    peer: "the cluster's log".to_string(),
                    table: decl.name.clone(),
                    reason: format!("declared here as {}; the log has it as {}", Declaration::of(ours).shown(), decl.shown()),
                });
            }
        }
        Ok(())
    }
}
