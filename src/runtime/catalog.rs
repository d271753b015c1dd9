//! Tables created and dropped through the log, as a node asks for them: what is checked
//! before such a change is proposed, and the task that creates the tables this node
//! declares when the log lacks them.
//!
//! Every node applies a `CreateTable` entry with its own code for the rule and extractors
//! the declaration names; a node without that code stops rather than apply the log
//! differently (`engine::apply`). So before proposing one, the node asks every member (and
//! every replicant it can reach) for the code it registered, and refuses the change
//! ([`Error::Unregistered`] naming the node) unless all of them have it. A rolling upgrade
//! that adds a table with new code therefore creates it once the last node runs the new
//! build; a table without code is created at once.

use super::Runtime;
use crate::config::Role;
use crate::engine::declaration::{Declaration, Registered, SchemaInfo};
use crate::engine::{Committed, Op, Scope, TableDef, Txn};
use crate::error::{Error, Result};
use crate::status::{NodeStatus, TableInfo};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a member is given to say what code it registered.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// What a member says of itself, for the checks before a catalog change.
struct Said {
    name: String,
    /// The protocol version it announces.
    protocol: u32,
    /// Its declared tables and registered code; `None`: a replicant that did not answer.
    schema: Option<SchemaInfo>,
}

impl Runtime {
    /// Creates the replicated table `def` through the log (see [`Runtime::create_declared`]).
    pub async fn create_table(&self, def: &TableDef) -> Result<Committed> {
        if def.scope != Scope::Replicated {
            return Err(Error::InvalidTxn(format!(
                "table `{}` is local: local tables are declared at start, not created through the log",
                def.name
            )));
        }
        self.create_declared(Declaration::of(def)).await
    }

    /// Creates the replicated table `declaration` through the log: one entry, applied at
    /// the same index on every core and replicant. An identical table already there makes
    /// it a no-op (`OpResult::Exists`); one declared otherwise is
    /// [`Error::SchemaMismatch`]; code some node has not registered is
    /// [`Error::Unregistered`].
    pub async fn create_declared(&self, declaration: Declaration) -> Result<Committed> {
        self.transact(Txn { shard: 0, ops: vec![Op::CreateTable { declaration }] }).await
    }

    /// Drops the replicated table `name` and every record of it, through the log.
    pub async fn drop_table(&self, name: &str) -> Result<Committed> {
        self.transact(Txn::new().drop_table(name)).await
    }

    /// The tables of this node: the replicated ones of the catalog it has applied, then
    /// its local ones, each with its record count where it holds the records in memory.
    pub fn tables(&self) -> Vec<TableInfo> {
        let view = self.mem.load();
        let local = self.local.load();
        let replicated = view.catalog.defs().iter().zip(&view.tables).map(|(def, t)| (def, t, Scope::Replicated));
        let local = local.catalog.defs().iter().zip(&local.tables).map(|(def, t)| (def, t, Scope::Local));
        replicated
            .chain(local)
            .map(|(def, t, scope)| TableInfo {
                declaration: Declaration::of(def),
                scope,
                records: t.is_held().then(|| t.len() as u64),
            })
            .collect()
    }

    /// The replicated tables an import checks a file against: those the log has created,
    /// and those this node declares that it has not created yet.
    pub(crate) fn catalog_with_declared(&self) -> crate::engine::Catalog {
        let mut catalog = (*self.mem.load().catalog).clone();
        for def in &self.schema.replicated {
            if catalog.lookup(&def.name).is_err() {
                catalog = catalog.created(def.clone());
            }
        }
        catalog
    }

    /// Checks a catalog change before it is proposed (see the module's doc). `Some`: there
    /// is nothing to propose (the identical table is there), and this is the answer.
    pub(super) async fn prepare_catalog_change(&self, txn: &Txn) -> Result<Option<Committed>> {
        let [op] = txn.ops.as_slice() else {
            return Err(Error::InvalidTxn("a table is created or dropped by a transaction of that op alone".into()));
        };
        match op {
            Op::CreateTable { declaration } => {
                declaration.validate()?;
                if self.schema.local.lookup(&declaration.name).is_ok() {
                    return Err(Error::InvalidTxn(format!(
                        "table `{}` is a local table of {}: a replicated table may not take its name",
                        declaration.name,
                        self.name()
                    )));
                }
                if self.mem.load().catalog.lookup(&declaration.name).is_err() {
                    // Created elsewhere and not applied here yet? Catch up once, so that a
                    // table declared otherwise is named as such rather than rejected.
                    self.barrier().await?;
                }
                let view = self.mem.load();
                if let Ok(ix) = view.catalog.lookup(&declaration.name) {
                    let have = Declaration::of(view.catalog.def(ix));
                    if have != *declaration {
                        return Err(Error::SchemaMismatch {
                            peer: self.name().to_string(),
                            table: declaration.name.clone(),
                            reason: format!("the cluster has it as {}, not {}", have.shown(), declaration.shown()),
                        });
                    }
                    // Already there: a no-op, and no log entry for it.
                    return Ok(Some(Committed { index: view.applied, results: vec![crate::engine::OpResult::Exists] }));
                }
                drop(view);
                // The members are asked for its code with their versions, once, on the way
                // every write takes (`Runtime::members_can_apply`).
                self.schema.can_resolve(declaration)?;
                Ok(None)
            }
            Op::DropTable { table } => {
                if self.schema.local.lookup(table).is_ok() {
                    return Err(Error::InvalidTxn(format!("table `{table}` is local: it cannot be dropped")));
                }
                if self.mem.load().catalog.lookup(table).is_err() {
                    // Created elsewhere and not applied here yet? Catch up once.
                    self.barrier().await?;
                }
                self.mem.load().catalog.lookup(table).map(|_| None)
            }
            _ => Err(Error::InvalidTxn("a table is created or dropped by a transaction of that op alone".into())),
        }
    }

    /// Whether every member can apply `txn`, asked of them in one round when it needs
    /// anything of them: [`Error::Unregistered`] naming the first node that lacks code the
    /// tables it creates name, then [`Error::FeatureNotEnabled`] if it holds a kind of log
    /// entry that some member (this node, every core, every replicant a core streams to)
    /// announces a protocol version too old to read (see `crate::protocol`).
    pub(super) async fn members_can_apply(&self, txn: &Txn) -> Result<()> {
        let code = code_named(txn);
        if code.is_empty() {
            if crate::protocol::every_version_reads(txn) {
                return Ok(());
            }
            // This node's own version is known without asking anyone.
            self.versions_read(txn, &[])?;
        }
        let said = self.members_say().await?;
        have_code(&said, code)?;
        self.versions_read(txn, &said)
    }

    /// [`Error::FeatureNotEnabled`] unless this node and every member of `said` announce a
    /// version that reads `txn`.
    fn versions_read(&self, txn: &Txn, said: &[Said]) -> Result<()> {
        let me = std::iter::once((self.name(), self.cfg.protocol()));
        crate::protocol::every_member_reads(txn, me.chain(said.iter().map(|s| (s.name.as_str(), s.protocol))))
    }

    /// What every member says of itself: every core of the membership must answer (an
    /// error otherwise). Replicants are those the cores stream to, with the protocol
    /// version each announced when it subscribed; their schema is asked of them, and
    /// those that cannot be reached are passed over for it (they hold nothing they cannot
    /// rebuild, and one that lacks some code stops following rather than apply the log
    /// differently).
    async fn members_say(&self) -> Result<Vec<Said>> {
        let cores: Vec<(String, NodeStatus)> = match self.cfg.role {
            Role::Core => {
                let members: Vec<(String, String)> = {
                    let m = self.metrics()?;
                    m.membership_config.membership().nodes().map(|(_, n)| (n.name.clone(), n.addr.clone())).collect()
                };
                let asks = members.into_iter().map(|(name, addr)| async move {
                    if name == self.name() {
                        return Ok((name, self.node_status()));
                    }
                    let s = self.peers.node_info(&name, &addr, ASK_TIMEOUT).await?;
                    Ok((name, s))
                });
                futures::future::join_all(asks).await.into_iter().collect::<Result<Vec<_>>>()?
            }
            Role::Replicant => {
                let leader = self.wait_leader().await?;
                let mut client = self.peers.cluster(&leader.addr)?;
                let status = client
                    .status(crate::rpc::pb::Empty {})
                    .await
                    .map_err(|s| crate::rpc::client::status_error(&leader.name, s))?
                    .into_inner();
                let status = crate::rpc::convert::cluster_from_pb(status)?;
                let mut out = Vec::new();
                for m in status.members.into_iter().filter(|m| m.role == Role::Core) {
                    let Some(s) = m.status else {
                        return Err(Error::transport(
                            &m.name,
                            crate::error::TransportKind::NoAnswer,
                            m.error.unwrap_or_else(|| "not running".into()),
                        ));
                    };
                    out.push((m.name, s));
                }
                out
            }
        };
        let replicants: Vec<crate::status::Subscriber> =
            cores.iter().flat_map(|(_, s)| s.subscribers.clone()).collect();
        let mut out: Vec<Said> = cores
            .into_iter()
            .map(|(name, s)| Said { name, protocol: s.protocol, schema: Some(s.schema) })
            .collect();
        let asks = replicants.into_iter().map(|r| async move {
            let schema = if r.name == self.name() {
                Some(self.schema.info())
            } else {
                self.peers.node_info(&r.name, &r.addr, ASK_TIMEOUT).await.ok().map(|s| s.schema)
            };
            Said { name: r.name, protocol: r.protocol, schema }
        });
        out.extend(futures::future::join_all(asks).await);
        Ok(out)
    }

    /// The replicated tables this node declares that the log has not created (as of what
    /// this node applied).
    pub(crate) fn missing_declared(&self) -> Vec<Declaration> {
        let view = self.mem.load();
        self.schema.replicated.iter().filter(|d| view.catalog.lookup(&d.name).is_err()).map(Declaration::of).collect()
    }

    /// Creates the tables this node declares that the log lacks, together: one catch-up
    /// with the cluster, one round asking the members for their code, then every create
    /// proposed at once (group-committed into few entries).
    async fn create_missing(&self) -> Result<usize> {
        if self.missing_declared().is_empty() {
            return Ok(0);
        }
        self.barrier().await?;
        let missing = self.missing_declared();
        // One round asking the members: for the version that reads a created table (see
        // `crate::protocol`) and for the code the tables name.
        let members = self.members_say().await?;
        if let Some(first) = missing.first() {
            self.versions_read(&Txn { shard: 0, ops: vec![Op::CreateTable { declaration: first.clone() }] }, &members)?;
        }
        // Each table whose code every node has; the first refusal is the answer for the
        // others, which wait (a rolling upgrade that brings their code).
        let mut refused = None;
        let mut ready = Vec::new();
        for decl in missing {
            let check = self
                .schema
                .can_resolve(&decl)
                .and_then(|()| have_code(&members, SchemaInfo::code_of(std::slice::from_ref(&decl))));
            match check {
                Ok(()) => ready.push(decl),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        let creates = ready.into_iter().map(|declaration| {
            self.propose_checked(Txn { shard: 0, ops: vec![Op::CreateTable { declaration }] })
        });
        let created = futures::future::join_all(creates).await.into_iter().collect::<Result<Vec<_>>>()?;
        match refused {
            Some(e) => Err(e),
            None => Ok(created.iter().filter(|c| c.results.first() == Some(&crate::engine::OpResult::Inserted)).count()),
        }
    }

    /// The leader, once this node knows one (at most `raft.write_timeout`).
    async fn wait_leader(&self) -> Result<crate::raft::types::NodeInfo> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        loop {
            let mut changes = self.leader_changes();
            if let Some((_, leader)) = self.leader()? {
                return Ok(leader);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::NoLeader("no leader known to ask the cluster's members".into()));
            }
            changes.wait(left.min(Duration::from_millis(100))).await;
        }
    }

    /// Waits until the log has created `table` (which this node declares), at most
    /// `raft.write_timeout`.
    pub(super) async fn wait_created(&self, table: &str) -> Result<()> {
        let deadline = Instant::now() + self.cfg.write_timeout();
        let mut applied = self.applied_watch();
        loop {
            if self.mem.load().catalog.lookup(table).is_ok() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("table `{table}`, declared by {}, to be created through the log", self.name()),
                    ms: self.cfg.write_timeout().as_millis() as u64,
                });
            }
            tokio::select! {
                changed = tokio::time::timeout(left, applied.changed()) => {
                    if let Ok(Err(_)) = changed {
                        return Err(Error::Shutdown);
                    }
                }
                _ = self.stopped() => return Err(Error::Shutdown),
            }
        }
    }
}


/// Creates, through the log, every replicated table this node declares that the log
/// lacks: at start, after a join, after a drop. Runs until the node stops; checks again on
/// every applied change, and every second while a table is missing.
pub(crate) async fn keep_declared_tables(rt: Arc<Runtime>) {
    let mut applied = rt.applied_watch();
    let mut last_error: Option<String> = None;
    loop {
        let missing = !rt.missing_declared().is_empty();
        if missing && rt.leader().ok().flatten().is_some() {
            let created = tokio::select! {
                created = rt.create_missing() => created,
                _ = rt.stopped() => return,
            };
            match created {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(tables = n, "created declared tables through the log");
                    }
                    last_error = None;
                }
                Err(e) => {
                    let shown = e.to_string();
                    if last_error.as_deref() != Some(&shown) {
                        match &e {
                            Error::SchemaMismatch { .. } | Error::InvalidTxn(_) => {
                                tracing::error!(error = %e, "a declared table cannot be created")
                            }
                            _ => tracing::info!(error = %e, "declared tables not created yet; will try again"),
                        }
                        last_error = Some(shown);
                    }
                }
            }
        }
        let wait = if rt.missing_declared().is_empty() { Duration::from_secs(3600) } else { Duration::from_secs(1) };
        tokio::select! {
            _ = tokio::time::timeout(wait, applied.changed()) => {}
            _ = rt.stopped() => return,
        }
    }
}

/// The code the tables `txn` creates name.
fn code_named(txn: &Txn) -> Vec<Registered> {
    let created: Vec<Declaration> = txn
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::CreateTable { declaration } => Some(declaration.clone()),
            _ => None,
        })
        .collect();
    SchemaInfo::code_of(&created)
}

/// [`Error::Unregistered`] naming the first member of `said` that lacks some of `code`
/// (a replicant that did not answer is passed over: see `Runtime::members_say`).
fn have_code(said: &[Said], code: Vec<Registered>) -> Result<()> {
    if code.is_empty() {
        return Ok(());
    }
    let wanted = SchemaInfo { uses: code, ..SchemaInfo::default() };
    said.iter().try_for_each(|m| match &m.schema {
        Some(schema) => schema.must_have_code_of(&m.name, &wanted),
        None => Ok(()),
    })
}
