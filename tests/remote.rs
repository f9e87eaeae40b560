//! Reading application pools from `/metrics`: HikariCP's two name families (Micrometer's and
//! the native tracker's, in the text their Java exporters write: trailing commas, `.0` floats,
//! `E` exponents), pgvigil's own names from a real `pgvigil serve`-style endpoint, and hostile
//! endpoints on real sockets (HTML, 10 MB, one that never answers, label values with quotes,
//! newlines and escape sequences): each ends in its own error or sanitised text, in bounded time
//! and memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pgvigil::remote::{
    Endpoint, InstanceWindow, MetricFamily, ScrapeError, read_body, read_endpoint,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

#[test]
fn hikaricp_micrometer_text_gives_the_pool_figures_summed_over_pools() {
    let r = read_body(&fixture("hikaricp-micrometer.txt")).unwrap();
    assert_eq!(r.family, MetricFamily::HikariMicrometer);
    assert_eq!((r.active, r.idle, r.max, r.pending), (8.0, 4.0, 12.0, 2.0));
    assert_eq!(r.timeouts_total, 4.0);
    assert_eq!(r.acquire_buckets.last(), Some(&(f64::INFINITY, 1000.0)));
    assert!((r.saturation() - 8.0 / 12.0).abs() < 1e-9);

    // Two readings a minute apart: the p95 and the timeouts come from the deltas.
    let mut later = r.clone();
    later.timeouts_total = 10.0;
    later.acquire_buckets = vec![
        (0.001, 900.0),
        (0.01, 950.0),
        (0.1, 1080.0),
        (1.0, 1100.0),
        (f64::INFINITY, 1100.0),
    ];
    let mut w = InstanceWindow::default();
    let t0 = Instant::now();
    w.push(t0, r);
    let f = w.push(t0 + Duration::from_secs(60), later);
    assert!((f.timeouts_per_minute - 6.0).abs() < 1e-9, "{f:?}");
    // 100 new acquires, 90 between 10 ms and 100 ms, 10 up to 1 s: p95 at 0.55 s.
    let p95 = f.acquire_p95.unwrap();
    assert!((p95 - 0.55).abs() < 1e-9, "{p95}");
}

#[test]
fn hikaricp_native_tracker_text_gives_its_own_p95() {
    let r = read_body(&fixture("hikaricp-native.txt")).unwrap();
    assert_eq!(r.family, MetricFamily::HikariNative);
    assert_eq!((r.active, r.idle, r.max, r.pending), (4.0, 6.0, 20.0, 0.0));
    assert_eq!(r.timeouts_total, 1.0);
    assert_eq!(r.acquire_p95_reported, Some(0.003125));
    let f = InstanceWindow::default().push(Instant::now(), r);
    assert_eq!(f.acquire_p95, Some(0.003125));
}

/// Captured from real HikariCP exporters (tests/fixtures/hikaricp-captured/SOURCES.md says
/// where each came from): Spring Boot's Micrometer, and HikariCP's native tracker in its
/// summary and histogram flavours, with and without `_created`, and as OpenMetrics.
#[test]
fn captured_hikaricp_output_gives_the_figures_it_shows() {
    let read = |name: &str| {
        let text = fixture(&format!("hikaricp-captured/{name}"));
        read_body(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // Spring Boot 3.0.1 after a few requests, and another Spring Boot 3 service at rest: ten
    // idle connections, no histogram (Micrometer's timers publish count, sum and max only).
    for name in [
        "micrometer-springboot-3.0.1.txt",
        "micrometer-springboot-3-idle.txt",
    ] {
        let r = read(name);
        assert_eq!(r.family, MetricFamily::HikariMicrometer, "{name}");
        assert_eq!(
            (r.active, r.idle, r.max, r.pending, r.timeouts_total),
            (0.0, 10.0, 10.0, 0.0, 0.0),
            "{name}"
        );
        assert!(r.acquire_buckets.is_empty(), "{name}");
        assert_eq!(r.acquire_p95_reported, None, "{name}");
    }
    // The native tracker with three connections borrowed and one timeout behind it.
    for name in [
        "native-summary-simpleclient-0.9.txt",
        "native-histogram-simpleclient-0.9.txt",
        "native-histogram-simpleclient-0.16.txt",
        "native-summary-openmetrics.txt",
    ] {
        let r = read(name);
        assert_eq!(r.family, MetricFamily::HikariNative, "{name}");
        assert_eq!(
            (r.active, r.idle, r.max, r.pending, r.timeouts_total),
            (3.0, 7.0, 10.0, 0.0, 1.0),
            "{name}"
        );
        assert!((r.saturation() - 0.3).abs() < 1e-9, "{name}");
    }
    // Summaries report their own p95 in nanoseconds.
    let summary = read("native-summary-simpleclient-0.9.txt");
    assert_eq!(summary.acquire_p95_reported, Some(39283.0 / 1e9));
    assert!(summary.acquire_buckets.is_empty());
    assert_eq!(
        read("native-summary-openmetrics.txt").acquire_p95_reported,
        Some(35717.0 / 1e9)
    );
    // Histograms count in nanoseconds: the buckets come out in seconds, 211 acquires in all,
    // and the p95 over the window comes from them.
    for name in [
        "native-histogram-simpleclient-0.9.txt",
        "native-histogram-simpleclient-0.16.txt",
    ] {
        let r = read(name);
        assert_eq!(r.acquire_p95_reported, None, "{name}");
        let first = r.acquire_buckets.first().map(|b| b.0).unwrap();
        assert!((first - 1e-6).abs() < 1e-15, "{name}: {first}");
        assert_eq!(
            r.acquire_buckets.last(),
            Some(&(f64::INFINITY, 211.0)),
            "{name}"
        );
        let mut w = InstanceWindow::default();
        let t0 = Instant::now();
        let mut before = r.clone();
        before.acquire_buckets.iter_mut().for_each(|b| b.1 = 0.0);
        w.push(t0, before);
        let p95 = w.push(t0 + Duration::from_secs(30), r).acquire_p95.unwrap();
        // The 200.45th of 211 acquires lies in the (32 us, 64 us] bucket in both captures.
        assert!(p95 > 32e-6 && p95 <= 64e-6, "{name}: {p95}");
        if name.ends_with("0.9.txt") {
            // 196 acquires up to 32 us, 201 up to 64 us: 32 + 32 * 4.45 / 5 = 60.48 us.
            assert!((p95 - 60.48e-6).abs() < 1e-9, "{name}: {p95}");
        }
    }
}

#[test]
fn a_body_without_pool_metrics_is_not_read_as_an_empty_pool() {
    assert_eq!(
        read_body("jvm_threads 4\n"),
        Err(ScrapeError::NoPoolMetrics(1))
    );
}

/// A one-connection-at-a-time HTTP peer answering with `respond(request)`; `None` never answers.
async fn peer(respond: fn() -> Option<Vec<u8>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                match respond() {
                    Some(bytes) => {
                        let _ = s.write_all(&bytes).await;
                        let _ = s.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            });
        }
    });
    addr
}

fn http(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::parse(&format!("http://{addr}/metrics"), "--app").unwrap()
}

#[tokio::test]
async fn hostile_endpoints_end_in_their_own_error_in_bounded_time() {
    let html = peer(|| {
        Some(http(
            "text/html; charset=utf-8",
            b"<html><body>login</body></html>",
        ))
    })
    .await;
    let huge = peer(|| Some(http("text/plain", &vec![b'#'; 10 * 1024 * 1024]))).await;
    let silent = peer(|| None).await;
    let empty = peer(|| Some(http("text/plain", b"jvm_threads 3\n"))).await;
    let timeout = Duration::from_millis(500);

    let (html, huge, silent, empty) = (
        endpoint(html),
        endpoint(huge),
        endpoint(silent),
        endpoint(empty),
    );
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        read_endpoint(&html, timeout),
        read_endpoint(&huge, timeout),
        read_endpoint(&silent, timeout),
        read_endpoint(&empty, timeout),
    );
    // Concurrent: the silent one costs its timeout once, not the sum.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(a, Err(ScrapeError::NotMetrics(ref t)) if t.starts_with("text/html")),
        "{a:?}"
    );
    assert_eq!(b, Err(ScrapeError::TooLarge));
    assert_eq!(c, Err(ScrapeError::Timeout(timeout)));
    assert_eq!(d, Err(ScrapeError::NoPoolMetrics(1)));
    assert_eq!(
        c.unwrap_err().to_string(),
        "no answer within 500ms",
        "the reason reads well on screen"
    );
    let refused = Endpoint::parse("http://127.0.0.1:1/metrics", "--app").unwrap();
    assert!(matches!(
        read_endpoint(&refused, timeout).await,
        Err(ScrapeError::Connect(_))
    ));
}

#[tokio::test]
async fn hostile_label_values_are_read_as_text_and_pgvigil_names_as_figures() {
    let hostile = peer(|| {
        Some(http(
            "text/plain; version=0.0.4",
            b"pgvigil_pool_connections{pool=\"a\\\"b}\\n\x1b[2J\x1b]0;pwned\x07\",state=\"active\"} 3\n\
              pgvigil_pool_connections{pool=\"x\",state=\"idle\"} 2\n\
              pgvigil_pool_connections_max{pool=\"x\"} 10\n\
              pgvigil_pool_connections_pending{pool=\"x\"} 1\n\
              pgvigil_pool_acquire_timeouts_total{pool=\"x\"} 0\n\
              pgvigil_pool_leaked_connections{pool=\"x\"} 1\n",
        ))
    })
    .await;
    let hostile = endpoint(hostile);
    let r = read_endpoint(&hostile, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r.family, MetricFamily::Pgvigil);
    assert_eq!((r.active, r.idle, r.max, r.pending), (3.0, 2.0, 10.0, 1.0));
    assert_eq!(r.leaked, Some(1.0));
    // That the label text survives parsing for what it is, and the screen's sanitiser defuses
    // it, is the parser's unit test (remote/exposition.rs).
}

/// A keep-alive HTTP peer that counts the connections it accepts and answers every request
/// on each with a small pgvigil body; `close_after` requests it closes the connection.
async fn counting_peer(
    close_after: usize,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let body = "pgvigil_pool_connections{pool=\"m\",state=\"active\"} 1\n\
                            pgvigil_pool_connections_max{pool=\"m\"} 4\n";
                let mut answered = 0;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while answered < close_after {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        // Keep-alive (HTTP/1.1's default): no Connection: close.
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(answer.as_bytes()).await;
                        answered += 1;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_scraped_endpoint_is_read_over_one_kept_connection_and_reconnects_when_closed() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = counting_peer(usize::MAX).await;
    let e = endpoint(addr);
    for _ in 0..5 {
        let r = read_endpoint(&e, Duration::from_secs(2)).await.unwrap();
        assert_eq!(r.max, 4.0);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "five reads, one connection"
    );

    // A peer that closes after each second answer: every read still succeeds.
    let (addr, accepted) = counting_peer(2).await;
    let e = endpoint(addr);
    for i in 0..6 {
        let r = read_endpoint(&e, Duration::from_secs(2)).await;
        assert!(r.is_ok(), "read {i}: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// An HTTP peer answering every request with `head` (status line and headers, without the
/// blank line) and `body`; for bodies built at run time.
async fn serving(head: String, body: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(
        [
            format!(
                "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body,
        ]
        .concat(),
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn metrics(body: &str) -> Endpoint {
    endpoint(
        serving(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4".into(),
            body.as_bytes().to_vec(),
        )
        .await,
    )
}

#[tokio::test]
async fn figures_an_endpoint_cannot_have_are_errors_naming_the_series_and_value() {
    let read = |body: &'static str| async move {
        read_endpoint(&metrics(body).await, Duration::from_secs(2)).await
    };
    // A negative maximum, once a PASS ("2 instance(s) may open -2 connection(s)").
    let err = read(
        "hikaricp_connections_active{pool=\"x\"} 1\nhikaricp_connections_max{pool=\"x\"} -2\n",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hikaricp_connections_max{pool=\"x\"} = -2: a pool maximum is a whole number from 0 to 1000000"
    );
    assert_eq!(err.verdict(), "BAD ANSWER");
    for (body, shown) in [
        (
            "hikaricp_connections_max{pool=\"x\"} 9223372036854775807\n",
            "hikaricp_connections_max{pool=\"x\"} = 9.223372036854776e18",
        ),
        (
            "pgvigil_pool_connections{pool=\"m\",state=\"active\"} NaN\npgvigil_pool_connections_max{pool=\"m\"} 10\n",
            "pgvigil_pool_connections{pool=\"m\",state=\"active\"} = NaN: a connection count",
        ),
        (
            "hikaricp_max_connections{pool=\"n\"} +Inf\n",
            "hikaricp_max_connections{pool=\"n\"} = +Inf",
        ),
        (
            "hikaricp_connections_max{pool=\"x\"} 10\nhikaricp_connections_pending{pool=\"x\"} 2.5\n",
            "hikaricp_connections_pending{pool=\"x\"} = 2.5: a count of waiting acquires is a whole number",
        ),
        (
            "hikaricp_connections_max{pool=\"x\"} 10\nhikaricp_connections_timeout_total{pool=\"x\"} -1\n",
            "= -1: an acquire-timeout counter is a whole number from 0 to 1e15",
        ),
        (
            "hikaricp_connections_max{pool=\"a\"} 600000\nhikaricp_connections_max{pool=\"b\"} 600000\n",
            "hikaricp_connections_max (summed over 2 series) = 1200000",
        ),
        (
            "hikaricp_max_connections 10\nhikaricp_connection_acquired_nanos{quantile=\"0.95\"} -5\n",
            "= -5: an acquire-wait quantile (in seconds) is a number of seconds from 0 to 86400",
        ),
        (
            "pgvigil_pool_connections_max 10\npgvigil_pool_acquire_seconds_bucket{le=\"1e300\"} 1\n",
            "pgvigil_pool_acquire_seconds_bucket{le=\"1e300\"} = le=\"1e300\": a bucket bound",
        ),
        (
            "pgvigil_pool_connections_max 10\npgvigil_pool_acquire_seconds_bucket{le=\"+Inf\"} NaN\n",
            "= NaN: a bucket count",
        ),
    ] {
        let err = read(body).await.unwrap_err().to_string();
        assert!(err.contains(shown), "{body}: {err}");
    }
    // Prometheus' own "no observations yet" (a summary's NaN quantile) is no figure, not an
    // error.
    let r = read(
        "hikaricp_max_connections 10\nhikaricp_connection_acquired_nanos{quantile=\"0.95\"} NaN\n",
    )
    .await
    .unwrap();
    assert_eq!((r.max, r.acquire_p95_reported), (10.0, None));
}

#[tokio::test]
async fn the_same_series_twice_is_refused_not_summed() {
    // 1,000 copies of one series were summed into a maximum of 1,000.
    let body: String = std::iter::once("hikaricp_connections_active{pool=\"p\"} 0\n")
        .chain(std::iter::repeat_n(
            "hikaricp_connections_max{pool=\"p\"} 1\n",
            1000,
        ))
        .collect();
    let body: &'static str = Box::leak(body.into_boxed_str());
    let err = read_endpoint(&metrics(body).await, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ScrapeError::Duplicate("hikaricp_connections_max{pool=\"p\"}".into())
    );
    assert!(err.to_string().contains("appears twice"), "{err}");
}

/// Tens of thousands of distinct `le` buckets inside the 4 MiB limit (the report's body had
/// 87,000): once 9 CPU seconds per 10 s on the dashboard's thread (a quadratic merge and a
/// quadratic per-tick difference).
fn high_cardinality_body(buckets: usize) -> String {
    let mut body = String::from("pgvigil_pool_connections_max{pool=\"m\"} 10\n");
    for i in 0..buckets {
        body.push_str(&format!(
            "pgvigil_pool_acquire_seconds_bucket{{le=\"{i}\"}} 1\n"
        ));
    }
    body.push_str(&format!(
        "pgvigil_pool_acquire_seconds_bucket{{le=\"+Inf\"}} {buckets}\n"
    ));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_cardinality_histogram_is_refused_at_its_bound_in_the_source_task() {
    use pgvigil::remote::bounds::{MAX_BUCKETS, MAX_POOL_SERIES};
    let huge = high_cardinality_body(80_000);
    assert!(
        huge.len() < pgvigil::remote::MAX_BODY_BYTES,
        "{}",
        huge.len()
    );
    let wide = high_cardinality_body(MAX_BUCKETS + 1);
    assert!(wide.lines().count() < MAX_POOL_SERIES);
    let at_bound = high_cardinality_body(MAX_BUCKETS - 1);
    let endpoints = vec![
        metrics(Box::leak(huge.into_boxed_str())).await,
        metrics(Box::leak(wide.into_boxed_str())).await,
        metrics(Box::leak(at_bound.into_boxed_str())).await,
    ];
    // The dashboard's own scraper: the body is read and the window computed in its task; what
    // reaches the UI loop is one row per instance, its figures already computed.
    let (_refresh_tx, refresh) = tokio::sync::watch::channel(Duration::from_millis(500));
    let (_paused_tx, paused) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = pgvigil_cli::tui::message::bus();
    let task = pgvigil_cli::tui::apps::spawn(endpoints, refresh, paused, tx);
    let pgvigil_cli::tui::message::Message::Apps(snapshot) =
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a snapshot within a tick")
            .unwrap()
    else {
        panic!("the scraper sends application snapshots")
    };
    task.abort();
    let [huge, wide, at_bound] = &snapshot.instances[..] else {
        panic!("{snapshot:?}")
    };
    let huge = huge.figures.as_ref().unwrap_err();
    assert_eq!(
        huge.to_string(),
        "more than 10000 pool series in one body (at pgvigil_pool_acquire_seconds_bucket; the bound per target)"
    );
    assert_eq!(huge.verdict(), "BAD ANSWER");
    assert_eq!(
        wide.figures.as_ref().unwrap_err().to_string(),
        "pgvigil_pool_acquire_seconds_bucket has more than 1000 bucket bounds (the bound per histogram)"
    );
    let f = at_bound.figures.as_ref().unwrap();
    assert!(f.acquire_p95.is_some(), "{f:?}");
    assert!(
        f.reading.acquire_buckets.is_empty(),
        "the histogram stays in the source's window, not in every snapshot the UI receives"
    );
}

#[tokio::test]
async fn a_redirect_json_or_gzip_answer_says_what_came_back() {
    let redirect = serving(
        "HTTP/1.1 302 Found\r\nLocation: http://admin:hunter2@sso.example/login?next=%2Fmetrics"
            .into(),
        Vec::new(),
    )
    .await;
    let json = serving(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8".into(),
        b"{\"status\":\"UP\"}".to_vec(),
    )
    .await;
    // A gzip member (of "hikaricp_connections_max 1\n") that must not be inflated.
    let gzip = serving(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip".into(),
        vec![
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xcb, 0xc8, 0xcc, 0x4e, 0x2c,
        ],
    )
    .await;
    let timeout = Duration::from_secs(2);
    for (addr, want) in [
        (
            redirect,
            "answered 302 Found (redirect to http://admin:***@sso.example/login?next=%2Fmetrics; not followed)",
        ),
        (json, "answered application/json, not Prometheus text"),
        (gzip, "answered gzip-encoded body, not accepted"),
    ] {
        let err = read_endpoint(&endpoint(addr), timeout).await.unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with(want), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(err.verdict(), "BAD ANSWER", "{shown}");
    }
}
