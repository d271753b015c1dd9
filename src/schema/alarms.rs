//! `alarms`: named alarms with activate / deactivate and their times (an ordered set by
//! name, so listings come sorted).

use super::ALARMS;
use super::update::update;
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// An alarm, active or deactivated.
pub struct Alarm {
    /// Its name (unique).
    pub name: String,
    /// What it says.
    pub message: String,
    /// More detail, free text.
    pub details: String,
    /// Whether it is active.
    pub active: bool,
    /// When it was (last) activated.
    pub activated_at_ms: u64,
    /// When it was deactivated, if it was.
    pub deactivated_at_ms: Option<u64>,
}

const TABLE: Typed<String, Alarm> = Typed::new(ALARMS);

/// Raises `name` (again, if it was deactivated: a new activation time).
pub async fn activate(node: &impl Tables, name: &str, message: &str, details: &str, now_ms: u64) -> Result<Alarm> {
    let (a, _) = update(node, TABLE, &name.to_string(), |old| {
        Ok(Some(match old {
            Some(a) if a.active => Alarm { message: message.into(), details: details.into(), ..a },
            _ => Alarm {
                name: name.into(),
                message: message.into(),
                details: details.into(),
                active: true,
                activated_at_ms: now_ms,
                deactivated_at_ms: None,
            },
        }))
    })
    .await?;
    a.ok_or_else(|| Error::Invariant("alarm update wrote nothing".into()))
}

/// Clears `name`; an unknown alarm is an error.
pub async fn deactivate(node: &impl Tables, name: &str, now_ms: u64) -> Result<Alarm> {
    let (a, _) = update(node, TABLE, &name.to_string(), |old| {
        let mut a = old.ok_or_else(|| Error::NotFound { table: super::ALARMS.into(), key: format!("{name:?}") })?;
        if a.active {
            a.active = false;
            a.deactivated_at_ms = Some(now_ms);
        }
        Ok(Some(a))
    })
    .await?;
    a.ok_or_else(|| Error::Invariant("alarm update wrote nothing".into()))
}

/// Alarms by name; only active ones if `active_only`.
pub async fn list(node: &impl Tables, active_only: bool) -> Result<Vec<Alarm>> {
    Ok(TABLE
        .records(&node.dump(ALARMS).await?)?
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.active || !active_only)
        .collect())
}
