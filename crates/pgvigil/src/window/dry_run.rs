//! `pgvigil migrate dry-run` and the dashboard's `d` key. No migration SQL runs on the server
//! behind DATABASE_URL: production is only read (its schema through `pg_dump --schema-only`, its
//! ledger and catalog in READ ONLY sessions), and the pending migrations run for real, in order,
//! on a copy of that schema in a dev database (a private throwaway cluster or `--dev-url`),
//! `-- no-transaction` files included. A rolled-back transaction on production was never a
//! safety boundary: a migration can commit, open a second connection (dblink) or reach the
//! server's files and programs, and none of that rolls back.
//!
//! Per migration the report gives the outcome (with the error's line and column), the time it
//! took, the relation locks it took (from pg_locks on the dev copy: read before COMMIT for
//! transactional files, sampled while it runs for no-transaction ones), the schema changes it
//! makes, and lint notes from the statement scanner. The migrations run through the shared
//! [`MigrationRunner`](crate::window::runner::MigrationRunner): each migration is bounded by the
//! statement timeout and the whole run by a wall-clock bound, both enforced by pgvigil from
//! outside the migration's session whatever timeouts a migration sets, and the dev database has
//! a disk bound (`--max-dev-size`). The dev database cannot reach other servers: extensions that
//! open connections (dblink, postgres_fdw) are not created unless named (`--allow-extension`),
//! and the private dev server runs without a network route when pgvigil is root. Afterwards
//! production is read again and compared (schema, ledger, roles, row counts and write
//! counters: [`ProductionEvidence`]); the report says what that shows and what it does not.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};

use crate::catalog::locks::{LockMode, RelationLock, relation_name_sql};
use crate::catalog::{SchemaSnapshot, snapshot};
use crate::checks::diff::{SchemaDiff, diff};
use crate::checks::guard::guarded;
use crate::config::PoolConfig;
use crate::dev::{
    DEFAULT_MAX_DEV_SIZE, DevError, DevServer, DevSource, RefusedExtension, SizeWatch, format_size,
};
use crate::migrations::{
    LedgerRow, LocalMigration, MigrationError, MigrationState, load_local, read_ledger,
};
use crate::session::{ProductionSession, Reader};
use crate::sql_scan::lint;
use crate::window::production_evidence::{ProductionEvidence, ProductionState, not_checked};
use crate::window::progress::{Progress, ProgressSink};
use crate::window::runner::{MigrationRunner, RunOutcome, RunnerOptions, Stop};
use crate::window::schema_copy::{CopyError, ProductionFacts, dump_schema, restore};

/// Bounds of a dry-run and where it runs; [`Default`]: lock_timeout 5 s, statement_timeout
/// 120 s, 10 minutes in all, a dev database of at most 2 GiB, no dev database given.
#[derive(Debug, Clone)]
pub struct DryRunOptions {
    /// lock_timeout on the dev copy (and the bound on pg_dump's wait for its read locks on
    /// production).
    pub lock_timeout: Duration,
    /// statement_timeout on the dev copy, and pgvigil's own bound on each migration file (sent
    /// as one statement): a migration may lift the server's timeout, not pgvigil's, which
    /// cancels it from another session.
    pub statement_timeout: Duration,
    /// The whole dry-run, enforced by pgvigil: when it passes, the running statement is
    /// cancelled on the dev server and the dev database removed.
    pub max_duration: Duration,
    /// The dev database's size (its files plus temporary files), in bytes: past it the
    /// running migration is stopped (`--max-dev-size`).
    pub max_dev_size: u64,
    /// Where the migrations run (`None`: nowhere, the dry-run refuses), with the extensions
    /// it may create ([`DevSource::with_extensions`]).
    pub dev: Option<DevSource>,
    /// Where the dry-run reports its phases ("starting the dev database", "applying migrations
    /// 2/5"); nowhere by default.
    pub progress: ProgressSink,
}

impl Default for DryRunOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(120),
            max_duration: Duration::from_secs(600),
            max_dev_size: DEFAULT_MAX_DEV_SIZE,
            dev: None,
            progress: ProgressSink::none(),
        }
    }
}

/// A relation lock a migration took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockTaken {
    /// The relation (schema-qualified unless in public), as on the dev copy.
    pub relation: String,
    /// The mode; in JSON as the documentation names it (`"ACCESS EXCLUSIVE"`).
    pub mode: LockMode,
    /// The relation did not exist on production (created by the pending migrations).
    pub created_here: bool,
}

impl Ord for LockTaken {
    /// By relation, the strongest mode first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.relation
            .cmp(&other.relation)
            .then(other.mode.cmp(&self.mode))
            .then(self.created_here.cmp(&other.created_here))
    }
}

impl PartialOrd for LockTaken {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for LockTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.mode, self.relation)?;
        if self.created_here {
            write!(f, " (created by this migration)")?;
        }
        Ok(())
    }
}

/// How one pending migration went on the dev copy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and committed.
    Succeeded,
    /// It failed, or was stopped at the dry-run's wall-clock bound.
    Failed {
        /// The server's message (with a hint for permission and lock errors), or pgvigil's when it
        /// stopped the migration.
        error: String,
        /// The SQLSTATE, when the server gave one (`42501`, `55P03`).
        sqlstate: Option<String>,
        /// 1-based line and column in the migration file.
        line: Option<usize>,
        /// 1-based column in the migration file.
        column: Option<usize>,
    },
    /// Not run because an earlier pending migration failed (as a real apply would stop).
    NotRun {
        /// Why: which earlier migration failed or ran out of time.
        reason: String,
    },
}

/// One pending migration as the dry-run ran it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationDryRun {
    /// Version, from the file name.
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// The file runs outside a transaction (`-- no-transaction`).
    pub no_transaction: bool,
    /// How it went.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Time it ran on the dev copy, in milliseconds.
    pub duration_ms: f64,
    /// Relation locks it took on the dev copy: the locks it would take on production.
    pub locks: Vec<LockTaken>,
    /// Locks of a no-transaction migration are sampled while it runs; a very short lock can
    /// slip between two samples.
    pub locks_sampled: bool,
    /// Changes relative to the schema before this migration: `unexpected` = created,
    /// `missing` = dropped, `different` = changed.
    pub changes: SchemaDiff,
    /// What the statement scanner noticed (transaction control, server-wide statements,
    /// server-side programs): review aids, not a guard.
    pub lint: Vec<String>,
}

/// The whole dry-run: what `--json` prints (format `pgvigil.dry-run/3`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunReport {
    /// Always `pgvigil.dry-run/3`: the JSON format's name and version.
    pub format: &'static str,
    /// Production (redacted).
    pub target: String,
    /// Production's `server_version`.
    pub production_version: String,
    /// Where the migrations ran; `None` when nothing was pending.
    pub dev: Option<String>,
    /// When the dry-run started.
    pub started_at: DateTime<Utc>,
    /// Wall-clock time of the whole dry-run, in milliseconds.
    pub duration_ms: f64,
    /// lock_timeout on the dev copy, in milliseconds.
    pub lock_timeout_ms: u128,
    /// statement_timeout on the dev copy, in milliseconds.
    pub statement_timeout_ms: u128,
    /// The wall-clock bound of the whole dry-run, in milliseconds.
    pub max_duration_ms: u128,
    /// The dev database's disk bound, in bytes.
    pub max_dev_size_bytes: u64,
    /// The pending migrations in order, with how each went.
    pub migrations: Vec<MigrationDryRun>,
    /// Things that make the dev copy differ from production (versions, extensions).
    pub notes: Vec<String>,
    /// Production's schema snapshot, ledger and roles were read before and after and are
    /// identical (rows are in `production`: its clients change them).
    pub production_unchanged: bool,
    /// What that rests on, what changed, what the dev server could reach, what was refused
    /// and what was not checked.
    pub production: ProductionEvidence,
}

/// The verdict of a dry-run, for exit codes and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRunStatus {
    /// Every pending migration ran on the dev copy.
    Passed,
    /// One failed (or hit the wall-clock bound), or production changed during the run.
    Failed,
}

impl DryRunStatus {
    /// As a monitoring verdict: passed is OK, failed CRITICAL.
    pub fn verdict(self) -> crate::checks::Status {
        match self {
            Self::Passed => crate::checks::Status::Pass,
            Self::Failed => crate::checks::Status::Fail,
        }
    }
}

impl DryRunReport {
    /// The report in one line, for the dashboard and logs: "2 pending migration(s) ran on the
    /// dev copy, 1 failed; production unchanged".
    pub fn summary(&self) -> String {
        let production = match (
            self.production_unchanged,
            self.production.rows_changed.len(),
        ) {
            (false, _) => "PRODUCTION'S SCHEMA, LEDGER OR ROLES CHANGED meanwhile".to_string(),
            (true, 0) => "production unchanged (schema, ledger, roles, rows)".to_string(),
            (true, n) => format!(
                "production's schema, ledger and roles unchanged; rows changed in {n} table(s) meanwhile"
            ),
        };
        if self.migrations.is_empty() {
            return format!("no pending migrations; {production}");
        }
        format!(
            "{} pending migration(s) ran on the dev copy, {} failed; {production}",
            self.migrations.len(),
            self.failed()
        )
    }

    /// How many migrations failed (or ran out of time).
    pub fn failed(&self) -> usize {
        self.migrations
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
            .count()
    }

    /// Passed when every migration succeeded and production did not change meanwhile.
    pub fn status(&self) -> DryRunStatus {
        if self.failed() > 0 || !self.production_unchanged {
            DryRunStatus::Failed
        } else {
            DryRunStatus::Passed
        }
    }
}

/// Why a dry-run could not produce a report at all (a failing migration is in the report, not
/// here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DryRunError {
    /// The migrations directory could not be read.
    #[error(transparent)]
    Migrations(#[from] MigrationError),
    /// A read on production failed (it only reads, in READ ONLY transactions).
    #[error("reading production (read-only): {0}")]
    Production(#[from] crate::checks::guard::ReadError),
    /// No dev database could be had, or it is production's own server.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// Production's schema could not be dumped or restored onto the dev copy.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A statement on the dev copy (outside the migrations themselves) failed.
    #[error("the dev copy: {0}")]
    DevDatabase(#[source] crate::db_error::DbError),
    /// The bound ran out before the migrations could start.
    #[error(
        "the dry-run passed its wall-clock bound of {bound} s before the migrations could run \
         (starting the dev database and copying the schema); raise --max-duration"
    )]
    TooSlow {
        /// The wall-clock bound, in seconds (`--max-duration`).
        bound: u64,
    },
}

/// Dry-runs the pending migrations of `dir`, reading production through `production`;
/// `config` names production for pg_dump.
pub async fn dry_run(
    config: &PoolConfig,
    production: &mut ProductionSession,
    dir: &Path,
    options: &DryRunOptions,
) -> Result<DryRunReport, DryRunError> {
    let local = load_local(dir).await?;
    dry_run_migrations(config, production, &local, options).await
}

/// Like [`dry_run`], with the migrations already read; cancels production's running statement
/// on the server when dropped mid-way.
pub async fn dry_run_migrations(
    config: &PoolConfig,
    production: &mut ProductionSession,
    local: &[LocalMigration],
    options: &DryRunOptions,
) -> Result<DryRunReport, DryRunError> {
    // Dropped mid-statement (a signal, Esc): the statement is cancelled on the server.
    let tracked = production.cancel_on_drop();
    let report = run(config, production, local, options).await;
    if let Some(t) = tracked {
        t.done();
    }
    report
}

async fn run(
    config: &PoolConfig,
    production: &mut ProductionSession,
    local: &[LocalMigration],
    options: &DryRunOptions,
) -> Result<DryRunReport, DryRunError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + options.max_duration;
    let started_at = Utc::now();
    let progress = &options.progress;
    progress.report(Progress::phase("reading production", None));
    // Each read names the session that blocked it, should one hold a lock it needs.
    let before = read_production(production, None).await?;
    let facts = before.facts.clone();
    let unapplied = MigrationState::of(local, before.ledger.as_deref()).unapplied_versions();
    let pending: Vec<&LocalMigration> = local
        .iter()
        .filter(|m| unapplied.contains(&m.version))
        .collect();
    let policy = options
        .dev
        .as_ref()
        .map(|d| d.extensions().clone())
        .unwrap_or_default();

    let mut report = DryRunReport {
        format: "pgvigil.dry-run/3",
        target: config.database_url.to_string(),
        production_version: facts.version.clone(),
        dev: None,
        started_at,
        duration_ms: 0.0,
        lock_timeout_ms: options.lock_timeout.as_millis(),
        statement_timeout_ms: options.statement_timeout.as_millis(),
        max_duration_ms: options.max_duration.as_millis(),
        max_dev_size_bytes: options.max_dev_size,
        migrations: Vec::new(),
        notes: Vec::new(),
        production_unchanged: true,
        production: ProductionEvidence {
            schema_unchanged: true,
            ledger_unchanged: true,
            roles_unchanged: true,
            tables_compared: 0,
            tables_estimated: 0,
            rows_changed: Vec::new(),
            dev_network: None,
            refused_extensions: policy.refused_in(&pending),
            allowed_extensions: policy.allowed().map(str::to_string).collect(),
            not_checked: Vec::new(),
        },
    };
    if facts.in_recovery {
        report.notes.push(
            "production is a STANDBY (pg_is_in_recovery): migrations are applied on its primary"
                .into(),
        );
    }
    let mut dev_url = false;
    if !pending.is_empty() {
        let too_slow = DryRunError::TooSlow {
            bound: options.max_duration.as_secs(),
        };
        progress.report(Progress::phase("starting the dev database", None));
        let dev = tokio::time::timeout_at(
            deadline,
            DevServer::start(
                options.dev.as_ref().ok_or(DevError::NotConfigured)?,
                Some(facts.major()),
            ),
        )
        .await
        .map_err(|_| too_slow)??;
        dev.ensure_apart_from(&facts.identity)?;
        report.dev = Some(dev.describe());
        report.production.dev_network = Some(dev.network().clone());
        dev_url = !dev.is_private();
        progress.report(Progress::phase("copying production's schema", None));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let dump = match dump_schema(config, facts.major(), options.lock_timeout, remaining).await {
            Ok(d) => d,
            // pg_dump bounds its lock waits with a statement timeout on LOCK TABLE.
            Err(CopyError::Dump(text))
                if text.contains("could not obtain lock")
                    || (text.contains("statement timeout") && text.contains("LOCK TABLE")) =>
            {
                // Name who holds the lock, as every read that gives up on one does.
                let blockers =
                    async |r: &mut Reader<'_>| Ok(crate::checks::guard::blockers(r).await);
                let who = production.read(blockers).await.unwrap_or_default();
                return Err(CopyError::Dump(format!("{text}{who}")).into());
            }
            Err(e) => return Err(e.into()),
        };
        let scratch = dev.scratch().await?;
        let notes = tokio::time::timeout_at(deadline, restore(&dev, &scratch, &facts, &dump))
            .await
            .map_err(|_| DryRunError::TooSlow {
                bound: options.max_duration.as_secs(),
            })??;
        report.notes.extend(notes);
        // Extensions a pending migration creates (IF NOT EXISTS) are created beforehand by
        // the dev server's administrator: migrations there run as an ordinary role. Those
        // the policy refuses are not: the migration asking for one fails, naming it.
        let extensions: Vec<crate::dev::Extension> = pending
            .iter()
            .flat_map(|m| crate::sql_scan::extensions_created_if_not_exists(&m.sql))
            .filter(|e| policy.refuses(&e.name).is_none())
            .collect();
        if let Err(e) = scratch.create_extensions(&extensions).await {
            report.notes.push(format!(
                "could not create the extensions the migrations ask for: {}",
                crate::checks::guard::server_message(&e)
            ));
        }
        let result = run_on_dev(&dev, &scratch, &pending, options, deadline).await;
        if let Err(e) = scratch.drop_now().await {
            tracing::warn!(target: "pgvigil::dry_run", "could not drop the dev copy: {e}");
        }
        drop(dev);
        report.migrations = result?;
        // A migration may carry production's password (a dblink connection string) and an
        // error may echo it.
        for m in &mut report.migrations {
            if let Outcome::Failed { error, .. } = &mut m.outcome {
                *error = config.database_url.scrub(error);
            }
        }
    }
    progress.report(Progress::phase("reading production again", None));
    let counted = before.state.counted();
    let after = read_production(production, Some(&counted)).await?;
    let evidence = &mut report.production;
    evidence.schema_unchanged = after.schema == before.schema;
    evidence.ledger_unchanged = ledger_eq(&before.ledger, &after.ledger);
    evidence.roles_unchanged = before.state.roles_unchanged(&after.state);
    evidence.rows_changed = before.state.row_changes(&after.state);
    (evidence.tables_compared, evidence.tables_estimated) = before.state.coverage();
    evidence.not_checked = not_checked(evidence.tables_estimated, dev_url);
    report.production_unchanged = evidence.unchanged();
    if !report.production_unchanged {
        tracing::error!(target: "pgvigil::dry_run", "production's schema, ledger or roles changed during the dry-run (someone else migrating?)");
    }
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

/// Production as the dry-run reads it, before and after.
struct ProductionRead {
    facts: ProductionFacts,
    schema: SchemaSnapshot,
    ledger: Option<Vec<LedgerRow>>,
    state: ProductionState,
}

/// What the dry-run reads on production, in one READ ONLY transaction, each read under its own
/// savepoint so that one that waits on a lock names the session holding it. `counted`: the
/// tables to count exactly (those counted the first time).
async fn read_production(
    production: &mut ProductionSession,
    counted: Option<&BTreeSet<String>>,
) -> Result<ProductionRead, DryRunError> {
    let mut reader = production
        .begin_read_only()
        .await
        .map_err(|e| DryRunError::Production(e.into()))?;
    let read = async {
        let production = &mut reader;
        let facts = guarded(production, ProductionFacts::read).await?;
        let schema = guarded(production, snapshot).await?;
        let ledger = guarded(production, read_ledger).await?;
        let state = guarded(production, async |c: &mut Reader<'_>| {
            ProductionState::read(c, counted).await
        })
        .await?;
        Ok::<_, DryRunError>(ProductionRead {
            facts,
            schema,
            ledger,
            state,
        })
    }
    .await;
    let _ = reader.finish().await;
    read
}

/// Runs the pending migrations on the dev copy, in order, stopping at the first failure, through
/// the shared [`MigrationRunner`]: each bounded from outside its session by the statement
/// timeout, all of them by the wall-clock bound, the dev database by its disk bound.
async fn run_on_dev(
    dev: &DevServer,
    scratch: &crate::dev::ScratchDatabase,
    pending: &[&LocalMigration],
    options: &DryRunOptions,
    deadline: tokio::time::Instant,
) -> Result<Vec<MigrationDryRun>, DryRunError> {
    let db = |e| DryRunError::DevDatabase(crate::db_error::DbError::new(e, dev));
    // The dry-run's own reads of the copy (relations, schema snapshots), apart from the
    // migrations' session.
    let mut inspect = scratch.connect().await.map_err(db)?;
    // Every relation of the copy before the first migration (tables, indexes, views,
    // sequences in any schema), named as the lock report names them.
    let existing: BTreeSet<String> = sqlx::query_scalar(concat!(
        "SELECT ",
        relation_name_sql!("c", "n"),
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
    ))
    .fetch_all(&mut inspect)
    .await
    .map_err(db)?
    .into_iter()
    .collect();
    let mut previous = snapshot(&mut Reader::dev(&mut inspect)).await.map_err(db)?;
    let mut runner_options = RunnerOptions::bounded(
        options.lock_timeout,
        options.statement_timeout,
        deadline,
        options.max_duration,
    );
    // Dense readings: on a schema-only copy most locks last milliseconds.
    runner_options.sample_every = Duration::from_millis(2);
    runner_options.progress = options.progress.clone();
    let mut runner =
        MigrationRunner::connect(&scratch.connect_options(), runner_options, pending.len())
            .await
            .map_err(db)?;
    let mut watch = SizeWatch::start(scratch, options.max_dev_size)
        .await
        .map_err(db)?;
    let mut results = Vec::new();
    let mut stopped: Option<String> = None;
    for m in pending {
        let mut entry = MigrationDryRun {
            version: m.version,
            description: m.description.clone(),
            no_transaction: m.no_tx,
            outcome: Outcome::Succeeded,
            duration_ms: 0.0,
            locks: Vec::new(),
            locks_sampled: m.no_tx,
            changes: Vec::new(),
            lint: lint(&m.sql),
        };
        if let Some(reason) = &stopped {
            entry.outcome = Outcome::NotRun {
                reason: reason.clone(),
            };
            results.push(entry);
            continue;
        }
        // It asks for an extension that would let it reach other servers: not created, so
        // the migration cannot run as written.
        if let Some(refused) = dev.extensions().refused_in(&[*m]).first() {
            entry.outcome = refusal(refused);
            stopped = Some(format!(
                "migration {} asks for extension {}, which the dev database refuses",
                m.version, refused.name
            ));
            results.push(entry);
            continue;
        }
        let disk = async {
            let reached = watch.passed().await;
            format!(
                "the dev database reached {} (its files and temporary files), past its bound \
                 of {} (--max-dev-size), while {} ran; raise --max-dev-size if it must write \
                 that much",
                format_size(reached),
                format_size(watch.bound()),
                crate::dev::migration_file(m),
            )
        };
        let run = runner.run_or_stop(m, disk).await;
        entry.duration_ms = run.duration.as_secs_f64() * 1000.0;
        match run.outcome {
            RunOutcome::Cancelled(c) => {
                entry.outcome = Outcome::Failed {
                    error: match &c.stop {
                        Stop::Caller(why) => format!("stopped by pgvigil: {why}"),
                        Stop::Deadline(_) => format!(
                            "stopped by pgvigil: the dry-run's wall-clock bound of {} s was \
                             reached (--max-duration); a migration's own statement_timeout \
                             cannot lift it",
                            options.max_duration.as_secs()
                        ),
                        Stop::Bound(_) | Stop::Statements { .. } => c.to_string(),
                    },
                    sqlstate: None,
                    line: None,
                    column: None,
                };
                stopped = Some(match c.stop {
                    Stop::Caller(_) => {
                        format!(
                            "migration {} passed the dev database's disk bound",
                            m.version
                        )
                    }
                    Stop::Deadline(_) => {
                        format!("migration {} did not finish in time", m.version)
                    }
                    Stop::Bound(b) | Stop::Statements { bound: b, .. } => {
                        format!("migration {} ran past {} and was cancelled", m.version, b)
                    }
                });
            }
            RunOutcome::Failed(e) => {
                entry.outcome = failure(&e, &m.sql, run.statements_done);
                stopped = Some(format!(
                    "migration {} failed; a real apply stops there too",
                    m.version
                ));
            }
            RunOutcome::NotRun(reason) => {
                entry.outcome = Outcome::NotRun { reason };
            }
            RunOutcome::Succeeded => {
                entry.locks = taken(&run.locks, &existing);
                let after = snapshot(&mut Reader::dev(&mut inspect)).await.map_err(db)?;
                entry.changes = diff(&previous, &after, true);
                previous = after;
            }
        }
        results.push(entry);
    }
    runner.close().await;
    let _ = inspect.close().await;
    watch.close().await;
    Ok(results)
}

/// The runner's locks as the report names them, each marked when the pending migrations
/// created its relation.
fn taken(locks: &[RelationLock], existing: &BTreeSet<String>) -> Vec<LockTaken> {
    let set: BTreeSet<LockTaken> = locks
        .iter()
        .map(|l| LockTaken {
            created_here: !existing.contains(&l.relation),
            relation: l.relation.clone(),
            mode: l.mode,
        })
        .collect();
    set.into_iter().collect()
}

fn ledger_eq(a: &Option<Vec<LedgerRow>>, b: &Option<Vec<LedgerRow>>) -> bool {
    let key = |l: &Option<Vec<LedgerRow>>| {
        l.as_ref().map(|rows| {
            rows.iter()
                .map(|r| (r.version, r.success, r.checksum.clone(), r.installed_on))
                .collect::<Vec<_>>()
        })
    };
    key(a) == key(b)
}

/// A migration not run because it asks for an extension the dev database refuses.
fn refusal(refused: &RefusedExtension) -> Outcome {
    Outcome::Failed {
        error: refused.to_string(),
        sqlstate: None,
        line: None,
        column: None,
    }
}

/// The failure's words, SQLSTATE, line and column: the server's error position when it gives
/// one, else the start of the statement that failed (the one after the `done` that completed).
pub(crate) fn failure(e: &sqlx::Error, sql: &str, done: usize) -> Outcome {
    let (mut line, mut column, mut sqlstate) = (None, None, None);
    if matches!(e, sqlx::Error::Database(_))
        && let Some(at) = crate::sql_scan::statement_starts(sql).get(done)
    {
        let (l, c) = line_column(sql, sql[..*at].chars().count() + 1);
        line = Some(l);
        column = Some(c);
    }
    // The server's own message, without the driver's prefix (db_error's one wording).
    let mut error = crate::db_error::words(e);
    if let sqlx::Error::Database(db) = e {
        sqlstate = db.code().map(|c| c.to_string());
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
            if let Some(PgErrorPosition::Original(pos)) = pg.position() {
                let (l, c) = line_column(sql, pos);
                line = Some(l);
                column = Some(c);
            }
            // dblink's "could not establish connection" says why only in its detail.
            if let Some(detail) = pg.detail() {
                error.push_str(": ");
                error.push_str(detail.trim());
            }
        }
    }
    if sqlstate.as_deref() == Some("42501") {
        error.push_str(" (on a private dev cluster migrations run as an ordinary role, as production's migration role should; a migration that needs a superuser can be dry-run with --dev-url on a scratch server)");
    }
    if sqlstate.as_deref() == Some("53400") {
        error.push_str(" (temp_file_limit: pgvigil bounds one session's temporary files on the dev database at --max-dev-size)");
    }
    if sqlstate.as_deref() == Some("55P03") {
        error.push_str(" (lock_timeout: another session holds a conflicting lock; in production this migration would queue behind it and block everyone after it)");
    }
    Outcome::Failed {
        error,
        sqlstate,
        line,
        column,
    }
}

/// 1-based line and column of a 1-based character position.
fn line_column(sql: &str, position: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for ch in sql.chars().take(position.saturating_sub(1)) {
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_line_and_column() {
        let sql = "SELECT 1;\nALTER TABLE x ADD COLUMN y intt;";
        assert_eq!(line_column(sql, 1), (1, 1));
        assert_eq!(line_column(sql, 11), (2, 1));
        assert_eq!(line_column(sql, 38), (2, 28));
    }
}
