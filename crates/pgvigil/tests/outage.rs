//! Outages against private clusters of their own (these tests stop and restart the server).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgvigil::PoolConfig;
use pgvigil::config::Jitter;
use pgvigil::pool::{Connector, FailureKind, classify};
use pgvigil_cluster::{ClusterOptions, PrivateCluster};
use support::LogCapture;

#[tokio::test]
async fn server_down_at_start_is_waited_for() {
    let (capture, _g) = LogCapture::install();
    let cluster = Arc::new(PrivateCluster::init(ClusterOptions::default()).expect("initdb"));
    let config = PoolConfig::builder(cluster.url("postgres"))
        .jitter(Jitter::None)
        .max_retries(Some(10))
        .initial_delay(Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(5))
        .min_connections(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let late = cluster.clone();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        late.start().expect("start the server late");
    });
    let pool = Connector::new(config).connect().await;
    starter.join().unwrap();
    let pool = pool.expect("connects once the server is up");
    assert!(started.elapsed() >= Duration::from_secs(3));
    let warns = capture.lines_containing("connect attempt");
    assert!(warns.len() >= 2, "{}", capture.text());
    for (n, line) in warns.iter().enumerate() {
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains(&format!("connect attempt {} of 11", n + 1)),
            "{line}"
        );
        assert!(
            line.contains("refused") || line.contains("No such file"),
            "{line}"
        );
        assert!(!line.contains(cluster.password()), "{line}");
    }
    let connected = capture.lines_containing("connected to");
    assert!(
        connected[0].contains(&format!("on attempt {}", warns.len() + 1)),
        "{}",
        connected[0]
    );
    let mut conn = pool.acquire().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_busy_is_survived() {
    let cluster = Arc::new(PrivateCluster::start_new().unwrap());
    let config = PoolConfig::builder(cluster.url("postgres"))
        .min_connections(3)
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pool = Connector::new(config).connect().await.unwrap();
    let failures: Arc<Mutex<Vec<(FailureKind, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (pool, failures, stop) = (pool.clone(), failures.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match pool.acquire_labeled("worker").await {
                    Ok(mut conn) => {
                        match sqlx::query("SELECT pg_sleep(0.01)")
                            .execute(&mut *conn)
                            .await
                        {
                            Ok(_) => ok += 1,
                            Err(e) => failures.lock().unwrap().push((classify(&e), e.to_string())),
                        }
                    }
                    Err(e) => failures.lock().unwrap().push((e.kind, e.to_string())),
                }
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart().unwrap())
        .await
        .unwrap();
    // The server accepts connections again: new queries must succeed within 2 s.
    let back = Instant::now();
    loop {
        let attempt = async {
            let mut conn = pool.acquire_labeled("probe").await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(_)) => break,
            _ if back.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("no successful query 2 s after restart: {other:?}"),
        }
    }
    let recovered_in = back.elapsed();
    assert!(recovered_in < Duration::from_secs(2), "{recovered_in:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ok_after = 0;
    for w in workers {
        ok_after += w.await.unwrap();
    }
    assert!(ok_after > 0);
    let failures = failures.lock().unwrap().clone();
    assert!(
        !failures.is_empty(),
        "a restart under load must break some in-flight queries"
    );
    for (kind, msg) in failures.iter() {
        assert!(kind.is_retryable(), "{kind:?} is not retryable: {msg}");
        assert!(!msg.contains(cluster.password()));
    }
    // The pool refills to its minimum without help.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.stats().size < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = pool.stats();
    assert!(s.size >= 3, "pool did not refill to min: {s:?}");
    eprintln!(
        "restart: {} in-flight failures ({:?}), recovered {:?} after the server was back",
        failures.len(),
        failures
            .iter()
            .map(|(k, _)| *k)
            .collect::<std::collections::BTreeSet<_>>(),
        recovered_in
    );
}
