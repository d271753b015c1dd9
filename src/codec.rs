//! The one place that knows the binary encoding (bincode 2, serde mode).
//!
//! Everything persisted or sent between nodes goes through [`encode`] and [`decode`], so the
//! encoding can be swapped without touching callers. Decoding is bounded: a length prefix
//! from a corrupt or hostile input cannot make us allocate more than [`MAX_DECODE`] bytes.

use crate::error::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};

/// Upper bound on what one decode may allocate: larger than any legal message
/// (snapshot chunks and log batches are capped well below it).
pub const MAX_DECODE: usize = 256 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE>()
}

/// Encodes `value`; appends to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(|e| Error::Encode { what: "a value".into(), reason: e.to_string() })
}

#[cfg(any(test, feature = "fuzzing"))]
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a whole buffer: trailing bytes are an error, since they mean the writer and
/// reader disagree on the format.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    decode_borrowed(what, bytes)
}

/// [`decode`] into a value that borrows from `bytes` (`&str` fields: no allocation).
pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T> {
    let (value, used) = bincode::serde::borrow_decode_from_slice(bytes, config()).map_err(|e| Error::corrupt(what, e))?;
    if used != bytes.len() {
        return Err(Error::corrupt(what, format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}

/// Format version of the messages between nodes and clients that are not Raft's own
/// (forwarded batches, client transactions and their replies).
pub const WIRE_VERSION: u8 = 2;

/// Encodes with a leading format-version byte, for everything persisted.
pub fn encode_versioned<T: Serialize + ?Sized>(version: u8, value: &T) -> Result<Vec<u8>> {
    let mut out = vec![version];
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes what [`encode_versioned`] wrote, refusing versions this build does not know.
pub fn decode_versioned<T: DeserializeOwned>(what: &'static str, version: u8, bytes: &[u8]) -> Result<T> {
    decode(what, versioned(what, version, bytes)?)
}

/// [`decode_versioned`] into a value that borrows from `bytes`.
pub fn decode_versioned_borrowed<'a, T: serde::Deserialize<'a>>(what: &'static str, version: u8, bytes: &'a [u8]) -> Result<T> {
    decode_borrowed(what, versioned(what, version, bytes)?)
}

/// The bytes after the version byte, if it is `version`.
fn versioned<'a>(what: &'static str, version: u8, bytes: &'a [u8]) -> Result<&'a [u8]> {
    match bytes.split_first() {
        None => Err(Error::corrupt(what, "empty record")),
        Some((&v, rest)) if v == version => Ok(rest),
        Some((&found, _)) => Err(Error::UnknownFormat { what: what.to_string(), found, supported: version }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let v = (7u64, String::from("x"), vec![1u8, 2, 3]);
        let bytes = encode_versioned(1, &v).unwrap();
        assert_eq!(decode_versioned::<(u64, String, Vec<u8>)>("t", 1, &bytes).unwrap(), v);
        assert!(matches!(
            decode_versioned::<(u64, String, Vec<u8>)>("t", 2, &bytes),
            Err(Error::UnknownFormat { found: 1, supported: 2, .. })
        ));
        assert!(decode_versioned::<(u64, String, Vec<u8>)>("t", 1, &bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_versioned::<(u64, String, Vec<u8>)>("t", 1, &long).is_err());
        // A huge length prefix must fail cleanly, not allocate.
        assert!(decode::<Vec<u8>>("t", &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
