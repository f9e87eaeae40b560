//! The shared migration runner on a real private cluster: migrations run in order, each in a
//! transaction unless `-- no-transaction`; their locks are captured as lock modes; and the
//! bound the engineer gave holds from outside the session, whatever a migration sets for itself
//! (pgvigil cancels it, and says so), while a server-side timeout stays a different outcome.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgvigil::catalog::LockMode;
use pgvigil::checks::{LocalMigration, load_local};
use pgvigil::window::runner::{Bound, Stop};
use pgvigil::window::{MigrationRunner, ProgressSink, RunOutcome, RunnerOptions};
use pgvigil_cluster::PrivateCluster;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// One cluster for the whole binary; each test has its own database.
fn cluster() -> &'static PrivateCluster {
    static CLUSTER: OnceLock<PrivateCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PrivateCluster::start_new()
            .expect("a private PostgreSQL with pgvector (scripts/setup-postgres.sh)")
    })
}

fn database(name: &str) -> PgConnectOptions {
    cluster().create_database(name).unwrap();
    PgConnectOptions::from_str(&cluster().url(name)).unwrap()
}

/// The migrations as files in a directory, read the way every command reads them.
async fn migrations(files: &[(&str, &str)]) -> Vec<LocalMigration> {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    load_local(dir.path()).await.unwrap()
}

/// Timeouts of a minute on the session; pgvigil's own bound of `bound` named
/// `--statement-timeout`.
fn bounded(bound: Duration) -> RunnerOptions {
    let mut o = RunnerOptions::new(
        Duration::from_secs(60),
        Duration::from_secs(60),
        "--statement-timeout",
    );
    o.bound = Bound {
        after: bound,
        set_by: "--statement-timeout",
    };
    o.sample_every = Duration::from_millis(20);
    o
}

/// A session of its own that runs `setup`, then holds `table` in `mode` in an open transaction
/// (until COMMIT on the returned connection); with its backend pid.
async fn hold_lock(
    target: &PgConnectOptions,
    setup: &str,
    table: &str,
    mode: &str,
) -> (PgConnection, i32) {
    let mut holder = PgConnection::connect_with(target).await.unwrap();
    // Its own message: committed before the lock's transaction starts.
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_string()))
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; LOCK TABLE {table} IN {mode} MODE"
    )))
    .execute(&mut holder)
    .await
    .unwrap();
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    (holder, pid)
}

/// Backends of `db` still running `pg_sleep` (a cancelled migration must not be one).
async fn still_sleeping(options: &PgConnectOptions) -> i64 {
    let mut c = PgConnection::connect_with(options).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
            AND query LIKE '%pg_sleep(40)%' AND state = 'active' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut c)
    .await
    .unwrap()
}

/// Runs one migration that sleeps past a 3 s bound after lifting its timeout its own way;
/// pgvigil cancels it in about 3 s and says so.
async fn is_cancelled_at_the_bound(db: &str, file: &str, sql: &str) {
    let target = database(db);
    let pending = migrations(&[(file, sql)]).await;
    let mut runner = MigrationRunner::connect(&target, bounded(Duration::from_secs(3)), 1)
        .await
        .unwrap();
    let started = Instant::now();
    let run = runner.run(&pending[0]).await;
    let took = started.elapsed();
    let RunOutcome::Cancelled(cancelled) = &run.outcome else {
        panic!("not cancelled by pgvigil after {took:?}: {:?}", run.outcome);
    };
    assert_eq!(
        cancelled.stop,
        Stop::Bound(Bound {
            after: Duration::from_secs(3),
            set_by: "--statement-timeout"
        })
    );
    assert!(!cancelled.terminated, "pg_cancel_backend was enough");
    assert!(
        cancelled.to_string().starts_with(
            "cancelled by pgvigil after 3 s (the bound --statement-timeout sets), whatever \
             timeout the migration set for itself"
        ),
        "{cancelled}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    assert!(run.duration >= Duration::from_secs(3) && run.duration < Duration::from_secs(6));
    runner.close().await;
    assert_eq!(still_sleeping(&target).await, 0, "the statement still runs");
}

#[tokio::test]
async fn a_migration_that_lifts_its_statement_timeout_is_cancelled_by_pgvigil_at_the_bound() {
    is_cancelled_at_the_bound(
        "set_local",
        "20260101000000_sleepy.sql",
        "SET LOCAL statement_timeout = 0;\nSELECT pg_sleep(40);\n",
    )
    .await;
}

#[tokio::test]
async fn the_bound_holds_in_a_no_transaction_file() {
    is_cancelled_at_the_bound(
        "no_tx",
        "20260101000000_sleepy.sql",
        "-- no-transaction\nSET LOCAL statement_timeout = 0;\nSELECT pg_sleep(40);\n",
    )
    .await;
}

#[tokio::test]
async fn the_bound_holds_when_the_session_s_timeout_is_lifted() {
    is_cancelled_at_the_bound(
        "session_level",
        "20260101000000_sleepy.sql",
        "SET statement_timeout = 0;\nSELECT pg_sleep(40);\n",
    )
    .await;
}

#[tokio::test]
async fn a_migration_waiting_on_a_lock_is_bounded_and_names_what_it_waits_for() {
    let target = database("lock_wait");
    // Another session holds the table: the migration queues behind it, with no lock_timeout and
    // no statement_timeout of its own.
    let (mut holder, holder_pid) =
        hold_lock(&target, "CREATE TABLE t (a int)", "t", "ACCESS SHARE").await;
    let pending = migrations(&[(
        "20260101000000_add_column.sql",
        "SET LOCAL lock_timeout = 0;\nSET LOCAL statement_timeout = 0;\n\
         ALTER TABLE t ADD COLUMN b int;\n",
    )])
    .await;
    let mut runner = MigrationRunner::connect(&target, bounded(Duration::from_secs(3)), 1)
        .await
        .unwrap();
    let started = Instant::now();
    let run = runner.run(&pending[0]).await;
    let took = started.elapsed();
    let RunOutcome::Cancelled(cancelled) = &run.outcome else {
        panic!("not cancelled after {took:?}: {:?}", run.outcome);
    };
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert_eq!(cancelled.waiting_for.len(), 1, "{cancelled:?}");
    let wait = &cancelled.waiting_for[0];
    assert_eq!(
        (wait.relation.as_str(), wait.mode),
        ("t", LockMode::AccessExclusive)
    );
    assert_eq!(wait.blocked_by, [holder_pid]);
    assert!(wait.waited() >= Duration::from_millis(2500), "{wait:?}");
    assert!(
        cancelled.to_string().ends_with(&format!(
            "; it was waiting for ACCESS EXCLUSIVE on t (blocked by pid {holder_pid})"
        )),
        "{cancelled}"
    );
    runner.close().await;
    // The holder is untouched and the table unchanged.
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    let columns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0",
    )
    .fetch_one(&mut holder)
    .await
    .unwrap();
    assert_eq!(columns, 1);
}

#[tokio::test]
async fn a_server_side_timeout_is_its_own_outcome() {
    // The migration leaves the session's statement_timeout (3 s) alone: the server ends it,
    // and that is what is reported, not a cancel by pgvigil.
    let target = database("server_timeout");
    let pending = migrations(&[("20260101000000_sleepy.sql", "SELECT pg_sleep(40);\n")]).await;
    let mut options = bounded(Duration::from_secs(3));
    options.statement_timeout = Duration::from_secs(3);
    let mut runner = MigrationRunner::connect(&target, options, 1).await.unwrap();
    let run = runner.run(&pending[0]).await;
    let RunOutcome::Failed(sqlx::Error::Database(e)) = &run.outcome else {
        panic!("{:?}", run.outcome);
    };
    assert_eq!(e.code().as_deref(), Some("57014"));
    assert!(e.message().contains("statement timeout"), "{}", e.message());
    runner.close().await;
}

#[tokio::test]
async fn migrations_run_in_order_with_their_locks_as_lock_modes() {
    let target = database("in_order");
    let pending = migrations(&[
        (
            "20260101000000_create.sql",
            "CREATE TABLE docs (id bigint PRIMARY KEY, body text);\n\
             CREATE TABLE applied (version bigint, at timestamptz DEFAULT clock_timestamp());\n\
             INSERT INTO applied (version) VALUES (1);\n\
             INSERT INTO docs SELECT g, md5(g::text) FROM generate_series(1, 200000) g;\n",
        ),
        (
            "20260102000000_add_language.sql",
            "ALTER TABLE docs ADD COLUMN language text;\n\
             CREATE INDEX docs_language_idx ON docs (language);\n\
             INSERT INTO applied (version) VALUES (2);\n",
        ),
        (
            "20260103000000_index_body.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY docs_body_idx ON docs (body);\n",
        ),
        (
            "20260104000000_hold.sql",
            "LOCK TABLE docs IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(1);\n\
             INSERT INTO applied (version) VALUES (4);\n",
        ),
    ])
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut options = bounded(Duration::from_secs(30));
    options.sample_every = Duration::from_millis(5);
    options.progress = ProgressSink::channel(tx);
    let mut runner = MigrationRunner::connect(&target, options, pending.len())
        .await
        .unwrap();
    let mut runs = Vec::new();
    for m in &pending {
        let run = runner.run(m).await;
        assert!(
            matches!(run.outcome, RunOutcome::Succeeded),
            "{}: {:?}",
            m.version,
            run.outcome
        );
        runs.push(run);
    }
    runner.close().await;

    let modes = |i: usize, relation: &str| -> Vec<LockMode> {
        runs[i]
            .locks
            .iter()
            .filter(|l| l.relation == relation)
            .map(|l| l.mode)
            .collect()
    };
    // Transactional files: read before COMMIT, relations they create included.
    assert!(!runs[1].locks_sampled);
    assert!(
        modes(1, "docs").contains(&LockMode::AccessExclusive),
        "{:?}",
        runs[1].locks
    );
    assert!(
        modes(1, "docs").contains(&LockMode::Share),
        "{:?}",
        runs[1].locks
    );
    assert!(modes(1, "docs_language_idx").contains(&LockMode::AccessExclusive));
    assert!(modes(1, "applied").contains(&LockMode::RowExclusive));
    // The concurrent build, outside a transaction, seen by the sampler: it blocks no writes.
    assert!(runs[2].locks_sampled);
    assert_eq!(
        modes(2, "docs"),
        [LockMode::ShareUpdateExclusive],
        "{:?}",
        runs[2].locks
    );
    assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
    // The sampler times a hold: ACCESS EXCLUSIVE on docs for about 1 s.
    let hold = runs[3]
        .trace
        .taken()
        .find(|s| s.relation == "docs" && s.mode == LockMode::AccessExclusive)
        .expect("the hold was sampled");
    assert!(
        hold.held() >= Duration::from_millis(800) && hold.held() <= Duration::from_millis(1300),
        "{:?}",
        hold.held()
    );
    assert!(hold.mode.blocks_reads());

    let mut check = PgConnection::connect_with(&target).await.unwrap();
    let order: Vec<i64> = sqlx::query_scalar("SELECT version FROM applied ORDER BY at")
        .fetch_all(&mut check)
        .await
        .unwrap();
    assert_eq!(order, [1, 2, 4]);
    let valid: bool = sqlx::query_scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'docs_body_idx'::regclass",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    assert!(valid);

    // Progress: "applying migrations 0/4" .. "4/4", in order.
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(p.to_string());
    }
    assert_eq!(
        seen,
        [
            "applying migrations 0/4",
            "applying migrations 1/4",
            "applying migrations 2/4",
            "applying migrations 3/4",
            "applying migrations 4/4",
        ]
    );
}

#[tokio::test]
async fn a_failed_migration_stops_the_run_as_a_real_apply_would() {
    let target = database("stops");
    let pending = migrations(&[
        (
            "20260101000000_broken.sql",
            "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN b intt;\n",
        ),
        ("20260102000000_next.sql", "CREATE TABLE c (id int);\n"),
    ])
    .await;
    let mut runner = MigrationRunner::connect(&target, bounded(Duration::from_secs(30)), 2)
        .await
        .unwrap();
    let first = runner.run(&pending[0]).await;
    assert!(
        matches!(&first.outcome, RunOutcome::Failed(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42704")),
        "{:?}",
        first.outcome
    );
    let second = runner.run(&pending[1]).await;
    assert!(
        matches!(&second.outcome, RunOutcome::NotRun(why) if why.contains("20260101000000")),
        "{:?}",
        second.outcome
    );
    runner.close().await;
    let mut check = PgConnection::connect_with(&target).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'c') AND relkind = 'r'",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    assert_eq!(
        tables, 0,
        "the failed transaction rolled back and the next never ran"
    );
}

#[tokio::test]
async fn a_migration_that_ignores_the_cancel_has_its_session_ended_after_the_grace_period() {
    // PL/pgSQL can trap query_canceled: this migration shrugs off pg_cancel_backend (and a
    // server-side statement_timeout alike). pgvigil ends its session after the grace period.
    let target = database("stubborn");
    let pending = migrations(&[(
        "20260101000000_stubborn.sql",
        "DO $$ BEGIN\n\
           LOOP\n\
             BEGIN PERFORM pg_sleep(40); EXCEPTION WHEN query_canceled THEN NULL; END;\n\
           END LOOP;\n\
         END $$;\n",
    )])
    .await;
    let mut options = bounded(Duration::from_secs(2));
    options.grace = Duration::from_secs(1);
    let mut runner = MigrationRunner::connect(&target, options, 1).await.unwrap();
    let started = Instant::now();
    let run = runner.run(&pending[0]).await;
    let took = started.elapsed();
    let RunOutcome::Cancelled(cancelled) = &run.outcome else {
        panic!("after {took:?}: {:?}", run.outcome);
    };
    assert!(cancelled.terminated, "{cancelled:?}");
    assert!(
        cancelled
            .to_string()
            .ends_with("; the cancel did not end it, so pgvigil ended its session"),
        "{cancelled}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(7),
        "took {took:?}"
    );
    runner.close().await;
    assert_eq!(still_sleeping(&target).await, 0, "the statement still runs");
}

/// Runs one migration file on a database of its own under a per-statement bound of `bound`;
/// with its target, to look at afterwards.
async fn run_alone(
    db: &str,
    file: &str,
    sql: &str,
    bound: Duration,
) -> (pgvigil::window::MigrationRun, PgConnectOptions) {
    let target = database(db);
    let pending = migrations(&[(file, sql)]).await;
    let mut runner = MigrationRunner::connect(&target, bounded(bound), 1)
        .await
        .unwrap();
    let run = runner.run(&pending[0]).await;
    runner.close().await;
    (run, target)
}

/// The bound is on each statement, as statement_timeout is: a file of three statements that
/// each fit it is not cancelled although together they run past it.
#[tokio::test]
async fn the_bound_is_on_each_statement_of_a_file_not_on_the_file() {
    let (run, _) = run_alone(
        "per_statement",
        "20260101000000_three_steps.sql",
        "SELECT pg_sleep(1.2);\nSELECT pg_sleep(1.2);\nSELECT pg_sleep(1.2);\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(run.outcome, RunOutcome::Succeeded),
        "{:?} after {:?}",
        run.outcome,
        run.duration
    );
    assert!(
        run.duration >= Duration::from_millis(3600),
        "{:?}",
        run.duration
    );

    // A file of two statements that lifts its timeout and sleeps: cancelled at twice the bound.
    let (run, target) = run_alone(
        "per_statement_lifted",
        "20260101000000_lifted.sql",
        "SET LOCAL statement_timeout = 0;\nSELECT 1;\nSELECT pg_sleep(40);\n",
        Duration::from_secs(2),
    )
    .await;
    let RunOutcome::Cancelled(cancelled) = &run.outcome else {
        panic!("not cancelled: {:?}", run.outcome);
    };
    assert!(
        cancelled.to_string().starts_with(
            "cancelled by pgvigil after 4 s: 2 s (the bound --statement-timeout sets) for each \
             of its 2 statements"
        ),
        "{cancelled}"
    );
    assert!(
        run.duration >= Duration::from_secs(4) && run.duration < Duration::from_secs(7),
        "{:?}",
        run.duration
    );
    assert_eq!(still_sleeping(&target).await, 0, "the statement still runs");
}
