//! How much a finding matters, from its rule and the table it touches. A blocking rewrite or a
//! non-concurrent index build is an error on a big or busy table and a note on an empty one or
//! one this pending set creates; without the catalog it stays a warning and the report says the
//! size was assumed unknown.

use super::catalog::CatalogReading;
use super::report::Severity;

/// Rules whose harm grows with the table: they lock it for the length of a rewrite, a scan or
/// a build.
const BLOCKING: &[&str] = &[
    "adding-field-with-default",
    "adding-required-field",
    "adding-not-nullable-field",
    "adding-serial-primary-key-field",
    "changing-column-type",
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
    "disallowed-unique-constraint",
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "require-concurrent-reindex",
    "require-concurrent-partition-detach",
    "prefer-repack",
    "pgvector-alter-column-type-vector",
    "pgvector-unbatched-embedding-update",
    "pgvector-index-build-settings",
    "pgvector-drop-vector-index",
    "require-lock-timeout",
    "require-statement-timeout",
];

/// Rules whose statement fails as written, whatever the table.
const FAILS: &[&str] = &[
    "syntax-error",
    "pgvector-index-too-many-dimensions",
    "pgvector-concurrent-build-not-alone",
    "ban-concurrent-index-creation-in-transaction",
    "transaction-nesting",
    "pgvigil-concurrent-in-transaction",
    "pgvigil-waiver-without-reason",
    "pgvigil-waiver-unknown-rule",
];

/// Where a table is "big" or "busy".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Rows from which a table is big.
    pub big_rows: u64,
    /// Bytes (pg_total_relation_size) from which a table is big.
    pub big_bytes: u64,
    /// Inserts + updates + deletes per second from which a table is busy.
    pub busy_writes_per_s: f64,
    /// Scans per second from which a table is busy.
    pub busy_scans_per_s: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            big_rows: 100_000,
            big_bytes: 1024 * 1024 * 1024,
            busy_writes_per_s: 10.0,
            busy_scans_per_s: 50.0,
        }
    }
}

/// The severity of `rule` on `table` (qualified), and why.
pub(crate) fn severity(
    rule: &str,
    table: Option<&str>,
    table_unknown: bool,
    created_in_set: bool,
    catalog: Option<&CatalogReading>,
    t: &Thresholds,
) -> (Severity, Option<String>) {
    if FAILS.contains(&rule) {
        return (Severity::Error, None);
    }
    if super::squawk::STYLE_RULES.contains(&rule) {
        return (
            Severity::Note,
            Some("a style rule: nothing is locked".into()),
        );
    }
    let short = |t: &str| t.strip_prefix("public.").unwrap_or(t).to_string();
    if created_in_set && let Some(table) = table {
        return (
            Severity::Note,
            Some(format!(
                "{} is created earlier in this pending set: empty when this runs",
                short(table)
            )),
        );
    }
    if rule == "pgvector-concurrently-if-not-exists" {
        return (Severity::Warning, None);
    }
    if !BLOCKING.contains(&rule) {
        return (Severity::Warning, None);
    }
    if table_unknown {
        return (
            Severity::Warning,
            Some("the index's table is not known here (only vector indexes are read from the catalog)".into()),
        );
    }
    let Some(table) = table else {
        return (
            Severity::Note,
            Some("no application table is locked by this statement".into()),
        );
    };
    let Some(catalog) = catalog else {
        return (
            Severity::Warning,
            Some(format!(
                "{}: size and traffic unknown without DATABASE_URL, assumed in use",
                short(table)
            )),
        );
    };
    let Some(r) = catalog.tables.get(table) else {
        return (
            Severity::Warning,
            Some(format!("{}: not in production's catalog", short(table))),
        );
    };
    let facts = super::report::TableFacts {
        table: table.to_string(),
        rows: r.rows,
        bytes: r.bytes,
        writes_per_s: r.writes_per_s,
        scans_per_s: r.scans_per_s,
    }
    .summary();
    let big = r.rows >= t.big_rows || r.bytes >= t.big_bytes;
    let busy = r.writes_per_s >= t.busy_writes_per_s || r.scans_per_s >= t.busy_scans_per_s;
    if big || busy {
        let what = match (big, busy) {
            (true, true) => "big and busy",
            (true, false) => "big",
            _ => "busy",
        };
        (Severity::Error, Some(format!("{facts}: {what}")))
    } else if r.rows == 0 && r.writes_per_s == 0.0 {
        (Severity::Note, Some(format!("{facts}: empty")))
    } else {
        (Severity::Warning, Some(facts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::lint::TableReading;

    fn catalog(rows: u64, writes: f64) -> CatalogReading {
        let mut c = CatalogReading::default();
        c.tables.insert(
            "public.events".into(),
            TableReading {
                rows,
                bytes: 8192,
                writes_per_s: writes,
                scans_per_s: 0.0,
            },
        );
        c
    }

    #[test]
    fn a_blocking_rule_follows_the_table() {
        let t = Thresholds::default();
        let rule = "require-concurrent-index-creation";
        let on = |c: Option<&CatalogReading>, created| {
            severity(rule, Some("public.events"), false, created, c, &t).0
        };
        assert_eq!(on(Some(&catalog(0, 0.0)), false), Severity::Note);
        assert_eq!(on(Some(&catalog(5_000, 1.0)), false), Severity::Warning);
        assert_eq!(on(Some(&catalog(200_000, 0.0)), false), Severity::Error);
        assert_eq!(on(Some(&catalog(10, 140.0)), false), Severity::Error);
        assert_eq!(on(Some(&catalog(200_000, 0.0)), true), Severity::Note);
        assert_eq!(on(None, false), Severity::Warning);
        let (_, why) = severity(
            rule,
            Some("public.events"),
            false,
            false,
            Some(&catalog(10, 140.0)),
            &t,
        );
        assert_eq!(
            why.as_deref(),
            Some("events: 10 rows, 8.0 KiB, 140 writes/s, 0 scans/s: busy")
        );
        // Failing and style rules do not depend on the table.
        assert_eq!(
            severity("syntax-error", None, false, false, None, &t).0,
            Severity::Error
        );
        assert_eq!(
            severity(
                "prefer-text-field",
                Some("public.events"),
                false,
                false,
                Some(&catalog(200_000, 0.0)),
                &t
            )
            .0,
            Severity::Note
        );
    }
}
