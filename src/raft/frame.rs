//! The framing of Raft's messages between cores over plain TCP (`raft.transport = "frames"`).
//!
//! gRPC costs a Raft round trip about 160 µs on a loaded 2-core machine where TCP on
//! loopback takes 20 µs: each call crosses h2's connection tasks and tonic's service task on
//! both sides. Raft's messages need none of that: openraft 0.9 keeps one request in flight
//! per replication stream, so a connection carries one request, then its reply, in turn.
//!
//! On one connection, after the caller's 8-byte [`MAGIC`]:
//! - the caller sends a [`Kind::Hello`] frame ([`Hello`]: its cookie, protocol version and
//!   cluster id) and the server answers [`Kind::Ok`] or [`Kind::Err`]: the cookie and the
//!   version are checked at once, the cluster id before each of Raft's requests (as the
//!   gRPC interceptors of the Raft and the Cluster services check them);
//! - then each request is one frame ([`Kind::Append`], [`Kind::Vote`], [`Kind::Snapshot`]
//!   with `raft::wire`'s bytes; [`Kind::Forward`], [`Kind::Relay`] with a forwarded batch's;
//!   [`Kind::Transact`] with a client's transaction)
//!   and its reply one frame, `Ok` with the bytes of the answer, or `Err` with the
//!   [`Error`] the gRPC path would have put in its status.
//!
//! A frame is a 5-byte header (the payload's length, u32 little-endian, then its kind) and
//! the payload. The decoders here take bytes from the network: they return an error on
//! anything malformed and never allocate more than [`MAX_FRAME`] (the fuzz target
//! `raft_frames` calls them).
//!
//! The node's listener tells a frames connection from gRPC (HTTP/2's preface, or TLS's
//! handshake) by its first byte; a node with `inet_tls` refuses frames, so Raft between its
//! cores stays inside TLS.

use crate::codec::{self, WIRE_VERSION};
use crate::error::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The version of the framing: the last byte of [`MAGIC`] (golden file
/// `tests/golden/raft-frames.v1.txt`). A later framing takes a new magic, which a build
/// of this one answers by closing the connection (the caller then uses gRPC).
pub const VERSION: u8 = 1;

/// What a frames connection starts with: no HTTP/2 preface (`PRI *`) or TLS record (0x16)
/// starts with its first byte.
pub const MAGIC: [u8; 8] = [b'M', b'N', b'E', b'M', b'A', b'R', b'F', b'0' + VERSION];

/// The largest payload a frame may carry (a snapshot chunk or a batch of entries is far
/// smaller).
pub const MAX_FRAME: usize = codec::MAX_DECODE;

/// The length of a frame's header.
pub const HEADER_LEN: usize = 5;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The caller's [`Hello`], first on a connection.
    Hello,
    /// An `AppendEntries` request.
    Append,
    /// A `Vote` request.
    Vote,
    /// An `InstallSnapshot` chunk.
    Snapshot,
    /// A batch of writes a follower or replicant forwards to the leader (the gRPC
    /// `Cluster.Write` call's bytes, `relay` false).
    Forward,
    /// A batch a replicant relays through its core (`relay` true).
    Relay,
    /// A client's transaction (the gRPC `Cluster.Transact` call's bytes).
    Transact,
    /// A reply: the answer's bytes.
    Ok,
    /// A reply: an [`Error`], encoded as in a gRPC status's details.
    Err,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Append => 2,
            Kind::Vote => 3,
            Kind::Snapshot => 4,
            Kind::Forward => 5,
            Kind::Relay => 6,
            Kind::Transact => 7,
            Kind::Ok => 16,
            Kind::Err => 17,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Append,
            3 => Kind::Vote,
            4 => Kind::Snapshot,
            5 => Kind::Forward,
            6 => Kind::Relay,
            7 => Kind::Transact,
            16 => Kind::Ok,
            17 => Kind::Err,
            _ => return None,
        })
    }
}

/// A frame's header for a payload of `len` bytes.
pub fn encode_header(kind: Kind, len: usize) -> Result<[u8; HEADER_LEN]> {
    if len > MAX_FRAME {
        return Err(Error::Encode { what: "a Raft frame".into(), reason: format!("{len} bytes, over {MAX_FRAME}") });
    }
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4] = kind.byte();
    Ok(h)
}

/// The kind and payload length a header names; an unknown kind or a length over
/// [`MAX_FRAME`] is an error.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(Kind, usize)> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = Kind::from_byte(h[4]).ok_or_else(|| Error::corrupt("Raft frame", format!("unknown kind {}", h[4])))?;
    if len > MAX_FRAME {
        return Err(Error::corrupt("Raft frame", format!("{len} bytes, over {MAX_FRAME}")));
    }
    Ok((kind, len))
}

/// A frame: header and payload in one buffer (one write).
pub fn encode(kind: Kind, payload: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(kind, payload.len())?);
    out.extend_from_slice(payload);
    Ok(out)
}

/// What a caller says first: who may call is checked as for a gRPC call (`rpc::auth`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// The protocol version the caller announces (`crate::protocol`).
    pub protocol: u32,
    /// The cluster cookie.
    #[serde(with = "serde_bytes")]
    pub cookie: Vec<u8>,
    /// The caller's cluster id (empty: none yet).
    pub cluster: String,
}

/// `hello`'s payload.
pub fn encode_hello(hello: &Hello) -> Result<Vec<u8>> {
    codec::encode_versioned(WIRE_VERSION, hello)
}

/// The [`Hello`] in a payload.
pub fn decode_hello(bytes: &[u8]) -> Result<Hello> {
    codec::decode_versioned("Raft frames hello", WIRE_VERSION, bytes)
}

/// An `Err` reply's payload.
pub fn encode_error(err: &Error) -> Result<Vec<u8>> {
    codec::encode_versioned(WIRE_VERSION, err)
}

/// The [`Error`] in an `Err` reply's payload.
pub fn decode_error(bytes: &[u8]) -> Result<Error> {
    codec::decode_versioned("Raft frames error", WIRE_VERSION, bytes)
}

/// The largest hello: read before the caller is admitted, so a stranger cannot make a
/// node allocate more.
pub const MAX_HELLO: usize = 4096;

/// Reads one frame into `buf` (its payload); `None` at the end of the stream before a
/// frame starts.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<Kind>> {
    read_within(r, buf, MAX_FRAME).await
}

/// [`read`], refusing a payload over `max` bytes before reading it.
pub async fn read_within<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Kind>> {
    let mut h = [0u8; HEADER_LEN];
    match r.read_exact(&mut h[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut h[1..]).await?;
    let (kind, len) = decode_header(&h).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if len > max {
        let e = format!("a {kind:?} frame of {len} bytes, over {max}");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(Some(kind))
}

/// Writes one frame.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let bytes = encode(kind, payload).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    w.write_all(&bytes).await
}

/// Decodes `bytes` as each thing a frames peer sends (for fuzzing all at once).
#[cfg(feature = "fuzzing")]
pub fn decode_any(bytes: &[u8]) -> bool {
    let header = bytes.first_chunk::<HEADER_LEN>().map(|h| decode_header(h).is_ok()).unwrap_or(false);
    header | decode_hello(bytes).is_ok() | decode_error(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_is_mnemarf_and_the_version() {
        assert_eq!(&MAGIC, b"MNEMARF1");
    }

    #[test]
    fn frames_round_trip_through_a_stream() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            write(&mut a, Kind::Append, b"abc").await.unwrap();
            write(&mut a, Kind::Ok, b"").await.unwrap();
            drop(a);
            let mut buf = Vec::new();
            assert_eq!(read(&mut b, &mut buf).await.unwrap(), Some(Kind::Append));
            assert_eq!(buf, b"abc");
            assert_eq!(read(&mut b, &mut buf).await.unwrap(), Some(Kind::Ok));
            assert!(buf.is_empty());
            assert_eq!(read(&mut b, &mut buf).await.unwrap(), None, "the end of the stream between frames");
        });
    }

    #[test]
    fn a_header_of_an_unknown_kind_or_over_the_limit_is_refused() {
        let mut h = encode_header(Kind::Vote, 10).unwrap();
        assert_eq!(decode_header(&h).unwrap(), (Kind::Vote, 10));
        h[4] = 99;
        assert!(matches!(decode_header(&h), Err(Error::Corrupt { .. })));
        let mut h = encode_header(Kind::Vote, 0).unwrap();
        h[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_header(&h), Err(Error::Corrupt { .. })));
        assert!(matches!(encode_header(Kind::Ok, MAX_FRAME + 1), Err(Error::Encode { .. })));
    }

    #[test]
    fn a_frame_over_the_reader_s_limit_is_refused_before_its_payload_is_read() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            // A header that claims more than the limit, and no payload at all.
            let h = encode_header(Kind::Hello, MAX_HELLO + 1).unwrap();
            let mut r = &h[..];
            let mut buf = Vec::new();
            let e = read_within(&mut r, &mut buf, MAX_HELLO).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(buf.capacity() < MAX_HELLO, "nothing allocated for it");
        });
    }

    #[test]
    fn a_frame_cut_short_is_an_error_not_an_end() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let bytes = encode(Kind::Append, b"abcdef").unwrap();
            for cut in 1..bytes.len() {
                let mut r = &bytes[..cut];
                let e = read(&mut r, &mut Vec::new()).await.unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "cut at {cut}");
            }
        });
    }

    #[test]
    fn hello_and_errors_round_trip_and_garbage_is_refused() {
        let hello = Hello { protocol: 1, cookie: b"secret".to_vec(), cluster: "c1".into() };
        assert_eq!(decode_hello(&encode_hello(&hello).unwrap()).unwrap(), hello);
        let err = Error::CookieMismatch { peer: String::new() };
        assert_eq!(decode_error(&encode_error(&err).unwrap()).unwrap(), err);
        assert!(decode_hello(b"PRI * HTTP/2.0").is_err());
        assert!(decode_hello(&[]).is_err());
        assert!(decode_error(&[WIRE_VERSION, 0xff, 0xff, 0xff]).is_err());
    }
}
