//! `pgvigil migrate dry-run`: every pending migration runs inside one transaction with
//! lock_timeout and statement_timeout set, each under its own savepoint, and the transaction is
//! always rolled back. Per migration it reports success or the error with its position, the time
//! it took, the relation locks it took (read from pg_locks for this backend before the rollback,
//! so `ACCESS EXCLUSIVE on documents` is visible) and the schema changes it would make.
//! `-- no-transaction` migrations are not executed on the target: they are reported as needing
//! a dry-run on a fresh staging snapshot. Before and after, the schema snapshot and the ledger are
//! compared, so the report itself proves that nothing was left behind.
//!
//! Sequences are the one thing a rollback does not undo (nextval is non-transactional); a
//! migration that backfills through a serial column advances it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use crate::checks::catalog::{SchemaSnapshot, snapshot};
use crate::checks::migrations::{LedgerRow, LocalMigration, load_local, read_ledger};
use crate::checks::schema::{SchemaDiff, diff};
use crate::safety::statements::transaction_control;

#[derive(Debug, Clone)]
pub struct DryRunOptions {
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for DryRunOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(120),
        }
    }
}

/// A relation lock a migration took.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LockTaken {
    pub relation: String,
    /// `ACCESS EXCLUSIVE`, `SHARE`, `ROW EXCLUSIVE`, ...
    pub mode: String,
    /// The relation did not exist before the dry-run (created by the migration itself).
    pub created_here: bool,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed {
        error: String,
        sqlstate: Option<String>,
        /// 1-based line and column in the migration file.
        line: Option<usize>,
        column: Option<usize>,
    },
    NeedsStaging {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationDryRun {
    pub version: i64,
    pub description: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub locks: Vec<LockTaken>,
    /// Changes relative to the schema before this migration: `unexpected` = would be created,
    /// `missing` = would be dropped, `different` = would be changed.
    pub changes: SchemaDiff,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunReport {
    pub format: &'static str,
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub lock_timeout_ms: u128,
    pub statement_timeout_ms: u128,
    pub migrations: Vec<MigrationDryRun>,
    /// Schema snapshot and ledger identical before and after.
    pub left_no_trace: bool,
}

impl DryRunReport {
    pub fn failed(&self) -> usize {
        self.migrations
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("{0}")]
    Migrations(String),
    #[error("{0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "migration {version} ended the dry-run's transaction (it holds transaction control the \
         scanner did not recognise); what ran before it may have been COMMITTED: compare the \
         schema now with `pgvigil check`"
    )]
    Escaped { version: i64 },
}

/// Dry-runs the pending migrations of `dir` over `conn`. Use a connection of its own (not one
/// that goes back to a pool): if this future is dropped mid-way, dropping the connection makes
/// the server roll back.
pub async fn dry_run(
    conn: &mut PgConnection,
    target: String,
    dir: &Path,
    options: &DryRunOptions,
) -> Result<DryRunReport, DryRunError> {
    let local = load_local(dir).await.map_err(DryRunError::Migrations)?;
    dry_run_migrations(conn, target, &local, options).await
}

pub async fn dry_run_migrations(
    conn: &mut PgConnection,
    target: String,
    local: &[LocalMigration],
    options: &DryRunOptions,
) -> Result<DryRunReport, DryRunError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let before = snapshot(conn).await?;
    let ledger_before = read_ledger(conn).await?;
    let applied: BTreeSet<i64> = ledger_before
        .iter()
        .flatten()
        .filter(|r| r.success)
        .map(|r| r.version)
        .collect();
    let pending: Vec<&LocalMigration> = local
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();

    let mut results = Vec::new();
    {
        let mut tx = conn.begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = {}; ",
            options.lock_timeout.as_millis().max(1)
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "SET LOCAL statement_timeout = {}",
            options.statement_timeout.as_millis().max(1)
        )))
        .execute(&mut *tx)
        .await?;
        // The transaction id the whole dry-run must stay inside (a savepoint keeps it).
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *tx)
            .await?;
        let mut previous = before.clone();
        let mut held = relation_locks(&mut tx, &before).await?;
        for m in pending {
            if let Some(statement) = transaction_control(&m.sql) {
                results.push(MigrationDryRun {
                    version: m.version,
                    description: m.description.clone(),
                    outcome: Outcome::NeedsStaging {
                        reason: format!(
                            "contains `{statement}`: transaction control (or a change to the \
                             dry-run's timeouts) would commit, end or unguard the dry-run's \
                             transaction; dry-run it against a fresh staging snapshot"
                        ),
                    },
                    duration_ms: 0.0,
                    locks: Vec::new(),
                    changes: Vec::new(),
                });
                continue;
            }
            if m.no_tx {
                results.push(MigrationDryRun {
                    version: m.version,
                    description: m.description.clone(),
                    outcome: Outcome::NeedsStaging {
                        reason: "-- no-transaction migration: statements such as CREATE INDEX \
                                 CONCURRENTLY cannot run inside a transaction, so a dry-run here \
                                 would change the database for real; dry-run it against a fresh \
                                 staging snapshot"
                            .into(),
                    },
                    duration_ms: 0.0,
                    locks: Vec::new(),
                    changes: Vec::new(),
                });
                continue;
            }
            let mut savepoint = tx.begin().await?;
            let t0 = Instant::now();
            let executed = sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                .execute(&mut *savepoint)
                .await;
            let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
            // Backstop for anything the scanner missed: still inside the same transaction?
            if executed.is_ok() {
                let still: Option<i64> = sqlx::query_scalar("SELECT txid_current()")
                    .fetch_one(&mut *savepoint)
                    .await
                    .ok();
                if still != Some(xid) {
                    tracing::error!(
                        target: "pgvigil::dry_run",
                        "migration {} escaped the dry-run's transaction",
                        m.version
                    );
                    return Err(DryRunError::Escaped { version: m.version });
                }
            }
            match executed {
                Ok(_) => {
                    let now_locks = relation_locks(&mut savepoint, &before).await?;
                    let locks: Vec<LockTaken> = now_locks.difference(&held).cloned().collect();
                    let after = snapshot(&mut savepoint).await?;
                    let changes = diff(&previous, &after, true);
                    // Keep the savepoint's work: later pending migrations may build on it.
                    savepoint.commit().await?;
                    held = now_locks;
                    previous = after;
                    results.push(MigrationDryRun {
                        version: m.version,
                        description: m.description.clone(),
                        outcome: Outcome::Succeeded,
                        duration_ms,
                        locks,
                        changes,
                    });
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    results.push(MigrationDryRun {
                        version: m.version,
                        description: m.description.clone(),
                        outcome: failure(&e, &m.sql),
                        duration_ms,
                        locks: Vec::new(),
                        changes: Vec::new(),
                    });
                }
            }
        }
        tx.rollback().await?;
    }
    let after = snapshot(conn).await?;
    let ledger_after = read_ledger(conn).await?;
    let left_no_trace = after == before && ledger_eq(&ledger_before, &ledger_after);
    if !left_no_trace {
        tracing::error!(target: "pgvigil::dry_run", "schema or ledger differ after the rolled-back dry-run");
    }
    Ok(DryRunReport {
        format: "pgvigil.dry-run/1",
        target,
        started_at,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        lock_timeout_ms: options.lock_timeout.as_millis(),
        statement_timeout_ms: options.statement_timeout.as_millis(),
        migrations: results,
        left_no_trace,
    })
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

/// Relation locks held by this backend outside the system catalogs.
async fn relation_locks(
    conn: &mut PgConnection,
    before: &SchemaSnapshot,
) -> Result<BTreeSet<LockTaken>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END AS relation,
                l.mode
           FROM pg_locks l
           JOIN pg_class c ON c.oid = l.relation
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let existing: BTreeSet<String> = before
        .tables
        .iter()
        .flat_map(|(t, table)| std::iter::once(t.clone()).chain(table.indexes.keys().cloned()))
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            let relation: String = r.get("relation");
            let mode: String = r.get("mode");
            LockTaken {
                created_here: !existing.contains(&relation),
                relation,
                mode: lock_mode_words(&mode),
            }
        })
        .collect())
}

/// `AccessExclusiveLock` -> `ACCESS EXCLUSIVE`, as the PostgreSQL documentation names modes.
pub fn lock_mode_words(mode: &str) -> String {
    let base = mode.strip_suffix("Lock").unwrap_or(mode);
    let mut out = String::new();
    for (i, ch) in base.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn failure(e: &sqlx::Error, sql: &str) -> Outcome {
    let (mut line, mut column, mut sqlstate) = (None, None, None);
    if let sqlx::Error::Database(db) = e {
        sqlstate = db.code().map(|c| c.to_string());
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>()
            && let Some(PgErrorPosition::Original(pos)) = pg.position()
        {
            let (l, c) = line_column(sql, pos);
            line = Some(l);
            column = Some(c);
        }
    }
    let mut error = e.to_string();
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
    fn lock_modes_read_like_the_documentation() {
        assert_eq!(lock_mode_words("AccessExclusiveLock"), "ACCESS EXCLUSIVE");
        assert_eq!(
            lock_mode_words("ShareUpdateExclusiveLock"),
            "SHARE UPDATE EXCLUSIVE"
        );
        assert_eq!(lock_mode_words("RowExclusiveLock"), "ROW EXCLUSIVE");
        assert_eq!(lock_mode_words("ShareLock"), "SHARE");
    }

    #[test]
    fn positions_become_line_and_column() {
        let sql = "SELECT 1;\nALTER TABLE x ADD COLUMN y intt;";
        assert_eq!(line_column(sql, 1), (1, 1));
        assert_eq!(line_column(sql, 11), (2, 1));
        assert_eq!(line_column(sql, 38), (2, 28));
    }
}
