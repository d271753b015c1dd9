//! `rules`: rule-engine rules by id (a plain typed table).

use super::RULES;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A rule of the rule engine.
pub struct Rule {
    /// Its id.
    pub id: String,
    /// Its SQL.
    pub sql: String,
    /// The actions it runs.
    pub actions: Vec<String>,
    /// Whether it is enabled.
    pub enable: bool,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at_ms: u64,
}

const TABLE: Typed<String, Rule> = Typed::new(RULES);

/// Creates or replaces `rule`.
pub async fn put(node: &impl Tables, rule: &Rule) -> Result<Committed> {
    node.transact(TABLE.put(Txn::new(), &rule.id, rule)?).await
}

/// The rule `id`.
pub async fn get(node: &impl Tables, id: &str) -> Result<Option<Rule>> {
    Ok(TABLE.values(&node.get(RULES, id.as_bytes()).await?)?.pop())
}

/// Every rule.
pub async fn list(node: &impl Tables) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = TABLE.records(&node.dump(RULES).await?)?.into_iter().map(|(_, r)| r).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

/// Deletes the rule `id`.
pub async fn delete(node: &impl Tables, id: &str) -> Result<Committed> {
    node.transact(TABLE.delete(Txn::new(), &id.to_string())).await
}
