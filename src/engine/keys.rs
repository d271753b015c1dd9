//! How table records are laid out as RocksDB keys.
//!
//! `[name len: u8][table name][user key]` for sets and ordered sets, so a table is one
//! contiguous, key-ordered range; bags append the value to the key,
//! `[name len][name][key len: u32 BE][key][value]`, so each (key, value) pair is its own
//! record and `delete_object` is one delete.

use super::table::Kind;
use crate::error::{Error, Result};

pub fn table_prefix(table: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + table.len());
    p.push(table.len() as u8);
    p.extend_from_slice(table.as_bytes());
    p
}

/// The RocksDB key of a record; `value` is used for bags only.
pub fn record_key(table: &str, kind: Kind, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut k = table_prefix(table);
    match kind {
        Kind::Bag => {
            k.extend_from_slice(&(key.len() as u32).to_be_bytes());
            k.extend_from_slice(key);
            k.extend_from_slice(value);
        }
        Kind::Set | Kind::OrderedSet => k.extend_from_slice(key),
    }
    k
}

/// The prefix all records of one bag key share.
pub fn bag_key_prefix(table: &str, key: &[u8]) -> Vec<u8> {
    let mut k = table_prefix(table);
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The smallest key greater than every key starting with `prefix` (None: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Splits a RocksDB key into its table name and the rest.
pub fn split_table(raw: &[u8]) -> Result<(&str, &[u8])> {
    let (&len, rest) = raw.split_first().ok_or_else(|| Error::corrupt("record key", "empty"))?;
    let len = len as usize;
    if rest.len() < len {
        return Err(Error::corrupt("record key", "shorter than its table name"));
    }
    let name = std::str::from_utf8(&rest[..len]).map_err(|e| Error::corrupt("record key", e))?;
    Ok((name, &rest[len..]))
}

/// Splits the part after the table name into (key, value) for a record of `kind`;
/// `stored` is what RocksDB holds as the value (empty for bags).
pub fn split_record<'a>(kind: Kind, rest: &'a [u8], stored: &'a [u8]) -> Result<(&'a [u8], &'a [u8])> {
    match kind {
        Kind::Set | Kind::OrderedSet => Ok((rest, stored)),
        Kind::Bag => {
            if rest.len() < 4 {
                return Err(Error::corrupt("bag record key", "no key length"));
            }
            let (len, rest) = rest.split_at(4);
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if rest.len() < len {
                return Err(Error::corrupt("bag record key", "shorter than its key length"));
            }
            Ok(rest.split_at(len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let k = record_key("routes", Kind::Bag, b"a/b", b"node1");
        let (t, rest) = split_table(&k).unwrap();
        assert_eq!(t, "routes");
        assert_eq!(split_record(Kind::Bag, rest, b"").unwrap(), (&b"a/b"[..], &b"node1"[..]));
        assert!(k.starts_with(&bag_key_prefix("routes", b"a/b")));
        assert!(!record_key("routes", Kind::Bag, b"a/bc", b"").starts_with(&bag_key_prefix("routes", b"a/b")));
        let s = record_key("t", Kind::Set, b"k", b"ignored");
        assert_eq!(split_record(Kind::Set, split_table(&s).unwrap().1, b"v").unwrap(), (&b"k"[..], &b"v"[..]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        assert!(split_table(&[9, b'a']).is_err());
        assert!(split_record(Kind::Bag, &[0, 0, 0, 9, 1], b"").is_err());
    }
}
