//! [`Packed`]: a set's bucket, its records' bytes one after another in one allocation, and
//! [`ValueRef`], a value as a table lends it.
//!
//! A set's record is a key and a value of any length, and most of the broker's are short
//! (a session, a client's status, a config). Held as a key beside a pointer to an
//! allocation of the value, a 32-byte value cost its record 64 bytes more than its
//! bytes (the allocation, its header and the pointer) and a reader a second cache miss.
//! A packed bucket holds each record as
//!
//! ```text
//! hash: u32 | key length: u16 | value length: u16 | key | value | padding
//! ```
//!
//! (little-endian), every record of a bucket padded to the bucket's longest: its stride,
//! which the bucket's first 4 bytes keep and its slot ([`PackedBucket`]) carries too. So a
//! read finds each record's hash at a fixed place it knows before the bucket's first line
//! has come in, and the processor loads them all at once, where records one after another
//! would have it wait for each record's lengths, a cache miss each, to find the next one
//! (2.4 times as slow in `benches/memtable.rs`'s read). The key is inline up to [`KEY_INLINE`] bytes and the value up
//! to [`VALUE_INLINE`]. A longer key or value is held by reference: its length field is
//! [`BY_REFERENCE`] and in its place are the address and length of a [`Blob`]'s bytes, the
//! bucket holding one of the `Blob`'s strong references. So a change that copies a bucket
//! (every change: buckets are replaced whole) copies a few short records and takes a
//! reference on each long part, never copying a long value.
//!
//! **Safety.** This is the one module of the crate with `unsafe` code. A reference held
//! in a bucket's bytes counts as one strong count of its `Blob`: it is made only by
//! [`Builder`] (which takes the count, from a clone or from a retained copy) and released
//! only by the `Drop` of the bytes that hold it ([`Packed`]'s, or an unfinished
//! [`Builder`]'s). A [`Packed`] is never changed after it is built, and is only ever
//! reached through an `Arc`, so its bytes, and the values they refer to, live as long as
//! any reader holds the bucket. The bytes are written and read only by this module; they
//! never come from the disk or the network.

use super::Blob;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// The longest key a bucket holds inline.
pub const KEY_INLINE: usize = 64;
/// The longest value a bucket holds inline.
pub const VALUE_INLINE: usize = 128;
/// The length field of a part held by reference.
const BY_REFERENCE: u16 = u16::MAX;
/// A record's fixed part: hash, key length, value length.
const HEAD: usize = 8;
/// A reference: address and length.
const REFERENCE: usize = 16;
/// A bucket's stride, before its records.
const STRIDE: usize = 4;

/// A bucket's records (see the module's docs); reached only through an `Arc`.
#[repr(transparent)]
pub struct Packed([u8]);

/// A bucket of a set, as a table's page holds it: a shared [`Packed`] (one strong count of
/// its `Arc`), with its length and its records' stride beside the pointer, so a read knows
/// where every record's hash is before the bucket's first line has come in and loads them
/// all at once. As large as an `Arc<[u8]>` (16 bytes).
pub struct PackedBucket {
    ptr: NonNull<u8>,
    len: u32,
    stride: u32,
}

// SAFETY: a `PackedBucket` is an `Arc<Packed>` held as its parts; `Packed` is bytes and
// strong counts of `Blob`s, which may be shared and sent between threads as an `Arc<[u8]>`.
unsafe impl Send for PackedBucket {}
// SAFETY: as for `Send`: nothing is changed through a shared `PackedBucket`.
unsafe impl Sync for PackedBucket {}

impl PackedBucket {
    /// `bucket` as its parts (it keeps its strong count).
    fn new(bucket: Arc<Packed>, stride: usize) -> PackedBucket {
        // A bucket's records are short (long parts are references), so its bytes stay far
        // below 4 GiB: one would need millions of records with one hash.
        let (len, stride) = match (u32::try_from(bucket.0.len()), u32::try_from(stride)) {
            (Ok(len), Ok(stride)) => (len, stride),
            _ => panic!("a bucket of {} bytes: past what a bucket can hold", bucket.0.len()),
        };
        let raw = Arc::into_raw(bucket) as *const u8 as *mut u8;
        // SAFETY: `Arc::into_raw` never gives a null pointer.
        let ptr = unsafe { NonNull::new_unchecked(raw) };
        PackedBucket { ptr, len, stride }
    }

    /// The `Arc` pointer the parts are of.
    #[inline]
    fn raw(&self) -> *const Packed {
        std::ptr::slice_from_raw_parts(self.ptr.as_ptr() as *const u8, self.len as usize) as *const Packed
    }

    /// The record under `key`, whose hash is `hash`.
    ///
    /// Kept short: a read of a table of millions waits on this bucket's cache miss, and the
    /// fewer instructions stand between it and the next read's loads, the sooner the
    /// processor starts those while it waits.
    #[inline]
    pub fn find(&self, hash: u32, key: &[u8]) -> Option<Record<'_>> {
        let b: &[u8] = Packed::bytes_of(self);
        let stride = self.stride as usize;
        let mut at = STRIDE;
        while let Some(head) = b.get(at..at + HEAD) {
            if head[..4] == hash.to_le_bytes() {
                let klen = u16::from_le_bytes([head[4], head[5]]);
                let found = if klen == BY_REFERENCE {
                    self.record_at(at).filter(|r| r.key == key)
                } else if b.get(at + HEAD..at + HEAD + klen as usize) == Some(key) {
                    self.record_at(at)
                } else {
                    None
                };
                if found.is_some() {
                    return found;
                }
            }
            at += stride;
        }
        None
    }
}

impl Deref for PackedBucket {
    type Target = Packed;

    #[inline]
    fn deref(&self) -> &Packed {
        // SAFETY: the parts are of an `Arc<Packed>` this handle holds a strong count of.
        unsafe { &*self.raw() }
    }
}

impl Clone for PackedBucket {
    fn clone(&self) -> Self {
        // SAFETY: as for `Deref`; the count taken is the clone's.
        unsafe { Arc::increment_strong_count(self.raw()) };
        PackedBucket { ptr: self.ptr, len: self.len, stride: self.stride }
    }
}

impl Drop for PackedBucket {
    fn drop(&mut self) {
        // SAFETY: as for `Deref`; this handle's count is given up here.
        drop(unsafe { Arc::from_raw(self.raw()) });
    }
}

/// One record of a bucket, borrowed from it.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub hash: u32,
    pub key: &'a [u8],
    pub value: ValueRef<'a>,
    /// Where the record's bytes are in the bucket, and how many (its padding not counted).
    start: usize,
    size: usize,
    /// Whether the key, the value are held by reference.
    key_ref: bool,
    value_ref: bool,
}

impl Packed {
    /// A bucket of no records.
    pub fn empty() -> PackedBucket {
        Builder::default().finish()
    }

    #[inline]
    fn bytes_of(&self) -> &[u8] {
        &self.0
    }

    /// The stride of the bucket's records (0 for no records).
    #[inline]
    fn stride(&self) -> usize {
        match self.0.first_chunk::<4>() {
            Some(s) => u32::from_le_bytes(*s) as usize,
            None => 0,
        }
    }

    /// The records, in the order they were added.
    #[inline]
    pub fn records(&self) -> Records<'_> {
        Records { bytes: &self.0, at: STRIDE, stride: self.stride() }
    }

    /// The record that starts at `start` (one [`Record`] gave it).
    fn record_at(&self, start: usize) -> Option<Record<'_>> {
        Records { bytes: &self.0, at: start, stride: self.stride() }.next()
    }

    /// Records held.
    pub fn count(&self) -> usize {
        match self.stride() {
            0 => 0,
            stride => (self.0.len() - STRIDE) / stride,
        }
    }

    /// Bytes the records take.
    pub fn byte_len(&self) -> usize {
        self.0.len()
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        release_all(self.records());
    }
}

/// Releases the references `records` hold.
fn release_all(records: Records<'_>) {
    for r in records {
        if r.key_ref {
            // SAFETY: a reference in a bucket's bytes holds one strong count of a `Blob`
            // whose bytes are `r.key` (see the module's docs); the bytes are being dropped,
            // so nothing reads it through them again.
            unsafe { release(r.key) };
        }
        if r.value_ref {
            // SAFETY: as for the key.
            unsafe { release(r.value.bytes()) };
        }
    }
}

/// Drops the strong count a reference held.
///
/// # Safety
/// `bytes` is a `Blob`'s bytes, and the caller gives up one strong count of it.
unsafe fn release(bytes: &[u8]) {
    // SAFETY: per the caller, `bytes` came from `Arc::into_raw` of a `Blob` with a
    // count to give up.
    drop(unsafe { Arc::from_raw(bytes as *const [u8]) });
}

/// The records of a bucket's bytes, in order.
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Bytes from one record's start to the next's; 0 where each follows the last's end
    /// (a [`Builder`]'s).
    stride: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    #[inline]
    fn next(&mut self) -> Option<Record<'a>> {
        let b = self.bytes;
        let start = self.at;
        if start >= b.len() {
            return None;
        }
        let hash = u32::from_le_bytes([b[start], b[start + 1], b[start + 2], b[start + 3]]);
        let klen = u16::from_le_bytes([b[start + 4], b[start + 5]]);
        let vlen = u16::from_le_bytes([b[start + 6], b[start + 7]]);
        let mut at = start + HEAD;
        let (key, key_ref) = part(b, &mut at, klen);
        let (value, value_ref) = part(b, &mut at, vlen);
        self.at = if self.stride == 0 { at } else { start + self.stride };
        let value = if value_ref { ValueRef(Repr::Counted(value)) } else { ValueRef(Repr::Bytes(value)) };
        Some(Record { hash, key, value, start, size: at - start, key_ref, value_ref })
    }
}

/// The part at `*at` whose length field is `len`, and whether it is held by reference;
/// moves `at` past it.
#[inline]
fn part<'a>(b: &'a [u8], at: &mut usize, len: u16) -> (&'a [u8], bool) {
    if len == BY_REFERENCE {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w) as usize
        };
        let (address, n) = (word(*at), word(*at + 8));
        *at += REFERENCE;
        let ptr = std::ptr::with_exposed_provenance::<u8>(address);
        // SAFETY: a reference's address and length are a `Blob`'s bytes, which the
        // bucket keeps alive with a strong count of its own for as long as the bucket
        // is (see the module's docs); `b` borrows the bucket.
        (unsafe { std::slice::from_raw_parts(ptr, n) }, true)
    } else {
        let n = len as usize;
        let part = &b[*at..*at + n];
        *at += n;
        (part, false)
    }
}

/// A bucket's bytes in the making: its records one after another (no stride yet). Dropped
/// unfinished, it releases the references it took.
#[derive(Default)]
pub struct Builder {
    bytes: Vec<u8>,
    /// The longest record's bytes.
    widest: usize,
    count: usize,
}

/// Bytes a record of a `key`-byte key and a `value`-byte value takes in a bucket.
pub fn record_size(key: usize, value: usize) -> usize {
    let part = |n: usize, inline: usize| if n <= inline { n } else { REFERENCE };
    HEAD + part(key, KEY_INLINE) + part(value, VALUE_INLINE)
}

impl Builder {
    pub fn with_capacity(bytes: usize) -> Builder {
        Builder { bytes: Vec::with_capacity(bytes), widest: 0, count: 0 }
    }

    /// Adds a record: its key and value each inline when short enough, else held by
    /// reference to its `Blob` (the record's where it has one; else a new one).
    pub fn push(&mut self, r: &NewRecord<'_>) {
        let NewRecord { hash, key, key_blob, value, value_blob } = *r;
        let key_inline = key.len() <= KEY_INLINE;
        let value_inline = value.len() <= VALUE_INLINE;
        let start = self.bytes.len();
        self.head(hash, key_inline.then_some(key.len()), value_inline.then_some(value.len()));
        self.push_part(key, key_blob, key_inline);
        self.push_part(value, value_blob, value_inline);
        self.ended(start);
    }

    /// Counts the record that starts at `start` and ends here.
    fn ended(&mut self, start: usize) {
        self.widest = self.widest.max(self.bytes.len() - start);
        self.count += 1;
    }

    /// Adds a copy of `r`, a record of another bucket (its references shared).
    pub fn copy(&mut self, r: &Record<'_>) {
        let start = self.bytes.len();
        self.head(r.hash, (!r.key_ref).then_some(r.key.len()), (!r.value_ref).then_some(r.value.len()));
        for (bytes, by_reference) in [(r.key, r.key_ref), (r.value.bytes(), r.value_ref)] {
            if by_reference {
                // SAFETY: `bytes` is a `Blob`'s, kept alive by the bucket `r` borrows; the
                // count taken here is the one the new reference holds.
                unsafe { Arc::increment_strong_count(bytes as *const [u8]) };
                self.reference(bytes);
            } else {
                self.bytes.extend_from_slice(bytes);
            }
        }
        self.ended(start);
    }

    fn head(&mut self, hash: u32, key: Option<usize>, value: Option<usize>) {
        let len = |n: Option<usize>| n.map_or(BY_REFERENCE, |n| n as u16);
        self.bytes.extend_from_slice(&hash.to_le_bytes());
        self.bytes.extend_from_slice(&len(key).to_le_bytes());
        self.bytes.extend_from_slice(&len(value).to_le_bytes());
    }

    fn push_part(&mut self, bytes: &[u8], blob: Option<&Blob>, inline: bool) {
        if inline {
            self.bytes.extend_from_slice(bytes);
        } else {
            let blob = blob.cloned().unwrap_or_else(|| Blob::from(bytes));
            // The strong count of this clone is the reference's (released by `release`).
            let raw = Arc::into_raw(blob);
            // SAFETY: `raw` is the clone's, alive until released.
            self.reference(unsafe { &*raw });
        }
    }

    /// Writes a reference to `bytes` (a `Blob`'s, whose count the caller took for it).
    fn reference(&mut self, bytes: &[u8]) {
        let address = bytes.as_ptr().expose_provenance() as u64;
        self.bytes.extend_from_slice(&address.to_le_bytes());
        self.bytes.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }

    /// The bucket: the records, each padded to the longest, after their stride.
    pub fn finish(mut self) -> PackedBucket {
        // No records, no width: a stride of 0.
        let stride = self.widest;
        let bytes: Arc<[u8]> = if self.count == 0 {
            Arc::from([])
        } else {
            // Written in place in the bucket's one allocation (not in a vector then copied).
            let mut fresh = Arc::<[u8]>::new_uninit_slice(STRIDE + stride * self.count);
            Arc::get_mut(&mut fresh).expect("a new Arc is unique").fill(std::mem::MaybeUninit::new(0));
            // SAFETY: every byte was just written.
            let mut bytes: Arc<[u8]> = unsafe { fresh.assume_init() };
            let out = Arc::get_mut(&mut bytes).expect("a new Arc is unique");
            out[..STRIDE].copy_from_slice(&(stride as u32).to_le_bytes());
            let mut to = STRIDE;
            for r in (Records { bytes: &self.bytes, at: 0, stride: 0 }) {
                let (from, end) = (r.start, r.start + r.size);
                out[to..to + (end - from)].copy_from_slice(&self.bytes[from..end]);
                to += stride;
            }
            // The references now belong to `bytes`.
            self.bytes.clear();
            bytes
        };
        // SAFETY: `Packed` is a transparent `[u8]`, so the allocation is the same; from
        // here its `Drop` releases the references the bytes hold.
        PackedBucket::new(unsafe { Arc::from_raw(Arc::into_raw(bytes) as *const Packed) }, stride)
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        release_all(Records { bytes: &self.bytes, at: 0, stride: 0 });
    }
}

/// A record to add to a bucket: its hash, key and value, and the key and the value as
/// `Blob`s where the caller holds them (a long one is then shared, not copied).
#[derive(Clone, Copy)]
pub struct NewRecord<'a> {
    pub hash: u32,
    pub key: &'a [u8],
    pub key_blob: Option<&'a Blob>,
    pub value: &'a [u8],
    pub value_blob: Option<&'a Blob>,
}

/// A copy of `bucket` with `with` in place of its record at `at` (one [`Record`] of it
/// gave it), or without that record if `with` is `None`; with no `at`, `with` is added
/// after the others.
pub fn rebuilt(bucket: &Packed, at: Option<usize>, with: Option<&NewRecord<'_>>) -> PackedBucket {
    let mut b = Builder::with_capacity(bucket.byte_len() + with.map_or(0, |r| record_size(r.key.len(), r.value.len())));
    for r in bucket.records() {
        if Some(r.start) != at {
            b.copy(&r);
        } else if let Some(new) = with {
            b.push(new);
        }
    }
    if let (None, Some(new)) = (at, with) {
        b.push(new);
    }
    b.finish()
}

/// A record a change took out of a table: its bucket as it was, kept until this is dropped.
pub struct Replaced {
    bucket: PackedBucket,
    start: usize,
}

impl Replaced {
    pub(super) fn new(bucket: PackedBucket, start: usize) -> Replaced {
        Replaced { bucket, start }
    }

    /// The value the record had.
    pub fn value(&self) -> ValueRef<'_> {
        match self.bucket.record_at(self.start) {
            Some(r) => r.value,
            None => ValueRef(Repr::Bytes(&[])),
        }
    }
}

impl Record<'_> {
    /// Where the record starts in its bucket.
    pub fn start(&self) -> usize {
        self.start
    }
}

/// A value as a table lends it: its bytes, and a [`Blob`] of them on demand (shared where
/// the table holds one, else a copy).
#[derive(Clone, Copy)]
pub struct ValueRef<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// Inline in a bucket.
    Bytes(&'a [u8]),
    /// A table's own `Blob`.
    Blob(&'a Blob),
    /// A `Blob`'s bytes a bucket holds a strong count of.
    Counted(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The value's bytes.
    #[inline]
    pub fn bytes(self) -> &'a [u8] {
        match self.0 {
            Repr::Bytes(b) | Repr::Counted(b) => b,
            Repr::Blob(b) => b,
        }
    }

    /// The value as a [`Blob`]: the table's own, shared, where it holds one; else copied.
    pub fn to_blob(self) -> Blob {
        match self.0 {
            Repr::Bytes(b) => Blob::from(b),
            Repr::Blob(b) => b.clone(),
            Repr::Counted(b) => {
                // SAFETY: a `Counted` value is a `Blob`'s bytes kept alive by the bucket
                // it is borrowed from: the count taken here is the new `Blob`'s.
                unsafe {
                    Arc::increment_strong_count(b as *const [u8]);
                    Arc::from_raw(b as *const [u8])
                }
            }
        }
    }
}

impl<'a> From<&'a Blob> for ValueRef<'a> {
    fn from(b: &'a Blob) -> Self {
        ValueRef(Repr::Blob(b))
    }
}

impl Deref for ValueRef<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.bytes())
    }
}

impl PartialEq for ValueRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl PartialEq<[u8]> for ValueRef<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.bytes() == other
    }
}
