//! `routes`: which destinations want messages published to a topic.
//!
//! A replicated, in-memory bag from topic filter to [`Dest`] (a node, or a shared
//! subscription group on a node), with the table's wildcard filters in a trie
//! (`engine::topic_trie`, which holds their destinations too). `Routes::match_routes` looks
//! a topic up in both: one hash lookup for the exact filter, one trie walk for the wildcard
//! ones; both read the same published
//! state, so a match sees every route of one applied index and nothing of the next.
//!
//! Filters and topics are validated before anything is proposed: a bad one is
//! [`Error::InvalidTopic`] and is never stored.

use super::ROUTES;
use super::topic::validate_filter;
#[cfg(feature = "server")]
use super::topic::validate_name;
use crate::codec;
use crate::engine::Txn;
#[cfg(feature = "server")]
use crate::engine::memory::{MemState, MemTable, Records};
#[cfg(feature = "server")]
use crate::engine::{Blob, TableIx};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

const DEST_VERSION: u8 = 1;

/// Where a route leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dest {
    /// A node with local subscribers to the filter.
    Node(String),
    /// A shared subscription `$share/<group>/<filter>` with members on `node`.
    Shared {
        /// The group's name.
        group: String,
        /// The node with members.
        node: String,
    },
}

impl Dest {
    /// The node the route leads to.
    pub fn node(&self) -> &str {
        match self {
            Dest::Node(n) | Dest::Shared { node: n, .. } => n,
        }
    }
}

/// A [`Dest`] borrowed from the table, for the publish path: decoded in place, no
/// allocation (see [`Routes::for_each_match`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum DestRef<'a> {
    /// A node with local subscribers to the filter.
    Node(&'a str),
    /// A shared subscription group with members on `node`.
    Shared {
        /// The group's name.
        group: &'a str,
        /// The node with members.
        node: &'a str,
    },
}

impl<'a> DestRef<'a> {
    /// The node the route leads to.
    pub fn node(&self) -> &'a str {
        match self {
            DestRef::Node(n) | DestRef::Shared { node: n, .. } => n,
        }
    }

    /// An owned copy.
    pub fn to_dest(&self) -> Dest {
        match *self {
            DestRef::Node(n) => Dest::Node(n.to_string()),
            DestRef::Shared { group, node } => Dest::Shared { group: group.to_string(), node: node.to_string() },
        }
    }
}

/// One matching route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The topic filter.
    pub filter: String,
    /// Where matching messages go.
    pub dest: Dest,
}

fn invalid(topic: &str, reason: impl std::fmt::Display) -> Error {
    let shown: String = topic.chars().take(100).collect();
    Error::InvalidTopic { topic: shown, reason: reason.to_string() }
}

/// The stored form of a destination (the bag value; equal dests encode equal).
pub fn encode_dest(dest: &Dest) -> Result<Vec<u8>> {
    codec::encode_versioned(DEST_VERSION, dest)
}

/// Decodes a stored destination.
pub fn decode_dest(bytes: &[u8]) -> Result<Dest> {
    codec::decode_versioned("route destination", DEST_VERSION, bytes)
}

/// Decodes a stored destination in place (its names borrowed from `bytes`): the publish
/// path's decoder, once per matching route. The common shape (names shorter than 251
/// bytes) is read directly; any other bytes go through the serde decoder, so both give
/// the same destinations and the same errors (the `topics` fuzz target compares them).
pub fn decode_dest_ref(bytes: &[u8]) -> Result<DestRef<'_>> {
    match read_dest_ref(bytes) {
        Some(dest) => Ok(dest),
        None => codec::decode_versioned_borrowed("route destination", DEST_VERSION, bytes),
    }
}

/// A destination as `encode_dest` writes it when every name is shorter than 251 bytes:
/// the version, the variant (0: `Node`, 1: `Shared`), then each name as one length byte
/// (bincode's varint below 251) and its UTF-8 bytes, nothing after. `None` for any other
/// bytes, which the serde decoder then reads or refuses.
fn read_dest_ref(bytes: &[u8]) -> Option<DestRef<'_>> {
    fn name(bytes: &[u8]) -> Option<(&str, &[u8])> {
        let (&len, rest) = bytes.split_first()?;
        if len >= 251 {
            return None;
        }
        let (name, rest) = rest.split_at_checked(usize::from(len))?;
        Some((std::str::from_utf8(name).ok()?, rest))
    }
    let (&[version, variant], rest) = bytes.split_first_chunk::<2>()?;
    if version != DEST_VERSION {
        return None;
    }
    let (dest, rest) = match variant {
        0 => {
            let (node, rest) = name(rest)?;
            (DestRef::Node(node), rest)
        }
        1 => {
            let (group, rest) = name(rest)?;
            let (node, rest) = name(rest)?;
            (DestRef::Shared { group, node }, rest)
        }
        _ => return None,
    };
    rest.is_empty().then_some(dest)
}

/// Adds the route `filter → dest` to `txn`.
pub fn add(txn: Txn, filter: &str, dest: &Dest) -> Result<Txn> {
    validate_filter(filter).map_err(|e| invalid(filter, e))?;
    Ok(txn.put(ROUTES, filter, encode_dest(dest)?))
}

/// Removes the route `filter → dest` (other destinations of the filter stay).
pub fn delete(txn: Txn, filter: &str, dest: &Dest) -> Result<Txn> {
    validate_filter(filter).map_err(|e| invalid(filter, e))?;
    Ok(txn.delete_object(ROUTES, filter, encode_dest(dest)?))
}

#[cfg(feature = "server")]
fn table(view: &MemState, ix: TableIx) -> Result<&MemTable> {
    let t = view.table(ix);
    match t.records() {
        Records::TopicBag(..) => Ok(t),
        _ => Err(Error::InvalidTxn(format!("table {ix} is not a topic-indexed bag"))),
    }
}

#[cfg(feature = "server")]
/// Calls `found(filter, stored dest)` for every route whose filter matches `topic`.
pub(crate) fn for_each_match(
    view: &MemState,
    ix: TableIx,
    topic: &str,
    mut found: impl FnMut(&[u8], &Blob),
) -> Result<()> {
    validate_name(topic).map_err(|e| invalid(topic, e))?;
    let t = table(view, ix)?;
    if let Records::TopicBag(bag, trie) = t.records() {
        if let Some(dests) = bag.get(topic.as_bytes()) {
            dests.iter().for_each(|d| found(topic.as_bytes(), d));
        }
        trie.matches(topic.as_bytes(), |filter, dests| dests.iter().for_each(|d| found(filter, d)));
    }
    Ok(())
}

#[cfg(feature = "server")]
/// Every route whose filter matches `topic`, sorted.
pub(crate) fn match_routes(view: &MemState, ix: TableIx, topic: &str) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    let mut bad = None;
    for_each_match(view, ix, topic, |f, d| match decode_dest(d) {
        Ok(dest) => out.push(Route { filter: String::from_utf8_lossy(f).into_owned(), dest }),
        Err(e) => bad = Some(e),
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    out.sort();
    Ok(out)
}

/// The index of routes by the node they lead to (index key: the node's name).
pub const BY_NODE: &str = "by_node";

#[cfg(feature = "server")]
/// The routes leading to `node` (its own and its shared-subscription members), read
/// through the [`BY_NODE`] index: as many as lead there, whatever the table's size.
pub(crate) fn routes_of_node(view: &MemState, ix: TableIx, node: &str) -> Result<Vec<(Blob, Blob)>> {
    let index = table(view, ix)?
        .index_named(BY_NODE)
        .ok_or_else(|| Error::UnknownIndex { table: ROUTES.into(), index: BY_NODE.into() })?;
    let mut out = Vec::new();
    // A bag's entries carry the value.
    index.range(&crate::engine::IndexRange::exact(node), |_, f, d| {
        out.extend(d.map(|d| (Blob::from(f), Blob::from(d))));
        true
    });
    Ok(out)
}

#[cfg(feature = "server")]
mod api {
    use super::*;
    use crate::engine::Committed;
    use crate::runtime::TablesRoom;

    /// The routes table of a running node: `node.routes()`.
    pub struct Routes<'a> {
        node: TablesRoom<'a>,
    }

    impl<'a> Routes<'a> {
        pub(crate) fn new(node: TablesRoom<'a>) -> Self {
            Routes { node }
        }
    }

    impl Routes<'_> {
        /// Adds the route `filter` → `dest`.
        pub async fn add(&self, filter: &str, dest: &Dest) -> Result<Committed> {
            self.node.transact(add(Txn::new(), filter, dest)?).await
        }

        /// Deletes the route `filter` → `dest`.
        pub async fn delete(&self, filter: &str, dest: &Dest) -> Result<Committed> {
            self.node.transact(delete(Txn::new(), filter, dest)?).await
        }

        /// Removes every route to `node` in one transaction; returns how many.
        pub async fn purge_node(&self, node: &str) -> Result<usize> {
            super::purge_node(self.node, node).await
        }

        /// Calls `each(filter, destination)` for every route matching `topic`, read
        /// locally from one applied index, in no particular order: the publish path's
        /// match. Nothing is allocated or sorted; the destinations are borrowed from the
        /// table. A stored route that does not decode is [`Error::Corrupt`], returned
        /// after the others were visited.
        pub fn for_each_match(&self, topic: &str, mut each: impl FnMut(&str, DestRef<'_>)) -> Result<()> {
            let view = self.node.view();
            let Some(ix) = self.routes_ix(&view, topic)? else { return Ok(()) };
            let mut bad = None;
            for_each_match(&view, ix, topic, |f, d| match (std::str::from_utf8(f), decode_dest_ref(d)) {
                (Ok(f), Ok(d)) => each(f, d),
                (Err(e), _) => bad = Some(Error::corrupt("route filter", e)),
                (_, Err(e)) => bad = Some(e),
            })?;
            bad.map_or(Ok(()), Err)
        }

        /// Every route matching `topic`, read locally, sorted.
        pub fn match_routes(&self, topic: &str) -> Result<Vec<Route>> {
            let view = self.node.view();
            match self.routes_ix(&view, topic)? {
                Some(ix) => match_routes(&view, ix, topic),
                None => Ok(Vec::new()),
            }
        }

        /// The routes table in `view`; `None` when this node declares it but the log has
        /// not created it yet (no routes: `topic` is still validated).
        fn routes_ix(&self, view: &MemState, topic: &str) -> Result<Option<TableIx>> {
            match view.catalog.lookup(ROUTES) {
                Ok(ix) => Ok(Some(ix)),
                Err(_) if self.node.declares(ROUTES) => {
                    validate_name(topic).map_err(|e| invalid(topic, e))?;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(feature = "server")]
pub use api::Routes;

/// Removes every route to `node` in one transaction; returns how many.
///
/// The routes are read from this node's copy, then deleted through Raft: a route `node`
/// adds after the read stays (purge a node that is down).
#[cfg(feature = "server")]
pub(crate) async fn purge_node(shared: crate::runtime::TablesRoom<'_>, node: &str) -> Result<usize> {
    let view = shared.view();
    let found = routes_of_node(&view, view.catalog.lookup(ROUTES)?, node)?;
    drop(view);
    if found.is_empty() {
        return Ok(0);
    }
    let mut txn = Txn::new();
    for (f, d) in &found {
        txn = txn.delete_object(ROUTES, f.to_vec(), d.to_vec());
    }
    shared.transact(txn).await?;
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Catalog;

    /// The publish path's direct read of a destination gives what the serde decoder gives,
    /// for stored destinations of every size (names past one length byte included) and for
    /// damaged ones (cut, extended, bytes changed), which both refuse alike.
    #[test]
    fn a_destination_read_directly_decodes_as_serde_does() {
        fn serde(b: &[u8]) -> Result<DestRef<'_>> {
            codec::decode_versioned_borrowed("route destination", DEST_VERSION, b)
        }
        let names = ["", "n1", "emqx@10.0.0.1", &"x".repeat(250), &"y".repeat(251), &"z".repeat(300), "ünï"];
        let mut stored = Vec::new();
        for a in names {
            stored.push(encode_dest(&Dest::Node(a.to_string())).unwrap());
            for b in names {
                stored.push(encode_dest(&Dest::Shared { group: a.to_string(), node: b.to_string() }).unwrap());
            }
        }
        let mut direct = 0;
        for bytes in &stored {
            direct += usize::from(read_dest_ref(bytes).is_some());
            let mut variants = vec![bytes.clone(), [&bytes[..], b"!"].concat()];
            variants.extend((0..bytes.len()).map(|cut| bytes[..cut].to_vec()));
            for at in 0..bytes.len().min(8) {
                for flip in [0x01, 0x80, 0xff] {
                    let mut changed = bytes.clone();
                    changed[at] ^= flip;
                    variants.push(changed);
                }
            }
            for v in &variants {
                match (decode_dest_ref(v), serde(v)) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{v:?}"),
                    (Err(a), Err(b)) => assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b), "{v:?}"),
                    (a, b) => panic!("{v:?}: direct {a:?}, serde {b:?}"),
                }
            }
        }
        assert!(direct > stored.len() / 2, "the common shapes are read directly");
    }
    use crate::engine::Scope;
    use crate::engine::apply::{MemoryOnly, apply_txn};
    use crate::schema::topic;
    use crate::schema::topic::strategies::{filter, topic_name};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn dest() -> impl Strategy<Value = Dest> {
        prop_oneof![
            (0..3u8).prop_map(|n| Dest::Node(format!("n{n}"))),
            (0..2u8, 0..3u8).prop_map(|(g, n)| Dest::Shared { group: format!("g{g}"), node: format!("n{n}") }),
        ]
    }

    /// Applies `txn` as a node would propose it: in its tables' shard.
    fn apply(state: &mut MemState, mut txn: Txn) {
        txn.shard = state.catalog.shard_of(&txn).unwrap().unwrap_or_default();
        let out = apply_txn(Scope::Replicated, state, &mut MemoryOnly, &txn).unwrap();
        assert!(matches!(out, crate::engine::TxnOutcome::Applied(_)), "{out:?}");
    }

    proptest! {
        #[test]
        fn match_routes_agrees_with_the_naive_matcher(
            adds in prop::collection::vec((filter(), dest()), 0..60),
            deletes in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
            purge in proptest::option::of(0..3u8),
            topics in prop::collection::vec(topic_name(), 1..20),
        ) {
            let cat = Catalog::new(crate::schema::broker_tables()).unwrap();
            let ix = cat.lookup(ROUTES).unwrap();
            let mut state = MemState::empty(&cat);
            let mut held: BTreeSet<(String, Dest)> = BTreeSet::new();
            for (f, d) in &adds {
                apply(&mut state, add(Txn::new(), f, d).unwrap());
                held.insert((f.clone(), d.clone()));
            }
            for i in deletes {
                if held.is_empty() { break; }
                let (f, d) = held.iter().nth(i.index(held.len())).cloned().unwrap();
                apply(&mut state, delete(Txn::new(), &f, &d).unwrap());
                held.remove(&(f, d));
            }
            if let Some(n) = purge {
                let node = format!("n{n}");
                let found = routes_of_node(&state, ix, &node).unwrap();
                if !found.is_empty() {
                    let mut txn = Txn::new();
                    for (f, d) in found {
                        txn = txn.delete_object(ROUTES, f.to_vec(), d.to_vec());
                    }
                    apply(&mut state, txn);
                }
                held.retain(|(_, d)| d.node() != node);
            }
            for t in &topics {
                let expected: Vec<Route> = held
                    .iter()
                    .filter(|(f, _)| topic::matches(f, t))
                    .map(|(f, d)| Route { filter: f.clone(), dest: d.clone() })
                    .collect();
                prop_assert_eq!(match_routes(&state, ix, t).unwrap(), expected, "topic {}", t);
            }
        }
    }

    proptest! {
        #[test]
        fn a_borrowed_destination_decodes_as_the_owned_one(d in dest(), cut in any::<prop::sample::Index>()) {
            let bytes = encode_dest(&d).unwrap();
            prop_assert_eq!(decode_dest_ref(&bytes).unwrap().to_dest(), d.clone());
            prop_assert_eq!(decode_dest_ref(&bytes).unwrap().node(), d.node());
            let short = &bytes[..cut.index(bytes.len())];
            prop_assert!(matches!(decode_dest_ref(short), Err(Error::Corrupt { .. })), "a cut record is refused");
        }
    }

    #[test]
    fn bad_filters_and_topics_are_errors() {
        let d = Dest::Node("n1".into());
        for bad in ["", "a/#/b", "a+", "x\0y"] {
            assert!(matches!(add(Txn::new(), bad, &d), Err(Error::InvalidTopic { .. })), "{bad:?}");
        }
        let cat = Catalog::new(crate::schema::broker_tables()).unwrap();
        let state = MemState::empty(&cat);
        let ix = cat.lookup(ROUTES).unwrap();
        assert!(matches!(match_routes(&state, ix, "a/+"), Err(Error::InvalidTopic { .. })));
        assert!(match_routes(&state, ix, &"a".repeat(topic::MAX_LEN + 1)).is_err());
    }
}
