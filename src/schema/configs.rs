//! `configs`: cluster-wide configuration by key, with a change log numbered by an
//! increasing transaction id, as EMQX's cluster_rpc keeps one (`config_log`).
//!
//! Each change writes the new value, the log record under the next id, and the id
//! counter (log key 0) in one transaction conditional on the counter it read; two nodes
//! racing for one id cannot both win, so ids have no gaps and no duplicates.

use super::{CONFIG_LOG, CONFIGS};
use crate::engine::Tables;
use crate::engine::typed::Typed;
use crate::engine::{Change, ChangeOp, KeyRange, Txn};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A config entry and the change that set it.
pub struct ConfigEntry {
    /// The value as the broker stores it (JSON or HOCON text).
    pub value: String,
    /// The change that wrote it.
    pub txn_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// One change of a config entry, in the change log.
pub struct ConfigChange {
    /// The change's id: gap-free and increasing.
    pub txn_id: u64,
    /// The key changed.
    pub key: String,
    /// Its new value.
    pub value: String,
    /// The node the change was made on.
    pub node: String,
    /// When.
    pub at_ms: u64,
}

const VALUES: Typed<String, ConfigEntry> = Typed::new(CONFIGS);
const LOG: Typed<u64, ConfigChange> = Typed::new(CONFIG_LOG);
const COUNTER: u64 = 0;
const ATTEMPTS: usize = 16;

async fn counter(node: &impl Tables) -> Result<(u64, Option<Vec<u8>>)> {
    let raw = node.get(CONFIG_LOG, &COUNTER.to_be_bytes()).await?;
    match raw.first() {
        None => Ok((0, None)),
        Some(v) => {
            let bytes: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| Error::corrupt("config log counter", format!("{} bytes", v.len())))?;
            Ok((u64::from_be_bytes(bytes), Some(v.to_vec())))
        }
    }
}

/// Sets `key` to `value`; returns the change's transaction id.
pub async fn set(node: &impl Tables, key: &str, value: &str, now_ms: u64) -> Result<u64> {
    for _ in 0..ATTEMPTS {
        let (last, raw) = counter(node).await?;
        let id = last + 1;
        let ck = COUNTER.to_be_bytes().to_vec();
        let txn = match raw {
            Some(v) => Txn::new().require_value(CONFIG_LOG, ck.clone(), v),
            None => Txn::new().require_absent(CONFIG_LOG, ck.clone()),
        }
        .put(CONFIG_LOG, ck, id.to_be_bytes().to_vec());
        let change = ConfigChange {
            txn_id: id,
            key: key.into(),
            value: value.into(),
            node: node.node_name().into(),
            at_ms: now_ms,
        };
        let txn = LOG.put(txn, &id, &change)?;
        let txn = VALUES.put(txn, &key.to_string(), &ConfigEntry { value: value.into(), txn_id: id })?;
        match node.transact(txn).await {
            Ok(_) => return Ok(id),
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!("config `{key}`: {ATTEMPTS} attempts raced with other changes")))
}

/// The entry under `key`.
pub async fn get(node: &impl Tables, key: &str) -> Result<Option<ConfigEntry>> {
    Ok(VALUES.values(&node.get(CONFIGS, key.as_bytes()).await?)?.pop())
}

/// Records read per page by [`changes_since`].
const PAGE: usize = 1024;

/// Changes with an id above `after`, in id order (what a node that saw `after` missed):
/// range reads from the key after `after`, a page at a time (never the whole log).
pub async fn changes_since(node: &impl Tables, after: u64) -> Result<Vec<ConfigChange>> {
    use std::ops::Bound;
    // Ids are big-endian keys; the counter (key 0) is below every id.
    let mut range = KeyRange::between(Bound::Excluded(after.to_be_bytes().to_vec()), Bound::Unbounded).limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = node.range(CONFIG_LOG, range.clone()).await?;
        out.extend(LOG.records(&page)?.into_iter().map(|(_, c)| c));
        match page.last() {
            Some(last) if page.len() == PAGE => range = range.after(last),
            _ => return Ok(out),
        }
    }
}

/// Decodes a change of the config log from a watch of [`CONFIG_LOG`]: the change it
/// recorded (`None`: the id counter, another table's change, or not a put). Following the
/// log this way replaces polling [`changes_since`]: read it once from the last id seen,
/// then watch from the index after.
pub fn change(c: &Change) -> Result<Option<ConfigChange>> {
    if &*c.table != CONFIG_LOG || c.key.as_ref() == COUNTER.to_be_bytes() {
        return Ok(None);
    }
    match &c.op {
        ChangeOp::Put(v) => Typed::<u64, ConfigChange>::decode_value(v).map(Some),
        _ => Ok(None),
    }
}
