//! What the dry-run's claim about production rests on. Before and after the run it reads, in
//! READ ONLY transactions: the schema snapshot and the ledger (compared exactly), the roles
//! with their attributes and memberships, and per table the row count (exact up to a budget,
//! the planner's estimate beyond it) and the statistics' write counters. It then says what
//! it compared, what changed, what the dev server could reach, and what it did not check.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::AssertSqlSafe;

use crate::session::Reader;

use crate::dev::{DevNetwork, RefusedExtension};

/// Tables larger than this (in 8 KiB pages, 100 MiB) get the planner's row estimate, not a count.
const EXACT_COUNT_MAX_PAGES: i64 = 12_800;
/// The pages counted exactly in all, per read (200 MiB): the rest are estimates.
const EXACT_COUNT_BUDGET_PAGES: i64 = 25_600;
/// Tables and roles read at most: the figures are sized by production's catalog.
const MAX_TABLES: i64 = 10_000;
const MAX_ROLES: i64 = 10_000;

/// Roles and table figures of production at one instant (one READ ONLY transaction).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProductionState {
    roles: Vec<String>,
    tables: BTreeMap<String, TableFigures>,
}

#[derive(Debug, Clone, PartialEq)]
struct TableFigures {
    rows: i64,
    exact: bool,
    /// n_tup_ins + n_tup_upd + n_tup_del, from the cumulative statistics.
    writes: i64,
}

/// A table whose rows changed while the dry-run ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowChange {
    /// `schema.table`, quoted where needed.
    pub table: String,
    /// Rows before and after (counted, or estimated when `exact` is false).
    pub rows_before: i64,
    /// Rows after.
    pub rows_after: i64,
    /// The counts are exact (`count(*)`), not the planner's estimate.
    pub exact: bool,
    /// Rows inserted, updated or deleted meanwhile, per the statistics' counters.
    pub rows_written: i64,
}

/// What the report's claim about production rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductionEvidence {
    /// The schema snapshot (tables, columns, indexes, constraints, ...) is identical.
    pub schema_unchanged: bool,
    /// `_sqlx_migrations` is identical.
    pub ledger_unchanged: bool,
    /// Roles, their attributes and memberships are identical.
    pub roles_unchanged: bool,
    /// Tables whose rows were compared.
    pub tables_compared: usize,
    /// Of those, how many by the planner's estimate (too large to count).
    pub tables_estimated: usize,
    /// Tables whose rows changed meanwhile (by production's own clients, or not).
    pub rows_changed: Vec<RowChange>,
    /// What the dev server could reach; `None` when nothing ran there.
    pub dev_network: Option<DevNetwork>,
    /// Extensions that the migrations or production asked for and the dev database refused.
    pub refused_extensions: Vec<RefusedExtension>,
    /// Extensions allowed although they reach out (`--allow-extension`).
    pub allowed_extensions: Vec<String>,
    /// What was not checked.
    pub not_checked: Vec<String>,
}

impl ProductionEvidence {
    /// The claim, in one line: what was compared and how it came out.
    pub fn claim(&self) -> String {
        let mut unchanged = Vec::new();
        let mut changed = Vec::new();
        for (ok, what) in [
            (self.schema_unchanged, "schema"),
            (self.ledger_unchanged, "ledger"),
            (self.roles_unchanged, "roles"),
        ] {
            if ok {
                unchanged.push(what);
            } else {
                changed.push(what);
            }
        }
        let rows = if self.rows_changed.is_empty() {
            format!(
                "row counts and write counters of its {} table(s) unchanged{}",
                self.tables_compared,
                if self.tables_estimated > 0 {
                    format!(" ({} by estimate)", self.tables_estimated)
                } else {
                    String::new()
                }
            )
        } else {
            format!(
                "rows changed meanwhile in {} of its {} table(s) (by its own clients or by this \
                 run: pgvigil cannot tell them apart)",
                self.rows_changed.len(),
                self.tables_compared
            )
        };
        let mut text = String::new();
        if !unchanged.is_empty() {
            text.push_str(&format!(
                "production's {} identical before and after",
                unchanged.join(", ")
            ));
        }
        if !changed.is_empty() {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&format!("production's {} CHANGED", changed.join(", ")));
        }
        format!("{text}; {rows}")
    }

    /// Roles and ledger and schema identical: what the run could change and clients do not.
    pub fn unchanged(&self) -> bool {
        self.schema_unchanged && self.ledger_unchanged && self.roles_unchanged
    }
}

impl ProductionState {
    /// Reads roles and table figures. `exact` names the tables to count (those counted before
    /// the run), so both reads count the same ones; `None` picks them by size.
    pub(crate) async fn read(
        conn: &mut Reader<'_>,
        exact: Option<&BTreeSet<String>>,
    ) -> Result<Self, sqlx::Error> {
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s valid=%s config=%s members=%s',
                    r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                    r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil, r.rolconfig,
                    (SELECT string_agg(m.rolname || CASE WHEN a.admin_option THEN '+admin' ELSE '' END, ',' ORDER BY m.rolname)
                       FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE a.roleid = r.oid))
               FROM pg_roles r ORDER BY r.rolname LIMIT $1",
        )
        .bind(MAX_ROLES)
        .fetch_all(&mut *conn)
        .await?;
        let rows: Vec<(String, i64, f64, i64)> = sqlx::query_as(
            "SELECT format('%I.%I', s.schemaname, s.relname), c.relpages::bigint,
                    greatest(c.reltuples, 0)::float8,
                    (s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::bigint
               FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
              ORDER BY c.relpages, 1 LIMIT $1",
        )
        .bind(MAX_TABLES)
        .fetch_all(&mut *conn)
        .await?;
        let mut budget = EXACT_COUNT_BUDGET_PAGES;
        let mut tables = BTreeMap::new();
        for (table, pages, estimate, writes) in rows {
            let count = match exact {
                Some(set) => set.contains(&table),
                None => {
                    let fits = pages <= EXACT_COUNT_MAX_PAGES && pages <= budget;
                    if fits {
                        budget -= pages;
                    }
                    fits
                }
            };
            let rows = if count {
                // `table` is format('%I.%I') from the server: quoted as an identifier.
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&mut *conn)
                    .await?
            } else {
                estimate as i64
            };
            tables.insert(
                table,
                TableFigures {
                    rows,
                    exact: count,
                    writes,
                },
            );
        }
        Ok(Self { roles, tables })
    }

    /// The tables counted exactly, for the second read.
    pub(crate) fn counted(&self) -> BTreeSet<String> {
        self.tables
            .iter()
            .filter(|(_, f)| f.exact)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Whether roles are identical in `after`.
    pub(crate) fn roles_unchanged(&self, after: &Self) -> bool {
        self.roles == after.roles
    }

    /// Tables whose rows or write counters differ in `after` (a table created or dropped
    /// meanwhile shows as a schema change, not here).
    pub(crate) fn row_changes(&self, after: &Self) -> Vec<RowChange> {
        self.tables
            .iter()
            .filter_map(|(table, b)| {
                let a = after.tables.get(table)?;
                (a.rows != b.rows || a.writes != b.writes).then(|| RowChange {
                    table: table.clone(),
                    rows_before: b.rows,
                    rows_after: a.rows,
                    exact: b.exact && a.exact,
                    rows_written: a.writes.saturating_sub(b.writes),
                })
            })
            .collect()
    }

    /// (tables compared, of which estimated).
    pub(crate) fn coverage(&self) -> (usize, usize) {
        let estimated = self.tables.values().filter(|f| !f.exact).count();
        (self.tables.len(), estimated)
    }
}

/// What the comparison cannot see, said in every report.
pub(crate) fn not_checked(estimated: usize, dev_url: bool) -> Vec<String> {
    let mut out = vec![
        "who wrote the rows that changed: production's own clients keep writing during a \
         dry-run, and pgvigil cannot tell their writes from any other"
            .to_string(),
        "writes in the last second before the final read may not show yet in the write \
         counters (the statistics are flushed about once a second)"
            .to_string(),
        "sequence values, large objects, role passwords (pg_authid is for superusers), server \
         settings and the other databases of production's server"
            .to_string(),
    ];
    if estimated > 0 {
        out.push(format!(
            "exact row counts of {estimated} table(s) over {} MiB (or beyond the {} MiB budget): \
             the planner's estimate and the write counters stand in",
            EXACT_COUNT_MAX_PAGES * 8 / 1024,
            EXACT_COUNT_BUDGET_PAGES * 8 / 1024
        ));
    }
    if dev_url {
        out.push(
            "extensions created by dynamic SQL (EXECUTE) on a --dev-url server whose role may \
             create them: the extension policy reads the statements, not what they build"
                .into(),
        );
    }
    out
}
