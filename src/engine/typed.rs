//! Typed tables: serde values and order-preserving keys over the byte-level engine.
//!
//! Values are encoded with [`crate::codec`] behind a format-version byte. Keys use
//! [`TableKey`], whose encodings sort like the keys themselves, so an `ordered_set` of
//! `u64` or `String` keys iterates in numeric or lexicographic order.
//!
//! ```
//! use mnema::engine::typed::Typed;
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Rule { sql: String }
//! const RULES: Typed<String, Rule> = Typed::new("rules");
//! let txn = RULES.put(mnema::Txn::new(), &"r1".to_string(), &Rule { sql: "SELECT 1".into() }).unwrap();
//! assert_eq!(txn.ops.len(), 1);
//! ```

use super::Blob;
use super::txn::Txn;
use crate::codec;
use crate::error::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::marker::PhantomData;

/// Version byte in front of every typed value.
pub const VALUE_VERSION: u8 = 1;

/// A key type with an encoding that sorts like the values it encodes.
pub trait TableKey: Sized {
    fn encode_key(&self) -> Vec<u8>;
    fn decode_key(bytes: &[u8]) -> Result<Self>;
}

impl TableKey for String {
    fn encode_key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn decode_key(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::corrupt("string key", e))
    }
}

impl TableKey for Vec<u8> {
    fn encode_key(&self) -> Vec<u8> {
        self.clone()
    }
    fn decode_key(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

macro_rules! unsigned_key {
    ($t:ty) => {
        impl TableKey for $t {
            fn encode_key(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn decode_key(bytes: &[u8]) -> Result<Self> {
                let arr = bytes.try_into().map_err(|_| Error::corrupt(stringify!($t key), format!("{} bytes", bytes.len())))?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    };
}
unsigned_key!(u32);
unsigned_key!(u64);

impl TableKey for i64 {
    fn encode_key(&self) -> Vec<u8> {
        // Flipping the sign bit makes big-endian bytes sort like signed numbers.
        ((*self as u64) ^ (1 << 63)).to_be_bytes().to_vec()
    }
    fn decode_key(bytes: &[u8]) -> Result<Self> {
        Ok((u64::decode_key(bytes)? ^ (1 << 63)) as i64)
    }
}

/// A typed handle on a table named `name`: builds ops and decodes what reads return.
pub struct Typed<K, V> {
    pub name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Typed<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Typed<K, V> {}

impl<K: TableKey, V: Serialize + DeserializeOwned> Typed<K, V> {
    pub const fn new(name: &'static str) -> Self {
        Typed { name, _types: PhantomData }
    }

    pub fn encode_value(value: &V) -> Result<Vec<u8>> {
        codec::encode_versioned(VALUE_VERSION, value)
    }

    pub fn decode_value(bytes: &[u8]) -> Result<V> {
        codec::decode_versioned("typed value", VALUE_VERSION, bytes)
    }

    pub fn put(&self, txn: Txn, key: &K, value: &V) -> Result<Txn> {
        Ok(txn.put(self.name, key.encode_key(), Self::encode_value(value)?))
    }

    pub fn delete(&self, txn: Txn, key: &K) -> Txn {
        txn.delete(self.name, key.encode_key())
    }

    pub fn delete_object(&self, txn: Txn, key: &K, value: &V) -> Result<Txn> {
        Ok(txn.delete_object(self.name, key.encode_key(), Self::encode_value(value)?))
    }

    /// Decodes the values a read returned.
    pub fn values(&self, raw: &[Blob]) -> Result<Vec<V>> {
        raw.iter().map(|b| Self::decode_value(b)).collect()
    }

    /// Decodes the records a dump returned.
    pub fn records(&self, raw: &[(Blob, Blob)]) -> Result<Vec<(K, V)>> {
        raw.iter().map(|(k, v)| Ok((K::decode_key(k)?, Self::decode_value(v)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_values() {
        let mut ints = vec![-5i64, 3, i64::MIN, 0, i64::MAX, -1];
        let mut enc: Vec<Vec<u8>> = ints.iter().map(|i| i.encode_key()).collect();
        ints.sort();
        enc.sort();
        let dec: Vec<i64> = enc.iter().map(|e| i64::decode_key(e).unwrap()).collect();
        assert_eq!(dec, ints);
        assert!(300u64.encode_key() > 2u64.encode_key());
        assert!(u64::decode_key(&[1, 2]).is_err());
        assert!(String::decode_key(&[0xff]).is_err());
    }

    #[test]
    fn values_round_trip_and_reject_garbage() {
        let t: Typed<String, (u8, String)> = Typed::new("t");
        let txn = t.put(Txn::new(), &"k".into(), &(1, "x".into())).unwrap();
        let crate::engine::Op::Put { value, .. } = &txn.ops[0] else { panic!("put") };
        let blob: Blob = value.as_slice().into();
        assert_eq!(t.values(&[blob]).unwrap(), vec![(1, "x".to_string())]);
        assert!(t.values(&[Blob::from(&b"\x02garbage"[..])]).is_err());
    }
}
