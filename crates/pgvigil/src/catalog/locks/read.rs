//! The one reading of relation locks (`pg_locks` joined to `pg_class` and `pg_namespace`, held
//! or awaited) and of who blocks whom (`pg_blocking_pids`). The lock-wait guard, the dry-run's
//! lock capture and the sampler all read through here. Each function takes any executor, so a
//! session type of pgvigil's own (the read-only production session, a migration's session) can
//! call it; they stay inside the crate so production is only ever read through such a type.

use sqlx::{PgExecutor, Row};

use super::LockMode;

/// How a relation is named in every lock report: schema-qualified unless in `public`.
/// `$c` is the `pg_class` alias, `$n` the `pg_namespace` one.
macro_rules! relation_name_sql {
    ($c:literal, $n:literal) => {
        concat!(
            "CASE WHEN ",
            $n,
            ".nspname = 'public' THEN ",
            $c,
            ".relname::text ELSE ",
            $n,
            ".nspname || '.' || ",
            $c,
            ".relname END"
        )
    };
}
pub(crate) use relation_name_sql;

/// Schemas whose relations are left out of a migration's locks: the system catalogs every
/// statement touches and the TOAST tables that follow their table's lock.
macro_rules! user_relations_only_sql {
    ($n:literal) => {
        concat!(
            $n,
            ".nspname NOT IN ('pg_catalog', 'information_schema') AND ",
            $n,
            ".nspname NOT LIKE 'pg\\_toast%'"
        )
    };
}

/// One relation lock of one backend, granted or awaited.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationLock {
    /// The backend holding it or waiting for it.
    pub pid: i32,
    /// The relation (schema-qualified unless in public).
    pub relation: String,
    /// The mode.
    pub mode: LockMode,
    /// Held (`true`) or waited for (`false`).
    pub granted: bool,
}

impl std::fmt::Display for RelationLock {
    /// "ACCESS EXCLUSIVE on documents" or "waiting for ACCESS EXCLUSIVE on documents".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.granted {
            f.write_str("waiting for ")?;
        }
        write!(f, "{} on {}", self.mode, self.relation)
    }
}

/// The relation locks backends `pids` hold or wait for, on user relations (system catalogs and
/// TOAST tables left out). A relation created in a transaction is visible only to that
/// transaction: read from the backend's own session to name it.
pub(crate) async fn relation_locks_of<'c>(
    conn: impl PgExecutor<'c>,
    pids: &[i32],
) -> Result<Vec<RelationLock>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT l.pid, ",
        relation_name_sql!("c", "n"),
        " AS relation, l.mode, l.granted
           FROM pg_locks l
           JOIN pg_class c ON c.oid = l.relation
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE l.pid = ANY($1) AND l.locktype = 'relation' AND l.mode <> 'SIReadLock'
            AND ",
        user_relations_only_sql!("n")
    ))
    .bind(pids)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().filter_map(lock_row).collect())
}

fn lock_row(r: &sqlx::postgres::PgRow) -> Option<RelationLock> {
    Some(RelationLock {
        pid: r.get("pid"),
        relation: r.get("relation"),
        mode: r.get::<String, _>("mode").parse().ok()?,
        granted: r.get("granted"),
    })
}

/// A session whose relation lock, held or queued for, would make a reader wait.
#[derive(Debug, Clone, PartialEq)]
pub struct LockHolder {
    /// Its backend.
    pub pid: i32,
    /// Its `application_name`, `(unnamed)` when empty (as the server has it: sanitise before
    /// showing).
    pub application: String,
    /// The relation (its oid when the name cannot be seen).
    pub relation: String,
    /// The mode it holds or waits for.
    pub mode: LockMode,
    /// Held (`true`) or queued for (`false`).
    pub granted: bool,
    /// Seconds its transaction has been open.
    pub transaction_seconds: f64,
}

impl std::fmt::Display for LockHolder {
    /// "pid 123 (app, ACCESS EXCLUSIVE on documents, transaction open 41 s)", "queued for ..."
    /// when it waits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.granted { "" } else { "queued for " };
        write!(
            f,
            "pid {} ({}, {what}{} on {}, transaction open {:.0} s)",
            self.pid, self.application, self.mode, self.relation, self.transaction_seconds
        )
    }
}

/// Other sessions of this database holding, or queued for, a relation lock that blocks reads
/// (a migration waiting behind a long transaction blocks every later reader just the same):
/// holders first, oldest transaction first, at most `limit`.
pub(crate) async fn read_blockers<'c>(
    conn: impl PgExecutor<'c>,
    limit: i64,
) -> Result<Vec<LockHolder>, sqlx::Error> {
    let modes: Vec<&str> = LockMode::ALL
        .into_iter()
        .filter(|m| m.blocks_reads())
        .map(LockMode::pg_locks_name)
        .collect();
    let rows = sqlx::query(
        "SELECT l.pid, coalesce(nullif(a.application_name, ''), '(unnamed)') AS application,
                coalesce(c.relname::text, l.relation::text) AS relation, l.mode, l.granted,
                coalesce(extract(epoch FROM statement_timestamp() - a.xact_start), 0)::float8 AS seconds
           FROM pg_locks l
           JOIN pg_stat_activity a ON a.pid = l.pid
           LEFT JOIN pg_class c ON c.oid = l.relation
          WHERE l.locktype = 'relation' AND l.mode = ANY($1)
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.pid <> pg_backend_pid()
          ORDER BY l.granted DESC, a.xact_start LIMIT $2",
    )
    .bind(&modes)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(LockHolder {
                pid: r.get("pid"),
                application: r.get("application"),
                relation: r.get("relation"),
                mode: r.get::<String, _>("mode").parse().ok()?,
                granted: r.get("granted"),
                transaction_seconds: r.get("seconds"),
            })
        })
        .collect())
}

/// The backends `pid` waits for (`pg_blocking_pids`: holders of a conflicting lock and those
/// queued ahead of it); empty when it waits for nothing.
pub(crate) async fn blocking_pids<'c>(
    conn: impl PgExecutor<'c>,
    pid: i32,
) -> Result<Vec<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_blocking_pids($1)")
        .bind(pid)
        .fetch_one(conn)
        .await
}

/// The strongest mode taken on each relation, strongest first (what a report shows first).
pub fn strongest_per_relation(locks: &[RelationLock]) -> Vec<(String, LockMode)> {
    let mut by: std::collections::BTreeMap<&str, LockMode> = Default::default();
    for l in locks {
        let e = by.entry(&l.relation).or_insert(l.mode);
        *e = (*e).max(l.mode);
    }
    let mut out: Vec<(String, LockMode)> =
        by.into_iter().map(|(r, m)| (r.to_string(), m)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_mode_per_relation_comes_first() {
        let l = |relation: &str, mode| RelationLock {
            pid: 1,
            relation: relation.into(),
            mode,
            granted: true,
        };
        let locks = [
            l("documents", LockMode::Share),
            l("documents", LockMode::AccessExclusive),
            l("sources", LockMode::RowExclusive),
        ];
        assert_eq!(
            strongest_per_relation(&locks),
            [
                ("documents".to_string(), LockMode::AccessExclusive),
                ("sources".to_string(), LockMode::RowExclusive)
            ]
        );
    }
}
