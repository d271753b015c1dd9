//! Status values between their typed form (`crate::status`) and the wire (`pb`). What a
//! peer sends is checked: an unknown enum value is an error, not a guess.

use super::pb;
use crate::config::Role;
use crate::engine::declaration::{Declaration, SchemaInfo};
use crate::engine::{IndexHit, IndexRange, KeyRange, Scope};
use crate::error::{Error, Result};
use crate::status::{
    ClusterStatus, MemberStatus, NodeStatus, RaftRole, ReplicantState, ReplicantStatus, ShardStatus, Subscriber,
    TableInfo,
};

fn bad(what: &str, v: i32) -> Error {
    Error::corrupt("status", format!("{what} {v} is not a known value"))
}

fn role_to(r: Role) -> pb::NodeRole {
    match r {
        Role::Core => pb::NodeRole::Core,
        Role::Replicant => pb::NodeRole::Replicant,
    }
}

fn role_from(v: i32) -> Result<Role> {
    match pb::NodeRole::try_from(v) {
        Ok(pb::NodeRole::Core) => Ok(Role::Core),
        Ok(pb::NodeRole::Replicant) => Ok(Role::Replicant),
        _ => Err(bad("node role", v)),
    }
}

fn raft_to(r: Option<RaftRole>) -> pb::RaftRole {
    match r {
        None => pb::RaftRole::Unspecified,
        Some(RaftRole::Leader) => pb::RaftRole::Leader,
        Some(RaftRole::Follower) => pb::RaftRole::Follower,
        Some(RaftRole::Candidate) => pb::RaftRole::Candidate,
        Some(RaftRole::Learner) => pb::RaftRole::Learner,
        Some(RaftRole::Shutdown) => pb::RaftRole::Shutdown,
    }
}

fn raft_from(v: i32) -> Result<Option<RaftRole>> {
    Ok(match pb::RaftRole::try_from(v).map_err(|_| bad("raft role", v))? {
        pb::RaftRole::Unspecified => None,
        pb::RaftRole::Leader => Some(RaftRole::Leader),
        pb::RaftRole::Follower => Some(RaftRole::Follower),
        pb::RaftRole::Candidate => Some(RaftRole::Candidate),
        pb::RaftRole::Learner => Some(RaftRole::Learner),
        pb::RaftRole::Shutdown => Some(RaftRole::Shutdown),
    })
}

fn state_to(s: ReplicantState) -> pb::ReplicantState {
    match s {
        ReplicantState::Connecting => pb::ReplicantState::Connecting,
        ReplicantState::Bootstrap => pb::ReplicantState::Bootstrap,
        ReplicantState::LocalReplay => pb::ReplicantState::LocalReplay,
        ReplicantState::Normal => pb::ReplicantState::Normal,
    }
}

fn state_from(v: i32) -> Result<ReplicantState> {
    match pb::ReplicantState::try_from(v) {
        Ok(pb::ReplicantState::Connecting) => Ok(ReplicantState::Connecting),
        Ok(pb::ReplicantState::Bootstrap) => Ok(ReplicantState::Bootstrap),
        Ok(pb::ReplicantState::LocalReplay) => Ok(ReplicantState::LocalReplay),
        Ok(pb::ReplicantState::Normal) => Ok(ReplicantState::Normal),
        _ => Err(bad("replicant state", v)),
    }
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A replicant's status for the wire.
pub fn replicant_to_pb(s: &ReplicantStatus) -> pb::ReplicantStatus {
    pb::ReplicantStatus {
        state: state_to(s.state) as i32,
        upstream: s.upstream.clone().unwrap_or_default(),
        lag_entries: s.lag_entries,
        lag_ms: s.lag_ms,
        bootstraps: s.bootstraps,
        resumes: s.resumes,
        transitions: s.transitions.clone(),
        last_error: s
            .last_error
            .as_ref()
            .and_then(|e| crate::codec::encode_versioned(crate::codec::WIRE_VERSION, e).ok())
            .unwrap_or_default(),
        shards: s
            .shards
            .iter()
            .map(|x| pb::ShardStatus {
                shard: u32::from(x.shard),
                tables: x.tables.clone(),
                records: x.records,
                lag_entries: x.lag_entries,
            })
            .collect(),
    }
}

/// A replicant's status from the wire.
pub fn replicant_from_pb(s: pb::ReplicantStatus) -> Result<ReplicantStatus> {
    Ok(ReplicantStatus {
        state: state_from(s.state)?,
        upstream: some(s.upstream),
        lag_entries: s.lag_entries,
        lag_ms: s.lag_ms,
        bootstraps: s.bootstraps,
        resumes: s.resumes,
        transitions: s.transitions,
        last_error: if s.last_error.is_empty() {
            None
        } else {
            Some(crate::codec::decode_versioned("replicant error", crate::codec::WIRE_VERSION, &s.last_error)?)
        },
        shards: s
            .shards
            .into_iter()
            .map(|x| {
                Ok(ShardStatus {
                    shard: u16::try_from(x.shard).map_err(|_| Error::corrupt("status", format!("shard {}", x.shard)))?,
                    tables: x.tables,
                    records: x.records,
                    lag_entries: x.lag_entries,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    })
}

/// A node's status for the wire.
pub fn node_to_pb(s: &NodeStatus) -> pb::NodeStatus {
    pb::NodeStatus {
        name: s.name.clone(),
        node_id: s.node_id,
        role: role_to(s.role) as i32,
        raft_role: raft_to(s.raft_role) as i32,
        applied_index: s.applied_index,
        term: s.term,
        leader: s.leader.clone().unwrap_or_default(),
        addr: s.addr.clone(),
        cluster_id: s.cluster_id.clone(),
        replicant: s.replicant.as_ref().map(replicant_to_pb),
        subscribers: s.subscribers.iter().map(|x| pb::Subscriber { name: x.name.clone(), addr: x.addr.clone(), protocol: x.protocol }).collect(),
        committed: s.committed,
        write_retries: s.write_retries,
        forming_with: s.forming_with.clone(),
        schema: encode_schema(&s.schema),
        protocol: s.protocol,
    }
}

/// A node's schema for the wire (empty stays empty: "not said").
pub fn encode_schema(schema: &SchemaInfo) -> Vec<u8> {
    if schema.is_empty() {
        return Vec::new();
    }
    crate::codec::encode_versioned(crate::codec::WIRE_VERSION, schema).unwrap_or_default()
}

/// A node's schema from the wire.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaInfo> {
    if bytes.is_empty() {
        return Ok(SchemaInfo::default());
    }
    crate::codec::decode_versioned("schema", crate::codec::WIRE_VERSION, bytes)
}

/// A node's tables for the wire.
pub fn tables_to_pb(tables: &[TableInfo]) -> Result<pb::TablesReply> {
    let tables = tables
        .iter()
        .map(|t| {
            Ok(pb::TableInfo {
                declaration: crate::codec::encode_versioned(crate::codec::WIRE_VERSION, &t.declaration)?,
                scope: match t.scope {
                    Scope::Replicated => pb::TableScope::Replicated,
                    Scope::Local => pb::TableScope::Local,
                } as i32,
                records: t.records,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(pb::TablesReply { tables })
}

/// A node's tables from the wire.
pub fn tables_from_pb(reply: pb::TablesReply) -> Result<Vec<TableInfo>> {
    reply
        .tables
        .into_iter()
        .map(|t| {
            let declaration: Declaration =
                crate::codec::decode_versioned("table declaration", crate::codec::WIRE_VERSION, &t.declaration)?;
            let scope = match pb::TableScope::try_from(t.scope) {
                Ok(pb::TableScope::Replicated) => Scope::Replicated,
                Ok(pb::TableScope::Local) => Scope::Local,
                _ => return Err(bad("table scope", t.scope)),
            };
            Ok(TableInfo { declaration, scope, records: t.records })
        })
        .collect()
}

fn bound_to_pb(b: &std::ops::Bound<Vec<u8>>) -> Option<pb::KeyBound> {
    use std::ops::Bound;
    match b {
        Bound::Unbounded => None,
        Bound::Included(k) => Some(pb::KeyBound { kind: pb::BoundKind::Included as i32, key: k.clone() }),
        Bound::Excluded(k) => Some(pb::KeyBound { kind: pb::BoundKind::Excluded as i32, key: k.clone() }),
    }
}

fn bound_from_pb(b: Option<pb::KeyBound>) -> Result<std::ops::Bound<Vec<u8>>> {
    use std::ops::Bound;
    let Some(b) = b else { return Ok(Bound::Unbounded) };
    match pb::BoundKind::try_from(b.kind) {
        Ok(pb::BoundKind::Unbounded) => Ok(Bound::Unbounded),
        Ok(pb::BoundKind::Included) => Ok(Bound::Included(b.key)),
        Ok(pb::BoundKind::Excluded) => Ok(Bound::Excluded(b.key)),
        Err(_) => Err(bad("key bound kind", b.kind)),
    }
}

/// An index read of `table`'s `index` for the wire.
pub fn index_read_to_pb(table: &str, index: &str, range: &IndexRange) -> pb::IndexReadRequest {
    pb::IndexReadRequest {
        table: table.to_string(),
        index: index.to_string(),
        start: bound_to_pb(&range.start),
        end: bound_to_pb(&range.end),
        limit: range.limit.map(|n| n as u64),
        after: range.after.as_ref().map(|(i, k, v)| pb::IndexHit { index_key: i.clone(), key: k.clone(), value: v.clone() }),
        min_applied: 0,
        linearizable: false,
    }
}

/// The range of an index read from the wire.
pub fn index_range_from_pb(r: &mut pb::IndexReadRequest) -> Result<IndexRange> {
    Ok(IndexRange {
        start: bound_from_pb(r.start.take())?,
        end: bound_from_pb(r.end.take())?,
        limit: r.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        after: r.after.take().map(|h| (h.index_key, h.key, h.value)),
    })
}

/// A range read of `table` for the wire.
pub fn range_read_to_pb(table: &str, range: &KeyRange) -> pb::RangeReadRequest {
    pb::RangeReadRequest {
        table: table.to_string(),
        start: bound_to_pb(&range.start),
        end: bound_to_pb(&range.end),
        limit: range.limit.map(|n| n as u64),
        reverse: range.reverse,
        after: range.after.as_ref().map(|(k, v)| pb::Record { key: k.clone(), value: v.clone() }),
        min_applied: 0,
        linearizable: false,
    }
}

/// The range of a range read from the wire.
pub fn key_range_from_pb(r: &mut pb::RangeReadRequest) -> Result<KeyRange> {
    Ok(KeyRange {
        start: bound_from_pb(r.start.take())?,
        end: bound_from_pb(r.end.take())?,
        limit: r.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        reverse: r.reverse,
        after: r.after.take().map(|rec| (rec.key, rec.value)),
    })
}

/// Index hits for the wire.
pub fn hits_to_pb(hits: Vec<IndexHit>) -> Vec<pb::IndexHit> {
    hits.into_iter()
        .map(|h| pb::IndexHit { index_key: h.index_key.to_vec(), key: h.key.to_vec(), value: h.value.to_vec() })
        .collect()
}

/// Index hits from the wire.
pub fn hits_from_pb(hits: Vec<pb::IndexHit>) -> Vec<IndexHit> {
    hits.into_iter()
        .map(|h| IndexHit { index_key: h.index_key.into(), key: h.key.into(), value: h.value.into() })
        .collect()
}

/// A node's status from the wire.
pub fn node_from_pb(s: pb::NodeStatus) -> Result<NodeStatus> {
    Ok(NodeStatus {
        name: s.name,
        node_id: s.node_id,
        role: role_from(s.role)?,
        raft_role: raft_from(s.raft_role)?,
        applied_index: s.applied_index,
        term: s.term,
        leader: some(s.leader),
        addr: s.addr,
        cluster_id: s.cluster_id,
        replicant: s.replicant.map(replicant_from_pb).transpose()?,
        subscribers: s.subscribers.into_iter().map(|x| Subscriber { name: x.name, addr: x.addr, protocol: x.protocol }).collect(),
        committed: s.committed,
        write_retries: s.write_retries,
        forming_with: s.forming_with,
        schema: decode_schema(&s.schema)?,
        protocol: s.protocol,
    })
}

/// The cluster's status for the wire.
pub fn cluster_to_pb(s: &ClusterStatus) -> pb::ClusterStatus {
    pb::ClusterStatus {
        cluster: s.cluster.clone(),
        leader: s.leader.clone().unwrap_or_default(),
        cluster_id: s.cluster_id.clone(),
        members: s
            .members
            .iter()
            .map(|m| pb::MemberStatus {
                name: m.name.clone(),
                addr: m.addr.clone(),
                role: role_to(m.role) as i32,
                voter: m.voter,
                running: m.running,
                status: m.status.as_ref().map(node_to_pb),
                error: m.error.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The cluster's status from the wire.
pub fn cluster_from_pb(s: pb::ClusterStatus) -> Result<ClusterStatus> {
    let mut members = Vec::with_capacity(s.members.len());
    for m in s.members {
        members.push(MemberStatus {
            name: m.name,
            addr: m.addr,
            role: role_from(m.role)?,
            voter: m.voter,
            running: m.running,
            status: m.status.map(node_from_pb).transpose()?,
            error: some(m.error),
        });
    }
    Ok(ClusterStatus { cluster: s.cluster, leader: some(s.leader), members, cluster_id: s.cluster_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_status_round_trips_through_the_wire() {
        let node = NodeStatus {
            name: "a@h".into(),
            node_id: 7,
            role: Role::Replicant,
            raft_role: None,
            applied_index: 9,
            term: 0,
            leader: Some("b@h".into()),
            addr: "h:1".into(),
            cluster_id: "c".into(),
            replicant: Some(ReplicantStatus {
                state: ReplicantState::LocalReplay,
                upstream: Some("b@h".into()),
                lag_entries: 1,
                lag_ms: 2,
                bootstraps: 3,
                resumes: 4,
                transitions: vec!["bootstrap@b@h".into()],
                last_error: Some(Error::NotRetained { from: 3 }),
                shards: vec![ShardStatus { shard: 1, tables: vec!["routes".into()], records: 5, lag_entries: 1 }],
            }),
            subscribers: vec![Subscriber { name: "r@h".into(), addr: "h:2".into(), protocol: 1 }],
            committed: 10,
            write_retries: 0,
            forming_with: vec![],
            schema: SchemaInfo {
                declared: crate::engine::declaration::declarations(&crate::schema::broker_tables()),
                registry: crate::engine::registry::Registry::of_tables(&crate::schema::broker_tables()).expect("code").registered(),
                uses: vec![],
            },
            protocol: 1,
        };
        let core = NodeStatus { role: Role::Core, raft_role: Some(RaftRole::Learner), replicant: None, ..node.clone() };
        let s = ClusterStatus {
            cluster: "mnema".into(),
            leader: None,
            cluster_id: "c".into(),
            members: vec![
                MemberStatus {
                    name: "a@h".into(),
                    addr: "h:1".into(),
                    role: Role::Replicant,
                    voter: false,
                    running: true,
                    status: Some(node),
                    error: None,
                },
                MemberStatus {
                    name: "b@h".into(),
                    addr: "h:2".into(),
                    role: Role::Core,
                    voter: false,
                    running: true,
                    status: Some(core),
                    error: None,
                },
            ],
        };
        assert_eq!(cluster_from_pb(cluster_to_pb(&s)).expect("decodes"), s);
    }

    #[test]
    fn a_nodes_tables_round_trip_and_an_unknown_scope_is_refused() {
        let tables: Vec<TableInfo> = crate::schema::broker_tables()
            .iter()
            .map(|d| TableInfo { declaration: Declaration::of(d), scope: d.scope, records: Some(3) })
            .collect();
        let wire = tables_to_pb(&tables).expect("encodes");
        assert_eq!(tables_from_pb(wire.clone()).expect("decodes"), tables);
        let mut bad = wire;
        bad.tables[0].scope = 9;
        assert!(matches!(tables_from_pb(bad), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn an_unknown_role_from_a_peer_is_refused() {
        let mut wire = node_to_pb(&NodeStatus {
            name: "a@h".into(),
            node_id: 1,
            role: Role::Core,
            raft_role: Some(RaftRole::Leader),
            applied_index: 0,
            term: 1,
            leader: None,
            addr: "h:1".into(),
            cluster_id: "c".into(),
            replicant: None,
            subscribers: vec![],
            committed: 0,
            write_retries: 0,
            forming_with: vec![],
            schema: SchemaInfo::default(),
            protocol: 1,
        });
        wire.role = 99;
        assert!(matches!(node_from_pb(wire), Err(Error::Corrupt { .. })));
    }
}
