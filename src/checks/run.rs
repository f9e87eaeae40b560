//! Runs the checks a `pgvigil check` (or the dashboard's verify key) asks for and gathers their
//! findings into one report. The target database is only read: live reads happen in READ ONLY
//! transactions; the expected schema is built in a scratch database that is dropped afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::catalog::{SchemaSnapshot, snapshot};
use super::migrations::{self, LocalMigration, MigrationState};
use super::schema::{DiffKind, ExpectedSchema, SchemaDiff, Severity, diff};
use super::{Finding, Status, pgvector};
use crate::pool::{InstrumentedPool, connect_options};

/// A group of checks, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Pgvector,
    Schema,
    Migrations,
    Pool,
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub only: Option<Group>,
    /// Groups left out (the dashboard's automatic status read skips the schema).
    pub skip: Vec<Group>,
    pub migrations_dir: PathBuf,
    pub expected_file: Option<PathBuf>,
    pub strict: bool,
    pub knn_samples: usize,
    pub statement_timeout: Duration,
    /// May a scratch database be created to build the expected schema? The dashboard's
    /// automatic status check says no: nothing pgvigil does on its own creates anything.
    pub scratch: bool,
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
            scratch: true,
        }
    }
}

impl CheckOptions {
    fn wants(&self, g: Group) -> bool {
        self.only.is_none_or(|o| o == g) && !self.skip.contains(&g)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
}

/// The whole report: what `--json` prints (format `pgvigil.check/1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub format: &'static str,
    pub target: String,
    pub server_version: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    /// ok, warning, critical or unknown.
    pub status: &'static str,
    pub exit_code: u8,
    pub counts: Counts,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_diff: Option<SchemaDiff>,
}

impl CheckReport {
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
        r.findings.push(Finding::unknown("connection", reason));
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

    pub fn overall(&self) -> Status {
        // CRITICAL outranks UNKNOWN (something is known to be broken); UNKNOWN outranks WARNING.
        Status::worst(self.findings.iter().map(|f| f.status))
    }

    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    fn finish(&mut self, started: Instant) {
        self.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
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
    let mut conn = match pool.acquire_labeled("check").await {
        Ok(c) => c,
        Err(e) => {
            return CheckReport::unknown(pool.config().database_url.to_string(), e.to_string());
        }
    };
    run_checks_on(&mut conn, pool.config(), Some(pool), opts).await
}

/// Runs the checks over a given connection (the dashboard uses one of its own, so that Esc can
/// cancel its query on the server). `pool` feeds the pool group when present.
pub async fn run_checks_on(
    conn: &mut PgConnection,
    config: &crate::config::PoolConfig,
    pool: Option<&InstrumentedPool>,
    opts: &CheckOptions,
) -> CheckReport {
    let started = Instant::now();
    let mut report = CheckReport::new(config.database_url.to_string(), Utc::now());
    let scrub = |e: &dyn std::fmt::Display| config.database_url.scrub(&e.to_string());

    let needs_catalog = opts.wants(Group::Schema) || opts.wants(Group::Migrations);
    let local = if needs_catalog {
        Some(migrations::load_local(&opts.migrations_dir).await)
    } else {
        None
    };
    // The expected schema first: building it in a scratch database needs CREATE DATABASE,
    // which cannot run inside the read-only transaction below.
    let expected: Option<Result<ExpectedSchema, String>> = match (&local, &opts.expected_file) {
        (None, _) => None,
        (Some(_), Some(path)) => Some(ExpectedSchema::read(path).map_err(|e| e.to_string())),
        (Some(Err(e)), None) => Some(Err(e.clone())),
        (Some(Ok(_)), None) if !opts.scratch => Some(Err(
            "not built automatically (it needs a scratch database); press v to verify, or pass --expected FILE".to_string(),
        )),
        (Some(Ok(local)), None) => Some(
            ExpectedSchema::from_scratch(&mut *conn, &connect_options(config), local)
                .await
                .map_err(|e| scrub(&e)),
        ),
    };

    if let Err(e) = begin_read_only(&mut *conn, opts.statement_timeout).await {
        report
            .findings
            .push(Finding::unknown("connection", scrub(&e)));
        report.finish(started);
        return report;
    }
    if opts.wants(Group::Pool) {
        report
            .findings
            .extend(pool_findings(&mut *conn, config, pool).await);
    }
    if opts.wants(Group::Pgvector) {
        report
            .findings
            .extend(pgvector::check(&mut *conn, opts.knn_samples).await);
    }
    let live: Option<Result<SchemaSnapshot, String>> = if needs_catalog {
        Some(snapshot(&mut *conn).await.map_err(|e| scrub(&e)))
    } else {
        None
    };
    if let Some(Ok(live)) = &live {
        report.server_version = Some(live.server_version.clone());
    }
    if opts.wants(Group::Schema) {
        report.findings.push(match (&live, &expected) {
            (Some(Err(e)), _) => Finding::unknown(
                "schema.diff",
                format!("could not read the live catalog: {e}"),
            ),
            (_, Some(Err(e))) => {
                Finding::unknown("schema.diff", format!("no expected schema: {e}"))
            }
            (Some(Ok(live)), Some(Ok(expected))) => {
                let d = diff(&expected.snapshot, live, opts.strict);
                let f = schema_finding(&d, expected, local.as_ref().and_then(|l| l.as_ref().ok()));
                report.schema_diff = Some(d);
                f
            }
            _ => Finding::unknown("schema.diff", "not checked"),
        });
    }
    if opts.wants(Group::Migrations) {
        match (&local, &live) {
            (Some(Err(e)), _) => report
                .findings
                .push(Finding::unknown("migrations.ledger", e.clone())),
            (_, Some(Err(e))) => report.findings.push(Finding::unknown(
                "migrations.ledger",
                format!("could not read the live catalog: {e}"),
            )),
            (Some(Ok(local)), Some(Ok(live))) => match migrations::read_ledger(&mut *conn).await {
                Err(e) => report.findings.push(Finding::unknown(
                    "migrations.ledger",
                    format!("could not read _sqlx_migrations: {}", scrub(&e)),
                )),
                Ok(ledger) => {
                    let exp = expected.as_ref().and_then(|e| e.as_ref().ok());
                    let state = migrations::state(local, ledger.as_deref(), live, exp);
                    report
                        .findings
                        .extend(migrations::findings(&state, &opts.migrations_dir));
                    report.migrations = Some(state);
                }
            },
            _ => {}
        }
    }
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    if report.server_version.is_none() {
        report.server_version = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut *conn)
            .await
            .ok();
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

async fn begin_read_only(
    conn: &mut PgConnection,
    statement_timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query("BEGIN READ ONLY").execute(&mut *conn).await?;
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL statement_timeout = {}",
        statement_timeout.as_millis().max(1)
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
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
            "schema.diff",
            format!(
                "{} difference(s) from the migrations, {critical} critical",
                d.len()
            ),
        )
    } else if warnings > 0 {
        Finding::warn(
            "schema.diff",
            format!(
                "{} difference(s) from the migrations, none critical",
                d.len()
            ),
        )
    } else {
        Finding::pass(
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
    conn: &mut PgConnection,
    config: &crate::config::PoolConfig,
    pool: Option<&InstrumentedPool>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let stats = pool.map(InstrumentedPool::stats);
    let t0 = Instant::now();
    let row = sqlx::query(
        "SELECT current_setting('server_version') AS version,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS clients,
                current_setting('max_connections')::int8 AS max_connections,
                current_setting('superuser_reserved_connections')::int8
                  + coalesce(current_setting('reserved_connections', true)::int8, 0) AS reserved",
    )
    .fetch_one(&mut *conn)
    .await;
    let rtt = t0.elapsed();
    match row {
        Err(e) => out.push(Finding::unknown(
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
                        "; pool {} open / {} max, acquire p95 {:.1} ms",
                        s.size, s.max, s.acquire_wait.p95_ms
                    )
                })
                .unwrap_or_default();
            out.push(
                Finding::pass(
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
            out.push(if ratio >= 0.95 {
                Finding::fail("pool.server_connections", summary)
            } else if ratio >= warn_at {
                Finding::warn("pool.server_connections", summary)
            } else {
                Finding::pass("pool.server_connections", summary)
            });
        }
    }
    out
}
