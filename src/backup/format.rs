//! The export document: every replicated table at one applied index, as one JSON object.
//!
//! ```text
//! {"format":"mnema-export","version":2,
//!  "header":{"applied_index":…,"node":…,"cluster":…,"cluster_id":…,"exported_at_ms":…,"config":{…}},
//!  "tables":[
//!   {"name":"rules","kind":"set",
//!    "declaration":{"name":"rules","kind":"set","storage":"disc","index":"none",
//!                   "rule":{"name":"rules","version":1},"indexes":[],"shard":0},
//!    "records":[
//!    ["rule1",{"b64":"AQ…"}],
//!    …]},
//!   …],
//!  "records":1234}
//! ```
//! Version 2 carries each table's declaration, so an import creates the tables the target
//! cluster lacks (through its log) and refuses one it has declared otherwise; version 1
//! documents (no declarations) still import into tables the target has.
//! A key or value is a JSON string when it is UTF-8 text, else `{"b64": …}` (standard
//! base64): lossless either way. Written and read one record at a time, so a table of
//! millions of records never sits whole in memory. [`read`] checks everything (format,
//! version, header, each table against the catalog, each record's encoding and value, the
//! final count) and reports the first problem with its line and column.

use crate::engine::{Catalog, Declaration, Kind, Scope, TableDef};
use crate::error::{Error, Result};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{Read, Write};

pub const FORMAT: &str = "mnema-export";
/// The version written; every version from 1 up to it is read.
pub const VERSION: u32 = 2;

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

    /// Starts the records of the table `decl` declares.
    pub fn table(&mut self, decl: &Declaration) -> std::io::Result<()> {
        self.end_table()?;
        if self.tables > 0 {
            write!(self.out, ",")?;
        }
        write!(self.out, "\n{{\"name\":")?;
        serde_json::to_writer(&mut self.out, &decl.name).map_err(io)?;
        write!(self.out, ",\"kind\":\"{}\",\"declaration\":", kind_name(decl.kind))?;
        serde_json::to_writer(&mut self.out, decl).map_err(io)?;
        write!(self.out, ",\"records\":[")?;
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
        /// Its name.
        name: &'a str,
        /// Its declaration, when the catalog read against lacks the table: the import
        /// creates it first.
        create: Option<Declaration>,
    },
    /// A record of the current table.
    Record {
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

/// Reads and checks a whole document, calling `each` for every table and record. A table
/// is checked against `catalog` (the target's tables): one it has must be declared the same
/// (kind, and in version 2 the whole declaration); one it lacks needs a declaration (version
/// 2) whose code `catalog`'s registry has, and is to be created. Every record is checked
/// against its table's rule and extractors (what every write meets). The first problem
/// stops it: [`Error::BadExport`] with its line, column and reason.
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
                    if !(1..=VERSION).contains(&v) {
                        return Err(de::Error::custom(format!(
                            "format version {v}; this build reads versions 1 to {VERSION}"
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
        // The table as the target has it (`None`: to be created from the declaration).
        let mut table: Option<(String, Option<TableDef>)> = None;
        let mut kind: Option<String> = None;
        let mut declared: Option<(Declaration, TableDef)> = None;
        let mut done = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => {
                    let name: String = map.next_value()?;
                    let ours = match st.catalog.lookup(&name) {
                        Ok(ix) => {
                            let def = st.catalog.def(ix);
                            if def.scope != Scope::Replicated {
                                return Err(de::Error::custom(format!(
                                    "table `{name}` is local to each node; not importable"
                                )));
                            }
                            Some(def.clone())
                        }
                        Err(_) => None,
                    };
                    if st.summary.tables.contains(&name) {
                        return Err(de::Error::custom(format!("table `{name}` appears twice")));
                    }
                    table = Some((name, ours));
                }
                "kind" => {
                    let k: String = map.next_value()?;
                    let (name, ours) = table.as_ref().ok_or_else(|| de::Error::custom("`name` must come first"))?;
                    if let Some(def) = ours
                        && k != kind_name(def.kind)
                    {
                        return Err(de::Error::custom(format!(
                            "table `{name}` is a {} here; the file says {k}",
                            kind_name(def.kind)
                        )));
                    }
                    kind = Some(k);
                }
                "declaration" => {
                    let decl: Declaration = map.next_value()?;
                    let (name, ours) = table.as_ref().ok_or_else(|| de::Error::custom("`name` must come first"))?;
                    if decl.name != *name || kind.as_deref() != Some(kind_name(decl.kind)) {
                        return Err(de::Error::custom(format!(
                            "table `{name}`: its declaration names another table or kind"
                        )));
                    }
                    let def = match ours {
                        Some(def) => {
                            let here = Declaration::of(def);
                            if here != decl {
                                return Err(de::Error::custom(format!(
                                    "table `{name}` is declared here as {}; the file has {}",
                                    here.shown(),
                                    decl.shown()
                                )));
                            }
                            def.clone()
                        }
                        None => {
                            decl.validate().map_err(|e| de::Error::custom(format!("table `{name}`: {e}")))?;
                            st.catalog
                                .registry()
                                .resolve(&decl)
                                .map_err(|e| de::Error::custom(format!("table `{name}`: {e}")))?
                        }
                    };
                    declared = Some((decl, def));
                }
                "records" => {
                    let (name, ours) = table.clone().ok_or_else(|| de::Error::custom("`name` must come first"))?;
                    if kind.is_none() {
                        return Err(de::Error::custom("`kind` must come before `records`"));
                    }
                    let (def, create) = match (ours, declared.take()) {
                        (Some(def), _) => (def, None),
                        (None, Some((decl, def))) => (def, Some(decl)),
                        (None, None) => return Err(de::Error::custom(format!("unknown table `{name}`"))),
                    };
                    (st.each)(Event::Table { name: &name, create }).map_err(de::Error::custom)?;
                    st.summary.tables.push(name.clone());
                    map.next_value_seed(RecordsSeed { st: &mut *st, def: &def, name: &name })?;
                    done = true;
                }
                other => return Err(de::Error::custom(format!("unknown table field `{other}`"))),
            }
        }
        match table {
            Some((name, _)) if !done => Err(de::Error::custom(format!("table `{name}` has no `records`"))),
            Some(_) => Ok(()),
            None => Err(de::Error::custom("a table without a `name`")),
        }
    }
}

struct RecordsSeed<'s, 'c, 'f, 'n> {
    st: &'s mut State<'c, 'f>,
    def: &'n TableDef,
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
            self.def
                .check_record(&key, &value)
                .map_err(|e| de::Error::custom(format!("`{}` record {n}: {e}", self.name)))?;
            self.st.summary.records += 1;
            (self.st.each)(Event::Record { key, value }).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Storage, TableDef, ValueRule};

    fn no_bad(_: &[u8], v: &[u8]) -> std::result::Result<(), String> {
        if v == b"bad" { Err("not a value".into()) } else { Ok(()) }
    }

    fn tables() -> Vec<TableDef> {
        vec![
            TableDef::replicated("s", Kind::Set, Storage::Disc),
            TableDef::replicated("b", Kind::Bag, Storage::Ram).with_rule(ValueRule::new("no bad", no_bad)),
            TableDef::local("l", Kind::Set, Storage::Ram),
        ]
    }

    fn catalog() -> Catalog {
        Catalog::new(tables()).unwrap()
    }

    fn decl(name: &str) -> Declaration {
        Declaration::of(tables().iter().find(|t| t.name == name).unwrap())
    }

    fn doc() -> Vec<u8> {
        let mut w = DocWriter::new(Vec::new(), &Header { applied_index: 7, ..Default::default() }).unwrap();
        w.table(&decl("s")).unwrap();
        w.record(b"text", b"\x00\xffbinary").unwrap();
        w.record(b"\xfe", b"v").unwrap();
        w.table(&decl("b")).unwrap();
        w.record(b"k", b"one").unwrap();
        w.finish().unwrap().0
    }

    type Records = Vec<(String, Vec<u8>, Vec<u8>)>;

    fn check_against(bytes: &[u8], catalog: &Catalog) -> Result<(Summary, Records, Vec<Declaration>)> {
        let (mut got, mut created, mut table) = (Vec::new(), Vec::new(), String::new());
        let s = read(bytes, catalog, &mut |e| {
            match e {
                Event::Table { name, create } => {
                    table = name.to_string();
                    created.extend(create);
                }
                Event::Record { key, value } => got.push((table.clone(), key, value)),
            }
            Ok(())
        })?;
        Ok((s, got, created))
    }

    fn check(bytes: &[u8]) -> Result<(Summary, Records)> {
        check_against(bytes, &catalog()).map(|(s, r, _)| (s, r))
    }

    #[test]
    fn round_trip_is_lossless() {
        let (s, got) = check(&doc()).unwrap();
        assert_eq!(s.header.applied_index, 7);
        assert_eq!(s.records, 3);
        assert_eq!(got[0], ("s".into(), b"text".to_vec(), b"\x00\xffbinary".to_vec()));
        assert_eq!(got[1], ("s".into(), b"\xfe".to_vec(), b"v".to_vec()));
        assert_eq!(got[2], ("b".into(), b"k".to_vec(), b"one".to_vec()));
    }

    /// A version 1 document (no declarations) still imports into tables the target has.
    #[test]
    fn a_version_1_document_reads_into_the_tables_the_target_has() {
        let v1 = concat!(
            "{\"format\":\"mnema-export\",\"version\":1,\n\"header\":{\"applied_index\":3,\"node\":\"\",",
            "\"cluster\":\"\",\"cluster_id\":\"\",\"exported_at_ms\":0,\"config\":null},\n\"tables\":[",
            "\n{\"name\":\"b\",\"kind\":\"bag\",\"records\":[\n[\"k\",\"one\"],\n[\"k\",\"two\"]]}",
            "],\n\"records\":2}\n"
        );
        let (s, got) = check(v1.as_bytes()).unwrap();
        assert_eq!((s.records, got.len()), (2, 2));
        let unknown = v1.replace("\"name\":\"b\"", "\"name\":\"nope\"");
        match check(unknown.as_bytes()) {
            Err(Error::BadExport { reason, .. }) => assert!(reason.contains("unknown table `nope`"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    /// A table the target lacks is created from its declaration, with the target's code.
    #[test]
    fn a_table_the_target_lacks_is_to_be_created_from_its_declaration() {
        let only_s = Catalog::with_registry(
            vec![TableDef::replicated("s", Kind::Set, Storage::Disc)],
            catalog().registry().clone(),
        )
        .unwrap();
        let (s, got, created) = check_against(&doc(), &only_s).unwrap();
        assert_eq!(s.records, 3);
        assert_eq!(got.len(), 3);
        assert_eq!(created, vec![decl("b")]);
        // Its rule is the target's code: a record it refuses is refused.
        let bad = String::from_utf8(doc()).unwrap().replace("[\"k\",\"one\"]", "[\"k\",\"bad\"]");
        assert!(check_against(bad.as_bytes(), &only_s).is_err());
        // A target without that code cannot create it.
        let no_code = Catalog::new(vec![TableDef::replicated("s", Kind::Set, Storage::Disc)]).unwrap();
        match check_against(&doc(), &no_code) {
            Err(Error::BadExport { reason, .. }) => assert!(reason.contains("no rule `no bad`"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_of_bad_file_names_where_and_why() {
        let good = String::from_utf8(doc()).unwrap();
        let cases: Vec<(&str, String, &str)> = vec![
            ("truncated", good[..good.len() / 2].to_string(), "EOF"),
            ("no count", good.replace(",\n\"records\":3}", "}"), "truncated"),
            ("wrong count", good.replace("\"records\":3}", "\"records\":4}"), "says 4"),
            ("version", good.replace("\"version\":2", "\"version\":9"), "version 9"),
            ("not json", good.replacen('{', "{{", 1), "key must be a string"),
            ("renamed table", good.replace("\n{\"name\":\"b\",", "\n{\"name\":\"nope\","), "names another table"),
            ("local table", good.replace("\n{\"name\":\"b\",\"kind\":\"bag\"", "\n{\"name\":\"l\",\"kind\":\"set\""), "local"),
            ("wrong kind", good.replace("\"kind\":\"bag\",\"decl", "\"kind\":\"set\",\"decl"), "is a bag here"),
            ("declared otherwise", good.replace("\"storage\":\"ram\"", "\"storage\":\"disc\""), "declared here as"),
            ("wrong type", good.replace("[\"k\",\"one\"]", "[\"k\",17]"), "did not match any variant"),
            ("bad base64", good.replace("\"b64\":\"", "\"b64\":\"!"), "base64"),
            ("bad value", good.replace("[\"k\",\"one\"]", "[\"k\",\"bad\"]"), "not a value"),
        ];
        for (what, text, reason) in cases {
            assert_ne!(text, good, "{what}: the case changed nothing");
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
