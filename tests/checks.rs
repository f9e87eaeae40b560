//! `pgvigil check` against real private clusters: one fixture per fault, each asserting the
//! exact finding and the exit code.

mod support;

use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::{CheckOptions, CheckReport, Group, Status, run_checks};
use pgvigil::pool::{Connector, InstrumentedPool};
use support::{cluster, exec, fresh_database, migrated_database, migrations_copy, migrations_dir};

async fn pool(url: &str) -> InstrumentedPool {
    Connector::new(PoolConfig::builder(url).min_connections(1).build().unwrap())
        .connect()
        .await
        .unwrap()
}

async fn check_with(url: &str, options: CheckOptions) -> CheckReport {
    let pool = pool(url).await;
    let report = run_checks(&pool, &options).await;
    pool.close().await;
    report
}

async fn check(url: &str) -> CheckReport {
    check_with(
        url,
        CheckOptions {
            migrations_dir: migrations_dir(),
            knn_samples: 5,
            ..Default::default()
        },
    )
    .await
}

fn finding<'a>(report: &'a CheckReport, id: &str) -> &'a pgvigil::checks::Finding {
    report.finding(id).unwrap_or_else(|| {
        panic!(
            "no finding {id} in {}",
            pgvigil::report::render_check(report, false)
        )
    })
}

#[track_caller]
fn assert_status(report: &CheckReport, id: &str, status: Status) {
    let f = finding(report, id);
    assert_eq!(
        f.status,
        status,
        "{id}: {}\n{}",
        f.summary,
        pgvigil::report::render_check(report, false)
    );
}

/// Every finding except those listed passes.
#[track_caller]
fn assert_only(report: &CheckReport, not_passing: &[(&str, Status)], exit_code: u8) {
    for f in &report.findings {
        let want = not_passing
            .iter()
            .find(|(id, _)| *id == f.id)
            .map(|(_, s)| *s)
            .unwrap_or(Status::Pass);
        assert_eq!(
            f.status,
            want,
            "{}: {}\n{}",
            f.id,
            f.summary,
            pgvigil::report::render_check(report, false)
        );
    }
    assert_eq!(report.exit_code, exit_code);
}

fn diff_lines(report: &CheckReport) -> Vec<String> {
    finding(report, "schema.diff").details.clone()
}

#[tokio::test]
async fn all_good_after_applying_the_migrations() {
    let url = migrated_database(cluster(), "good").await;
    // Some rows, so the KNN smoke test has something to time.
    exec(&url, "INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'handbook');
        INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
        SELECT 'guide', 'handbook', 'p' || i, 'text', (SELECT array_agg(random())::vector(3072) FROM generate_series(1, 3072) WHERE i > 0)
        FROM generate_series(1, 40) i;
        ANALYZE documents;").await;
    let report = check(&url).await;
    assert_only(&report, &[], 0);
    assert_eq!(report.status, "ok");
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id).collect();
    assert_eq!(
        ids,
        [
            "pool.connect",
            "pool.server_connections",
            "pgvector.extension",
            "pgvector.roundtrip",
            "pgvector.column",
            "pgvector.index",
            "pgvector.knn",
            "schema.diff",
            "migrations.ledger",
            "migrations.pending",
            "migrations.checksums",
            "migrations.history",
            "migrations.partial",
        ]
    );
    let knn = finding(&report, "pgvector.knn");
    assert!(
        knn.summary.contains("documents_embedding_hnsw_idx"),
        "{}",
        knn.summary
    );
    assert!(knn.summary.contains("p95"), "{}", knn.summary);
    assert!(
        finding(&report, "migrations.ledger")
            .summary
            .contains("4 applied")
    );
    // The scratch database this check used is gone (others may exist: tests run in parallel).
    let summary = &finding(&report, "schema.diff").summary;
    let scratch = summary
        .split_whitespace()
        .find(|w| w.starts_with("pgvigil_scratch_"))
        .unwrap_or_else(|| panic!("no scratch database named in {summary}"));
    let left = cluster()
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"),
        )
        .unwrap();
    assert_eq!(left, "0", "{scratch} was not dropped");
}

#[tokio::test]
async fn vector_extension_not_created() {
    let url = fresh_database(cluster(), "novector");
    let report = check_with(
        &url,
        CheckOptions {
            only: Some(Group::Pgvector),
            ..Default::default()
        },
    )
    .await;
    let f = finding(&report, "pgvector.extension");
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.summary
            .contains("not created in this database (server offers 0.8"),
        "{}",
        f.summary
    );
    assert_eq!(f.fix.as_deref(), Some("CREATE EXTENSION vector;"));
    for id in [
        "pgvector.roundtrip",
        "pgvector.column",
        "pgvector.index",
        "pgvector.knn",
    ] {
        assert_status(&report, id, Status::Unknown);
    }
    assert_eq!(report.exit_code, 2);
}

#[tokio::test]
async fn embedding_declared_vector_1536() {
    let url = migrated_database(cluster(), "dims").await;
    exec(&url, "DROP INDEX documents_embedding_hnsw_idx; ALTER TABLE documents ALTER COLUMN embedding TYPE vector(1536);").await;
    let report = check(&url).await;
    let f = finding(&report, "pgvector.column");
    assert_eq!(
        f.summary,
        "documents.embedding is vector(1536), expected vector(3072)"
    );
    assert_eq!(f.data.as_ref().unwrap()["actual"], "vector(1536)");
    assert_status(&report, "pgvector.index", Status::Unknown);
    assert!(
        diff_lines(&report).contains(
            &"different column documents.embedding: expected vector(3072), actual vector(1536)"
                .to_string()
        ),
        "{:?}",
        diff_lines(&report)
    );
    assert_only(
        &report,
        &[
            ("pgvector.column", Status::Fail),
            ("pgvector.index", Status::Unknown),
            ("pgvector.knn", Status::Unknown),
            ("schema.diff", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn ann_index_missing_suggests_the_fix() {
    let url = migrated_database(cluster(), "noindex").await;
    exec(&url, "DROP INDEX documents_embedding_hnsw_idx").await;
    let report = check(&url).await;
    let f = finding(&report, "pgvector.index");
    assert_eq!(f.status, Status::Fail);
    assert_eq!(
        f.fix.as_deref(),
        Some(
            "CREATE INDEX CONCURRENTLY documents_embedding_hnsw_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops);"
        )
    );
    assert!(
        diff_lines(&report)[0]
            .starts_with("missing index documents_embedding_hnsw_idx on documents"),
        "{:?}",
        diff_lines(&report)
    );
    assert_only(
        &report,
        &[
            ("pgvector.index", Status::Fail),
            ("pgvector.knn", Status::Unknown),
            ("schema.diff", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn ann_index_invalid_after_a_failed_concurrent_build() {
    let url = migrated_database(cluster(), "invalidann").await;
    // A value beyond half precision makes the halfvec cast fail halfway through the build,
    // exactly as it would in production: CREATE INDEX CONCURRENTLY leaves an INVALID index.
    exec(
        &url,
        "DROP INDEX documents_embedding_hnsw_idx;
        INSERT INTO document_sources (doc_type, source_name) VALUES ('api', 'big');
        INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
        VALUES ('api', 'big', 'x', 'x', array_fill(100000, ARRAY[3072])::vector(3072));",
    )
    .await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let err = sqlx::raw_sql("CREATE INDEX CONCURRENTLY documents_embedding_hnsw_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let report = check(&url).await;
    let f = finding(&report, "pgvector.index");
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.summary
            .contains("documents_embedding_hnsw_idx is INVALID"),
        "{}",
        f.summary
    );
    assert!(f.fix.as_deref().unwrap().starts_with(
        "DROP INDEX CONCURRENTLY IF EXISTS documents_embedding_hnsw_idx;\nCREATE INDEX CONCURRENTLY"
    ));
    assert!(diff_lines(&report).contains(&"different index documents_embedding_hnsw_idx on documents: expected valid, actual INVALID".to_string()));
    assert!(
        finding(&report, "migrations.partial").details[0]
            .starts_with("index documents_embedding_hnsw_idx on documents is INVALID")
    );
    assert_only(
        &report,
        &[
            ("pgvector.index", Status::Fail),
            ("pgvector.knn", Status::Unknown),
            ("schema.diff", Status::Fail),
            ("migrations.partial", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn unique_index_built_concurrently_over_duplicates_is_invalid() {
    let url = migrated_database(cluster(), "invalidbtree").await;
    exec(&url, "INSERT INTO document_sources (doc_type, source_name) VALUES ('api', 'a'), ('guide', 'a');
        INSERT INTO documents (doc_type, source_name, doc_path, content) VALUES ('api', 'a', 'same', 'x'), ('guide', 'a', 'same', 'y');").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE UNIQUE INDEX CONCURRENTLY documents_doc_path_uidx ON documents (doc_path)",
    )
    .execute(&mut conn)
    .await
    .unwrap_err();
    let report = check(&url).await;
    let partial = finding(&report, "migrations.partial");
    assert_eq!(partial.status, Status::Fail);
    assert!(
        partial.details[0].starts_with("index documents_doc_path_uidx on documents is INVALID"),
        "{:?}",
        partial.details
    );
    assert!(
        diff_lines(&report)[0].starts_with(
            "unexpected index documents_doc_path_uidx on documents: CREATE UNIQUE INDEX"
        ),
        "{:?}",
        diff_lines(&report)
    );
    assert_only(
        &report,
        &[
            ("schema.diff", Status::Warn),
            ("migrations.partial", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn migration_file_edited_after_it_was_applied() {
    let url = migrated_database(cluster(), "edited").await;
    let dir = migrations_copy();
    let file = dir.path().join("20261101000002_document_sources.sql");
    let mut sql = std::fs::read_to_string(&file).unwrap();
    sql.push_str("-- edited after the fact\n");
    std::fs::write(&file, sql).unwrap();
    let report = check_with(
        &url,
        CheckOptions {
            migrations_dir: dir.path().into(),
            knn_samples: 1,
            ..Default::default()
        },
    )
    .await;
    let f = finding(&report, "migrations.checksums");
    assert_eq!(
        f.summary,
        "1 applied migration(s) edited after they were applied"
    );
    let d = &f.details[0];
    assert!(
        d.starts_with("20261101000002 document sources: applied "),
        "{d}"
    );
    let hashes: Vec<&str> = d
        .split_whitespace()
        .filter(|w| w.len() == 12 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(hashes.len(), 2, "{d}");
    assert_ne!(hashes[0], hashes[1]);
    // The expected schema was built from the edited files: the schema check says so.
    assert_only(&report, &[("migrations.checksums", Status::Fail)], 2);
}

#[tokio::test]
async fn applied_version_missing_locally() {
    let url = migrated_database(cluster(), "missinglocal").await;
    exec(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                VALUES (20261201000000, 'hotfix from another branch', true, '\\x00'::bytea, 1000)",
    )
    .await;
    let report = check(&url).await;
    let f = finding(&report, "migrations.history");
    assert_eq!(
        f.summary,
        "1 applied but missing locally, 0 recorded as failed"
    );
    assert!(f.details[0].starts_with(
        "20261201000000 hotfix from another branch: applied on the server, no such file"
    ));
    assert_only(&report, &[("migrations.history", Status::Fail)], 2);
}

#[tokio::test]
async fn ledger_row_with_success_false() {
    let url = migrated_database(cluster(), "failedrow").await;
    exec(
        &url,
        "UPDATE _sqlx_migrations SET success = false WHERE version = 20261101000003",
    )
    .await;
    let report = check(&url).await;
    let f = finding(&report, "migrations.history");
    assert_eq!(
        f.summary,
        "0 applied but missing locally, 1 recorded as failed"
    );
    assert_eq!(
        f.details,
        ["20261101000003 documents: ledger row has success = false"]
    );
    let state = report.migrations.as_ref().unwrap();
    assert_eq!(
        state
            .entries
            .iter()
            .find(|e| e.version == 20261101000003)
            .unwrap()
            .status,
        pgvigil::checks::migrations::MigrationStatus::Failed
    );
    assert_only(&report, &[("migrations.history", Status::Fail)], 2);
}

#[tokio::test]
async fn missing_table() {
    let url = migrated_database(cluster(), "droptable").await;
    exec(&url, "DROP TABLE documents").await;
    let report = check(&url).await;
    assert_eq!(
        diff_lines(&report),
        ["missing table documents: expected table"]
    );
    assert_only(
        &report,
        &[
            ("pgvector.column", Status::Fail),
            ("pgvector.index", Status::Unknown),
            ("pgvector.knn", Status::Unknown),
            ("schema.diff", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn missing_column() {
    let url = migrated_database(cluster(), "dropcolumn").await;
    exec(&url, "ALTER TABLE document_sources DROP COLUMN version").await;
    let report = check(&url).await;
    assert_eq!(
        diff_lines(&report),
        ["missing column document_sources.version: expected text"]
    );
    assert_only(&report, &[("schema.diff", Status::Fail)], 2);
}

#[tokio::test]
async fn missing_constraint() {
    let url = migrated_database(cluster(), "dropcheck").await;
    exec(
        &url,
        "ALTER TABLE documents DROP CONSTRAINT documents_token_count_check",
    )
    .await;
    let report = check(&url).await;
    assert_eq!(
        diff_lines(&report),
        [
            "missing constraint documents_token_count_check on documents: expected CHECK ((token_count >= 0))"
        ]
    );
    assert_only(&report, &[("schema.diff", Status::Fail)], 2);
}

#[tokio::test]
async fn missing_enum_label() {
    let url = migrated_database(cluster(), "enumlabel").await;
    exec(
        &url,
        "ALTER TYPE doc_type RENAME VALUE 'changelog' TO 'changes'",
    )
    .await;
    let report = check(&url).await;
    let lines = diff_lines(&report);
    assert_eq!(
        lines[0],
        "missing enum doc_type label 'changelog': expected guide, reference, tutorial, api, changelog, actual guide, reference, tutorial, api, changes"
    );
    assert!(
        lines.contains(
            &"unexpected enum doc_type label 'changes': guide, reference, tutorial, api, changes"
                .to_string()
        ),
        "{lines:?}"
    );
    assert!(
        finding(&report, "schema.diff")
            .fix
            .as_deref()
            .unwrap()
            .contains("ALTER TYPE doc_type ADD VALUE 'changelog';")
    );
    assert_only(&report, &[("schema.diff", Status::Fail)], 2);
}

#[tokio::test]
async fn extra_column_is_unexpected() {
    let url = migrated_database(cluster(), "extracol").await;
    exec(&url, "ALTER TABLE documents ADD COLUMN language text").await;
    let report = check(&url).await;
    assert_eq!(
        diff_lines(&report),
        ["unexpected column documents.language: text"]
    );
    let entry = &report.schema_diff.as_ref().unwrap()[0];
    assert_eq!(serde_json::to_value(entry).unwrap()["kind"], "unexpected");
    assert_only(&report, &[("schema.diff", Status::Warn)], 1);
    // Outside the migrations' tables, extras count only with --strict.
    exec(&url, "CREATE TABLE scratchpad (id int)").await;
    let relaxed = check(&url).await;
    assert_eq!(diff_lines(&relaxed).len(), 1);
    let strict = check_with(
        &url,
        CheckOptions {
            migrations_dir: migrations_dir(),
            strict: true,
            knn_samples: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(diff_lines(&strict).contains(&"unexpected table scratchpad: table".to_string()));
}

#[tokio::test]
async fn constraint_added_not_valid() {
    let url = migrated_database(cluster(), "notvalid").await;
    exec(&url, "ALTER TABLE documents DROP CONSTRAINT documents_token_count_check;
                ALTER TABLE documents ADD CONSTRAINT documents_token_count_check CHECK (token_count >= 0) NOT VALID;").await;
    let report = check(&url).await;
    assert_eq!(
        diff_lines(&report),
        [
            "different constraint documents_token_count_check on documents: expected validated, actual NOT VALID (existing rows unchecked)"
        ]
    );
    assert_eq!(
        finding(&report, "schema.diff").fix.as_deref(),
        Some("ALTER TABLE documents VALIDATE CONSTRAINT documents_token_count_check;")
    );
    let partial = finding(&report, "migrations.partial");
    assert_eq!(partial.summary, "1 constraint(s) NOT VALID");
    assert_only(
        &report,
        &[
            ("schema.diff", Status::Warn),
            ("migrations.partial", Status::Warn),
        ],
        1,
    );
}

#[tokio::test]
async fn no_ledger_table() {
    let url = migrated_database(cluster(), "noledger").await;
    exec(&url, "DROP TABLE _sqlx_migrations").await;
    let report = check(&url).await;
    assert_eq!(
        finding(&report, "migrations.ledger").summary,
        "no _sqlx_migrations table: sqlx has never applied a migration to this database"
    );
    assert_eq!(finding(&report, "migrations.pending").summary, "4 pending");
    // The schema is all there although nothing is recorded: `sqlx migrate run` would fail on it.
    let partial = finding(&report, "migrations.partial");
    assert!(
        partial.details.contains(
            &"table documents already exists although migration 20261101000003 is pending"
                .to_string()
        ),
        "{:?}",
        partial.details
    );
    assert!(partial.details.contains(&"index documents_embedding_hnsw_idx on documents already exists although migration 20261101000004 is pending".to_string()), "{:?}", partial.details);
    assert_only(
        &report,
        &[
            ("migrations.ledger", Status::Warn),
            ("migrations.pending", Status::Warn),
            ("migrations.partial", Status::Fail),
        ],
        2,
    );
}

#[tokio::test]
async fn empty_database_has_everything_pending() {
    let url = fresh_database(cluster(), "empty");
    let report = check(&url).await;
    assert_status(&report, "migrations.pending", Status::Warn);
    assert_status(&report, "migrations.partial", Status::Pass);
    assert_status(&report, "schema.diff", Status::Fail);
    assert_eq!(report.exit_code, 2);
}

#[tokio::test]
async fn role_without_createdb_is_unknown_unless_given_a_snapshot_file() {
    let cluster = cluster();
    let url = migrated_database(cluster, "nocreatedb").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    cluster
        .psql("postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'monitor') THEN
               CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw' NOCREATEDB IN ROLE pg_monitor; END IF; END $$;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor;"
        )
        .unwrap();
    cluster
        .psql(
            &db,
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor",
        )
        .unwrap();
    let monitor_url = format!(
        "postgres://monitor:monitor-pw@127.0.0.1:{}/{db}",
        cluster.port()
    );
    let report = check(&monitor_url).await;
    let f = finding(&report, "schema.diff");
    assert_eq!(f.status, Status::Unknown);
    assert!(
        f.summary
            .contains("role \"monitor\" may not create databases"),
        "{}",
        f.summary
    );
    assert!(
        f.summary.contains("pgvigil schema snapshot"),
        "{}",
        f.summary
    );
    assert_eq!(
        report.exit_code, 3,
        "a check that cannot decide must not pass"
    );

    // Written where it may (as the superuser), read where it may not.
    let file: PathBuf = tempfile::tempdir().unwrap().keep().join("expected.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["schema", "snapshot", "--output"])
        .arg(&file)
        .arg("--migrations")
        .arg(migrations_dir())
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = check_with(
        &monitor_url,
        CheckOptions {
            migrations_dir: migrations_dir(),
            expected_file: Some(file),
            knn_samples: 1,
            ..Default::default()
        },
    )
    .await;
    assert_only(&report, &[], 0);
}

#[tokio::test]
async fn the_check_changes_nothing() {
    let url = migrated_database(cluster(), "readonly").await;
    let before = cluster().psql(url.rsplit('/').next().unwrap(), "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT * FROM _sqlx_migrations) x").unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let snap_before = pgvigil::checks::catalog::snapshot(&mut conn).await.unwrap();
    let report = check(&url).await;
    assert_eq!(report.exit_code, 0);
    let snap_after = pgvigil::checks::catalog::snapshot(&mut conn).await.unwrap();
    assert_eq!(snap_before, snap_after);
    let after = cluster().psql(url.rsplit('/').next().unwrap(), "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT * FROM _sqlx_migrations) x").unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_migration_with_server_wide_statements_never_runs_in_a_scratch_database() {
    let url = migrated_database(cluster(), "serverwide").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_reporting_role.sql"),
        "CREATE ROLE pgvigil_reporting_test;\n",
    )
    .unwrap();
    let report = check_with(
        &url,
        CheckOptions {
            migrations_dir: dir.path().into(),
            knn_samples: 1,
            ..Default::default()
        },
    )
    .await;
    let f = finding(&report, "schema.diff");
    assert_eq!(f.status, Status::Unknown);
    assert!(
        f.summary.contains("CREATE ROLE PGVIGIL_REPORTING_TEST"),
        "{}",
        f.summary
    );
    let roles = cluster()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'pgvigil_reporting_test'",
        )
        .unwrap();
    assert_eq!(
        roles, "0",
        "the role must not have been created on the server"
    );
}

#[tokio::test]
async fn an_ann_index_with_the_wrong_operator_class_does_not_pass() {
    let url = migrated_database(cluster(), "l2index").await;
    exec(&url, "DROP INDEX documents_embedding_hnsw_idx;
        CREATE INDEX documents_embedding_l2_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_l2_ops);").await;
    let report = check(&url).await;
    let f = finding(&report, "pgvector.index");
    assert_eq!(f.status, Status::Fail, "{}", f.summary);
    assert!(
        f.details
            .iter()
            .any(|d| d.starts_with("documents_embedding_l2_idx:")),
        "{:?}",
        f.details
    );
}
