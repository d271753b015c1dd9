//! The metrics a scrape of `/metrics` returns, in the Prometheus text format.
//!
//! Names start with `mnema_`; the replicant ones follow Mria's (`mnema_replicant_lag`
//! as `emqx_mria_lag`, `mnema_replicant_bootstrap_seconds` as
//! `emqx_mria_bootstrap_time`). ARCHITECTURE.md and docs/operations.md list them all.

use crate::runtime::Observed;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PropertyLabel {
    property: String,
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// The process's resident set (`VmRSS` of `/proc/self/status`), where there is one.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Renders every metric of `rt` now. Reads each table once (record counts and bytes are
/// summed over its records), so a scrape costs time in proportion to the data held.
pub(crate) fn render(rt: &Observed) -> String {
    let mut reg = Registry::with_prefix("mnema");
    let ins = &rt.instruments();
    let status = rt.node_status();

    reg.register("write_seconds", "Transaction latency on this node: submitted to answered", ins.write_seconds.clone());
    reg.register("write_errors", "Transactions answered with an error", ins.write_errors.clone());
    reg.register("batch_transactions", "Transactions per batch this node proposed or forwarded", ins.batch_txns.clone());
    reg.register("forwarded_batches", "Batches forwarded to the leader", ins.forwarded_batches.clone());
    reg.register("forwarded_transactions", "Transactions in batches forwarded to the leader", ins.forwarded_txns.clone());
    reg.register(
        "write_retries",
        "Writes sent again under the same request id after an unknown outcome",
        counter(status.write_retries),
    );

    reg.register("raft_campaigns", "Elections this core started after winning a pre-vote", ins.campaigns.clone());
    reg.register(
        "raft_pre_votes_lost",
        "Pre-votes this core lost: no majority would vote for it, so it did not campaign",
        ins.pre_votes_lost.clone(),
    );

    reg.register(
        "raft_frames_connections",
        "Raft frames connections peers opened to this core and it admitted",
        ins.raft_frames_connections.clone(),
    );

    reg.register("applied_index", "Last log index applied on this node", gauge(status.applied_index));
    reg.register("commit_index", "Commit index as this node knows it", gauge(status.committed));
    let info = Family::<NameLabel, Gauge>::default();
    info.get_or_create(&NameLabel { name: status.name.clone() }).set(1);
    reg.register("node_info", "This node's name (always 1)", info);
    let role = Family::<StateLabel, Gauge>::default();
    role.get_or_create(&StateLabel { state: status.role.as_str().into() }).set(1);
    reg.register("node_role", "core or replicant (always 1)", role);

    let (ring_entries, ring_bytes) = rt.feed_size();
    reg.register("feed_ring_entries", "Applied entries held in the change feed's ring", gauge(ring_entries as u64));
    reg.register("feed_ring_bytes", "Bytes of changes held in the change feed's ring (estimated)", gauge(ring_bytes as u64));

    if rt.is_replicant() {
        if let Some(r) = &status.replicant {
            let state = Family::<StateLabel, Gauge>::default();
            for s in crate::status::ReplicantState::ALL {
                state.get_or_create(&StateLabel { state: s.as_str().into() }).set(i64::from(s == r.state));
            }
            reg.register("replicant_state", "This replicant's state (1 for the current one)", state);
            reg.register("replicant_lag", "Entries committed on the cores and not yet applied here", gauge(r.lag_entries));
            reg.register("replicant_lag_ms", "How long the oldest such entry has been waiting", gauge(r.lag_ms));
            reg.register("replicant_bootstraps", "Full copies taken from a core", counter(r.bootstraps));
            reg.register("replicant_resumes", "Streams resumed from the log", counter(r.resumes));
            reg.register(
                "replicant_bootstrap_seconds",
                "Duration of the last bootstrap",
                ins.bootstrap_seconds.clone(),
            );
            reg.register("replicant_bootstrap_records", "Records in the last bootstrap", ins.bootstrap_records.clone());
        }
    } else {
        reg.register("raft_term", "Current Raft term", gauge(status.term));
        let leader = Family::<NameLabel, Gauge>::default();
        if let Some(l) = &status.leader {
            leader.get_or_create(&NameLabel { name: l.clone() }).set(1);
        }
        reg.register("raft_leader", "The leader this node knows (1), if any", leader);
        reg.register("raft_is_leader", "1 on the leader", gauge(u64::from(status.raft_role == Some(crate::RaftRole::Leader))));
        reg.register("raft_has_leader", "1 if this node knows a leader", gauge(u64::from(status.leader.is_some())));
        reg.register("replicants", "Replicants streaming from this core", gauge(status.subscribers.len() as u64));
        let events = rt.db().events();
        reg.register("snapshots_built", "Snapshots of the tables built", counter(events.snapshots_built()));
        reg.register("snapshots_installed", "Snapshots installed from the leader", counter(events.snapshots_installed()));
        reg.register("log_purges", "Raft log purges", counter(events.purges()));
        reg.register("log_purged_index", "Last log index purged", gauge(events.purged_upto()));
        let props = Family::<PropertyLabel, Gauge>::default();
        for (name, v) in rt.db().int_properties() {
            props.get_or_create(&PropertyLabel { property: name.into() }).set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        reg.register("rocksdb", "RocksDB integer properties (rocksdb.<property>), summed over column families", props);
    }

    let records = Family::<TableLabel, Gauge>::default();
    let bytes = Family::<TableLabel, Gauge>::default();
    let view = rt.view();
    for (def, table) in view.catalog.defs().iter().zip(view.tables.iter()) {
        let (mut n, mut b) = (0u64, 0u64);
        table.for_each(|k, v| {
            n += 1;
            b += (k.len() + v.len()) as u64;
        });
        let label = TableLabel { table: def.name.clone() };
        records.get_or_create(&label).set(n as i64);
        bytes.get_or_create(&label).set(b as i64);
    }
    reg.register("table_records", "Records held in memory, by table (disc_only tables: 0 on cores)", records);
    if let Some(rss) = resident_bytes() {
        reg.register("process_resident_bytes", "Resident memory of the whole process (Linux: VmRSS)", gauge(rss));
    }
    reg.register("table_bytes", "Bytes of keys and values held in memory, by table (without index overhead)", bytes);

    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}
