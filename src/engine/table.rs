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
    None,
    /// Keys are MQTT topic filters; the wildcard ones go into a trie for matching topics
    /// (see `engine::topic_trie`). For in-memory bags.
    Topic,
}

/// A table declaration. Every node of a cluster must declare the same replicated tables.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub kind: Kind,
    pub scope: Scope,
    pub storage: Storage,
    #[serde(default)]
    pub index: Index,
}

impl TableDef {
    pub fn new(name: &str, kind: Kind, scope: Scope, storage: Storage) -> Self {
        TableDef { name: name.to_string(), kind, scope, storage, index: Index::None }
    }

    /// Index the keys as topic filters (an in-memory bag such as `routes`).
    pub fn with_topic_index(mut self) -> Self {
        self.index = Index::Topic;
        self
    }

    pub fn replicated(name: &str, kind: Kind, storage: Storage) -> Self {
        Self::new(name, kind, Scope::Replicated, storage)
    }

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
