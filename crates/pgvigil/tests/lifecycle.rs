//! The pool's connection lifecycle on a real server: a connection reported leaked is closed
//! when it comes back (its backend is gone), a transaction a leaked checkout left open is ended
//! by the server after POOL_IDLE_IN_TRANSACTION_TIMEOUT, the status line appears every
//! POOL_LOG_INTERVAL, and every lifecycle event is a DEBUG line.

mod support;

use std::time::{Duration, Instant};

use pgvigil::pool::Connector;
use pgvigil::{InstrumentedPool, PoolConfig};
use sqlx::Connection;

async fn backend_alive(url: &str, pid: i32) -> bool {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let alive: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;
    alive
}

async fn until_gone(url: &str, pid: i32, bound: Duration) -> Duration {
    let started = Instant::now();
    while backend_alive(url, pid).await {
        assert!(
            started.elapsed() < bound,
            "backend {pid} still there after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn pool(config: PoolConfig) -> InstrumentedPool {
    Connector::new(config).connect().await.expect("connect")
}

#[tokio::test]
async fn a_leaked_connection_is_closed_when_it_returns_instead_of_reused() {
    let url = support::fresh_database(support::cluster(), "leak_close");
    let pool = pool(
        PoolConfig::builder(&url)
            .min_connections(1)
            .max_connections(2)
            .leak_threshold(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .await;
    let mut leaked = pool.acquire_labeled("forgotten-handler").await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *leaked)
        .await
        .unwrap();
    sqlx::query("SET work_mem = '64MB'")
        .execute(&mut *leaked)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pool.stats().leaks_total, 1, "reported leaked first");
    drop(leaked);
    until_gone(&url, pid, Duration::from_secs(5)).await;
    let stats = pool.stats();
    assert_eq!(
        stats.lifecycle.closed_total.get("leaked"),
        Some(&1),
        "{stats:?}"
    );
    // The next checkout is a fresh session, without the leaked one's SET.
    let mut next = pool.acquire().await.unwrap();
    let (other, work_mem): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), current_setting('work_mem')")
            .fetch_one(&mut *next)
            .await
            .unwrap();
    assert_ne!(other, pid);
    assert_ne!(work_mem, "64MB");
}

#[tokio::test]
async fn the_server_ends_a_transaction_a_leaked_checkout_left_open() {
    let url = support::fresh_database(support::cluster(), "idle_tx");
    let pool = pool(
        PoolConfig::builder(&url)
            .min_connections(0)
            .max_connections(2)
            .idle_in_transaction_timeout(Some(Duration::from_millis(300)))
            .build()
            .unwrap(),
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    let setting: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(setting, "300ms");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; SELECT 1")
        .execute(&mut *conn)
        .await
        .unwrap();
    // The checkout is forgotten with the transaction open; the server ends it.
    let took = until_gone(&url, pid, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let err = sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("idle-in-transaction") || matches!(err, sqlx::Error::Io(_)),
        "{err}"
    );
}

#[tokio::test]
async fn status_line_and_lifecycle_events_are_logged() {
    let (capture, _guard) = support::LogCapture::install();
    let url = support::fresh_database(support::cluster(), "lifecycle_log");
    let pool = pool(
        PoolConfig::builder(&url)
            .min_connections(1)
            .max_connections(3)
            .log_interval(Some(Duration::from_millis(200)))
            .application_name("docs-api")
            .build()
            .unwrap(),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let text = capture.text();
    let status = capture.lines_containing("pool docs-api: size");
    assert!(!status.is_empty(), "{text}");
    assert!(status[0].contains("INFO"), "{}", status[0]);
    for part in [
        "active 0",
        "idle",
        "pending 0",
        "acquire p95",
        "timeouts 0",
        "leaked 0",
    ] {
        assert!(status[0].contains(part), "{part}: {}", status[0]);
    }
    for event in [
        "connection opened in",
        "connection acquired after",
        "connection released after",
    ] {
        let lines = capture.lines_containing(event);
        assert!(!lines.is_empty(), "{event}:\n{text}");
        assert!(lines[0].contains("DEBUG"), "{}", lines[0]);
    }
    // What the pool says it opened is what the server sees.
    let stats = pool.stats();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let seen: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'docs-api'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(stats.lifecycle.created_total >= 1, "{stats:?}");
    assert_eq!(stats.lifecycle.created_total, seen as u64, "{stats:?}");
}

#[tokio::test]
async fn a_checkout_held_past_the_threshold_is_closed_even_before_the_scanner_reports_it() {
    let url = support::fresh_database(support::cluster(), "leak_unscanned");
    // The scanner runs on this same thread and cannot report it while the test holds the thread.
    let pool = pool(
        PoolConfig::builder(&url)
            .min_connections(0)
            .max_connections(2)
            .leak_threshold(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .await;
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    // Hold it past the threshold without yielding to the scanner task (current-thread runtime).
    std::thread::sleep(Duration::from_millis(150));
    drop(conn);
    until_gone(&url, pid, Duration::from_secs(5)).await;
    assert_eq!(pool.stats().leaks_total, 1);
    assert_eq!(pool.stats().lifecycle.closed_total.get("leaked"), Some(&1));
}
