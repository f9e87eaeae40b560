//! `pgvigil serve` against real components: a private PostgreSQL (stopped, started and frozen
//! under it), Debian's Prometheus scraping it, promtool checking the metrics and the alert
//! rules. The password must appear in no body, header or log line.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, LazyLock};
use std::time::{Duration, Instant};

use pgvigil_cluster::{ClusterOptions, PrivateCluster};
use support::http::{Response, free_port, get};
use support::prometheus::Prometheus;

/// Tests that measure time take this, so the 200-thread test does not load the machine under
/// them (the tests of one binary run in parallel).
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cluster most tests here share, with pg_stat_statements loaded to count statements on
/// the server side.
fn counting_cluster() -> &'static PrivateCluster {
    static CLUSTER: LazyLock<PrivateCluster> = LazyLock::new(|| {
        let c = PrivateCluster::start_with(
            ClusterOptions::default().setting("shared_preload_libraries", "pg_stat_statements"),
        )
        .unwrap_or_else(|e| panic!("these tests need PostgreSQL (scripts/setup-postgres.sh): {e}"));
        c.psql("postgres", "CREATE EXTENSION pg_stat_statements")
            .expect("pg_stat_statements");
        c
    });
    &CLUSTER
}

/// A running `pgvigil serve`, killed when dropped.
struct Serve {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(url: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgvigil"));
        cmd.args(["serve", "--listen", &addr.to_string()])
            // No .env from the repository, no DATABASE_URL from the test's environment.
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env(
                "PGVIGIL_LOG",
                "info,pgvigil::pool::lifecycle=debug,sqlx=warn",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("serve.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start pgvigil serve");
        let serve = Self {
            child: Some(child),
            addr,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(addr, "/health/live", &[]).map(|r| r.status).ok() != Some(200) {
            assert!(
                Instant::now() < deadline,
                "serve did not answer /health/live: {}",
                serve.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    fn get(&self, path: &str) -> Response {
        get(self.addr, path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (bounded) for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop within 15 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `path` until its status is `want`; returns how long that took.
fn until_status(serve: &Serve, path: &str, want: u16, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = serve.get(path);
        if r.status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{path} still {} after {bound:?} (wanted {want}): {}\n{}",
            r.status,
            r.body,
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn readiness_follows_the_database_and_liveness_never_waits_for_it() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    // Its own cluster: this test stops, starts and freezes it.
    let cluster = PrivateCluster::start_new().expect("PostgreSQL (scripts/setup-postgres.sh)");
    let ttl = Duration::from_secs(1);
    let timeout = Duration::from_secs(1);
    let mut serve = Serve::start(
        &cluster.url("postgres"),
        &[("HEALTH_CACHE_TTL", "1s"), ("HEALTH_READY_TIMEOUT", "1s")],
    );
    until_status(&serve, "/health/ready", 200, Duration::from_secs(10));
    let ready = serve.get("/health/ready");
    assert_eq!(
        ready.header("content-type"),
        Some("application/health+json")
    );
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(body["status"], "pass", "{body}");
    assert_eq!(
        body["checks"]["postgres:responseTime"][0]["observedUnit"],
        "ms"
    );
    assert!(
        body["time"].is_string(),
        "the body says when it was read: {body}"
    );

    // Stopped: 503 within TTL + timeout. The slack covers this loop's polling and a loaded CI
    // machine's scheduling, not the server: a reading is bounded by the timeout itself.
    let slack = Duration::from_secs(1);
    cluster.stop().unwrap();
    let to_fail = until_status(&serve, "/health/ready", 503, Duration::from_secs(10));
    assert!(to_fail <= ttl + timeout + slack, "{to_fail:?}");
    let live = serve.get("/health/live");
    assert_eq!(live.status, 200, "liveness never depends on the database");
    let metrics = serve.get("/metrics").body;
    assert!(
        metrics.contains("pgvigil_pool_ready{pool=\"main\"} 0"),
        "the metrics show the outage:\n{metrics}"
    );

    // Started again: 200 within TTL + 2 s, same process.
    cluster.start().unwrap();
    let to_recover = until_status(&serve, "/health/ready", 200, Duration::from_secs(10));
    assert!(
        to_recover <= ttl + Duration::from_secs(2) + slack,
        "{to_recover:?}"
    );

    // Frozen (SIGSTOP): liveness answers at once; readiness fails within its bound, never hangs.
    cluster.pause().unwrap();
    std::thread::sleep(ttl);
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        assert_eq!(serve.get("/health/live").status, 200);
        times.push(started.elapsed());
    }
    times.sort();
    let (median, slowest) = (times[10], times[20]);
    let started = Instant::now();
    let frozen = serve.get("/health/ready");
    let took = started.elapsed();
    cluster.resume().unwrap();
    // Each request is a new TCP connection; the median says what liveness costs, the slowest
    // that none waited for the frozen database.
    assert!(
        median < Duration::from_millis(50),
        "liveness median {median:?}"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "liveness slowest {slowest:?}"
    );
    assert_eq!(frozen.status, 503, "{}", frozen.body);
    assert!(
        frozen.body.contains("HEALTH_READY_TIMEOUT"),
        "{}",
        frozen.body
    );
    assert!(took < timeout + slack, "readiness took {took:?}");
    until_status(&serve, "/health/ready", 200, Duration::from_secs(10));

    // SIGTERM: a clean, graceful exit.
    let status = serve.terminate();
    assert!(status.success(), "{status:?}\n{}", serve.log());
    assert!(
        serve
            .log()
            .contains("SIGTERM: finishing requests in flight"),
        "{}",
        serve.log()
    );
    assert!(!serve.log().contains(cluster.password()), "{}", serve.log());
}

#[test]
fn concurrent_readiness_requests_share_one_reading() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = counting_cluster();
    let db = support::fresh_database(cluster, "ready_flight");
    let name = db.rsplit('/').next().unwrap().to_string();
    let serve = Arc::new(Serve::start(
        &db,
        &[("HEALTH_CACHE_TTL", "60s"), ("HEALTH_READY_TIMEOUT", "5s")],
    ));
    // Wait until the pool's first connection is open, so the readings below are the first.
    std::thread::sleep(Duration::from_millis(300));
    let barrier = Arc::new(Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let (serve, barrier) = (serve.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                serve.get("/health/ready")
            })
        })
        .collect();
    let answers: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(answers.iter().all(|r| r.status == 200), "{:?}", answers[0]);
    let first = &answers[0].body;
    assert!(
        answers.iter().all(|r| &r.body == first),
        "one reading for all"
    );
    let calls = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s \
                 JOIN pg_database d ON d.oid = s.dbid \
                 WHERE d.datname = '{name}' AND s.query LIKE 'SELECT % AS ready,%'"
            ),
        )
        .unwrap();
    assert_eq!(calls.trim(), "1", "readiness statements seen by the server");
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup-postgres.sh installs it)");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let cluster = counting_cluster();
    let db = support::fresh_database(cluster, "metrics");
    let serve = Serve::start(&db, &[("POOL_LOG_INTERVAL", "1s")]);
    until_status(&serve, "/health/ready", 200, Duration::from_secs(10));

    let text = serve.get("/metrics");
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (ok, out) = promtool(&["check", "metrics"], Some(&text.body));
    assert!(ok, "promtool check metrics:\n{out}\n{}", text.body);
    for name in [
        "pgvigil_pool_connections{pool=\"main\",state=\"active\"}",
        "pgvigil_pool_connections{pool=\"main\",state=\"idle\"}",
        "pgvigil_pool_connections_max{pool=\"main\"} 100",
        "pgvigil_pool_connections_pending{pool=\"main\"}",
        "pgvigil_pool_acquire_seconds_bucket{pool=\"main\",le=\"+Inf\"}",
        "pgvigil_pool_usage_seconds_count{pool=\"main\"}",
        "pgvigil_pool_acquire_timeouts_total{pool=\"main\"} 0",
        "pgvigil_pool_connections_created_total{pool=\"main\"}",
        "pgvigil_pool_connections_closed_total{pool=\"main\",reason=\"leaked\"} 0",
        "pgvigil_pool_connect_attempts_total{pool=\"main\",result=\"success\"}",
        "pgvigil_pool_saturation_ratio{pool=\"main\"}",
        "pgvigil_pool_saturation_warning{pool=\"main\"} 0",
        "pgvigil_pool_ready{pool=\"main\"} 1",
        "pgvigil_pool_build_info{version=",
    ] {
        assert!(text.body.contains(name), "{name} missing:\n{}", text.body);
    }
    let open = get(
        serve.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .unwrap();
    assert!(
        open.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{}",
        open.headers
    );
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);

    // A real Prometheus scrapes every second (it asks for OpenMetrics first).
    let prometheus = Prometheus::start(&[serve.addr]);
    let query = format!("pgvigil_pool_connections{{instance=\"{}\"}}", serve.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        let result = prometheus.query(&query);
        if result.len() == 2 {
            break result;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has no {query}: {result:?}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let states: Vec<&str> = series
        .iter()
        .filter_map(|s| s["metric"]["state"].as_str())
        .collect();
    assert!(
        states.contains(&"active") && states.contains(&"idle"),
        "{series:?}"
    );
    let up = prometheus.query(&format!("up{{instance=\"{}\"}}", serve.addr));
    assert_eq!(up[0]["value"][1], "1", "{up:?}");

    // The alert rules and their unit tests.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let (ok, out) = promtool(
        &[
            "test",
            "rules",
            rules.join("alerts_test.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "promtool test rules:\n{out}");

    // The periodic status line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serve
        .log()
        .contains("INFO pgvigil::pool: pool pgvigil: size")
    {
        assert!(
            Instant::now() < deadline,
            "no status line:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The password is nowhere: bodies, headers, the log, what Prometheus stored.
    let password = cluster.password();
    let stored = prometheus.query(&format!("{{instance=\"{}\"}}", serve.addr));
    for (what, text) in [
        ("metrics", format!("{}{}", text.headers, text.body)),
        ("openmetrics", format!("{}{}", open.headers, open.body)),
        ("ready", {
            let r = serve.get("/health/ready");
            format!("{}{}", r.headers, r.body)
        }),
        ("live", {
            let r = serve.get("/health/live");
            format!("{}{}", r.headers, r.body)
        }),
        ("log", serve.log()),
        ("prometheus", format!("{stored:?}")),
    ] {
        assert!(!text.contains(password), "the password in {what}: {text}");
    }
    assert!(serve.log().contains("postgres:***@"), "{}", serve.log());
}

#[test]
fn serve_refuses_a_bad_listen_address_or_a_port_in_use_naming_the_flag() {
    let run = |listen: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["serve", "--listen", listen])
            .env_clear()
            .env("DATABASE_URL", "postgres://app:Pa55word@127.0.0.1:1/db")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run("localhost-ish");
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("--listen: `localhost-ish` is not an address"),
        "{err}"
    );
    assert!(err.contains("127.0.0.1:9187"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["serve", "--migrations", "/no/such/migrations"])
        .env_clear()
        .env("DATABASE_URL", "postgres://app:Pa55word@127.0.0.1:1/db")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("--migrations") && err.contains("/no/such/migrations"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run(&addr);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("--listen {addr}: cannot listen there")),
        "{err}"
    );
    assert!(
        err.contains("another process listens on that port"),
        "{err}"
    );
    assert!(!err.contains("Pa55word"), "{err}");
}
