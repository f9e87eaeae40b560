//! The instrumented pool against a real private PostgreSQL (one cluster for this binary).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::config::Jitter;
use pgvigil::pool::{ConnectError, Connector, FailureKind, InstrumentedPool};
use support::{LogCapture, cluster, fresh_database};

fn config(url: &str) -> pgvigil::config::PoolConfigBuilder {
    PoolConfig::builder(url)
        .jitter(Jitter::None)
        .initial_delay(Duration::from_millis(100))
        .connect_timeout(Duration::from_secs(10))
}

async fn pool(builder: pgvigil::config::PoolConfigBuilder) -> InstrumentedPool {
    Connector::new(builder.build().unwrap())
        .connect()
        .await
        .expect("connect to the private cluster")
}

#[tokio::test]
async fn wrong_password_fails_at_once_without_showing_it() {
    let (capture, _g) = LogCapture::install();
    let url = format!(
        "postgres://postgres:Wr0ng-Pa55word@127.0.0.1:{}/postgres",
        cluster().port()
    );
    let err = Connector::new(config(&url).build().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1, "authentication is not retried");
    assert_eq!(err.kind(), FailureKind::Authentication);
    let msg = err.to_string();
    assert!(msg.contains("user \"postgres\""), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(msg.contains("check the user and password"), "{msg}");
    assert!(!msg.contains("Wr0ng-Pa55word"), "{msg}");
    assert!(!format!("{err:?}").contains("Wr0ng-Pa55word"));
    let logs = capture.text();
    assert!(!logs.contains("Wr0ng-Pa55word"), "{logs}");
    assert!(
        capture.lines_containing("connect attempt").is_empty(),
        "{logs}"
    );
}

#[tokio::test]
async fn missing_database_fails_at_once_with_a_clear_message() {
    let cluster = cluster();
    let url = cluster.url("no_such_db");
    let err = Connector::new(config(&url).build().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ConnectError::Fatal {
            attempts: 1,
            kind: FailureKind::DatabaseMissing,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("database \"no_such_db\" does not exist"),
        "{msg}"
    );
    assert!(
        msg.contains("check the database name in DATABASE_URL"),
        "{msg}"
    );
    assert!(!msg.contains(cluster.password()), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_200_tasks_x_50_queries_on_20_connections() {
    let url = fresh_database(cluster(), "stress");
    let pool = pool(config(&url).min_connections(5).max_connections(20)).await;
    let max_seen = Arc::new(AtomicU32::new(0));
    let monitor = {
        let pool = pool.clone();
        let max_seen = max_seen.clone();
        tokio::spawn(async move {
            loop {
                let s = pool.stats();
                max_seen.fetch_max(s.in_use, Ordering::Relaxed);
                assert!(s.size <= 20, "size {} above max", s.size);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for t in 0..200 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = 0;
            for q in 0..50 {
                match pool.acquire_labeled("stress").await {
                    Ok(mut conn) => {
                        // Held for about a millisecond, so the pool really runs out.
                        let v: i32 = sqlx::query_scalar("SELECT $1::int FROM pg_sleep(0.001)")
                            .bind(t * 100 + q)
                            .fetch_one(&mut *conn)
                            .await
                            .unwrap();
                        assert_eq!(v, t * 100 + q);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        errors += 1;
                    }
                }
            }
            errors
        }));
    }
    let mut errors = 0;
    for t in tasks {
        errors += t.await.unwrap();
    }
    monitor.abort();
    assert_eq!(errors, 0);
    let s = pool.stats();
    assert_eq!(s.acquisitions_total, 10_000);
    assert_eq!(s.acquire_wait.total_count, 10_000);
    assert_eq!(s.acquire_wait.window_count, 10_000);
    assert!(s.errors_total.is_empty(), "{:?}", s.errors_total);
    let max_in_use = max_seen.load(Ordering::Relaxed);
    assert!(max_in_use <= 20, "in use sampled at {max_in_use}");
    assert_eq!(
        s.peak_in_use, 20,
        "the load fills the pool exactly to its max"
    );
    assert!(s.acquire_wait.max_ms > 0.0);
    assert!(s.acquire_wait.p50_ms <= s.acquire_wait.p95_ms);
    assert!(s.acquire_wait.p95_ms <= s.acquire_wait.p99_ms);
    assert!(s.acquire_wait.p99_ms <= s.acquire_wait.max_ms);
    // Quiet: connections return to the pool asynchronously; give them a moment.
    let mut quiet = pool.stats();
    for _ in 0..100 {
        if quiet.idle + quiet.in_use == quiet.size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        quiet = pool.stats();
    }
    assert_eq!(quiet.in_use, 0);
    assert_eq!(quiet.waiters, 0);
    assert_eq!(quiet.idle + quiet.in_use, quiet.size, "{quiet:?}");
    assert!(quiet.size >= 5 && quiet.size <= 20);
}

#[tokio::test]
async fn saturation_warning_is_raised_at_85_percent_and_cleared_on_release() {
    let (capture, _g) = LogCapture::install();
    let url = fresh_database(cluster(), "saturation");
    let pool = pool(
        config(&url)
            .min_connections(0)
            .max_connections(20)
            .saturation_hold(Duration::from_millis(300)),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..17 {
        held.push(pool.acquire_labeled("holder").await.unwrap());
    }
    let s = pool.stats();
    assert_eq!(s.in_use, 17);
    assert!((s.saturation - 0.85).abs() < 1e-9, "{}", s.saturation);
    assert!(s.saturation_warning);
    assert_eq!(s.saturation_warnings_total, 1);
    // Raised once, when the 16th checkout reached 80 %; the 17th does not repeat it.
    let warn = capture.lines_containing("reached the warning level 80%");
    assert_eq!(warn.len(), 1, "{}", capture.text());
    assert!(warn[0].contains("WARN"), "{}", warn[0]);
    held.clear();
    let s = pool.stats();
    assert_eq!(s.in_use, 0);
    assert!(s.saturation_warning, "cleared only after the hold time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = pool.stats();
    assert!(!s.saturation_warning);
    assert_eq!(capture.lines_containing("pool saturation back to").len(), 1);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["saturation_warning"], false);
    assert_eq!(json["max"], 20);
}

#[tokio::test]
async fn held_connection_is_reported_as_a_leak_and_again_on_return() {
    let (capture, _g) = LogCapture::install();
    let url = fresh_database(cluster(), "leak");
    let pool = pool(
        config(&url)
            .leak_threshold(Duration::from_secs(1))
            .min_connections(1),
    )
    .await;
    let conn = pool.acquire_labeled("nightly-report").await.unwrap();
    let short = pool.acquire().await.unwrap(); // returned before the threshold: never reported
    drop(short);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let s = pool.stats();
    assert_eq!(s.leaked.len(), 1, "{s:?}");
    assert_eq!(s.leaked[0].label, "nightly-report");
    assert!(s.leaked[0].age_secs >= 1.0);
    assert_eq!(s.leaks_total, 1);
    let warns = capture.lines_containing("possible connection leak");
    assert_eq!(warns.len(), 1, "reported once: {}", capture.text());
    assert!(
        warns[0].contains("WARN") && warns[0].contains("nightly-report"),
        "{}",
        warns[0]
    );
    drop(conn);
    let back = capture.lines_containing("leaked connection returned");
    assert_eq!(back.len(), 1, "{}", capture.text());
    assert!(
        back[0].contains("INFO") && back[0].contains("nightly-report"),
        "{}",
        back[0]
    );
    assert!(pool.stats().leaked.is_empty());
}

#[tokio::test]
async fn unlabelled_checkouts_are_labelled_with_the_callers_location() {
    let (capture, _g) = LogCapture::install();
    let url = fresh_database(cluster(), "leakloc");
    let pool = pool(
        config(&url)
            .leak_threshold(Duration::from_millis(300))
            .min_connections(0),
    )
    .await;
    let conn = pool.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let label = &pool.stats().leaked[0].label;
    assert!(
        label.starts_with("crates/pgvigil/tests/pool.rs:"),
        "{label}"
    );
    assert_eq!(capture.lines_containing(label.as_str()).len(), 1);
    drop(conn);
}

#[tokio::test]
async fn acquire_timeout_is_classified_and_counted() {
    let url = fresh_database(cluster(), "timeout");
    let pool = pool(
        config(&url)
            .min_connections(0)
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(1)),
    )
    .await;
    let a = pool.acquire_labeled("a").await.unwrap();
    let b = pool.acquire_labeled("b").await.unwrap();
    let err = pool.acquire_labeled("c").await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.waited >= Duration::from_millis(950), "{:?}", err.waited);
    assert!(err.to_string().contains("(timeout)"), "{err}");
    let s = pool.stats();
    assert_eq!(s.timeouts_total, 1);
    assert_eq!(s.errors_total.get("timeout"), Some(&1));
    assert_eq!(s.acquisitions_total, 2);
    assert_eq!(s.waiters, 0);
    drop((a, b));
}

#[tokio::test]
async fn terminated_backends_are_replaced_transparently() {
    let url = fresh_database(cluster(), "terminate");
    let pool = pool(
        config(&url)
            .min_connections(3)
            .max_connections(5)
            .application_name("pgvigil-term"),
    )
    .await;
    let before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvigil-term'",
    )
    .fetch_one(&mut *pool.acquire().await.unwrap())
    .await
    .unwrap();
    assert!(
        before >= 3,
        "application_name is set on every connection: {before}"
    );
    // Terminate every pool connection from a separate session.
    let killed = cluster()
        .psql(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pgvigil-term'",
        )
        .unwrap();
    assert!(killed.parse::<i64>().unwrap() >= 3);
    for i in 0..10 {
        let mut conn = pool.acquire().await.expect("acquire after terminate");
        let v: i32 = sqlx::query_scalar("SELECT $1::int")
            .bind(i)
            .fetch_one(&mut *conn)
            .await
            .expect("query after terminate");
        assert_eq!(v, i);
    }
}

#[tokio::test]
async fn a_3072_dimension_vector_round_trips_and_a_distance_computes() {
    let url = fresh_database(cluster(), "vector");
    let pool = pool(config(&url).min_connections(1)).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&mut *conn)
        .await
        .unwrap();
    let a: Vec<f32> = (0..3072).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let b: Vec<f32> = (0..3072).map(|i| ((i % 5) as f32 + 1.0) / 5.0).collect();
    let literal = |v: &[f32]| {
        format!(
            "[{}]",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let back: String = sqlx::query_scalar("SELECT ($1::text::vector(3072))::text")
        .bind(literal(&a))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let parsed: Vec<f32> = back
        .trim_matches(['[', ']'])
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(parsed, a);
    let distance: f64 =
        sqlx::query_scalar("SELECT $1::text::vector(3072) <=> $2::text::vector(3072)")
            .bind(literal(&a))
            .bind(literal(&b))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let expected = 1.0 - dot / (norm(&a) * norm(&b));
    assert!(
        (distance - expected).abs() < 1e-5,
        "{distance} vs {expected}"
    );
    let dims: i32 = sqlx::query_scalar("SELECT vector_dims($1::text::vector)")
        .bind(literal(&a))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(dims, 3072);
}
