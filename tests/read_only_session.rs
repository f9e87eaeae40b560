//! The read-only production session on a real server and through a real PgBouncer in
//! transaction pooling mode: whatever a caller sends through it, nothing is written, the lock
//! and statement timeouts hold, and a pooler that drops the startup parameters changes neither
//! (nor is the application's server connection left read-only afterwards).

mod support;

use std::time::{Duration, Instant};

use pgvigil::config::ReadOnlySession;
use pgvigil::session::{GuardsHeldBy, ProductionSession, Reader, Refusal};
use sqlx::{Connection, Executor, PgConnection};
use support::{cluster, exec, fingerprint, fresh_database, prod_config};

/// A database with a table, a sequence and functions that try to write or to lift the guards
/// from inside a reading statement (which the statement filter cannot see).
async fn target(prefix: &str) -> String {
    let url = fresh_database(cluster(), prefix);
    exec(
        &url,
        "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);
         CREATE SEQUENCE s;
         CREATE FUNCTION write_row() RETURNS int LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO t VALUES (99); RETURN 1; END $$;
         CREATE FUNCTION lift_default() RETURNS text LANGUAGE sql AS
           $$ SELECT set_config('default_transaction_read_only', 'off', false) $$;
         CREATE FUNCTION lift_transaction() RETURNS text LANGUAGE sql AS
           $$ SELECT set_config('transaction_read_only', 'off', true) $$;",
    )
    .await;
    url
}

fn refusal(e: &sqlx::Error) -> Option<&Refusal> {
    match e {
        sqlx::Error::Configuration(source) => source.downcast_ref::<Refusal>(),
        _ => None,
    }
}

async fn rows(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    n
}

async fn show(r: &mut Reader<'_>, setting: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
        .fetch_one(r)
        .await
        .unwrap()
}

/// Everything a hostile caller could send: refused by pgvigil before it is sent, or by the
/// server inside the read-only transaction. Returns what each attempt answered.
async fn try_every_write(session: &mut ProductionSession) -> Vec<String> {
    let mut answers = Vec::new();
    // Not sent at all: not a reading statement, plain text (which could carry several
    // statements), or a function whose effect a ROLLBACK would not undo.
    let mut reader = session.begin_read_only().await.unwrap();
    for sql in [
        "INSERT INTO t VALUES (3)",
        "CREATE TABLE u (a int)",
        "COMMIT",
        "SET default_transaction_read_only = off",
        "SET transaction_read_only = off",
        "BEGIN READ WRITE",
        "/* SELECT */ DELETE FROM t",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT pg_advisory_lock(1)",
    ] {
        let e = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut reader)
            .await
            .unwrap_err();
        assert!(refusal(&e).is_some(), "{sql}: {e}");
        answers.push(e.to_string());
    }
    for sql in [
        "SET default_transaction_read_only = off; INSERT INTO t VALUES (4)",
        "SELECT 1; COMMIT; INSERT INTO t VALUES (5)",
    ] {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut reader)
            .await
            .unwrap_err();
        assert_eq!(refusal(&e), Some(&Refusal::PlainText), "{sql}: {e}");
        let e = (&mut reader)
            .execute(sqlx::AssertSqlSafe(sql))
            .await
            .unwrap_err();
        assert_eq!(refusal(&e), Some(&Refusal::PlainText), "{sql}: {e}");
    }
    reader.finish().await.unwrap();

    // Sent, and refused by the server: each in a transaction of its own, since an error
    // aborts the transaction.
    for sql in [
        "WITH w AS (INSERT INTO t VALUES (6) RETURNING a) SELECT * FROM w",
        "SELECT write_row()",
        "SELECT nextval('s')",
        "SELECT 1 AS a INTO u",
        "SELECT * FROM t FOR UPDATE",
        "SELECT lift_transaction()",
    ] {
        let mut reader = session.begin_read_only().await.unwrap();
        let e = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut reader)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("read-only transaction")
                || message.contains("transaction read-write mode must be set before any query"),
            "{sql}: {message}"
        );
        answers.push(message);
        reader.finish().await.unwrap();
    }

    // A function that lifts the session's default from inside a reading statement: the
    // transaction's ROLLBACK undoes it, so the next transaction is as read-only as the first.
    let mut reader = session.begin_read_only().await.unwrap();
    let lifted: String = sqlx::query_scalar("SELECT lift_default()")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(lifted, "off");
    reader.finish().await.unwrap();
    let mut reader = session.begin_read_only().await.unwrap();
    assert_eq!(show(&mut reader, "transaction_read_only").await, "on");
    let e = sqlx::query("SELECT write_row()")
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("read-only transaction"), "{e}");
    reader.finish().await.unwrap();
    answers
}

#[tokio::test]
async fn a_write_through_the_session_is_refused_by_pgvigil_or_by_the_server() {
    let url = target("ro_session_writes").await;
    let before = fingerprint(cluster(), &url);
    let mut session = ProductionSession::connect(&prod_config(&url))
        .await
        .unwrap();
    assert_eq!(session.guards_held_by(), GuardsHeldBy::StartupParameters);
    let answers = try_every_write(&mut session).await;
    assert!(
        answers[0].contains("refused a statement starting with `INSERT`"),
        "{answers:?}"
    );
    // The session's default survived the function that lifted it (rolled back).
    let mut reader = session.begin_read_only().await.unwrap();
    assert_eq!(
        show(&mut reader, "default_transaction_read_only").await,
        "on"
    );
    reader.finish().await.unwrap();
    session.close().await;
    assert_eq!(rows(&url).await, 2);
    assert_eq!(fingerprint(cluster(), &url), before);
}

#[tokio::test]
async fn the_lock_and_statement_timeouts_are_in_force() {
    let url = target("ro_session_timeouts").await;
    let bounds = ReadOnlySession {
        lock_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(30),
    };
    let mut session = ProductionSession::connect_with(&prod_config(&url), bounds)
        .await
        .unwrap();
    assert_eq!(session.guards_held_by(), GuardsHeldBy::StartupParameters);
    let mut reader = session.begin_read_only().await.unwrap();
    assert_eq!(show(&mut reader, "lock_timeout").await, "2s");
    assert_eq!(show(&mut reader, "statement_timeout").await, "30s");
    assert_eq!(
        show(&mut reader, "default_transaction_read_only").await,
        "on"
    );
    assert_eq!(show(&mut reader, "transaction_read_only").await, "on");
    reader.finish().await.unwrap();

    // A read queued behind an ACCESS EXCLUSIVE lock gives up at the transaction's lock_timeout.
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK t IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let short = ReadOnlySession {
        lock_timeout: Duration::from_millis(200),
        statement_timeout: Duration::from_secs(30),
    };
    let mut reader = session.begin_read_only_with(short).await.unwrap();
    assert_eq!(show(&mut reader, "lock_timeout").await, "200ms");
    let t0 = Instant::now();
    let e = sqlx::query("SELECT count(*) FROM t")
        .execute(&mut reader)
        .await
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(e.to_string().contains("lock timeout"), "{e}");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    reader.finish().await.unwrap();
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();

    // A statement past the transaction's statement_timeout is cancelled by the server.
    let quick = ReadOnlySession {
        lock_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_millis(300),
    };
    let mut reader = session.begin_read_only_with(quick).await.unwrap();
    let t0 = Instant::now();
    let e = sqlx::query("SELECT pg_sleep(5)")
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("statement timeout"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    reader.finish().await.unwrap();
    // And the bounds were the transaction's only: the next one has the session's again.
    let mut reader = session.begin_read_only().await.unwrap();
    assert_eq!(show(&mut reader, "statement_timeout").await, "30s");
    reader.finish().await.unwrap();
    session.close().await;
}

#[tokio::test]
async fn through_pgbouncer_in_transaction_mode_the_guards_are_set_again_in_each_transaction() {
    let url = target("ro_session_bouncer").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let bouncer = pgvigil_cluster::PrivateBouncer::start(cluster(), &database, 1);
    cluster()
        .psql(
            &database,
            &format!(
                "GRANT SELECT, INSERT, DELETE ON t TO {0}; GRANT USAGE ON SEQUENCE s TO {0}",
                bouncer.app_user()
            ),
        )
        .unwrap();
    let before = fingerprint(cluster(), &url);
    let config = prod_config(&bouncer.app_url());

    // PgBouncer refuses the `options` startup parameter: the session connects without it
    // and says so; every transaction then sets the guards itself.
    let mut session = ProductionSession::connect(&config).await.unwrap();
    assert_eq!(session.guards_held_by(), GuardsHeldBy::EachTransaction);
    for _ in 0..3 {
        let mut reader = session.begin_read_only().await.unwrap();
        assert_eq!(show(&mut reader, "lock_timeout").await, "2s");
        assert_eq!(show(&mut reader, "statement_timeout").await, "1min");
        assert_eq!(show(&mut reader, "transaction_read_only").await, "on");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(n, 2);
        reader.finish().await.unwrap();
    }
    let answers = try_every_write(&mut session).await;
    assert!(answers.iter().any(|a| a.contains("read-only transaction")));

    // The one server connection PgBouncer hands to the application next carries nothing of
    // the session: not read-only, no timeouts; the application still writes.
    let mut app = PgConnection::connect(&bouncer.app_url()).await.unwrap();
    let (read_only, lock, statement): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('default_transaction_read_only'),
                current_setting('lock_timeout'), current_setting('statement_timeout')",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(
        (read_only.as_str(), lock.as_str(), statement.as_str()),
        ("off", "0", "0")
    );
    sqlx::query("INSERT INTO t VALUES (7)")
        .execute(&mut app)
        .await
        .unwrap();
    sqlx::query("DELETE FROM t WHERE a = 7")
        .execute(&mut app)
        .await
        .unwrap();
    let _ = app.close().await;
    session.close().await;
    drop(bouncer);
    assert_eq!(rows(&url).await, 2);
    assert_eq!(fingerprint(cluster(), &url), before);
}
