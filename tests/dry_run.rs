//! `pgvigil migrate dry-run` against a real cluster: locks, timings, errors and schema changes
//! are reported, and the schema and ledger are unchanged afterwards.

mod support;

use pgvigil::checks::catalog::snapshot;
use pgvigil::checks::migrations::{load_local, read_ledger};
use pgvigil::safety::dry_run::{DryRunOptions, Outcome, dry_run};
use sqlx::Connection;
use support::{cluster, exec, migrated_database, migrations_copy};

const ADD_LANGUAGE: &str = "ALTER TABLE documents ADD COLUMN language text;\n\
CREATE INDEX documents_language_idx ON documents (language);\n";

fn ledger_key(
    rows: &Option<Vec<pgvigil::checks::migrations::LedgerRow>>,
) -> Vec<(i64, bool, Vec<u8>)> {
    rows.iter()
        .flatten()
        .map(|r| (r.version, r.success, r.checksum.clone()))
        .collect()
}

#[tokio::test]
async fn dry_run_reports_locks_and_changes_and_leaves_nothing_behind() {
    let url = migrated_database(cluster(), "dryrun").await;
    exec(
        &url,
        "INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'g')",
    )
    .await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let schema_before = snapshot(&mut conn).await.unwrap();
    let ledger_before = read_ledger(&mut conn).await.unwrap();

    let report = dry_run(
        &mut conn,
        "target".into(),
        dir.path(),
        &DryRunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.migrations.len(), 1, "{report:#?}");
    let m = &report.migrations[0];
    assert_eq!(
        (m.version, m.description.as_str()),
        (20261201000000, "add language")
    );
    assert_eq!(m.outcome, Outcome::Succeeded);
    assert!(m.duration_ms > 0.0);
    let locks: Vec<String> = m.locks.iter().map(|l| l.to_string()).collect();
    assert!(
        locks.contains(&"ACCESS EXCLUSIVE on documents".to_string()),
        "{locks:?}"
    );
    assert!(
        locks.contains(&"SHARE on documents".to_string()),
        "{locks:?}"
    );
    assert!(
        locks.contains(
            &"ACCESS EXCLUSIVE on documents_language_idx (created by this migration)".to_string()
        ),
        "{locks:?}"
    );
    let changes: Vec<String> = m.changes.iter().map(|c| c.to_string()).collect();
    assert!(
        changes.contains(&"unexpected column documents.language: text".to_string()),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c
                .starts_with("unexpected index documents_language_idx on documents: CREATE INDEX")),
        "{changes:?}"
    );
    assert!(report.left_no_trace);

    // Proof from outside the dry-run's own bookkeeping.
    let mut fresh = sqlx::PgConnection::connect(&url).await.unwrap();
    assert_eq!(snapshot(&mut fresh).await.unwrap(), schema_before);
    assert_eq!(
        ledger_key(&read_ledger(&mut fresh).await.unwrap()),
        ledger_key(&ledger_before)
    );
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname = 'language')",
    )
    .fetch_one(&mut fresh)
    .await
    .unwrap();
    assert!(!has_column);
    // The dry-run's connection is clean and usable: no transaction left open.
    let in_tx: String =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(in_tx, "active");
}

#[tokio::test]
async fn every_pending_migration_is_dry_run_on_an_empty_database() {
    let url = support::fresh_database(cluster(), "dryrunall");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let report = dry_run(
        &mut conn,
        "t".into(),
        &support::migrations_dir(),
        &DryRunOptions::default(),
    )
    .await
    .unwrap();
    let outcomes: Vec<(i64, &Outcome)> = report
        .migrations
        .iter()
        .map(|m| (m.version, &m.outcome))
        .collect();
    assert_eq!(outcomes.len(), 4);
    // Later migrations build on earlier pending ones inside the same rolled-back transaction.
    for (v, o) in &outcomes[..3] {
        assert_eq!(**o, Outcome::Succeeded, "{v}");
    }
    assert!(
        matches!(outcomes[3].1, Outcome::NeedsStaging { reason } if reason.contains("CREATE INDEX CONCURRENTLY"))
    );
    assert!(
        report.migrations[2]
            .changes
            .iter()
            .any(|c| c.object == "table documents")
    );
    assert!(report.left_no_trace);
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn a_failing_migration_reports_its_error_position() {
    let url = migrated_database(cluster(), "dryrunfail").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_typo.sql"),
        "-- adds a column\nALTER TABLE documents ADD COLUMN language textt;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20261201000001_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let report = dry_run(&mut conn, "t".into(), dir.path(), &DryRunOptions::default())
        .await
        .unwrap();
    match &report.migrations[0].outcome {
        Outcome::Failed {
            error,
            sqlstate,
            line,
            column,
        } => {
            assert!(error.contains("type \"textt\" does not exist"), "{error}");
            assert_eq!(sqlstate.as_deref(), Some("42704"));
            // Column 43 is where `textt` starts on line 2.
            assert_eq!((*line, *column), (Some(2), Some(43)));
        }
        other => panic!("{other:?}"),
    }
    // The failure was rolled back to its savepoint; the next migration still ran.
    assert_eq!(report.migrations[1].outcome, Outcome::Succeeded);
    assert_eq!(report.failed(), 1);
    assert!(report.left_no_trace);
    assert_eq!(pgvigil::report::dry_run_exit_code(&report), 2);
}

#[tokio::test]
async fn a_blocked_migration_fails_at_lock_timeout_instead_of_queueing() {
    let url = migrated_database(cluster(), "dryrunlock").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    // A long-running reader holds ACCESS SHARE on documents.
    let mut reader = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM documents;")
        .execute(&mut reader)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let options = DryRunOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        ..DryRunOptions::default()
    };
    let report = dry_run(&mut conn, "t".into(), dir.path(), &options)
        .await
        .unwrap();
    match &report.migrations[0].outcome {
        Outcome::Failed {
            sqlstate, error, ..
        } => {
            assert_eq!(sqlstate.as_deref(), Some("55P03"));
            assert!(error.contains("lock_timeout"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(report.left_no_trace);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut reader)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_command_prints_locks_and_the_rollback_proof() {
    let url = migrated_database(cluster(), "dryruncli").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["migrate", "dry-run", "--migrations"])
        .arg(dir.path())
        .env("DATABASE_URL", &url)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("20261201000000 add language: ok in"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ACCESS EXCLUSIVE on documents\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ column documents.language: text"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rolled back: schema and ledger identical before and after"),
        "{stdout}"
    );
    assert!(!stdout.contains(cluster().password()));
    let local = load_local(dir.path()).await.unwrap();
    assert_eq!(local.len(), 5);
}

#[tokio::test]
async fn transaction_control_in_a_migration_is_never_executed() {
    let url = migrated_database(cluster(), "dryrunescape").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_sneaky.sql"),
        "ALTER TABLE documents ADD COLUMN sneaky text;\nCOMMIT;\nALTER TABLE documents ADD COLUMN after text;\n",
    )
    .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let before = snapshot(&mut conn).await.unwrap();
    let report = dry_run(&mut conn, "t".into(), dir.path(), &DryRunOptions::default())
        .await
        .unwrap();
    match &report.migrations[0].outcome {
        Outcome::NeedsStaging { reason } => assert!(reason.contains("`COMMIT`"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(report.left_no_trace);
    assert_eq!(
        snapshot(&mut conn).await.unwrap(),
        before,
        "nothing was committed"
    );
}
