//! Read-modify-write of one typed record, made safe by a condition: the write applies
//! only if the record still holds what was read; otherwise it is read again and retried.

use crate::engine::Tables;
use crate::engine::typed::{TableKey, Typed};
use crate::engine::{Committed, Txn};
use crate::error::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};

const ATTEMPTS: usize = 16;

/// Applies `change` to the record under `key` (absent: `None`); `change` returns the new
/// record (`None`: delete it) and may be called again if another writer got in between.
/// Returns the record written and the commit.
pub async fn update<K, V>(
    node: &impl Tables,
    table: Typed<K, V>,
    key: &K,
    mut change: impl FnMut(Option<V>) -> Result<Option<V>>,
) -> Result<(Option<V>, Committed)>
where
    K: TableKey,
    V: Serialize + DeserializeOwned + Clone,
{
    let raw_key = key.encode_key();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let raw = node.get(table.name, &raw_key).await?;
        let old = table.values(&raw)?.pop();
        let txn = match raw.first() {
            Some(v) => Txn::new().require_value(table.name, raw_key.clone(), v.to_vec()),
            None => Txn::new().require_absent(table.name, raw_key.clone()),
        };
        let new = change(old)?;
        let txn = match &new {
            Some(v) => table.put(txn, key, v)?,
            None => table.delete(txn, key),
        };
        match node.transact(txn).await {
            Ok(done) => return Ok((new, done)),
            Err(Error::Conflict(e)) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!(
        "`{}`: {ATTEMPTS} attempts all raced with other writers: {}",
        table.name,
        last.unwrap_or_default()
    )))
}
