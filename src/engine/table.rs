//! Table declarations, in Mnesia's terms: a name, a kind, a scope and a storage class.

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Copy)]
pub struct ValueRule {
    name: &'static str,
    check: fn(&[u8], &[u8]) -> Result<(), String>,
}

impl ValueRule {
    /// A rule named `name` (shown in `Debug` and compared by name) that `check`s a record's
    /// key and value, returning why it is refused.
    pub const fn new(name: &'static str, check: fn(&[u8], &[u8]) -> Result<(), String>) -> Self {
        ValueRule { name, check }
    }

    /// The rule's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for ValueRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValueRule({})", self.name)
    }
}

// By name: function pointers have no stable identity across codegen units.
impl PartialEq for ValueRule {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for ValueRule {}
impl std::hash::Hash for ValueRule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

/// A table declaration. Every node of a cluster must declare the same replicated tables.
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
}

impl TableDef {
    /// A table named `name`; [`TableDef::replicated`] and [`TableDef::local`] say the scope.
    pub fn new(name: &str, kind: Kind, scope: Scope, storage: Storage) -> Self {
        TableDef { name: name.to_string(), kind, scope, storage, index: Index::None, rule: None }
    }

    /// Every record put into the table must pass `rule` (see [`ValueRule`]).
    pub fn with_rule(mut self, rule: ValueRule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// Whether `key` → `value` may be stored in this table: its [`ValueRule`], if any.
    pub fn check_record(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        match &self.rule {
            Some(rule) => (rule.check)(key, value),
            None => Ok(()),
        }
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
