//! Table declarations, in Mnesia's terms: a name, a kind, a scope and a storage class.

use serde::{Deserialize, Serialize};

/// Shards group replicated tables: a transaction stays within one, each log entry's
/// transactions name theirs, and a replicant may follow a subset (`replicant.shards`).
pub type ShardId = u16;

/// The default shard.
pub const DEFAULT_SHARD: ShardId = 0;

/// How records with the same key relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One value per key.
    Set,
    /// Many distinct values per key (`delete_object` removes one).
    Bag,
    /// One value per key, iterated in key order.
    OrderedSet,
}

/// Where a table's writes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Through Raft, the same on every node.
    Replicated,
    /// This node only, never replicated (e.g. local subscribers).
    Local,
}

/// Where a table's records live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// Memory only. For a replicated table the Raft log still makes it recoverable.
    Ram,
    /// Memory for reads, RocksDB for durability (Mnesia's `disc_copies`).
    Disc,
    /// RocksDB only, for large tables (Mnesia's `disc_only_copies`).
    DiscOnly,
}

/// A secondary index kept in memory with the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Index {
    #[default]
    /// No index.
    None,
    /// Keys are MQTT topic filters; the wildcard ones go into a trie for matching topics
    /// (see `engine::topic_trie`). For in-memory bags.
    Topic,
}

/// What every stored record of a table must be, checked where every write path meets.
///
/// The catalog runs the rule on each `put` and `put_if_absent` of a transaction before it
/// is proposed and again when every node applies it, so a write through the typed
/// modules, `mnema ctl`, gRPC `Transact` or a broker's raw [`Txn`](super::Txn) is held to
/// the same rule, and a record that breaks it is never stored (the caller gets
/// [`Error::InvalidValue`](crate::Error::InvalidValue) naming table and key). A rule must
/// be deterministic: a pure function of the key and value bytes.
///
/// ```
/// use mnema::{Kind, Storage, TableDef, ValueRule};
/// fn utf8(_key: &[u8], value: &[u8]) -> Result<(), String> {
///     std::str::from_utf8(value).map(|_| ()).map_err(|e| e.to_string())
/// }
/// let def = TableDef::replicated("notes", Kind::Set, Storage::Disc).with_rule(ValueRule::new("utf8", utf8));
/// assert!(def.check_record(b"k", "text".as_bytes()).is_ok());
/// assert!(def.check_record(b"k", &[0xff]).is_err());
/// ```
///
/// A rule is code, named and versioned: nodes compare rules by name and version, so a
/// build whose rule of some name checks differently must give it a new version
/// ([`ValueRule::version`]); a node announcing another version of a rule than its
/// cluster's is refused instead of applying the same log differently.
#[derive(Clone, Copy)]
pub struct ValueRule {
    name: &'static str,
    version: u32,
    check: fn(&[u8], &[u8]) -> Result<(), String>,
}

impl ValueRule {
    /// A rule named `name` (shown in `Debug` and compared by name and version), version 1,
    /// that `check`s a record's key and value, returning why it is refused.
    pub const fn new(name: &'static str, check: fn(&[u8], &[u8]) -> Result<(), String>) -> Self {
        ValueRule { name, version: 1, check }
    }

    /// The same rule under version `version`: bump it whenever the rule starts to check
    /// differently.
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The rule's version.
    pub fn version_number(&self) -> u32 {
        self.version
    }

    /// Whether `key` → `value` passes the rule (the reason it does not, else).
    pub fn check(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        (self.check)(key, value)
    }
}

impl std::fmt::Debug for ValueRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValueRule({} v{})", self.name, self.version)
    }
}

// By name and version: function pointers have no stable identity across codegen units.
impl PartialEq for ValueRule {
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.version) == (other.name, other.version)
    }
}
impl Eq for ValueRule {}
impl std::hash::Hash for ValueRule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.name, self.version).hash(state)
    }
}

/// The index keys an [`Extractor`] finds in one record.
#[derive(Debug, Default)]
pub struct IndexKeys(Vec<Vec<u8>>);

impl IndexKeys {
    /// Adds `key` (a key given twice counts once).
    pub fn push(&mut self, key: impl Into<Vec<u8>>) {
        self.0.push(key.into());
    }

    /// The keys, sorted, each once.
    pub(crate) fn into_sorted(mut self) -> Vec<Vec<u8>> {
        self.0.sort_unstable();
        self.0.dedup();
        self.0
    }
}

/// The code of a secondary index: the index keys of a record (zero or more), computed from
/// its key and value alone.
///
/// Like a [`ValueRule`], an extractor is named and versioned code that every node runs on
/// every record it applies, so it must be deterministic (a pure function of the bytes);
/// a build whose extractor of some name computes other keys must give it a new version.
/// An error refuses the record: the write is [`Error::InvalidValue`](crate::Error::InvalidValue)
/// before it is proposed, and rejected identically on every node if it gets that far.
///
/// ```
/// use mnema::{Extractor, IndexKeys, IndexRange, Kind, Storage, TableDef};
/// // Users by the domain of their e-mail address (the value).
/// fn domain(_key: &[u8], value: &[u8], out: &mut IndexKeys) -> Result<(), String> {
///     let at = value.iter().position(|b| *b == b'@').ok_or("no @ in the address")?;
///     out.push(&value[at + 1..]);
///     Ok(())
/// }
/// let def = TableDef::replicated("users", Kind::Set, Storage::Disc)
///     .with_index("domain", Extractor::new("users.domain", domain));
/// assert_eq!(def.indexes[0].name, "domain");
/// let page = IndexRange::exact("example.com").limit(100);
/// assert_eq!(page.limit, Some(100));
/// ```
#[derive(Clone, Copy)]
pub struct Extractor {
    name: &'static str,
    version: u32,
    extract: ExtractFn,
}

/// An extractor's code: a record's key and value in, its index keys out (or why the
/// record is refused).
pub type ExtractFn = fn(&[u8], &[u8], &mut IndexKeys) -> Result<(), String>;

impl Extractor {
    /// An extractor named `name`, version 1.
    pub const fn new(name: &'static str, extract: ExtractFn) -> Self {
        Extractor { name, version: 1, extract }
    }

    /// The same extractor under version `version`: bump it whenever it starts to compute
    /// other keys.
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The extractor's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The extractor's version.
    pub fn version_number(&self) -> u32 {
        self.version
    }

    /// The index keys of `key` → `value`, sorted, each once.
    pub fn keys(&self, key: &[u8], value: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut out = IndexKeys::default();
        (self.extract)(key, value, &mut out)?;
        Ok(out.into_sorted())
    }
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extractor({} v{})", self.name, self.version)
    }
}

impl PartialEq for Extractor {
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.version) == (other.name, other.version)
    }
}
impl Eq for Extractor {}
impl std::hash::Hash for Extractor {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.name, self.version).hash(state)
    }
}

/// A named secondary index of a table: ordered by the keys its [`Extractor`] computes,
/// kept in memory with the table, changed in the same apply, published with it and
/// rebuilt from the records on load (nothing of it is on disc).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexDef {
    /// Unique among the table's indexes.
    pub name: String,
    /// Its code.
    pub extractor: Extractor,
}

/// A table declaration. A replicated table is created in the cluster's log from it (its
/// [`Declaration`](crate::Declaration)); a node that declares a table the cluster has must
/// declare it the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableDef {
    /// The table's name, unique in a catalog.
    pub name: String,
    /// Set, ordered set or bag.
    pub kind: Kind,
    /// Replicated through Raft, or local to one node.
    pub scope: Scope,
    /// Held in memory, on disc, or both.
    pub storage: Storage,
    #[serde(default)]
    /// A secondary index kept with the table (the topic trie).
    pub index: Index,
    /// The rule every stored record follows; `None`: any bytes.
    #[serde(skip)]
    pub rule: Option<ValueRule>,
    /// Its secondary indexes (tables held in memory only).
    #[serde(skip)]
    pub indexes: Vec<IndexDef>,
    /// The shard it belongs to: a transaction stays within one shard, and a replicant may
    /// follow a subset of shards (`replicant.shards`).
    #[serde(default)]
    pub shard: ShardId,
}

impl TableDef {
    /// A table named `name`; [`TableDef::replicated`] and [`TableDef::local`] say the scope.
    pub fn new(name: &str, kind: Kind, scope: Scope, storage: Storage) -> Self {
        TableDef {
            name: name.to_string(),
            kind,
            scope,
            storage,
            index: Index::None,
            rule: None,
            indexes: Vec::new(),
            shard: DEFAULT_SHARD,
        }
    }

    /// Every record put into the table must pass `rule` (see [`ValueRule`]).
    pub fn with_rule(mut self, rule: ValueRule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// The table belongs to shard `shard` (the default shard is 0).
    pub fn with_shard(mut self, shard: ShardId) -> Self {
        self.shard = shard;
        self
    }

    /// A secondary index named `name` whose keys `extractor` computes (see [`Extractor`]).
    pub fn with_index(mut self, name: &str, extractor: Extractor) -> Self {
        self.indexes.push(IndexDef { name: name.to_string(), extractor });
        self
    }

    /// Whether `key` → `value` may be stored in this table: its [`ValueRule`], if any, and
    /// every index's [`Extractor`].
    pub fn check_record(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if let Some(rule) = &self.rule {
            rule.check(key, value)?;
        }
        for ix in &self.indexes {
            ix.extractor.keys(key, value).map_err(|e| format!("index `{}`: {e}", ix.name))?;
        }
        Ok(())
    }

    /// The position of index `name` among [`TableDef::indexes`].
    pub fn index_position(&self, name: &str) -> Option<usize> {
        self.indexes.iter().position(|i| i.name == name)
    }

    /// Index the keys as topic filters (an in-memory bag such as `routes`).
    pub fn with_topic_index(mut self) -> Self {
        self.index = Index::Topic;
        self
    }

    /// A table replicated to every node through Raft.
    pub fn replicated(name: &str, kind: Kind, storage: Storage) -> Self {
        Self::new(name, kind, Scope::Replicated, storage)
    }

    /// A table local to each node (never replicated).
    pub fn local(name: &str, kind: Kind, storage: Storage) -> Self {
        Self::new(name, kind, Scope::Local, storage)
    }

    /// Whether reads are served from the in-memory copy.
    pub fn in_memory(&self) -> bool {
        self.storage != Storage::DiscOnly
    }

    /// Whether records are written to RocksDB.
    pub fn on_disc(&self) -> bool {
        // Replicated ram tables are persisted too: the state machine on disk must match its
        // applied index, or a restart would diverge from the other nodes.
        self.storage != Storage::Ram || self.scope == Scope::Replicated
    }
}
