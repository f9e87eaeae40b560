//! `pgvigil migrate lint`: squawk's rules (as a library, its rule names), pgvector rules squawk
//! does not have, and a severity that follows the live table each finding touches (rows, bytes
//! and writes per second read on production through a read-only session). [`lint`] is pure: it
//! takes the files and, when there is one, the [`CatalogReading`]; [`read_catalog`] is the only
//! part that touches production.

mod catalog;
mod pgvector;
mod report;
mod selection;
mod severity;
mod sqlx_rules;
mod squawk;
mod statements;
mod waivers;

use std::time::{Duration, Instant};

pub use catalog::{CatalogReading, TableReading, read_catalog};
pub use pgvector::{MAX_HALFVEC_INDEX_DIMS, MAX_VECTOR_INDEX_DIMS};
pub use report::{FileLint, Finding, LINT_FORMAT, LintReport, Severity, TableFacts, WaiverUsed};
pub use selection::{LintError, Selection, lint_migrations};
pub use severity::Thresholds;
pub use waivers::WAIVER_PREFIX;

use super::progress::{Progress, ProgressSink};
use statements::{line_column, qualified};

/// One file to lint.
#[derive(Debug, Clone)]
pub struct LintFile {
    /// How the report names it (a path).
    pub name: String,
    /// Its SQL.
    pub sql: String,
}

impl LintFile {
    /// sqlx's rule: the file runs outside a transaction when its first line is
    /// `-- no-transaction`.
    pub fn no_transaction(&self) -> bool {
        // sqlx's own test (sqlx-core's migration source): the text starts with the marker.
        self.sql.starts_with("-- no-transaction")
    }
}

/// How to lint.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Big and busy.
    pub thresholds: Thresholds,
    /// Time between the two readings of `pg_stat_user_tables` (default 5 s).
    pub busy_interval: Duration,
    /// A non-zero statement_timeout shorter than this cuts a vector index build (default 1 h).
    pub min_build_timeout: Duration,
    /// Which files and why, for the report.
    pub selection: String,
    /// Progress (one item per file).
    pub progress: ProgressSink,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            busy_interval: Duration::from_secs(5),
            min_build_timeout: Duration::from_secs(3600),
            selection: "the given files".into(),
            progress: ProgressSink::none(),
        }
    }
}

/// The PostgreSQL version squawk assumes without a database.
pub const ASSUMED_PG_VERSION: &str = "15";

/// Lints `files` in order (a pending set: what one creates, the next knows). `catalog`: what
/// production said, or `None` (the report says what was assumed instead).
pub fn lint(
    files: &[LintFile],
    options: &LintOptions,
    catalog: Option<&CatalogReading>,
) -> LintReport {
    let started = Instant::now();
    let pg_version = catalog
        .map(|c| {
            let mut parts = c
                .server_version
                .split(|ch: char| !ch.is_ascii_digit())
                .filter(|p| !p.is_empty());
            match (parts.next(), parts.next()) {
                (Some(major), Some(minor)) => format!("{major}.{minor}"),
                (Some(major), None) => major.to_string(),
                _ => ASSUMED_PG_VERSION.to_string(),
            }
        })
        .unwrap_or_else(|| ASSUMED_PG_VERSION.to_string());
    let mut known = pgvector::Known::default();
    let mut assumptions = Vec::new();
    if let Some(c) = catalog {
        known.vector_columns = c.vector_columns.clone();
        known.vector_indexes = c.vector_indexes.clone();
        assumptions.push(format!(
            "read production's catalog: PostgreSQL {}, {} tables, traffic over {:.1} s, maintenance_work_mem {}, statement_timeout {} for this role (ALTER ROLE/DATABASE settings, else the server's boot value; postgresql.conf and PGOPTIONS are not visible here)",
            c.server_version,
            c.tables.len(),
            c.interval_s,
            super::progress::bytes(c.maintenance_work_mem),
            match c.statement_timeout_ms {
                0 => "none".to_string(),
                ms => format!("{ms} ms"),
            }
        ));
    } else {
        assumptions.push(format!(
            "no database: PostgreSQL {ASSUMED_PG_VERSION} assumed; table sizes and traffic unknown (blocking findings stay warnings); vector columns known only from these files; maintenance_work_mem and statement_timeout of the server unknown"
        ));
    }
    let defaults = pgvector::Defaults {
        maintenance_work_mem: catalog.map(|c| c.maintenance_work_mem),
        statement_timeout_ms: catalog.map(|c| c.statement_timeout_ms),
        min_build_timeout_ms: options.min_build_timeout.as_millis() as u64,
    };
    let mut touched = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (n, file) in files.iter().enumerate() {
        options
            .progress
            .report(Progress::phase("linting", Some(files.len() as u64)).at(n as u64));
        out.push(lint_file(
            file,
            &pg_version,
            &mut known,
            defaults,
            catalog,
            options,
            &mut touched,
        ));
    }
    options
        .progress
        .report(Progress::phase("linting", Some(files.len() as u64)).at(files.len() as u64));
    let tables = catalog
        .map(|c| {
            touched
                .iter()
                .filter_map(|t: &String| {
                    c.tables.get(t).map(|r| TableFacts {
                        table: t.clone(),
                        rows: r.rows,
                        bytes: r.bytes,
                        writes_per_s: r.writes_per_s,
                        scans_per_s: r.scans_per_s,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    LintReport {
        format: LINT_FORMAT,
        selection: options.selection.clone(),
        pg_version,
        catalog_read: catalog.is_some(),
        assumptions,
        tables,
        files: out,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

fn lint_file(
    file: &LintFile,
    pg_version: &str,
    known: &mut pgvector::Known,
    defaults: pgvector::Defaults,
    catalog: Option<&CatalogReading>,
    options: &LintOptions,
    touched: &mut std::collections::BTreeSet<String>,
) -> FileLint {
    let no_tx = file.no_transaction();
    let finding =
        |raw: &squawk::Raw, severity: Severity, table: Option<String>, why: Option<String>| {
            let (line, column) = line_column(&file.sql, raw.offset);
            Finding {
                rule: raw.rule.clone(),
                severity,
                line,
                column,
                message: raw.message.clone(),
                fix: raw.fix.clone(),
                table,
                why,
            }
        };
    let raws = match squawk::lint(&file.sql, pg_version, !no_tx) {
        Ok(r) => r,
        Err(mut parse_errors) => {
            parse_errors.dedup_by(|a, b| a.offset == b.offset && a.message == b.message);
            return FileLint {
                file: file.name.clone(),
                no_transaction: no_tx,
                parse_failed: true,
                findings: parse_errors
                    .iter()
                    .map(|r| finding(r, Severity::Error, None, None))
                    .collect(),
                waivers: Vec::new(),
            };
        }
    };
    let stmts = statements::split(&file.sql);
    // What exists before this file: tables created by earlier files of the set.
    let created_before = known.created.clone();
    let rows_of = |table: &str| -> Option<u64> {
        if created_before.contains(table) {
            Some(0)
        } else {
            catalog.and_then(|c| c.tables.get(table).map(|r| r.rows))
        }
    };
    let mut raws = raws;
    raws.extend(pgvector::check(&stmts, no_tx, known, defaults, &rows_of));
    // squawk's own rule covers a multi-statement file; ours the single statement it skips.
    let squawk_said: Vec<usize> = raws
        .iter()
        .filter(|r| r.rule == "ban-concurrent-index-creation-in-transaction")
        .filter_map(|r| {
            stmts
                .iter()
                .position(|s| s.start <= r.offset && r.offset < s.end)
        })
        .collect();
    raws.extend(
        sqlx_rules::check(&stmts, no_tx)
            .into_iter()
            .filter(|r| !squawk_said.iter().any(|&i| stmts[i].start == r.offset)),
    );
    raws.sort_by_key(|r| r.offset);
    // Tables created in this file count as created for findings after their CREATE TABLE.
    let created_here: Vec<(usize, String)> = stmts
        .iter()
        .filter(|s| s.starts_with(&["create", "table"]))
        .filter_map(|s| s.table().map(|t| (s.start, qualified(&t))))
        .collect();
    let stmt_of = |offset: usize| {
        stmts
            .iter()
            .position(|s| s.start <= offset && offset < s.end.max(s.start + 1))
    };
    let stmt_lines: Vec<usize> = stmts
        .iter()
        .map(|s| line_column(&file.sql, s.start).0)
        .collect();
    let waivers = waivers::waivers(&file.sql, &stmt_lines);
    let mut used = vec![false; waivers.len()];
    let mut findings = Vec::new();
    let mut waived = Vec::new();
    for raw in &raws {
        let stmt = stmt_of(raw.offset);
        // DROP INDEX names an index: its table is known only for the vector indexes (catalog
        // or an earlier file); another index's table is unknown, and the severity says so.
        let drops_index = stmt.is_some_and(|i| stmts[i].starts_with(&["drop", "index"]));
        let table = stmt.and_then(|i| {
            let s = &stmts[i];
            if drops_index {
                let mut k = 2;
                while s
                    .toks
                    .get(k)
                    .is_some_and(|t| t.is("concurrently") || t.is("if") || t.is("exists"))
                {
                    k += 1;
                }
                let (name, _) = s.name_at(k)?;
                return known
                    .vector_indexes
                    .get(&qualified(&name))
                    .map(|(_, t)| t.clone());
            }
            s.table().map(|t| qualified(&t))
        });
        let created = table.as_ref().is_some_and(|t| {
            created_before.contains(t)
                || created_here
                    .iter()
                    .any(|(at, c)| c == t && *at <= raw.offset)
        });
        if let Some(t) = &table
            && !created
        {
            touched.insert(t.clone());
        }
        let (severity, why) = severity::severity(
            &raw.rule,
            table.as_deref(),
            drops_index && table.is_none(),
            created,
            catalog,
            &options.thresholds,
        );
        let f = finding(raw, severity, table, why);
        let waiver = stmt.and_then(|i| {
            waivers.iter().position(|w| {
                w.statement_line == Some(stmt_lines[i])
                    && w.rule == raw.rule
                    && !w.reason.is_empty()
            })
        });
        match waiver {
            Some(w) => {
                used[w] = true;
                waived.push(WaiverUsed {
                    rule: waivers[w].rule.clone(),
                    line: waivers[w].line,
                    reason: waivers[w].reason.clone(),
                    waived: f,
                });
            }
            None => findings.push(f),
        }
    }
    for (w, waiver) in waivers.iter().enumerate() {
        let problem = if waiver.rule.is_empty() || !known_rule(&waiver.rule) {
            Some((
                "pgvigil-waiver-unknown-rule",
                format!(
                    "-- {WAIVER_PREFIX} names no known rule ({:?}); the rule names are squawk's (adding-required-field, ...), pgvector-... and syntax-error",
                    waiver.rule
                ),
                Severity::Error,
            ))
        } else if waiver.reason.is_empty() {
            Some((
                "pgvigil-waiver-without-reason",
                format!(
                    "-- {WAIVER_PREFIX} {} has no reason: a waiver must say why (-- {WAIVER_PREFIX} {} <reason>), so it waives nothing",
                    waiver.rule, waiver.rule
                ),
                Severity::Error,
            ))
        } else if waiver.statement_line.is_none() {
            Some((
                "pgvigil-unused-waiver",
                format!(
                    "-- {WAIVER_PREFIX} {} is not on the line right above a statement",
                    waiver.rule
                ),
                Severity::Warning,
            ))
        } else if !used[w] {
            Some((
                "pgvigil-unused-waiver",
                format!(
                    "-- {WAIVER_PREFIX} {}: the statement below has no such finding",
                    waiver.rule
                ),
                Severity::Warning,
            ))
        } else {
            None
        };
        if let Some((rule, message, severity)) = problem {
            findings.push(Finding {
                rule: rule.into(),
                severity,
                line: waiver.line,
                column: 1,
                message,
                fix: None,
                table: None,
                why: None,
            });
        }
    }
    findings.sort_by_key(|f| (f.line, f.column));
    FileLint {
        file: file.name.clone(),
        no_transaction: no_tx,
        parse_failed: false,
        findings,
        waivers: waived,
    }
}

/// The rule names a waiver may name.
fn known_rule(name: &str) -> bool {
    name.parse::<squawk_linter::Rule>().is_ok()
        || name == "syntax-error"
        || [
            "pgvector-index-too-many-dimensions",
            "pgvector-concurrent-build-not-alone",
            "pgvector-concurrently-if-not-exists",
            "pgvector-alter-column-type-vector",
            "pgvector-unbatched-embedding-update",
            "pgvector-alter-extension-update",
            "pgvector-drop-vector-index",
            "pgvector-index-build-settings",
            "pgvigil-concurrent-in-transaction",
        ]
        .contains(&name)
}
