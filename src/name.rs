//! Node names (`name@host`), peer addresses and the node id derived from a name.
//!
//! A node name is the node's identity for life: the data dir records it, and the Raft node
//! id is a stable hash of it. A peer may be written `name@host` — its port then follows
//! EMQX's rule for several nodes on one host: the base port plus the number the name ends
//! with (`mnema2@127.0.0.1` → base + 2, `mnema@127.0.0.1` → base) — or `name@host:port`.

use crate::error::{Error, Result};
use std::fmt;

/// A validated node name such as `emqx@s1.emqx.io`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct NodeName(String);

impl NodeName {
    /// Parses `name@host`; `key` names the config key in the error.
    pub fn parse(key: &str, s: &str) -> Result<Self> {
        let (name, host) =
            s.split_once('@').ok_or_else(|| Error::config(key, format!("`{s}` is not of the form name@host")))?;
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !name_ok {
            return Err(Error::config(
                key,
                format!("`{s}`: the part before @ must be non-empty letters, digits, `_`, `-` or `.`"),
            ));
        }
        if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
            return Err(Error::config(key, format!("`{s}`: bad host part `{host}`")));
        }
        if host.contains(':') && !host.starts_with('[') {
            return Err(Error::config(key, format!("`{s}`: a node name has no port (write IPv6 hosts as [addr])")));
        }
        Ok(NodeName(s.to_string()))
    }

    /// `name@host`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`.
    pub fn host(&self) -> &str {
        self.0.split_once('@').map(|(_, h)| h).unwrap_or("")
    }

    /// The number the part before `@` ends with (`mnema12` → 12), or 0.
    pub fn ordinal(&self) -> u16 {
        let name = self.0.split_once('@').map(|(n, _)| n).unwrap_or("");
        let digits: String = name.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
        let digits: String = digits.chars().rev().collect();
        digits.parse().unwrap_or(0)
    }

    /// The Raft node id: FNV-1a (64 bit) of the name. Stable across versions and platforms.
    pub fn node_id(&self) -> u64 {
        fnv1a(self.0.as_bytes())
    }

    /// The RPC address of this node under the port rule.
    pub fn default_addr(&self, base_port: u16) -> Result<String> {
        let port = base_port.checked_add(self.ordinal()).ok_or_else(|| {
            Error::config("node.base_port", format!("base port {base_port} + {} overflows", self.ordinal()))
        })?;
        Ok(format!("{}:{port}", self.host()))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit: a fixed, portable hash for ids that must never change.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A peer as written in a seed list or on the command line: a name and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node's name.
    pub name: NodeName,
    /// Its `host:port`.
    pub addr: String,
}

impl Peer {
    /// Parses `name@host` (port by the rule) or `name@host:port`.
    pub fn parse(key: &str, s: &str, base_port: u16) -> Result<Self> {
        let s = s.trim();
        let (name, hostport) =
            s.split_once('@').ok_or_else(|| Error::config(key, format!("`{s}` is not of the form name@host")))?;
        // `[v6addr]` or `[v6addr]:port`; otherwise `host` or `host:port`.
        let (host, port) = match hostport.strip_prefix('[') {
            Some(rest) => {
                let (inner, after) =
                    rest.split_once(']').ok_or_else(|| Error::config(key, format!("`{s}`: unclosed `[`")))?;
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or_else(|| Error::config(key, format!("`{s}`: junk after `]`")))?),
                };
                (format!("[{inner}]"), port)
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            },
        };
        let name = NodeName::parse(key, &format!("{name}@{host}"))?;
        let addr = match port {
            Some(p) => {
                let port: u16 = p.parse().map_err(|_| Error::config(key, format!("`{s}`: bad port `{p}`")))?;
                format!("{}:{port}", name.host())
            }
            None => name.default_addr(base_port)?,
        };
        Ok(Peer { name, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_ids() {
        let n = NodeName::parse("k", "emqx@s1.emqx.io").unwrap();
        assert_eq!(n.host(), "s1.emqx.io");
        assert_eq!(n.ordinal(), 0);
        assert_eq!(NodeName::parse("k", "mnema12@127.0.0.1").unwrap().ordinal(), 12);
        assert_eq!(Peer::parse("k", "mnema2@127.0.0.1", 4370).unwrap().addr, "127.0.0.1:4372");
        assert_eq!(Peer::parse("k", "mnema2@127.0.0.1:9000", 4370).unwrap().addr, "127.0.0.1:9000");
        assert_eq!(Peer::parse("k", "a@[::1]", 4370).unwrap().addr, "[::1]:4370");
        assert_eq!(Peer::parse("k", "a@[::1]:5", 4370).unwrap().addr, "[::1]:5");
        // Stable: changing the hash would orphan every existing cluster.
        assert_eq!(n.node_id(), NodeName::parse("k", "emqx@s1.emqx.io").unwrap().node_id());
        assert_ne!(n.node_id(), NodeName::parse("k", "emqx@s2.emqx.io").unwrap().node_id());
        for bad in ["", "noat", "@host", "a@", "a b@h", "a@h:1", "a@b@c"] {
            assert!(NodeName::parse("node.name", bad).is_err(), "{bad}");
        }
        assert!(Peer::parse("k", "a@h:notaport", 1).is_err());
        let err = NodeName::parse("node.name", "noat").unwrap_err().to_string();
        assert!(err.contains("node.name"), "{err}");
    }
}
