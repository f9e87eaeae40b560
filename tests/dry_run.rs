//! `pgvigil migrate dry-run` against a real cluster: the pending migrations run on a private
//! dev database holding a copy of production's schema; locks, timings, errors and schema
//! changes are reported, and production (schema, ledger, rows, roles, settings) is unchanged.

mod support;

use pgvigil::catalog::snapshot;
use pgvigil::checks::load_local;
use pgvigil::migrations::read_ledger;
use pgvigil::window::{DryRunOptions, Outcome, dry_run};
use sqlx::Connection;
use support::{
    cluster, exec, fingerprint, migrated_database, migrations_copy, prod_config, prod_connection,
};

const ADD_LANGUAGE: &str = "ALTER TABLE documents ADD COLUMN language text;\n\
CREATE INDEX documents_language_idx ON documents (language);\n";

fn ledger_key(rows: &Option<Vec<pgvigil::migrations::LedgerRow>>) -> Vec<(i64, bool, Vec<u8>)> {
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
    let mut conn = prod_connection(&url).await;
    let schema_before = conn.read(snapshot).await.unwrap();
    let ledger_before = conn.read(read_ledger).await.unwrap();
    let production_before = fingerprint(cluster(), &url);

    let report = dry_run(
        &prod_config(&url),
        &mut conn,
        dir.path(),
        &support::dry_run_options(),
    )
    .await
    .unwrap();
    assert!(
        report
            .dev
            .as_deref()
            .unwrap_or("")
            .starts_with("private PostgreSQL"),
        "{report:#?}"
    );
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
    assert!(report.production_unchanged);

    // Proof from outside the dry-run's own bookkeeping.
    assert_eq!(fingerprint(cluster(), &url), production_before);
    let mut fresh_session = prod_connection(&url).await;
    assert_eq!(fresh_session.read(snapshot).await.unwrap(), schema_before);
    assert_eq!(
        ledger_key(&fresh_session.read(read_ledger).await.unwrap()),
        ledger_key(&ledger_before)
    );
    let mut fresh = sqlx::PgConnection::connect(&url).await.unwrap();
    let has_column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'documents'::regclass AND attname = 'language')",
    )
    .fetch_one(&mut fresh)
    .await
    .unwrap();
    assert!(!has_column);
    // The dry-run's session is clean and usable: no transaction left open.
    let mut reader = conn.begin_read_only().await.unwrap();
    let in_tx: String =
        sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            .fetch_one(&mut reader)
            .await
            .unwrap();
    assert_eq!(in_tx, "active");
    // And it is read-only: pgvigil cannot write through it even if it tried. DDL is not
    // sent at all; a write hidden in a reading statement is refused by the server.
    let err = sqlx::query("CREATE TABLE pgvigil_must_not_exist (a int)")
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused a statement starting with `CREATE`"),
        "{err}"
    );
    let err = sqlx::query("SELECT 1 AS a INTO pgvigil_must_not_exist")
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    reader.finish().await.unwrap();
}

#[tokio::test]
async fn every_pending_migration_is_dry_run_on_an_empty_database() {
    let url = support::fresh_database(cluster(), "dryrunall");
    let mut conn = prod_connection(&url).await;
    let report = dry_run(
        &prod_config(&url),
        &mut conn,
        &support::migrations_dir(),
        &support::dry_run_options(),
    )
    .await
    .unwrap();
    let outcomes: Vec<(i64, &Outcome)> = report
        .migrations
        .iter()
        .map(|m| (m.version, &m.outcome))
        .collect();
    assert_eq!(outcomes.len(), 4);
    // Every one runs on the dev copy, in order, the -- no-transaction HNSW build included.
    for (v, o) in &outcomes {
        assert_eq!(**o, Outcome::Succeeded, "{v}");
    }
    let hnsw = &report.migrations[3];
    assert!(hnsw.no_transaction && hnsw.locks_sampled);
    assert!(
        hnsw.changes
            .iter()
            .any(|c| c.object == "index documents_embedding_hnsw_idx on documents"),
        "{:?}",
        hnsw.changes
    );
    assert!(
        report.migrations[2]
            .changes
            .iter()
            .any(|c| c.object == "table documents")
    );
    assert!(report.production_unchanged);
    let tables: i64 = conn
        .read(async |r| {
            sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                .fetch_one(r)
                .await
        })
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
    let mut conn = prod_connection(&url).await;
    let report = dry_run(
        &prod_config(&url),
        &mut conn,
        dir.path(),
        &support::dry_run_options(),
    )
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
    // A real apply stops at the first failure; so does the dry-run.
    assert!(
        matches!(&report.migrations[1].outcome, Outcome::NotRun { reason } if reason.contains("20261201000000 failed")),
        "{:?}",
        report.migrations[1].outcome
    );
    assert_eq!(report.failed(), 1);
    assert!(report.production_unchanged);
    assert_eq!(pgvigil_cli::report::dry_run_exit_code(&report), 2);
}

#[tokio::test]
async fn a_locked_production_table_stops_the_schema_copy_and_names_the_blocker() {
    let url = migrated_database(cluster(), "dryrunlock").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    // Someone holds ACCESS EXCLUSIVE on documents: pgvigil's read must give up, not queue
    // behind it (and make everyone after it queue too).
    let holder = cluster()
        .lock(
            url.rsplit('/').next().unwrap(),
            "documents",
            "ACCESS EXCLUSIVE",
        )
        .application_name("docs-batch")
        .hold()
        .unwrap();
    let holder_pid = holder.pid();
    let mut conn = prod_connection(&url).await;
    let options = DryRunOptions {
        lock_timeout: std::time::Duration::from_millis(300),
        ..support::dry_run_options()
    };
    let err = dry_run(&prod_config(&url), &mut conn, dir.path(), &options)
        .await
        .unwrap_err()
        .to_string();
    // The catalog read gives up at the session's lock_timeout (pg_dump's would, at
    // --lock-timeout); either way the message names the holder.
    assert!(
        err.contains("lock timeout") || err.contains("could not obtain lock"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "pid {holder_pid} (docs-batch, ACCESS EXCLUSIVE on documents"
        )),
        "{err}"
    );
    drop(holder);
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
        stdout.contains("production unchanged: only read-only statements ran there"),
        "{stdout}"
    );
    assert!(stdout.contains("ran on: private PostgreSQL"), "{stdout}");
    assert!(!stdout.contains(cluster().password()));
    let local = load_local(dir.path()).await.unwrap();
    assert_eq!(local.len(), 5);
}

/// A migration that writes ~230 MB (200,000 rows of 1 kB) against a bound of 64 MiB: the run
/// stops soon after the bound with a finding naming the migration, the bound, the flag and the
/// size reached (the old dev cluster let it write 2 GB and PASSed).
#[tokio::test]
async fn a_migration_past_the_dev_disk_bound_is_stopped() {
    let url = migrated_database(cluster(), "dryrundisk").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_fill_the_disk.sql"),
        "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 32) AS pad FROM generate_series(1, 200000) g;\n",
    )
    .unwrap();
    let production_before = fingerprint(cluster(), &url);
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args([
            "migrate",
            "dry-run",
            "--max-dev-size",
            "64MiB",
            "--migrations",
        ])
        .arg(dir.path())
        .env("DATABASE_URL", &url)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shown = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{shown}");
    let line = stdout
        .lines()
        .find(|l| l.contains("past its bound of 64 MiB (--max-dev-size)"))
        .unwrap_or_else(|| panic!("no disk-bound finding:\n{shown}"));
    assert!(
        line.contains("migration 20261201000000_fill_the_disk.sql"),
        "{line}"
    );
    // The size reached, in MiB, is past the bound and far from the 230 MB it would write.
    let reached: f64 = line
        .split("reached ")
        .nth(1)
        .and_then(|r| r.split(" MiB").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size reached in: {line}"));
    assert!(reached > 64.0 && reached < 200.0, "{line}");
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    eprintln!("{line} (whole dry-run {took:?})");
    assert_eq!(fingerprint(cluster(), &url), production_before);
}

/// The report's claim rests on what it compared: it names the tables compared, the dev
/// server's network, and what it did not check.
#[tokio::test]
async fn the_report_says_what_it_compared_and_what_it_did_not() {
    let url = migrated_database(cluster(), "dryrunclaim").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_add_language.sql"),
        ADD_LANGUAGE,
    )
    .unwrap();
    let mut conn = prod_connection(&url).await;
    let report = dry_run(
        &prod_config(&url),
        &mut conn,
        dir.path(),
        &support::dry_run_options(),
    )
    .await
    .unwrap();
    let e = &report.production;
    assert!(e.schema_unchanged && e.ledger_unchanged && e.roles_unchanged);
    assert!(e.tables_compared >= 3, "{e:#?}");
    assert!(e.rows_changed.is_empty(), "{e:#?}");
    // We are root here: the private dev server ran without a network route.
    assert_eq!(e.dev_network, Some(pgvigil::dev::DevNetwork::Isolated));
    assert!(!e.not_checked.is_empty());
    assert_eq!(report.format, "pgvigil.dry-run/3");
}

/// `--statement-timeout 3s` holds from outside the migration's session: a migration that lifts
/// its own timeout and sleeps 40 s is cancelled by pgvigil in about 3 s and reported as such
/// (it used to pass, "ok in 40032.8 ms"). The dry-run reports its phases in order meanwhile.
#[tokio::test]
async fn a_migration_that_lifts_its_timeout_is_cancelled_at_the_statement_timeout() {
    let url = migrated_database(cluster(), "dryrunbound").await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_sleepy.sql"),
        "SET LOCAL statement_timeout = 0;\nSELECT pg_sleep(40);\n",
    )
    .unwrap();
    let mut conn = prod_connection(&url).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = DryRunOptions {
        statement_timeout: std::time::Duration::from_secs(3),
        progress: pgvigil::window::ProgressSink::channel(tx),
        ..support::dry_run_options()
    };
    let started = std::time::Instant::now();
    let report = dry_run(&prod_config(&url), &mut conn, dir.path(), &options)
        .await
        .unwrap();
    let took = started.elapsed();
    let m = &report.migrations[0];
    match &m.outcome {
        Outcome::Failed {
            error, sqlstate, ..
        } => {
            assert!(
                error.starts_with(
                    "cancelled by pgvigil after 3 s (the bound --statement-timeout sets)"
                ),
                "{error}"
            );
            assert_eq!(
                *sqlstate, None,
                "pgvigil's cancel, not the server's timeout"
            );
        }
        other => panic!("after {took:?}: {other:?}"),
    }
    assert!(
        m.duration_ms >= 3000.0 && m.duration_ms < 6000.0,
        "{}",
        m.duration_ms
    );
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert!(report.production_unchanged);
    let mut phases = Vec::new();
    while let Ok(p) = rx.try_recv() {
        phases.push(p.to_string());
    }
    assert_eq!(
        phases,
        [
            "reading production",
            "starting the dev database",
            "copying production's schema",
            "applying migrations 0/1",
            "reading production again",
        ]
    );
}
