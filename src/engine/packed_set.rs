//! [`PackedSet`]: a persistent ordered set of byte strings, packed into leaves of bytes.
//!
//! What a secondary index holds (`engine::index`): one byte string per entry, ordered as
//! bytes, read in ranges, changed a few entries per applied batch while readers keep
//! every published copy.
//!
//! **Layout.** A B+ tree. A leaf holds its entries one after another in one buffer, after
//! the prefix they all share, which the leaf keeps once: an index's entries start with
//! their index key, so a leaf of one index key's entries holds that key once, not once per
//! entry. Nothing in a leaf is allocated per entry and nothing is reached through a
//! pointer per entry: a range read walks a leaf's bytes in order. A branch holds its
//! children and, packed the same way, the lowest bound of each child after the first.
//!
//! **Persistence.** Nodes are shared (`Arc`) and copied on write: cloning a set is one
//! reference, a change copies the path to the leaf it touches that a published copy
//! shares. Copying a leaf is a copy of its bytes (at most about [`LEAF_BYTES`]), with no
//! reference taken per entry; copying a branch takes one reference per child (at most
//! [`FANOUT`]).
//!
//! **Sizes.** A leaf splits in two when its entries pass [`LEAF_BYTES`] (a leaf of one
//! entry may be larger), a branch when it passes [`FANOUT`] children. A leaf emptied by
//! removes is dropped, one left small is merged with a neighbour when the two fit in one.
//! Branches are not merged: a branch left with few children costs a few words.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

/// The bytes of entries a leaf holds before it splits.
pub const LEAF_BYTES: usize = 2048;
/// The children of a branch before it splits.
pub const FANOUT: usize = 64;

/// Byte strings one after another: `data` holds them, `ends[i]` is where the `i`-th ends.
#[derive(Clone, Default)]
struct Packed {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Packed {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] as usize }
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.data[self.start(i)..self.ends[i] as usize]
    }

    fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.ends.push(end_offset(self.data.len()));
    }

    /// Inserts `bytes` as the `i`-th, growing the buffers by what it needs only (a leaf
    /// stays as small as its entries).
    fn insert(&mut self, i: usize, bytes: &[u8]) {
        let at = self.start(i);
        self.data.reserve_exact(bytes.len());
        self.data.splice(at..at, bytes.iter().copied());
        self.ends.reserve_exact(1);
        self.ends.insert(i, end_offset(at + bytes.len()));
        let n = end_offset(bytes.len());
        self.ends[i + 1..].iter_mut().for_each(|e| *e += n);
    }

    fn remove(&mut self, i: usize) {
        let (start, end) = (self.start(i), self.ends[i] as usize);
        self.data.drain(start..end);
        self.ends.remove(i);
        let n = end_offset(end - start);
        self.ends[i..].iter_mut().for_each(|e| *e -= n);
    }

    /// The first of these strings `>= x` (`Ok` when equal), as a binary search.
    fn search(&self, x: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(x) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn split_off(&mut self, i: usize) -> Packed {
        let at = self.start(i);
        let mut right = Packed { data: self.data[at..].to_vec(), ends: self.ends[i..].to_vec() };
        let n = end_offset(at);
        right.ends.iter_mut().for_each(|e| *e -= n);
        self.data.truncate(at);
        self.ends.truncate(i);
        self.data.shrink_to_fit();
        self.ends.shrink_to_fit();
        right
    }
}

/// An offset into a node's buffer. A node's buffer outgrows `u32` only by an entry of 4 GiB,
/// which no log entry carries.
fn end_offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Entries sharing `prefix`, held after it.
#[derive(Clone, Default)]
struct Leaf {
    prefix: Box<[u8]>,
    items: Packed,
}

impl Leaf {
    /// A leaf of `entries` (sorted).
    fn of<E: AsRef<[u8]>>(entries: &[E]) -> Leaf {
        let p = match (entries.first(), entries.last()) {
            (Some(a), Some(b)) => common_prefix(a.as_ref(), b.as_ref()),
            _ => 0,
        };
        let mut items = Packed::default();
        items.data.reserve_exact(entries.iter().map(|e| e.as_ref().len() - p).sum());
        items.ends.reserve_exact(entries.len());
        entries.iter().for_each(|e| items.push(&e.as_ref()[p..]));
        Leaf { prefix: entries.first().map_or(Box::default(), |e| e.as_ref()[..p].into()), items }
    }

    /// Every entry, whole.
    fn entries(&self) -> Vec<Vec<u8>> {
        (0..self.len()).map(|i| self.full(i)).collect()
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn bytes(&self) -> usize {
        self.prefix.len() + self.items.data.len()
    }

    fn full(&self, i: usize) -> Vec<u8> {
        [&self.prefix[..], self.items.get(i)].concat()
    }

    /// Where `x` is or would go.
    fn search(&self, x: &[u8]) -> Result<usize, usize> {
        match x.strip_prefix(&self.prefix[..]) {
            Some(rest) => self.items.search(rest),
            // Every entry starts with the prefix, so `x` is below or above them all.
            None if x < &self.prefix[..] => Err(0),
            None => Err(self.len()),
        }
    }

    /// Inserts `x` at `i` (where [`Leaf::search`] put it), shortening the prefix first if
    /// `x` does not share it.
    fn insert(&mut self, i: usize, x: &[u8]) {
        if x.starts_with(&self.prefix) {
            self.items.insert(i, &x[self.prefix.len()..]);
        } else {
            let mut all = self.entries();
            all.insert(i, x.to_vec());
            *self = Leaf::of(&all);
        }
    }

    /// Splits off the upper half as a leaf of its own, each half with its own prefix.
    fn split(&mut self) -> Leaf {
        let all = self.entries();
        let mid = all.len() / 2;
        *self = Leaf::of(&all[..mid]);
        Leaf::of(&all[mid..])
    }

    /// This leaf's entries then `right`'s (all above them), as one leaf.
    fn merged(&self, right: &Leaf) -> Leaf {
        let mut all = self.entries();
        all.extend(right.entries());
        Leaf::of(&all)
    }
}

/// Children, and the lowest bound of each after the first: `children[i + 1]`'s entries are
/// all `>= bounds[i]`, and `children[i]`'s all below it.
#[derive(Clone, Default)]
struct Branch {
    bounds: Packed,
    children: Vec<Arc<Node>>,
}

impl Branch {
    /// The child whose entries `x` is among or would go among.
    fn route(&self, x: &[u8]) -> usize {
        match self.bounds.search(x) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn remove_child(&mut self, i: usize) {
        self.children.remove(i);
        if self.bounds.len() > 0 {
            self.bounds.remove(i.saturating_sub(1));
        }
    }
}

#[derive(Clone)]
enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

impl Default for Node {
    fn default() -> Self {
        Node::Leaf(Leaf::default())
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        match self {
            Node::Leaf(l) => l.len() == 0,
            Node::Branch(b) => b.children.is_empty(),
        }
    }
}

/// What an insert below a node left for its parent to do.
enum Grown {
    Fits,
    /// The node split: the new right sibling and its lowest bound.
    Split(Vec<u8>, Arc<Node>),
}

/// A persistent ordered set of byte strings; see the module's docs.
#[derive(Clone, Default)]
pub struct PackedSet {
    root: Arc<Node>,
    len: usize,
}

impl std::fmt::Debug for PackedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedSet({} entries)", self.len)
    }
}

impl PackedSet {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = PackedSet::default();
    }

    pub fn contains(&self, x: &[u8]) -> bool {
        let mut node = &*self.root;
        loop {
            match node {
                Node::Leaf(l) => return l.search(x).is_ok(),
                Node::Branch(b) => node = &b.children[b.route(x)],
            }
        }
    }

    /// Adds `x`; returns whether it was new.
    pub fn insert(&mut self, x: &[u8]) -> bool {
        // Looked up first, so an entry already held copies nothing a reader shares.
        if self.contains(x) {
            return false;
        }
        if let Grown::Split(bound, right) = insert(&mut self.root, x) {
            let left = std::mem::take(&mut self.root);
            let mut bounds = Packed::default();
            bounds.push(&bound);
            self.root = Arc::new(Node::Branch(Branch { bounds, children: vec![left, right] }));
        }
        self.len += 1;
        true
    }

    /// Removes `x`; returns whether it was there.
    pub fn remove(&mut self, x: &[u8]) -> bool {
        if !self.contains(x) {
            return false;
        }
        remove(&mut self.root, x);
        // A root branch of one child gives way to it.
        while let Node::Branch(b) = &*self.root
            && b.children.len() <= 1
        {
            let only = b.children.first().cloned().unwrap_or_default();
            self.root = only;
        }
        self.len -= 1;
        true
    }

    /// Calls `found` with each entry within `lo`..`hi`, in order, until it returns `false`.
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, mut found: impl FnMut(&[u8]) -> bool) {
        let mut buf = Vec::new();
        visit(&self.root, lo, hi, &mut buf, &mut found);
    }

    /// A set of `entries`, given sorted and each once, built in one pass with full leaves.
    pub fn from_sorted<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> PackedSet {
        let mut level: Vec<(Vec<u8>, Arc<Node>)> = Vec::new();
        let mut pending: Vec<&[u8]> = Vec::new();
        let (mut bytes, mut len) = (0usize, 0usize);
        let close = |pending: &mut Vec<&[u8]>, level: &mut Vec<(Vec<u8>, Arc<Node>)>| {
            if let Some(first) = pending.first() {
                level.push((first.to_vec(), Arc::new(Node::Leaf(Leaf::of(pending)))));
                pending.clear();
            }
        };
        for e in entries {
            if !pending.is_empty() && bytes + e.len() > LEAF_BYTES {
                close(&mut pending, &mut level);
                bytes = 0;
            }
            bytes += e.len();
            len += 1;
            pending.push(e);
        }
        close(&mut pending, &mut level);
        while level.len() > 1 {
            level = level
                .chunks(FANOUT)
                .map(|group| {
                    let mut bounds = Packed::default();
                    group[1..].iter().for_each(|(low, _)| bounds.push(low));
                    let children = group.iter().map(|(_, n)| n.clone()).collect();
                    (group[0].0.clone(), Arc::new(Node::Branch(Branch { bounds, children })))
                })
                .collect();
        }
        PackedSet { root: level.pop().map(|(_, n)| n).unwrap_or_default(), len }
    }

    /// Every entry, in order (tests and checks).
    #[cfg(any(test, feature = "test-util"))]
    pub fn to_vec(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.range(Bound::Unbounded, Bound::Unbounded, |e| {
            out.push(e.to_vec());
            true
        });
        out
    }

    /// Checks the layout's rules (tests): entries in order within the bounds their
    /// branches give, no empty node below the root, branches within their size, the count.
    #[cfg(test)]
    fn check(&self) {
        fn walk(node: &Node, lo: Option<&[u8]>, hi: Option<&[u8]>, root: bool) -> usize {
            assert!(root || !node.is_empty(), "an empty node below the root");
            match node {
                Node::Leaf(l) => {
                    let all = l.entries();
                    assert!(all.windows(2).all(|w| w[0] < w[1]), "a leaf out of order");
                    assert!(all.iter().all(|e| lo.is_none_or(|lo| &e[..] >= lo) && hi.is_none_or(|hi| &e[..] < hi)));
                    l.len()
                }
                Node::Branch(b) => {
                    assert_eq!(b.bounds.len() + 1, b.children.len().max(1));
                    assert!(b.children.len() <= FANOUT);
                    (0..b.children.len())
                        .map(|i| {
                            let clo = if i == 0 { lo } else { Some(b.bounds.get(i - 1)) };
                            let chi = if i + 1 == b.children.len() { hi } else { Some(b.bounds.get(i)) };
                            walk(&b.children[i], clo, chi, false)
                        })
                        .sum()
                }
            }
        }
        assert_eq!(walk(&self.root, None, None, true), self.len);
    }
}

fn insert(node: &mut Arc<Node>, x: &[u8]) -> Grown {
    match Arc::make_mut(node) {
        Node::Leaf(l) => {
            let Err(i) = l.search(x) else { return Grown::Fits };
            l.insert(i, x);
            if l.len() > 1 && l.bytes() > LEAF_BYTES {
                let right = l.split();
                return Grown::Split(right.full(0), Arc::new(Node::Leaf(right)));
            }
            Grown::Fits
        }
        Node::Branch(b) => {
            let i = b.route(x);
            let Grown::Split(bound, right) = insert(&mut b.children[i], x) else { return Grown::Fits };
            b.bounds.insert(i, &bound);
            b.children.insert(i + 1, right);
            if b.children.len() <= FANOUT {
                return Grown::Fits;
            }
            let mid = b.children.len() / 2;
            let children = b.children.split_off(mid);
            // The bound between the halves goes up; the right half keeps the ones after it.
            let mut upper = b.bounds.split_off(mid - 1);
            let up = upper.get(0).to_vec();
            upper.remove(0);
            Grown::Split(up, Arc::new(Node::Branch(Branch { bounds: upper, children })))
        }
    }
}

/// Removes `x` (held) below `node`; drops children left empty and merges a small leaf into
/// a neighbour it fits beside.
fn remove(node: &mut Arc<Node>, x: &[u8]) {
    match Arc::make_mut(node) {
        Node::Leaf(l) => {
            if let Ok(i) = l.search(x) {
                l.items.remove(i);
            }
        }
        Node::Branch(b) => {
            let i = b.route(x);
            remove(&mut b.children[i], x);
            if b.children[i].is_empty() {
                b.remove_child(i);
                return;
            }
            merge_small(b, i);
        }
    }
}

/// Merges the leaf `children[i]`, if small, with a neighbouring leaf when both fit in one.
fn merge_small(b: &mut Branch, i: usize) {
    let Node::Leaf(l) = &*b.children[i] else { return };
    if l.bytes() >= LEAF_BYTES / 4 {
        return;
    }
    for (left, right) in [(i, i + 1), (i.wrapping_sub(1), i)] {
        let (Some(a), Some(c)) = (b.children.get(left), b.children.get(right)) else { continue };
        if let (Node::Leaf(a), Node::Leaf(c)) = (&**a, &**c)
            && a.bytes() + c.bytes() <= LEAF_BYTES
        {
            b.children[left] = Arc::new(Node::Leaf(a.merged(c)));
            b.children.remove(right);
            b.bounds.remove(left);
            return;
        }
    }
}

/// Whether `e` is past `hi`.
fn above(e: &[u8], hi: Bound<&[u8]>) -> bool {
    match hi {
        Bound::Unbounded => false,
        Bound::Included(h) => e > h,
        Bound::Excluded(h) => e >= h,
    }
}

/// Visits the entries of `node` within the bounds; returns whether to go on.
fn visit(node: &Node, lo: Bound<&[u8]>, hi: Bound<&[u8]>, buf: &mut Vec<u8>, found: &mut impl FnMut(&[u8]) -> bool) -> bool {
    match node {
        Node::Leaf(l) => {
            let from = match lo {
                Bound::Unbounded => 0,
                Bound::Included(x) => l.search(x).unwrap_or_else(|i| i),
                Bound::Excluded(x) => l.search(x).map_or_else(|i| i, |i| i + 1),
            };
            buf.clear();
            buf.extend_from_slice(&l.prefix);
            let p = buf.len();
            for i in from..l.len() {
                buf.truncate(p);
                buf.extend_from_slice(l.items.get(i));
                if above(buf, hi) || !found(buf) {
                    return false;
                }
            }
            true
        }
        Node::Branch(b) => {
            let first = match lo {
                Bound::Unbounded => 0,
                Bound::Included(x) | Bound::Excluded(x) => b.route(x),
            };
            for i in first..b.children.len() {
                if i > first && above(b.bounds.get(i - 1), hi) {
                    return false;
                }
                let lo = if i == first { lo } else { Bound::Unbounded };
                if !visit(&b.children[i], lo, hi, buf, found) {
                    return false;
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Entries as an index's are: a few shared beginnings, then varied bytes, some long.
    fn entry() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![&b""[..], b"node-a\0\0", b"node-b\0\0", b"node-b\0\xff\0\0"]),
            prop::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'z'), any::<u8>()], 0..12),
            prop_oneof![9 => Just(0usize), 1 => 0..700usize],
        )
            .prop_map(|(head, tail, pad)| [head, &tail, &vec![b'p'; pad]].concat())
    }

    fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
        prop_oneof![Just(Bound::Unbounded), entry().prop_map(Bound::Included), entry().prop_map(Bound::Excluded)]
    }

    fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        b.as_ref().map(Vec::as_slice)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Vec<u8>),
        Remove(Vec<u8>),
        /// Removes the `n`-th held entry (so removes find something).
        RemoveHeld(prop::sample::Index),
        /// Keeps a copy: a reader's published view, which later ops must leave alone.
        Keep,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => entry().prop_map(Op::Insert),
            1 => entry().prop_map(Op::Remove),
            3 => any::<prop::sample::Index>().prop_map(Op::RemoveHeld),
            1 => Just(Op::Keep),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every op answers as a `BTreeSet` does, every range reads as the model's, and
        /// every kept copy still reads as the model did when it was kept.
        #[test]
        fn a_packed_set_answers_as_a_btreeset_and_copies_keep_their_version(
            ops in prop::collection::vec(op(), 1..600),
            ranges in prop::collection::vec((bound(), bound()), 1..8),
        ) {
            let mut set = PackedSet::default();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            let mut kept: Vec<(PackedSet, BTreeSet<Vec<u8>>)> = Vec::new();
            for op in &ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(set.insert(x), model.insert(x.clone())),
                    Op::Remove(x) => prop_assert_eq!(set.remove(x), model.remove(x)),
                    Op::RemoveHeld(ix) => {
                        if let Some(x) = (!model.is_empty()).then(|| model.iter().nth(ix.index(model.len())).cloned()).flatten() {
                            prop_assert!(set.remove(&x));
                            model.remove(&x);
                        }
                    }
                    Op::Keep => kept.push((set.clone(), model.clone())),
                }
                prop_assert_eq!(set.len(), model.len());
            }
            set.check();
            prop_assert_eq!(set.to_vec(), model.iter().cloned().collect::<Vec<_>>());
            for (lo, hi) in &ranges {
                let mut got = Vec::new();
                set.range(as_ref(lo), as_ref(hi), |e| { got.push(e.to_vec()); true });
                let valid = match (lo, hi) {
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                        a < b || (a == b && matches!((lo, hi), (Bound::Included(_), Bound::Included(_))))
                    }
                    _ => true,
                };
                let want: Vec<Vec<u8>> = if valid { model.range::<Vec<u8>, _>((lo.clone(), hi.clone())).cloned().collect() } else { vec![] };
                prop_assert_eq!(got, want);
            }
            for (copy, then) in &kept {
                copy.check();
                prop_assert_eq!(copy.to_vec(), then.iter().cloned().collect::<Vec<_>>());
            }
            let rebuilt = PackedSet::from_sorted(model.iter().map(Vec::as_slice));
            rebuilt.check();
            prop_assert_eq!(rebuilt.to_vec(), set.to_vec());
        }
    }

    #[test]
    fn a_range_stops_when_told() {
        let set = PackedSet::from_sorted((0..5000u32).map(|i| i.to_be_bytes()).collect::<Vec<_>>().iter().map(|b| &b[..]));
        set.check();
        let mut seen = 0u32;
        set.range(Bound::Included(&1000u32.to_be_bytes()[..]), Bound::Unbounded, |e| {
            assert_eq!(e, (1000 + seen).to_be_bytes());
            seen += 1;
            seen < 10
        });
        assert_eq!(seen, 10);
    }

    /// Enough entries for branches to split and the tree to grow three levels, then most
    /// removed (leaves merged, branches emptied), in a shuffled order; a copy kept halfway
    /// reads as it did.
    #[test]
    fn a_large_set_grows_and_shrinks_as_a_btreeset_does() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut set = PackedSet::default();
        let mut model = BTreeSet::new();
        for _ in 0..300_000 {
            let x = (next() % 400_000).to_be_bytes()[3..].to_vec();
            assert_eq!(set.insert(&x), model.insert(x));
        }
        set.check();
        let kept = (set.clone(), model.clone());
        let Node::Branch(root) = &*set.root else { panic!("300k entries in one leaf") };
        assert!(root.children.iter().any(|c| matches!(**c, Node::Branch(_))), "no branch split");
        for _ in 0..600_000 {
            let x = (next() % 400_000).to_be_bytes()[3..].to_vec();
            assert_eq!(set.remove(&x), model.remove(&x));
        }
        set.check();
        assert_eq!(set.to_vec(), model.iter().cloned().collect::<Vec<_>>());
        kept.0.check();
        assert_eq!(kept.0.to_vec(), kept.1.iter().cloned().collect::<Vec<_>>());
        for x in model.iter() {
            assert!(set.remove(x));
        }
        set.check();
        assert!(set.is_empty() && matches!(&*set.root, Node::Leaf(l) if l.len() == 0));
    }

    /// Many entries sharing their beginning (as an index key's do) take about their
    /// differing bytes each, not their whole length.
    #[test]
    fn a_leaf_holds_the_shared_beginning_once() {
        let entries: Vec<Vec<u8>> = (0..100_000u32).map(|i| [&b"b1@127.0.0.1\0\0t/"[..], &i.to_be_bytes()].concat()).collect();
        let set = PackedSet::from_sorted(entries.iter().map(Vec::as_slice));
        set.check();
        fn bytes(node: &Node) -> usize {
            match node {
                Node::Leaf(l) => l.bytes() + 4 * l.len(),
                Node::Branch(b) => b.children.iter().map(|c| bytes(c)).sum(),
            }
        }
        let per_entry = bytes(&set.root) as f64 / entries.len() as f64;
        assert!(per_entry < 10.0, "{per_entry} bytes per 20-byte entry: the shared 16 are not held once per leaf");
    }
}
