//! `pgvigil check` against real private clusters: one fixture per fault, each asserting the
//! exact finding and the exit code.

mod support;

use std::path::PathBuf;

use pgvigil::checks::{CheckOptions, CheckReport, Group, Status, run_checks};
use pgvigil::pool::{Connector, InstrumentedPool};
use support::{cluster, exec, fresh_database, migrated_database, migrations_copy, migrations_dir};

async fn pool(url: &str) -> InstrumentedPool {
    Connector::new(support::prod_config(url))
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
            cache_dir: Some(support::shared_cache()),
            dev: support::dev(),
            ..Default::default()
        },
    )
    .await
}

fn finding<'a>(report: &'a CheckReport, id: &str) -> &'a pgvigil::checks::Finding {
    report.finding(id).unwrap_or_else(|| {
        panic!(
            "no finding {id} in {}",
            pgvigil_cli::report::render_check(report, false)
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
        pgvigil_cli::report::render_check(report, false)
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
            pgvigil_cli::report::render_check(report, false)
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
            "server.role",
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
    // The expected schema came from a dev database (or the cache it filled), never from a
    // scratch database on the production server.
    let summary = &finding(&report, "schema.diff").summary;
    assert!(
        summary.contains("private PostgreSQL") || summary.contains("cache ("),
        "{summary}"
    );
    let scratch = cluster()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .unwrap();
    assert_eq!(scratch, "0");
}

#[tokio::test]
async fn vector_extension_not_created() {
    let url = fresh_database(cluster(), "novector");
    let report = check_with(
        &url,
        CheckOptions {
            only: Some(Group::Pgvector),
            dev: support::dev(),
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
            dev: support::dev(),
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
        pgvigil::checks::MigrationStatus::Failed
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
            dev: support::dev(),
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
    // What the pending migrations will create is "pending", not "missing": a WARNING.
    assert_status(&report, "schema.diff", Status::Pass);
    assert!(
        finding(&report, "schema.diff").summary.contains("pending"),
        "{}",
        finding(&report, "schema.diff").summary
    );
    for id in ["pgvector.extension", "pgvector.column", "pgvector.index"] {
        assert_status(&report, id, Status::Warn);
        assert!(
            finding(&report, id)
                .summary
                .starts_with("pending: migration")
        );
    }
    assert_eq!(
        report.exit_code,
        1,
        "{}",
        pgvigil_cli::report::render_check(&report, false)
    );
}

#[tokio::test]
async fn only_the_index_migration_pending_is_a_warning() {
    let url = fresh_database(cluster(), "indexpending");
    let dir = migrations_copy();
    std::fs::remove_file(
        dir.path()
            .join("20261101000004_documents_embedding_hnsw.sql"),
    )
    .unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(dir.path().to_path_buf())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    let report = check(&url).await;
    assert_only(
        &report,
        &[
            ("migrations.pending", Status::Warn),
            ("pgvector.index", Status::Warn),
            ("pgvector.knn", Status::Warn),
        ],
        1,
    );
    let diff = report.schema_diff.as_ref().unwrap();
    assert!(
        diff.iter()
            .any(|e| e.kind == pgvigil::checks::DiffKind::Pending
                && e.object == "index documents_embedding_hnsw_idx on documents"),
        "{diff:?}"
    );
}

#[tokio::test]
async fn the_recommended_monitoring_role_decides_every_check() {
    // pg_monitor, SELECT on the ledger and on documents (for the KNN smoke test), no CREATEDB:
    // the expected schema comes from the dev database, so nothing is UNKNOWN.
    let cluster = cluster();
    let url = migrated_database(cluster, "monitorrole").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    cluster
        .psql("postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'monitor') THEN
               CREATE ROLE monitor LOGIN PASSWORD 'monitor-pw' NOCREATEDB IN ROLE pg_monitor; END IF; END $$;"
        )
        .unwrap();
    cluster
        .psql(
            &db,
            "GRANT SELECT ON _sqlx_migrations, documents TO monitor",
        )
        .unwrap();
    let monitor_url = format!(
        "postgres://monitor:monitor-pw@127.0.0.1:{}/{db}",
        cluster.port()
    );
    let report = check(&monitor_url).await;
    assert_only(&report, &[], 0);

    // The snapshot file still works, and is written without touching the server.
    let file: PathBuf = tempfile::tempdir().unwrap().keep().join("expected.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["schema", "snapshot", "--output"])
        .arg(&file)
        .arg("--migrations")
        .arg(migrations_dir())
        .env("DATABASE_URL", &monitor_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let report = check_with(
        &monitor_url,
        CheckOptions {
            migrations_dir: migrations_dir(),
            expected_file: Some(file),
            knn_samples: 1,
            build_expected: false,
            cache_dir: None,
            dev: support::dev(),
            ..Default::default()
        },
    )
    .await;
    assert_only(&report, &[], 0);
}

#[tokio::test]
async fn without_pg_monitor_the_report_says_other_sessions_are_invisible() {
    let cluster = cluster();
    let url = migrated_database(cluster, "nomonitor").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    cluster
        .psql(
            "postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plain_reader') THEN
               CREATE ROLE plain_reader LOGIN PASSWORD 'reader-pw'; END IF; END $$;",
        )
        .unwrap();
    cluster
        .psql(
            &db,
            "GRANT SELECT ON _sqlx_migrations, documents TO plain_reader",
        )
        .unwrap();
    let reader_url = format!(
        "postgres://plain_reader:reader-pw@127.0.0.1:{}/{db}",
        cluster.port()
    );
    let report = check(&reader_url).await;
    let f = finding(&report, "pool.server_connections");
    assert_eq!(f.status, Status::Warn);
    assert!(
        f.summary
            .contains("only this role's sessions are visible: grant pg_monitor"),
        "{}",
        f.summary
    );
    // And one missing privilege spoils nothing else.
    assert_only(&report, &[("pool.server_connections", Status::Warn)], 1);
}

#[tokio::test]
async fn a_permission_error_on_one_table_reports_that_check_only() {
    let cluster = cluster();
    let url = migrated_database(cluster, "noselect").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    cluster
        .psql("postgres",
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_only') THEN
               CREATE ROLE ledger_only LOGIN PASSWORD 'ledger-pw' IN ROLE pg_monitor; END IF; END $$;"
        )
        .unwrap();
    cluster
        .psql(&db, "GRANT SELECT ON _sqlx_migrations TO ledger_only")
        .unwrap();
    let limited = format!(
        "postgres://ledger_only:ledger-pw@127.0.0.1:{}/{db}",
        cluster.port()
    );
    let report = check(&limited).await;
    let knn = finding(&report, "pgvector.knn");
    assert_eq!(knn.status, Status::Unknown);
    assert!(
        knn.summary
            .contains("permission denied for table documents"),
        "{}",
        knn.summary
    );
    assert!(!knn.summary.contains("at line"), "{}", knn.summary);
    // Every later check still decided.
    assert_only(&report, &[("pgvector.knn", Status::Unknown)], 3);
}

#[tokio::test]
async fn a_read_blocked_by_a_lock_names_the_session_holding_it() {
    let url = migrated_database(cluster(), "lockedread").await;
    let holder = cluster()
        .lock(
            url.rsplit('/').next().unwrap(),
            "documents",
            "ACCESS EXCLUSIVE",
        )
        .application_name("docs-batch")
        .hold()
        .unwrap();
    let pid = holder.pid();
    let report = check_with(
        &url,
        CheckOptions {
            migrations_dir: migrations_dir(),
            knn_samples: 1,
            lock_timeout: std::time::Duration::from_millis(300),
            cache_dir: Some(support::shared_cache()),
            dev: support::dev(),
            ..Default::default()
        },
    )
    .await;
    let text = pgvigil_cli::report::render_check(&report, false);
    assert!(
        text.contains(&format!(
            "waited on a lock held by pid {pid} (docs-batch, ACCESS EXCLUSIVE on documents"
        )),
        "{text}"
    );
    drop(holder);
}

#[tokio::test]
async fn the_check_changes_nothing() {
    let url = migrated_database(cluster(), "readonly").await;
    let before = cluster().psql(url.rsplit('/').next().unwrap(), "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT * FROM _sqlx_migrations) x").unwrap();
    let mut session = support::prod_connection(&url).await;
    let snap_before = session.read(pgvigil::catalog::snapshot).await.unwrap();
    let report = check(&url).await;
    assert_eq!(report.exit_code, 0);
    let snap_after = session.read(pgvigil::catalog::snapshot).await.unwrap();
    assert_eq!(snap_before, snap_after);
    let after = cluster().psql(url.rsplit('/').next().unwrap(), "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT * FROM _sqlx_migrations) x").unwrap();
    assert_eq!(before, after);
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
