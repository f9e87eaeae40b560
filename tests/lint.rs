//! `pgvigil migrate lint`: squawk's rule families and pgvigil's pgvector rules at their exact
//! line, parse errors, waivers, and a severity that follows the live table (an empty table
//! against a 200,000-row one, on a real cluster, production unchanged).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgvigil::window::lint::{
    CatalogReading, LintFile, LintOptions, LintReport, Severity, lint, read_catalog,
};
use support::{cluster, exec, fingerprint, fresh_database, migrated_database, prod_connection};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lint")
        .join(name)
}

fn file(name: &str) -> LintFile {
    LintFile {
        name: name.into(),
        sql: std::fs::read_to_string(fixture(name)).unwrap(),
    }
}

fn lint_one(name: &str, catalog: Option<&CatalogReading>) -> LintReport {
    lint(&[file(name)], &LintOptions::default(), catalog)
}

/// (rule, line, severity) of every finding.
fn found(report: &LintReport) -> Vec<(String, usize, Severity)> {
    report
        .files
        .iter()
        .flat_map(|f| &f.findings)
        .map(|f| (f.rule.clone(), f.line, f.severity))
        .collect()
}

fn assert_finding(name: &str, report: &LintReport, rule: &str, line: usize) {
    let all = found(report);
    assert!(
        all.iter().any(|(r, l, _)| r == rule && *l == line),
        "{name}: no {rule} at line {line}: {all:#?}"
    );
}

#[test]
fn squawk_rule_families_are_reported_at_their_line() {
    for (name, rule, line) in [
        ("adding_required_field.sql", "adding-required-field", 2),
        ("ban_drop_column.sql", "ban-drop-column", 2),
        ("changing_column_type.sql", "changing-column-type", 2),
        (
            "require_concurrent_index_creation.sql",
            "require-concurrent-index-creation",
            2,
        ),
        (
            "constraint_missing_not_valid.sql",
            "constraint-missing-not-valid",
            2,
        ),
        (
            "adding_foreign_key_constraint.sql",
            "adding-foreign-key-constraint",
            3,
        ),
        (
            "disallowed_unique_constraint.sql",
            "disallowed-unique-constraint",
            2,
        ),
        (
            "ban_concurrent_index_creation_in_transaction.sql",
            "ban-concurrent-index-creation-in-transaction",
            3,
        ),
        (
            "concurrent_in_transaction.sql",
            "pgvigil-concurrent-in-transaction",
            2,
        ),
        ("concurrent_in_transaction.sql", "prefer-robust-stmts", 2),
        (
            "require_concurrent_index_creation.sql",
            "require-lock-timeout",
            2,
        ),
    ] {
        assert_finding(name, &lint_one(name, None), rule, line);
    }
    // squawk's rule covers the two-statement file; pgvigil's sqlx rule does not repeat it.
    let r = lint_one("ban_concurrent_index_creation_in_transaction.sql", None);
    assert!(
        !found(&r)
            .iter()
            .any(|(rule, _, _)| rule == "pgvigil-concurrent-in-transaction"),
        "{:#?}",
        found(&r)
    );
}

#[test]
fn pgvector_rules_are_reported_at_their_line() {
    for (name, rule, line, severity) in [
        (
            "pgvector_index_too_many_dimensions.sql",
            "pgvector-index-too-many-dimensions",
            3,
            Severity::Error,
        ),
        (
            "pgvector_concurrent_build_not_alone.sql",
            "pgvector-concurrent-build-not-alone",
            3,
            Severity::Error,
        ),
        (
            "pgvector_concurrently_if_not_exists.sql",
            "pgvector-concurrently-if-not-exists",
            2,
            Severity::Warning,
        ),
        (
            "pgvector_alter_column_type_vector.sql",
            "pgvector-alter-column-type-vector",
            2,
            Severity::Warning,
        ),
        (
            "pgvector_unbatched_embedding_update.sql",
            "pgvector-unbatched-embedding-update",
            2,
            Severity::Warning,
        ),
        (
            "pgvector_alter_extension_update.sql",
            "pgvector-alter-extension-update",
            2,
            Severity::Warning,
        ),
        (
            "pgvector_index_build_settings.sql",
            "pgvector-index-build-settings",
            3,
            Severity::Warning,
        ),
    ] {
        let report = lint_one(name, None);
        let all = found(&report);
        assert!(
            all.contains(&(rule.to_string(), line, severity)),
            "{name}: {all:#?}"
        );
    }
    // The fix for too many dimensions names the halfvec expression index.
    let r = lint_one("pgvector_index_too_many_dimensions.sql", None);
    let f = r.files[0]
        .findings
        .iter()
        .find(|f| f.rule == "pgvector-index-too-many-dimensions")
        .unwrap();
    assert!(
        f.message.contains("vector(3000)") && f.message.contains("2000"),
        "{f:#?}"
    );
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("((e::halfvec(3000)) halfvec_l2_ops)"),
        "{f:#?}"
    );
    // The short timeout is named.
    let r = lint_one("pgvector_index_build_settings.sql", None);
    let f = r.files[0]
        .findings
        .iter()
        .find(|f| f.rule == "pgvector-index-build-settings")
        .unwrap();
    assert!(f.message.contains("statement_timeout 30 s"), "{f:#?}");
    // A batched backfill is not flagged.
    let batched = LintFile {
        name: "batched.sql".into(),
        sql: "UPDATE documents SET embedding = NULL WHERE id IN (SELECT id FROM documents WHERE embedding IS NOT NULL LIMIT 1000);\n".into(),
    };
    let r = lint(&[batched], &LintOptions::default(), None);
    assert!(
        !found(&r)
            .iter()
            .any(|(rule, _, _)| rule == "pgvector-unbatched-embedding-update"),
        "{:#?}",
        found(&r)
    );
}

#[test]
fn a_file_that_does_not_parse_reports_its_parse_errors_and_is_not_linted() {
    let r = lint_one("parse_error.sql", None);
    assert!(r.files[0].parse_failed);
    let all = found(&r);
    assert!(
        !all.is_empty()
            && all.iter().all(|(rule, line, s)| rule == "syntax-error"
                && *line == 2
                && *s == Severity::Error),
        "{all:#?}"
    );
    assert_eq!(r.files[0].findings[0].column, 33);
    assert_eq!(r.status(), pgvigil::checks::Status::Fail);
}

#[test]
fn a_waiver_with_a_reason_waives_one_rule_and_one_without_is_an_error() {
    let r = lint_one("waiver_with_reason.sql", None);
    assert!(
        !found(&r)
            .iter()
            .any(|(rule, _, _)| rule == "ban-drop-column"),
        "{:#?}",
        found(&r)
    );
    let w = &r.files[0].waivers;
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(
        (w[0].rule.as_str(), w[0].line, w[0].waived.line),
        ("ban-drop-column", 2, 3)
    );
    assert_eq!(
        w[0].reason,
        "nothing reads metadata since release 3.2 (see ticket 41)"
    );
    // Only that rule is waived.
    assert!(
        found(&r)
            .iter()
            .any(|(rule, line, _)| rule == "require-lock-timeout" && *line == 3)
    );

    let r = lint_one("waiver_without_reason.sql", None);
    let all = found(&r);
    assert!(
        all.contains(&("pgvigil-waiver-without-reason".into(), 2, Severity::Error)),
        "{all:#?}"
    );
    assert!(
        all.contains(&("ban-drop-column".into(), 3, Severity::Warning)),
        "{all:#?}"
    );
    assert!(r.files[0].waivers.is_empty());
}

fn pgvigil(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RETRY_MAX_RETRIES", "0")
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_reference_migrations_lint_with_notes_only() {
    // Without a database every table is created by the set itself: notes, exit 0.
    let (code, out, err) = pgvigil(
        "postgres://nobody@127.0.0.1:1/none",
        &["migrate", "lint", "--all", "--no-database"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("all 4 local migration(s)"), "{out}");
    assert!(out.contains("0 errors, 0 warnings, "), "{out}");
    assert!(out.contains("pgvector-concurrently-if-not-exists"), "{out}");
}

#[tokio::test]
async fn the_catalog_knows_vector_indexes_and_nothing_is_pending_on_a_migrated_database() {
    let url = migrated_database(cluster(), "lint_ref").await;
    let before = fingerprint(cluster(), &url);
    let mut session = prod_connection(&url).await;
    let catalog = read_catalog(&mut session, Duration::from_millis(200))
        .await
        .unwrap();
    session.close().await;
    assert_eq!(
        catalog
            .vector_indexes
            .get("public.documents_embedding_hnsw_idx"),
        Some(&("hnsw".to_string(), "public.documents".to_string()))
    );
    assert_eq!(
        catalog.vector_columns.get("public.documents.embedding"),
        Some(&("vector".to_string(), 3072))
    );
    assert!(
        catalog.server_version.starts_with("15"),
        "{}",
        catalog.server_version
    );
    let r = lint_one("pgvector_drop_vector_index.sql", Some(&catalog));
    // Its table is the index's (documents, empty here): a note that says why.
    let f = r.files[0]
        .findings
        .iter()
        .find(|f| f.rule == "pgvector-drop-vector-index")
        .unwrap();
    assert_eq!(
        (f.line, f.severity, f.table.as_deref()),
        (2, Severity::Note, Some("public.documents")),
        "{f:#?}"
    );
    assert!(
        f.why.as_deref().unwrap().starts_with("documents: 0 rows"),
        "{f:#?}"
    );
    assert!(
        r.pg_version.starts_with("15.") && catalog.server_version.starts_with(&r.pg_version),
        "{}",
        r.pg_version
    );

    let (code, out, err) = pgvigil(&url, &["migrate", "lint", "--busy-interval", "200ms"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("the 0 pending migration(s)"), "{out}");
    assert_eq!(fingerprint(cluster(), &url), before, "production changed");
}

#[tokio::test]
async fn the_same_index_is_a_note_on_an_empty_table_and_an_error_on_200000_rows() {
    let empty = fresh_database(cluster(), "lint_empty");
    exec(
        &empty,
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text)",
    )
    .await;
    let big = fresh_database(cluster(), "lint_big");
    exec(
        &big,
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text);
         INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
         ANALYZE events;",
    )
    .await;
    let before = fingerprint(cluster(), &big);
    let file = fixture("index_on_events.sql");
    let args = [
        "migrate",
        "lint",
        "--json",
        "--busy-interval",
        "200ms",
        file.to_str().unwrap(),
    ];

    let (code, out, err) = pgvigil(&empty, &args);
    assert_eq!(code, Some(0), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["format"], "pgvigil.lint/1");
    assert_eq!(json["catalog_read"], true);
    let f = &json["files"][0]["findings"];
    let index = f
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "require-concurrent-index-creation")
        .unwrap();
    assert_eq!(
        (index["severity"].as_str(), index["line"].as_u64()),
        (Some("note"), Some(2)),
        "{out}"
    );
    assert!(
        index["why"].as_str().unwrap().starts_with("events: 0 rows"),
        "{out}"
    );

    let (code, out, err) = pgvigil(&big, &args);
    assert_eq!(code, Some(2), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let index = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "require-concurrent-index-creation")
        .unwrap()
        .clone();
    assert_eq!(
        (index["severity"].as_str(), index["line"].as_u64()),
        (Some("error"), Some(2)),
        "{out}"
    );
    assert!(
        index["why"]
            .as_str()
            .unwrap()
            .starts_with("events: 200 k rows"),
        "{out}"
    );
    assert!(index["why"].as_str().unwrap().ends_with(": big"), "{out}");
    assert_eq!(json["tables"][0]["table"], "public.events");
    assert_eq!(json["tables"][0]["rows"], 200000);

    // The human report says what it read.
    let (code, out, _) = pgvigil(
        &big,
        &[
            "migrate",
            "lint",
            "--busy-interval",
            "200ms",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2));
    assert!(
        out.contains("index_on_events.sql:2:1 error require-concurrent-index-creation"),
        "{out}"
    );
    assert!(out.contains("  events: 200 k rows, "), "{out}");
    assert_eq!(fingerprint(cluster(), &big), before, "production changed");
}

#[tokio::test]
async fn the_pending_set_comes_from_the_ledger_and_the_hnsw_migration_is_read_against_the_live_table()
 {
    // Production has the first three reference migrations; the HNSW one is pending.
    let url = fresh_database(cluster(), "lint_pending");
    let three = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(support::migrations_dir()).unwrap() {
        let entry = entry.unwrap();
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("20261101000004")
        {
            std::fs::copy(entry.path(), three.path().join(entry.file_name())).unwrap();
        }
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(three.path().to_path_buf())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let before = fingerprint(cluster(), &url);

    let (code, out, err) = pgvigil(
        &url,
        &["migrate", "lint", "--json", "--busy-interval", "200ms"],
    );
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(
        json["selection"], "the 1 pending migration(s) of migrations (ledger on DATABASE_URL)",
        "{out}"
    );
    assert_eq!(json["files"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["files"][0]["file"],
        "migrations/20261101000004_documents_embedding_hnsw.sql"
    );
    assert_eq!(json["files"][0]["no_transaction"], true);
    let rules: Vec<(String, String, u64)> = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    // documents exists on production (empty): the hidden-invalid-index risk is real, the build
    // settings fit an empty table (no finding), the lock-timeout advice is a note.
    assert!(
        rules.contains(&(
            "pgvector-concurrently-if-not-exists".into(),
            "warning".into(),
            2
        )),
        "{rules:#?}"
    );
    assert!(
        rules.contains(&("require-lock-timeout".into(), "note".into(), 2)),
        "{rules:#?}"
    );
    assert!(
        !rules
            .iter()
            .any(|(r, _, _)| r == "pgvector-index-build-settings"),
        "{rules:#?}"
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(json["tables"][0]["table"], "public.documents", "{out}");
    assert_eq!(fingerprint(cluster(), &url), before, "production changed");
}
