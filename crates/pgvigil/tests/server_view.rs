//! The per-tick server view on a real server: an index build in progress shows with its command,
//! table and phase (whoever runs it), and a lock waiter names the backend that blocks it.

mod support;

use std::time::{Duration, Instant};

use pgvigil::catalog::{ServerView, server_view};
use sqlx::{Connection, PgConnection};

async fn view_until(url: &str, what: &str, ok: impl Fn(&ServerView) -> bool) -> ServerView {
    let mut session = support::prod_connection(url).await;
    let started = Instant::now();
    loop {
        let view = session.read(server_view).await.unwrap();
        if ok(&view) {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_index_build_in_progress_shows_its_phase_and_a_lock_waiter_its_blocker() {
    let url = support::fresh_database(support::cluster(), "server_view");
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000); CREATE TABLE u (y int)",
    )
        .execute(&mut holder)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::raw_sql("INSERT INTO t VALUES (0); INSERT INTO u VALUES (0)")
        .execute(&mut holder)
        .await
        .unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();

    // CREATE INDEX CONCURRENTLY waits for the open writer before it builds.
    let builder_url = url.clone();
    let build = tokio::spawn(async move {
        let mut conn = PgConnection::connect(&builder_url).await.unwrap();
        sqlx::raw_sql("SET application_name = 'reindex-job'")
            .execute(&mut conn)
            .await?;
        // Its own simple query: CONCURRENTLY refuses to run in the implicit transaction of a
        // multi-statement string.
        sqlx::raw_sql("CREATE INDEX CONCURRENTLY t_x_idx ON t (x)")
            .execute(&mut conn)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !build.is_finished(),
        "the build ended early: {:?}",
        build.await
    );
    let view = view_until(&url, "the build shows", |v| !v.index_builds.is_empty()).await;
    let b = &view.index_builds[0];
    assert_eq!(b.command, "CREATE INDEX CONCURRENTLY");
    assert_eq!(b.table, "t");
    assert_eq!(b.application, "reindex-job");
    assert!(b.phase.starts_with("waiting for"), "{b:?}");
    assert_eq!(b.fraction(), None, "a waiting phase counts no work: {b:?}");

    // A lock request queued behind the open writer names who blocks it (on another table: on
    // t it would deadlock with the index build, which waits for every transaction).
    let mut locker = support::cluster()
        .lock(url.rsplit('/').next().unwrap(), "u", "ACCESS EXCLUSIVE")
        .send()
        .unwrap();
    let locker_pid = locker.pid();
    let view = view_until(&url, "the lock waiter shows", |v| {
        v.lock_waits.iter().any(|w| w.pid == locker_pid)
    })
    .await;
    let w = view
        .lock_waits
        .iter()
        .find(|w| w.pid == locker_pid)
        .unwrap();
    assert!(w.blocked_by.contains(&holder_pid), "{w:?}");
    // And what it waits for, as a lock mode: a queued ACCESS EXCLUSIVE holds up every reader.
    let awaiting = w.awaiting.as_ref().expect("a relation lock is awaited");
    assert_eq!(awaiting.relation, "u");
    assert_eq!(awaiting.mode, pgvigil::catalog::LockMode::AccessExclusive);
    assert!(awaiting.mode.blocks_reads());
    assert_eq!(awaiting.to_string(), "ACCESS EXCLUSIVE on u");
    // The texts are read for the few backends shown, one whitespace-folded line each.
    assert_eq!(
        w.query, "LOCK TABLE \"u\" IN ACCESS EXCLUSIVE MODE;",
        "{w:?}"
    );
    let longest = view.longest_transaction.as_ref().unwrap();
    assert_eq!(longest.pid, holder_pid, "{longest:?}");
    assert_eq!(
        longest.query, "SELECT pg_backend_pid()",
        "its last statement"
    );
    assert_eq!(longest.state, "idle in transaction");
    // The statement says what it cost the server.
    assert!(
        view.read_ms > 0.0 && view.read_ms < 1000.0,
        "{}",
        view.read_ms
    );

    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    locker.wait_granted(Duration::from_secs(20)).unwrap();
    drop(locker);
    build.await.unwrap().unwrap();
    view_until(&url, "the build is gone", |v| v.index_builds.is_empty()).await;
}

#[test]
fn progress_and_time_left_come_from_the_counted_work() {
    let b = pgvigil::catalog::IndexBuild {
        pid: 1,
        application: "psql".into(),
        table: "documents".into(),
        index: Some("documents_embedding_hnsw_idx".into()),
        command: "CREATE INDEX CONCURRENTLY".into(),
        phase: "building index: loading tuples in tree".into(),
        blocks_done: 250,
        blocks_total: 1000,
        tuples_done: 0,
        tuples_total: 0,
        seconds: Some(600.0),
    };
    assert_eq!(b.fraction(), Some(0.25));
    assert_eq!(b.eta_seconds(), Some(1800.0));
    let tuples = pgvigil::catalog::IndexBuild {
        blocks_total: 0,
        tuples_done: 90,
        tuples_total: 100,
        ..b.clone()
    };
    assert_eq!(tuples.fraction(), Some(0.9));
    let unstarted = pgvigil::catalog::IndexBuild {
        blocks_done: 0,
        ..b
    };
    assert_eq!(
        unstarted.eta_seconds(),
        None,
        "no rate before any work is done"
    );
}
