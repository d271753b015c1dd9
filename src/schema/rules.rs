//! `rules`: rule-engine rules by id (a plain typed table).

use super::RULES;
use crate::engine::typed::Typed;
use crate::engine::{Committed, Txn};
use crate::error::Result;
use crate::runtime::Runtime;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub sql: String,
    pub actions: Vec<String>,
    pub enable: bool,
    pub description: String,
    pub created_at_ms: u64,
}

const TABLE: Typed<String, Rule> = Typed::new(RULES);

pub async fn put(node: &Runtime, rule: &Rule) -> Result<Committed> {
    node.transact(TABLE.put(Txn::new(), &rule.id, rule)?).await
}

pub fn get(node: &Runtime, id: &str) -> Result<Option<Rule>> {
    Ok(TABLE.values(&node.get(RULES, id.as_bytes())?)?.pop())
}

pub fn list(node: &Runtime) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = TABLE.records(&node.dump(RULES)?)?.into_iter().map(|(_, r)| r).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rules)
}

pub async fn delete(node: &Runtime, id: &str) -> Result<Committed> {
    node.transact(TABLE.delete(Txn::new(), &id.to_string())).await
}
