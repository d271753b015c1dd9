//! The export document: every replicated table at one applied index, as one JSON object.
//!
//! ```text
//! {"format":"mnema-export","version":1,
//!  "header":{"applied_index":…,"node":…,"cluster":…,"cluster_id":…,"exported_at_ms":…,"config":{…}},
//!  "tables":[
//!   {"name":"rules","kind":"set","records":[
//!    ["rule1",{"b64":"AQ…"}],
//!    …]},
//!   …],
//!  "records":1234}
//! ```
//! A key or value is a JSON string when it is UTF-8 text, else `{"b64": …}` (standard
//! base64): lossless either way. Written and read one record at a time, so a table of
//! millions of records never sits whole in memory. [`read`] checks everything (format,
//! version, header, each table against the catalog, each record's encoding and value, the
//! final count) and reports the first problem with its line and column.

use crate::engine::{Catalog, Kind, Scope, TableIx};
use crate::error::{Error, Result};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};

pub const FORMAT: &str = "mnema-export";
pub const VERSION: u32 = 1;

/// Where and when an export was taken.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Every record is as of this Raft index.
    pub applied_index: u64,
    /// The node that exported.
    pub node: String,
    /// `cluster.name`.
    pub cluster: String,
    /// The cluster id.
    pub cluster_id: String,
    /// When, in ms since the Unix epoch.
    pub exported_at_ms: u64,
    /// The cluster's configuration (the `[cluster]` section; no secrets).
    pub config: serde_json::Value,
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Set => "set",
        Kind::Bag => "bag",
        Kind::OrderedSet => "ordered_set",
    }
}

fn bytes_json(b: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(b) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => serde_json::json!({ "b64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

/// Writes a document record by record.
pub struct DocWriter<W: Write> {
    out: W,
    tables: u64,
    in_table: bool,
    first_record: bool,
    records: u64,
}

fn io(e: serde_json::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl<W: Write> DocWriter<W> {
    pub fn new(mut out: W, header: &Header) -> std::io::Result<Self> {
        write!(out, "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\n\"header\":")?;
        serde_json::to_writer(&mut out, header).map_err(io)?;
        write!(out, ",\n\"tables\":[")?;
        Ok(DocWriter { out, tables: 0, in_table: false, first_record: true, records: 0 })
    }

    /// Starts the records of table `name`.
    pub fn table(&mut self, name: &str, kind: Kind) -> std::io::Result<()> {
        self.end_table()?;
        if self.tables > 0 {
            write!(self.out, ",")?;
        }
        write!(self.out, "\n{{\"name\":")?;
        serde_json::to_writer(&mut self.out, name).map_err(io)?;
        write!(self.out, ",\"kind\":\"{}\",\"records\":[", kind_name(kind))?;
        self.tables += 1;
        self.in_table = true;
        self.first_record = true;
        Ok(())
    }

    pub fn record(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        if !self.first_record {
            write!(self.out, ",")?;
        }
        self.first_record = false;
        write!(self.out, "\n[")?;
        serde_json::to_writer(&mut self.out, &bytes_json(key)).map_err(io)?;
        write!(self.out, ",")?;
        serde_json::to_writer(&mut self.out, &bytes_json(value)).map_err(io)?;
        write!(self.out, "]")?;
        self.records += 1;
        Ok(())
    }

    fn end_table(&mut self) -> std::io::Result<()> {
        if self.in_table {
            write!(self.out, "]}}")?;
            self.in_table = false;
        }
        Ok(())
    }

    /// Closes the document; returns the sink and the number of records.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.end_table()?;
        write!(self.out, "],\n\"records\":{}}}\n", self.records)?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

/// What [`read`] hands its callback, in file order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A table starts.
    Table {
        /// Its index in the catalog.
        #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
        ix: TableIx,
        /// Its name.
        name: &'a str,
    },
    /// A record of the current table.
    Record {
        /// Its table's index.
        #[cfg_attr(not(any(test, feature = "test-util")), allow(dead_code))]
        ix: TableIx,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
}

/// What a checked document holds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The export's header.
    pub header: Header,
    /// The tables it holds, in file order.
    pub tables: Vec<String>,
    /// How many records.
    pub records: u64,
}

/// Reads and checks a whole document, calling `each` for every table and record. Every
/// record is checked against its table's rule in `catalog` (the rule every write meets). The
/// first problem stops it: [`Error::BadExport`] with its line, column and reason.
pub fn read<R: Read>(
    input: R,
    catalog: &Catalog,
    each: &mut dyn FnMut(Event<'_>) -> std::result::Result<(), String>,
) -> Result<Summary> {
    let mut de = serde_json::Deserializer::from_reader(input);
    let mut st = State { catalog, each, summary: Summary::default(), seen_version: false, total: None };
    let res = DocSeed(&mut st).deserialize(&mut de).and_then(|()| de.end());
    match res {
        Ok(()) => Ok(st.summary),
        Err(e) => Err(Error::BadExport { line: e.line(), column: e.column(), reason: reason_of(&e) }),
    }
}

/// serde_json appends " at line L column C" to custom errors; the position has its own fields.
fn reason_of(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

struct State<'c, 'f> {
    catalog: &'c Catalog,
    each: &'f mut dyn FnMut(Event<'_>) -> std::result::Result<(), String>,
    summary: Summary,
    seen_version: bool,
    total: Option<u64>,
}

struct DocSeed<'s, 'c, 'f>(&'s mut State<'c, 'f>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mnema export document (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let st = self.0;
        let mut format_ok = false;
        let mut header = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => {
                    let f: String = map.next_value()?;
                    if f != FORMAT {
                        return Err(de::Error::custom(format!("format `{f}`, expected `{FORMAT}`")));
                    }
                    format_ok = true;
                }
                "version" => {
                    let v: u32 = map.next_value()?;
                    if v != VERSION {
                        return Err(de::Error::custom(format!(
                            "format version {v}; this build reads version {VERSION}"
                        )));
                    }
                    st.seen_version = true;
                }
                "header" => {
                    st.summary.header = map.next_value()?;
                    header = true;
                }
                "tables" => {
                    if !(format_ok && st.seen_version && header) {
                        return Err(de::Error::custom("`format`, `version` and `header` must come before `tables`"));
                    }
                    map.next_value_seed(TablesSeed(&mut *st))?;
                }
                "records" => st.total = Some(map.next_value()?),
                other => return Err(de::Error::custom(format!("unknown field `{other}`"))),
            }
        }
        if !format_ok || !st.seen_version || !header {
            return Err(de::Error::custom("not a mnema export: `format`, `version` or `header` missing"));
        }
        match st.total {
            None => Err(de::Error::custom("no final `records` count: the file is truncated")),
            Some(n) if n != st.summary.records => {
                Err(de::Error::custom(format!("`records` says {n}, the file holds {}", st.summary.records)))
            }
            Some(_) => Ok(()),
        }
    }
}

struct TablesSeed<'s, 'c, 'f>(&'s mut State<'c, 'f>);

impl<'de> DeserializeSeed<'de> for TablesSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TablesSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(TableSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct TableSeed<'s, 'c, 'f>(&'s mut State<'c, 'f>);

impl<'de> DeserializeSeed<'de> for TableSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table: {\"name\", \"kind\", \"records\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let st = self.0;
        let mut table: Option<(TableIx, String)> = None;
        let mut kind_ok = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => {
                    let name: String = map.next_value()?;
                    let ix =
                        st.catalog.lookup(&name).map_err(|_| de::Error::custom(format!("unknown table `{name}`")))?;
                    if st.catalog.def(ix).scope != Scope::Replicated {
                        return Err(de::Error::custom(format!("table `{name}` is local to each node; not importable")));
                    }
                    if st.summary.tables.contains(&name) {
                        return Err(de::Error::custom(format!("table `{name}` appears twice")));
                    }
                    table = Some((ix, name));
                }
                "kind" => {
                    let kind: String = map.next_value()?;
                    let (ix, name) = table.as_ref().ok_or_else(|| de::Error::custom("`name` must come first"))?;
                    let ours = kind_name(st.catalog.def(*ix).kind);
                    if kind != ours {
                        return Err(de::Error::custom(format!(
                            "table `{name}` is a {ours} here; the file says {kind}"
                        )));
                    }
                    kind_ok = true;
                }
                "records" => {
                    let (ix, name) = table.clone().ok_or_else(|| de::Error::custom("`name` must come first"))?;
                    if !kind_ok {
                        return Err(de::Error::custom("`kind` must come before `records`"));
                    }
                    (st.each)(Event::Table { ix, name: &name }).map_err(de::Error::custom)?;
                    st.summary.tables.push(name.clone());
                    map.next_value_seed(RecordsSeed { st: &mut *st, ix, name: &name })?;
                }
                other => return Err(de::Error::custom(format!("unknown table field `{other}`"))),
            }
        }
        match table {
            Some((_, name)) if !st.summary.tables.contains(&name) => {
                Err(de::Error::custom(format!("table `{name}` has no `records`")))
            }
            Some(_) => Ok(()),
            None => Err(de::Error::custom("a table without a `name`")),
        }
    }
}

struct RecordsSeed<'s, 'c, 'f, 'n> {
    st: &'s mut State<'c, 'f>,
    ix: TableIx,
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// A key or value as the file holds it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Bytes {
    Text(String),
    B64 { b64: String },
}

impl Bytes {
    fn into_vec(self) -> std::result::Result<Vec<u8>, String> {
        match self {
            Bytes::Text(s) => Ok(s.into_bytes()),
            Bytes::B64 { b64 } => {
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("bad base64: {e}"))
            }
        }
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of [key, value] records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut n = 0u64;
        while let Some((k, v)) = seq.next_element::<(Bytes, Bytes)>()? {
            n += 1;
            let key = k.into_vec().map_err(|e| de::Error::custom(format!("`{}` record {n}: key: {e}", self.name)))?;
            let value =
                v.into_vec().map_err(|e| de::Error::custom(format!("`{}` record {n}: value: {e}", self.name)))?;
            self.st
                .catalog
                .def(self.ix)
                .check_record(&key, &value)
                .map_err(|e| de::Error::custom(format!("`{}` record {n}: {e}", self.name)))?;
            self.st.summary.records += 1;
            (self.st.each)(Event::Record { ix: self.ix, key, value }).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Storage, TableDef, ValueRule};

    fn catalog() -> Catalog {
        Catalog::new(vec![
            TableDef::replicated("s", Kind::Set, Storage::Disc),
            TableDef::replicated("b", Kind::Bag, Storage::Ram).with_rule(ValueRule::new("no bad", |_, v| {
                if v == b"bad" { Err("not a value".into()) } else { Ok(()) }
            })),
            TableDef::local("l", Kind::Set, Storage::Ram),
        ])
        .unwrap()
    }

    fn doc() -> Vec<u8> {
        let mut w = DocWriter::new(Vec::new(), &Header { applied_index: 7, ..Default::default() }).unwrap();
        w.table("s", Kind::Set).unwrap();
        w.record(b"text", b"\x00\xffbinary").unwrap();
        w.record(b"\xfe", b"v").unwrap();
        w.table("b", Kind::Bag).unwrap();
        w.record(b"k", b"one").unwrap();
        w.finish().unwrap().0
    }

    type Records = Vec<(usize, Vec<u8>, Vec<u8>)>;

    fn check(bytes: &[u8]) -> Result<(Summary, Records)> {
        let mut got = Vec::new();
        let s = read(bytes, &catalog(), &mut |e| {
            if let Event::Record { ix, key, value } = e {
                got.push((ix, key, value));
            }
            Ok(())
        })?;
        Ok((s, got))
    }

    #[test]
    fn round_trip_is_lossless() {
        let (s, got) = check(&doc()).unwrap();
        assert_eq!(s.header.applied_index, 7);
        assert_eq!(s.records, 3);
        assert_eq!(got[0], (0, b"text".to_vec(), b"\x00\xffbinary".to_vec()));
        assert_eq!(got[1], (0, b"\xfe".to_vec(), b"v".to_vec()));
        assert_eq!(got[2], (1, b"k".to_vec(), b"one".to_vec()));
    }

    #[test]
    fn every_kind_of_bad_file_names_where_and_why() {
        let good = String::from_utf8(doc()).unwrap();
        let cases: Vec<(&str, String, &str)> = vec![
            ("truncated", good[..good.len() / 2].to_string(), "EOF"),
            ("no count", good.replace(",\n\"records\":3}", "}"), "truncated"),
            ("wrong count", good.replace("\"records\":3}", "\"records\":4}"), "says 4"),
            ("version", good.replace("\"version\":1", "\"version\":9"), "version 9"),
            ("not json", good.replacen('{', "{{", 1), "key must be a string"),
            ("unknown table", good.replace("\"name\":\"b\"", "\"name\":\"nope\""), "unknown table `nope`"),
            (
                "local table",
                good.replace("\"name\":\"b\",\"kind\":\"bag\"", "\"name\":\"l\",\"kind\":\"set\""),
                "local",
            ),
            ("wrong kind", good.replace("\"kind\":\"bag\"", "\"kind\":\"set\""), "is a bag here"),
            ("wrong type", good.replace("[\"k\",\"one\"]", "[\"k\",17]"), "did not match any variant"),
            ("bad base64", good.replace("\"b64\":\"", "\"b64\":\"!"), "base64"),
            ("bad value", good.replace("[\"k\",\"one\"]", "[\"k\",\"bad\"]"), "not a value"),
        ];
        for (what, text, reason) in cases {
            match check(text.as_bytes()) {
                Err(Error::BadExport { line, reason: r, .. }) => {
                    assert!(line >= 1, "{what}");
                    assert!(r.contains(reason), "{what}: {r}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
