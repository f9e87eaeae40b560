//! Runs the checks a `pgvigil check` (or the dashboard's verify key) asks for and gathers their
//! findings into one report. The target database is only read: every read happens in one READ
//! ONLY transaction with lock_timeout and statement_timeout set, each group of reads under its
//! own savepoint. The expected schema is built from the migrations on a dev database (never on
//! the target) and cached by the migrations' checksums and the server's major version.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::diff::{DiffKind, SchemaDiff, Severity, diff};
use super::expected::{ExpectedSchema, mark_pending};
use super::guard::guarded;
use super::migrations;
use super::{Finding, Group, Status, expected_cache, pgvector};
use crate::catalog::{SchemaSnapshot, snapshot};
use crate::config::ReadOnlySession;
use crate::dev::{DevServer, DevSource};
use crate::migrations::{LocalMigration, MigrationState};
use crate::pool::InstrumentedPool;
use crate::session::{ProductionSession, Reader};

/// What `pgvigil check` runs and the bounds it runs under; [`Default`] gives the command's
/// defaults.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Run only this group (connection always runs too); `None` runs them all (`--only`).
    pub only: Option<Group>,
    /// Groups left out (the dashboard's automatic status read skips the schema).
    pub skip: Vec<Group>,
    /// The sqlx migrations directory (default `migrations`).
    pub migrations_dir: PathBuf,
    /// An expected schema written by `pgvigil schema snapshot` (`--expected`), used instead of
    /// the cache or a dev database.
    pub expected_file: Option<PathBuf>,
    /// Report objects the migrations do not create everywhere, not only inside tables they create.
    pub strict: bool,
    /// How many KNN queries the pgvector smoke test times (default 10).
    pub knn_samples: usize,
    /// statement_timeout for every read on the target (default 30 s).
    pub statement_timeout: Duration,
    /// lock_timeout for every read: a read queued behind a migration's ACCESS EXCLUSIVE lock
    /// would block everyone queued after it.
    pub lock_timeout: Duration,
    /// May a dev database be started to build the expected schema (when the cache has none)?
    /// The dashboard's automatic status check says no; `v` and `pgvigil check` say yes.
    pub build_expected: bool,
    /// Where the expected schema is built (`None`: nowhere; the schema check then needs
    /// `expected_file` or the cache).
    pub dev: Option<DevSource>,
    /// Where it is cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock bound for building the expected schema.
    pub build_bound: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            only: None,
            skip: Vec::new(),
            migrations_dir: PathBuf::from("migrations"),
            expected_file: None,
            strict: false,
            knn_samples: 10,
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
            build_expected: true,
            dev: None,
            cache_dir: expected_cache::state_dir(),
            build_bound: Duration::from_secs(300),
        }
    }
}

impl CheckOptions {
    fn wants(&self, g: Group) -> bool {
        self.only.is_none_or(|o| o == g) && !self.skip.contains(&g)
    }
}

/// How many findings ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Findings that passed.
    pub pass: usize,
    /// Findings that warned.
    pub warn: usize,
    /// Findings that failed.
    pub fail: usize,
    /// Findings that could not decide.
    pub unknown: usize,
}

/// The whole report: what `--json` prints (format `pgvigil.check/1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Always `pgvigil.check/1`: the JSON format's name and version.
    pub format: &'static str,
    /// The database checked, as its URL with the password redacted.
    pub target: String,
    /// The server's `server_version`, `None` when it could not be read.
    pub server_version: Option<String>,
    /// When the check started.
    pub started_at: DateTime<Utc>,
    /// Wall-clock time of the whole check, in milliseconds.
    pub duration_ms: f64,
    /// ok, warning, critical or unknown.
    pub status: &'static str,
    /// Exit code of the overall status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    pub exit_code: u8,
    /// How many findings ended in each status.
    pub counts: Counts,
    /// Every finding, in the order the checks ran.
    pub findings: Vec<Finding>,
    /// Where the migrations stand, when the migrations group ran and could read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationState>,
    /// The schema differences, when the schema group ran with an expected schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_diff: Option<SchemaDiff>,
}

impl Counts {
    /// "0 failed, 1 warning, 0 unknown, 13 passed": the words every front end uses.
    pub fn sentence(&self) -> String {
        format!(
            "{} failed, {} warning, {} unknown, {} passed",
            self.fail, self.warn, self.unknown, self.pass
        )
    }
}

impl CheckReport {
    /// The report in one line: "WARNING: 0 failed, 1 warning, 0 unknown, 13 passed". The
    /// command, the dashboard and its log all say it this way.
    pub fn summary(&self) -> String {
        format!(
            "{}: {}",
            self.overall().monitoring_word(),
            self.counts.sentence()
        )
    }

    fn new(target: String, started_at: DateTime<Utc>) -> Self {
        Self {
            format: "pgvigil.check/1",
            target,
            server_version: None,
            started_at,
            duration_ms: 0.0,
            status: "ok",
            exit_code: 0,
            counts: Counts::default(),
            findings: Vec::new(),
            migrations: None,
            schema_diff: None,
        }
    }

    /// A report for a check that could not start (no connection, bad configuration).
    pub fn unknown(target: String, reason: String) -> Self {
        let mut r = Self::new(target, Utc::now());
        r.findings
            .push(Finding::unknown(Group::Connection, "connection", reason));
        r.finish(Instant::now());
        r
    }

    /// A report from findings gathered elsewhere (fixtures, other front ends).
    pub fn assemble(
        target: String,
        started_at: DateTime<Utc>,
        duration_ms: f64,
        findings: Vec<Finding>,
        migrations: Option<MigrationState>,
        schema_diff: Option<SchemaDiff>,
    ) -> Self {
        let mut r = Self::new(target, started_at);
        r.findings = findings;
        r.migrations = migrations;
        r.schema_diff = schema_diff;
        r.finish(Instant::now());
        r.duration_ms = duration_ms;
        r
    }

    /// The worst status among the findings (PASS when there are none).
    pub fn overall(&self) -> Status {
        // CRITICAL outranks UNKNOWN (something is known to be broken); UNKNOWN outranks WARNING.
        Status::worst(self.findings.iter().map(|f| f.status))
    }

    /// The finding with `id` (`pgvector.index`, `schema.diff`), if that check ran.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    /// Adds a finding computed outside the runner (`pool.sizing` from the application pools)
    /// and recomputes the status, exit code and counts.
    pub fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
        self.recount();
    }

    fn finish(&mut self, started: Instant) {
        self.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.recount();
    }

    fn recount(&mut self) {
        let overall = self.overall();
        self.status = match overall {
            Status::Pass => "ok",
            Status::Warn => "warning",
            Status::Fail => "critical",
            Status::Unknown => "unknown",
        };
        self.exit_code = overall.exit_code();
        let mut c = Counts::default();
        for f in &self.findings {
            match f.status {
                Status::Pass => c.pass += 1,
                Status::Warn => c.warn += 1,
                Status::Fail => c.fail += 1,
                Status::Unknown => c.unknown += 1,
            }
        }
        self.counts = c;
    }
}

/// Runs the requested checks against the pool's database, on one of its connections.
pub async fn run_checks(pool: &InstrumentedPool, opts: &CheckOptions) -> CheckReport {
    let target = || pool.config().database_url.to_string();
    let conn = match pool.acquire_labeled("check").await {
        Ok(c) => c,
        Err(e) => return CheckReport::unknown(target(), e.to_string()),
    };
    let mut session = match ProductionSession::from_checkout(conn, pool.config()).await {
        Ok(s) => s,
        Err(e) => {
            let reason = crate::db_error::DbError::new(e, &pool.config().database_url);
            return CheckReport::unknown(target(), reason.to_string());
        }
    };
    run_checks_on(&mut session, pool.config(), Some(pool), opts).await
}

/// Runs the checks through a given production session (the dashboard uses one of its own, so
/// that Esc can cancel its query on the server). `pool` feeds the pool group when present.
pub async fn run_checks_on(
    session: &mut ProductionSession,
    config: &crate::config::PoolConfig,
    pool: Option<&InstrumentedPool>,
    opts: &CheckOptions,
) -> CheckReport {
    // If this future is dropped mid-statement (a signal, Esc), the statement is cancelled on
    // the server (see cleanup); a normal return disarms that.
    let tracked = session.cancel_on_drop();
    let report = checks_on(session, config, pool, opts).await;
    if let Some(t) = tracked {
        t.done();
    }
    report
}

async fn checks_on(
    session: &mut ProductionSession,
    config: &crate::config::PoolConfig,
    pool: Option<&InstrumentedPool>,
    opts: &CheckOptions,
) -> CheckReport {
    let started = Instant::now();
    let mut report = CheckReport::new(config.database_url.to_string(), Utc::now());
    let failed = |e| crate::db_error::DbError::new(e, &config.database_url).to_string();

    let needs_catalog = opts.wants(Group::Schema) || opts.wants(Group::Migrations);
    let local = if needs_catalog {
        Some(crate::migrations::load_local(&opts.migrations_dir).await)
    } else {
        None
    };
    // What kind of server this is decides which dev database can stand in for it.
    let facts = match session.read(server_facts).await {
        Ok(f) => f,
        Err(e) => {
            report
                .findings
                .push(Finding::unknown(Group::Connection, "connection", failed(e)));
            report.finish(started);
            return report;
        }
    };
    report.server_version = Some(facts.version.clone());
    // The expected schema before the read-only transaction: building it takes a dev database
    // (seconds), and production should not hold a snapshot open meanwhile.
    let expected: Option<Result<ExpectedSchema, NoExpected>> = match (&local, &opts.expected_file) {
        (None, _) => None,
        (Some(_), Some(path)) => Some(ExpectedSchema::read(path).map_err(NoExpected::from)),
        (Some(Err(_)), None) => Some(Err(NoExpected::Migrations)),
        (Some(Ok(local)), None) => Some(
            // Starting the dev database and building: bounded as a whole, by pgvigil.
            tokio::time::timeout(opts.build_bound, expected_schema(local, &facts, opts))
                .await
                .unwrap_or(Err(NoExpected::TooSlow(opts.build_bound.as_secs()))),
        ),
    };

    let bounds = ReadOnlySession {
        lock_timeout: opts.lock_timeout,
        statement_timeout: opts.statement_timeout,
    };
    let mut conn = match session.begin_read_only_with(bounds).await {
        Ok(reader) => reader,
        Err(e) => {
            report
                .findings
                .push(Finding::unknown(Group::Connection, "connection", failed(e)));
            report.finish(started);
            return report;
        }
    };
    // A standby is named whatever was asked for; a primary only in the full report.
    if facts.in_recovery {
        report.findings.push(Finding::pass(Group::Connection,
            "server.role",
            "STANDBY: this server is a read-only replica in recovery (pg_is_in_recovery); \
             migrations are applied on its primary, and what is read here lags it by the replay delay",
        ));
    } else if opts.only.is_none() {
        report.findings.push(Finding::pass(
            Group::Connection,
            "server.role",
            "primary (not in recovery)",
        ));
    }
    if opts.wants(Group::Pool) {
        report
            .findings
            .extend(pool_findings(&mut conn, config, pool, &facts).await);
    }
    if opts.wants(Group::Pgvector) {
        report
            .findings
            .extend(pgvector::check(&mut conn, opts.knn_samples).await);
    }
    // Errors stay typed until they become a finding's words; every finding is scrubbed of the
    // password in one place at the end.
    let live: Option<Result<SchemaSnapshot, super::guard::ReadError>> = if needs_catalog {
        Some(guarded(&mut conn, snapshot).await)
    } else {
        None
    };
    let ledger = if opts.wants(Group::Migrations) || opts.wants(Group::Schema) {
        Some(guarded(&mut conn, crate::migrations::read_ledger).await)
    } else {
        None
    };
    let standing = match (&local, &ledger) {
        (Some(Ok(local)), Some(Ok(ledger))) => Some(MigrationState::of(local, ledger.as_deref())),
        _ => None,
    };
    let pending_versions: Vec<i64> = standing
        .as_ref()
        .map(MigrationState::unapplied_versions)
        .unwrap_or_default();
    if opts.wants(Group::Schema) {
        report.findings.push(match (&live, &expected) {
            (Some(Err(e)), _) => Finding::unknown(
                Group::Schema,
                "schema.diff",
                format!("could not read the live catalog: {e}"),
            ),
            (_, Some(Err(e))) => Finding::unknown(
                Group::Schema,
                "schema.diff",
                format!("no expected schema: {e}"),
            ),
            (Some(Ok(live)), Some(Ok(expected))) => {
                let mut d = diff(&expected.snapshot, live, opts.strict);
                mark_pending(&mut d, expected, &pending_versions);
                let f = schema_finding(&d, expected, local.as_ref().and_then(|l| l.as_ref().ok()));
                report.schema_diff = Some(d);
                f
            }
            _ => Finding::unknown(Group::Schema, "schema.diff", "not checked"),
        });
    }
    if opts.wants(Group::Migrations) {
        match (&local, &live, &ledger) {
            (Some(Err(e)), _, _) => report.findings.push(Finding::unknown(
                Group::Migrations,
                "migrations.ledger",
                e.to_string(),
            )),
            (_, Some(Err(e)), _) => report.findings.push(Finding::unknown(
                Group::Migrations,
                "migrations.ledger",
                format!("could not read the live catalog: {e}"),
            )),
            (_, _, Some(Err(e))) => report.findings.push(Finding::unknown(
                Group::Migrations,
                "migrations.ledger",
                format!("could not read _sqlx_migrations: {e}"),
            )),
            (Some(Ok(_)), Some(Ok(live)), Some(Ok(_))) => {
                let exp = expected
                    .as_ref()
                    .and_then(|e| e.as_ref().ok())
                    .map(|e| &e.objects_by_version);
                let state = standing
                    .clone()
                    .expect("read above from the same local files and ledger")
                    .with_catalog(live, exp);
                report
                    .findings
                    .extend(migrations::findings(&state, &opts.migrations_dir));
                report.migrations = Some(state);
            }
            _ => {}
        }
    }
    // Whatever happened inside, nothing of the transaction is kept.
    let _ = conn.finish().await;
    if let (Some(Ok(expected)), Some(Ok(live))) = (&expected, &live) {
        explain_pending(&mut report.findings, expected, live, &pending_versions);
    }
    // Every message passes through one scrub, whatever check produced it.
    for f in &mut report.findings {
        f.summary = config.database_url.scrub(&f.summary);
        for d in &mut f.details {
            *d = config.database_url.scrub(d);
        }
    }
    report.finish(started);
    report
}

/// A pgvector finding that fails (or cannot decide) only because a pending migration has not
/// run yet is a WARNING that says so: "pending", not "missing". A pending migration is
/// something to apply in the window, not an outage.
fn explain_pending(
    findings: &mut [Finding],
    expected: &ExpectedSchema,
    live: &SchemaSnapshot,
    pending: &[i64],
) {
    use crate::catalog::ObjectKey;
    let creates = |wanted: &dyn Fn(&ObjectKey) -> bool| -> Option<i64> {
        pending.iter().copied().find(|v| {
            expected
                .objects_by_version
                .get(v)
                .into_iter()
                .chain(expected.touched_by_version.get(v))
                .flatten()
                .any(wanted)
        })
    };
    let vector = |k: &ObjectKey| *k == ObjectKey::Extension("vector".into());
    let column = |k: &ObjectKey| {
        *k == ObjectKey::Table("documents".into())
            || *k == ObjectKey::Column("documents".into(), "embedding".into())
    };
    // Only the ANN index the finding is about, created by the pending migration and absent
    // here: an existing index that is INVALID or wrong stays a failure whatever else is
    // pending.
    let index = |k: &ObjectKey| match k {
        ObjectKey::Index(t, name) if t == "documents" => {
            let ann = expected
                .snapshot
                .tables
                .get("documents")
                .and_then(|table| table.indexes.get(name))
                .is_some_and(|i| {
                    i.definition.contains("USING hnsw") || i.definition.contains("USING ivfflat")
                });
            ann && !live.contains(k)
        }
        _ => false,
    };
    for f in findings.iter_mut().filter(|f| f.status != Status::Pass) {
        let version = match f.id {
            "pgvector.extension" | "pgvector.roundtrip" => {
                creates(&vector).filter(|_| !live.extensions.contains_key("vector"))
            }
            // A column a pending migration creates or changes (vector(1536) to 3072).
            "pgvector.column" => creates(&column)
                .or_else(|| creates(&vector).filter(|_| !live.extensions.contains_key("vector"))),
            "pgvector.index" | "pgvector.knn" => creates(&index)
                .or_else(|| {
                    creates(&column)
                        .filter(|_| !live.contains(&ObjectKey::Table("documents".into())))
                })
                .or_else(|| creates(&vector).filter(|_| !live.extensions.contains_key("vector"))),
            _ => None,
        };
        if let Some(v) = version {
            f.status = Status::Warn;
            f.summary = format!("pending: migration {v} has not run yet ({})", f.summary);
            f.fix = Some(
                "apply the pending migrations in the maintenance window, then verify again".into(),
            );
        }
    }
}

/// What the checks need to know about the server before they start (one statement).
#[derive(Debug, Clone)]
struct ServerFacts {
    version: String,
    version_num: i32,
    in_recovery: bool,
    /// Superuser or a member of pg_read_all_stats (pg_monitor includes it): other sessions'
    /// state and query are visible.
    sees_all_sessions: bool,
    role: String,
    /// See [`crate::dev::server_identity`].
    identity: String,
}

impl ServerFacts {
    fn major(&self) -> u32 {
        (self.version_num / 10000) as u32
    }
}

async fn server_facts(conn: &mut Reader<'_>) -> Result<ServerFacts, sqlx::Error> {
    let (version, num, in_recovery, sees_all_sessions, role): (String, String, bool, bool, String) =
        sqlx::query_as(
            "SELECT current_setting('server_version'), current_setting('server_version_num'),
                    pg_is_in_recovery(),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                      OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'),
                    current_user::text",
        )
        .fetch_one(&mut *conn)
        .await?;
    Ok(ServerFacts {
        version,
        version_num: num.parse().unwrap_or(0),
        in_recovery,
        sees_all_sessions,
        role,
        identity: crate::dev::server_identity(&mut *conn).await?,
    })
}

/// Why a check has no expected schema to compare with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoExpected {
    /// The migrations directory could not be read (its own finding says why).
    #[error("the migrations could not be read")]
    Migrations,
    /// The cache has none and [`CheckOptions::build_expected`] is off (the dashboard's automatic
    /// status read).
    #[error(
        "not built automatically (it needs a dev database); press v to verify, or pass \
         --expected FILE"
    )]
    NotBuilt,
    /// No dev database could be used to build it.
    #[error("{0}; or pass --expected FILE from `pgvigil schema snapshot`")]
    Dev(#[from] crate::dev::DevError),
    /// The expected-schema file could not be read, or building on the dev database failed.
    #[error(transparent)]
    Expected(#[from] crate::checks::expected::ExpectedError),
    /// Starting the dev database and building passed [`CheckOptions::build_bound`] (seconds).
    #[error("building it on the dev database passed its bound of {0} s")]
    TooSlow(u64),
}

/// From the cache, else built on a dev database (and cached), else the reason there is none.
async fn expected_schema(
    local: &[LocalMigration],
    facts: &ServerFacts,
    opts: &CheckOptions,
) -> Result<ExpectedSchema, NoExpected> {
    let major = facts.major();
    let key = expected_cache::key(local, major);
    if let Some(dir) = &opts.cache_dir
        && let Some(cached) = expected_cache::load(dir, &key)
    {
        return Ok(cached);
    }
    if !opts.build_expected {
        return Err(NoExpected::NotBuilt);
    }
    let source = opts
        .dev
        .as_ref()
        .ok_or(crate::dev::DevError::NotConfigured)?;
    let dev = DevServer::start(source, Some(major)).await?;
    dev.ensure_apart_from(&facts.identity)?;
    let built = ExpectedSchema::build(&dev, local, opts.build_bound).await?;
    if dev.major() != major {
        tracing::warn!(target: "pgvigil::checks", "the dev database runs PostgreSQL {}, production {major}: the expected schema is not cached", dev.version);
    } else if let Some(dir) = &opts.cache_dir {
        expected_cache::store(dir, &key, &built);
    }
    Ok(built)
}

fn schema_finding(
    d: &SchemaDiff,
    expected: &ExpectedSchema,
    local: Option<&Vec<LocalMigration>>,
) -> Finding {
    let tables = expected.snapshot.tables.len();
    let critical = d
        .iter()
        .filter(|e| e.severity == Severity::Critical)
        .count();
    let warnings = d.iter().filter(|e| e.severity == Severity::Warning).count();
    let mut f = if critical > 0 {
        Finding::fail(
            Group::Schema,
            "schema.diff",
            format!(
                "{} difference(s) from the migrations, {critical} critical",
                d.len()
            ),
        )
    } else if warnings > 0 {
        Finding::warn(
            Group::Schema,
            "schema.diff",
            format!(
                "{} difference(s) from the migrations, none critical",
                d.len()
            ),
        )
    } else if d.iter().any(|e| e.kind == DiffKind::Pending) {
        Finding::pass(
            Group::Schema,
            "schema.diff",
            format!(
                "matches the applied migrations; {} difference(s) are the pending migrations' to make (expected from {})",
                d.iter().filter(|e| e.kind == DiffKind::Pending).count(),
                expected.source
            ),
        )
    } else {
        Finding::pass(
            Group::Schema,
            "schema.diff",
            format!(
                "matches the migrations ({tables} tables, {} enums, {} extensions; expected from {})",
                expected.snapshot.enums.len(),
                expected.snapshot.extensions.len(),
                expected.source
            ),
        )
    };
    f = f.details(d.iter().map(|e| e.to_string()));
    let fixes: Vec<String> = d.iter().filter_map(|e| e.fix.clone()).collect();
    if !fixes.is_empty() {
        f = f.fix(fixes.join("\n"));
    }
    if let Some(local) = local {
        let stamps: Vec<_> = local.iter().map(LocalMigration::stamp).collect();
        if stamps != expected.migrations && f.status == Status::Pass {
            f.status = Status::Warn;
            f.summary
                .push_str("; but the expected schema was built from different migration files");
        } else if stamps != expected.migrations {
            f = f.detail("note: the expected schema was built from different migration files");
        }
    }
    let missing_or_different = d.iter().filter(|e| e.kind != DiffKind::Unexpected).count();
    f.data(serde_json::json!({ "entries": d, "missing_or_different": missing_or_different }))
}

async fn pool_findings(
    conn: &mut Reader<'_>,
    config: &crate::config::PoolConfig,
    pool: Option<&InstrumentedPool>,
    facts: &ServerFacts,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let stats = pool.map(InstrumentedPool::stats);
    let t0 = Instant::now();
    let row = guarded(&mut *conn, async |c| sqlx::query(
        "SELECT current_setting('server_version') AS version,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS clients,
                current_setting('max_connections')::int8 AS max_connections,
                current_setting('superuser_reserved_connections')::int8
                  + coalesce(current_setting('reserved_connections', true)::int8, 0) AS reserved",
    )
    .fetch_one(c)
    .await)
    .await;
    let rtt = t0.elapsed();
    match row {
        Err(e) => out.push(Finding::unknown(
            Group::Pool,
            "pool.server_connections",
            format!(
                "could not read pg_stat_activity: {}",
                config.database_url.scrub(&e.to_string())
            ),
        )),
        Ok(row) => {
            let version: String = row.get("version");
            let clients: i64 = row.get("clients");
            let max: i64 = row.get("max_connections");
            let reserved: i64 = row.get("reserved");
            let usable = (max - reserved).max(1);
            let ratio = clients as f64 / usable as f64;
            let pool_text = stats
                .as_ref()
                .map(|s| {
                    format!(
                        "; pool {} open / {} max, acquire p95 {}",
                        s.size,
                        s.max,
                        crate::pool::wait_text(s.acquire_wait.p95_ms / 1000.0)
                    )
                })
                .unwrap_or_default();
            out.push(
                Finding::pass(
                    Group::Pool,
                    "pool.connect",
                    format!(
                        "connected to PostgreSQL {version}; round trip {:.1} ms{pool_text}",
                        rtt.as_secs_f64() * 1000.0
                    ),
                )
                .data(&stats),
            );
            let summary = format!(
                "{clients} client connections of {usable} usable ({max} max_connections - {reserved} reserved), {:.0}%",
                ratio * 100.0
            );
            let warn_at = config.saturation_warn;
            let mut f = if ratio >= crate::catalog::NEAR_MAX_CONNECTIONS {
                Finding::fail(Group::Pool, "pool.server_connections", summary)
            } else if ratio >= warn_at {
                Finding::warn(Group::Pool, "pool.server_connections", summary)
            } else {
                Finding::pass(Group::Pool, "pool.server_connections", summary)
            };
            if !facts.sees_all_sessions {
                f = f.detail(format!(
                    "only this role's sessions are visible in detail (others show no state, \
                     query or wait); grant pg_monitor to {}",
                    crate::sanitize::quote_ident(&facts.role)
                ));
                if f.status == Status::Pass {
                    f.status = Status::Warn;
                    f.summary
                        .push_str("; only this role's sessions are visible: grant pg_monitor");
                }
            }
            out.push(f);
        }
    }
    out
}
