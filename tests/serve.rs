//! `pgvigil serve` against real components: a private PostgreSQL (stopped, started and frozen
//! under it), Debian's Prometheus scraping it, promtool checking the metrics and the alert
//! rules. The password must appear in no body, header or log line.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
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
        Self::start_limited(url, env, None)
    }

    /// With `open_files`, the process runs under that RLIMIT_NOFILE, soft and hard (as a
    /// container or a systemd unit may set it), through the shell's `ulimit`.
    fn start_limited(url: &str, env: &[(&str, &str)], open_files: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = match open_files {
            None => Command::new(env!("CARGO_BIN_EXE_pgvigil")),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    env!("CARGO_BIN_EXE_pgvigil"),
                ]);
                sh
            }
        };
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

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident memory of the process, from /proc/PID/status.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
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

// ---- The bounds on clients (HTTP_HEADER_READ_TIMEOUT, HTTP_IDLE_TIMEOUT,
// HTTP_MAX_HEADER_BYTES, HTTP_MAX_CONNECTIONS, HTTP_SHUTDOWN_TIMEOUT). Each hostile client is
// inline here: a raw socket doing what a hostile peer would.

/// Waits until the server closes `stream` (EOF or reset), reading and discarding what comes;
/// how long that took from `since`, or None if it was still open at `bound`.
fn closed_within(stream: &mut TcpStream, since: Instant, bound: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(since.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// Reads one response with a Content-Length body from a keep-alive connection.
fn read_one_response(stream: &mut TcpStream) -> (u16, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_slow_loris_is_closed_by_the_header_read_timeout() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let db = support::fresh_database(counting_cluster(), "slow_loris");
    let serve = Serve::start(&db, &[("HTTP_HEADER_READ_TIMEOUT", "1s")]);
    let mut loris = TcpStream::connect(serve.addr).unwrap();
    let started = Instant::now();
    loris
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // One header byte a second, as the attack does, for up to 8 s.
    let mut closed = None;
    for _ in 0..8 {
        if loris.write_all(b"X").is_err() {
            closed = Some(started.elapsed());
            break;
        }
        if let Some(at) = closed_within(
            &mut loris,
            started,
            started.elapsed() + Duration::from_secs(1),
        ) {
            closed = Some(at);
            break;
        }
    }
    let closed = closed.unwrap_or_else(|| {
        panic!(
            "a client sending a byte a second was still served after 8 s:\n{}",
            serve.log()
        )
    });
    println!("slow loris closed after {closed:?} (HTTP_HEADER_READ_TIMEOUT 1s)");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );
    assert_eq!(serve.get("/health/live").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_bound_not_the_header_bound() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let db = support::fresh_database(counting_cluster(), "idle_keep_alive");
    let serve = Serve::start(
        &db,
        &[
            ("HTTP_HEADER_READ_TIMEOUT", "1s"),
            ("HTTP_IDLE_TIMEOUT", "3s"),
        ],
    );
    let mut client = TcpStream::connect(serve.addr).unwrap();
    for _ in 0..2 {
        client
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (status, _) = read_one_response(&mut client);
        assert_eq!(status, 200);
    }
    let answered = Instant::now();
    let closed = closed_within(&mut client, answered, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("an idle keep-alive connection was still open after 10 s"));
    println!(
        "idle keep-alive connection closed {closed:?} after its last answer (HTTP_IDLE_TIMEOUT 3s)"
    );
    // Past the 1 s header bound (idle is not half-sent), within the 3 s idle bound + slack.
    assert!(
        closed >= Duration::from_millis(2800) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
}

#[test]
fn oversized_headers_get_431_and_memory_stays_bounded_under_hundreds_of_them() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let db = support::fresh_database(counting_cluster(), "big_headers");
    let serve = Serve::start(&db, &[]);

    // One head over the default 16 KiB: 431 (or a close), never an answer.
    let mut one = TcpStream::connect(serve.addr).unwrap();
    let big = format!(
        "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let _ = one.write_all(big.as_bytes());
    one.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = one.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "an oversized head was answered: {answer}"
    );

    // 400 clients each sending 380 KB of headers that never end, held open together.
    for _ in 0..3 {
        serve.get("/metrics");
    }
    let before = serve.rss_kib();
    let clients = 400;
    let pad = format!("X-Pad: {}\r\n", "b".repeat(1000)).repeat(380);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, pad, barrier) = (serve.addr, pad.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok();
                if let Some(s) = s.as_mut() {
                    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n");
                    let _ = s.write_all(pad.as_bytes());
                }
                barrier.wait(); // everyone has sent what the server would take
                barrier.wait(); // memory measured: let go
                drop(s);
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(500));
    let during = serve.rss_kib();
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = serve.rss_kib();
    println!(
        "RSS with {clients} clients sending 380 KB heads: before {before} KiB, during {during} KiB, after {after} KiB"
    );
    // What the limits allow: 16 KiB of head (hyper's buffer) plus a few KiB of state per
    // connection, 400 connections: well under 32 MiB. Unbounded, 400 x 380 KB is 150 MB.
    let bound = 32 * 1024;
    assert!(
        during.saturating_sub(before) < bound,
        "RSS grew from {before} KiB to {during} KiB"
    );
    assert!(
        after.saturating_sub(before) < bound,
        "RSS stayed at {after} KiB (from {before} KiB)"
    );
    assert_eq!(serve.get("/health/live").status, 200);
}

#[test]
fn liveness_answers_with_more_idle_sockets_than_file_descriptors() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let db = support::fresh_database(counting_cluster(), "many_sockets");
    // 1,024 descriptors, as in the report; a header bound long enough that none of the idle
    // sockets is closed by it while this runs: the connection limit alone must keep room.
    let serve = Serve::start_limited(&db, &[("HTTP_HEADER_READ_TIMEOUT", "60s")], Some(1024));
    let sockets: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect_timeout(&serve.addr, Duration::from_secs(2)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        // A Kubernetes probe's default timeoutSeconds is 1; the manifest's is 2.
        let answer = probe_live(serve.addr, Duration::from_secs(2));
        let took = started.elapsed();
        assert_eq!(
            answer.as_ref().map(|(status, _)| *status).ok(),
            Some(200),
            "with {} idle sockets /health/live gave {answer:?} after {took:?}\n{}",
            sockets.len(),
            serve.log()
        );
        times.push(took);
    }
    times.sort();
    println!(
        "{} idle sockets open: /health/live median {:?}, slowest {:?}",
        sockets.len(),
        times[2],
        times[4]
    );
    assert!(
        serve.log().contains("HTTP_MAX_CONNECTIONS"),
        "the limit is logged:\n{}",
        serve.log()
    );
    drop(sockets);
}

/// GET /health/live with every step bounded by `timeout`.
fn probe_live(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))?;
    Ok((status, text))
}

#[test]
fn sigterm_with_half_sent_requests_and_a_hung_one_ends_within_the_shutdown_bound() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    // Its own cluster: it is frozen so that one request stays in flight.
    let cluster = PrivateCluster::start_new().expect("PostgreSQL (scripts/setup-postgres.sh)");
    let bound = Duration::from_secs(2);
    let mut serve = Serve::start(
        &cluster.url("postgres"),
        &[
            ("HTTP_HEADER_READ_TIMEOUT", "60s"),
            ("HTTP_SHUTDOWN_TIMEOUT", "2s"),
            ("HEALTH_READY_TIMEOUT", "30s"),
            ("HEALTH_CACHE_TTL", "1s"),
        ],
    );
    until_status(&serve, "/health/ready", 200, Duration::from_secs(10));

    // Five half-sent requests.
    let half: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(serve.addr).unwrap();
            s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Half")
                .unwrap();
            s
        })
        .collect();
    // One request in flight that will not finish: readiness on a frozen database.
    cluster.pause().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut hung = TcpStream::connect(serve.addr).unwrap();
    hung.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let status = serve.terminate();
    let took = started.elapsed();
    cluster.resume().unwrap();
    println!(
        "SIGTERM with 5 half-sent requests and 1 hung: exited after {took:?} (HTTP_SHUTDOWN_TIMEOUT 2s)"
    );
    assert!(status.success(), "{status:?}\n{}", serve.log());
    assert!(
        took < bound + Duration::from_secs(2),
        "exited {took:?} after SIGTERM\n{}",
        serve.log()
    );
    let log = serve.log();
    assert!(
        log.contains("closed 5 idle or half-sent connection(s)"),
        "{log}"
    );
    assert!(
        log.contains("still answering after HTTP_SHUTDOWN_TIMEOUT"),
        "{log}"
    );
    drop(half);
}

#[test]
fn sigterm_closes_half_sent_requests_at_once() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    let db = support::fresh_database(counting_cluster(), "half_sent");
    let mut serve = Serve::start(&db, &[("HTTP_HEADER_READ_TIMEOUT", "60s")]);
    let mut half: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect(serve.addr).unwrap();
            s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Half")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let status = serve.terminate();
    let took = started.elapsed();
    println!("SIGTERM with 5 half-sent requests: exited after {took:?}");
    assert!(status.success(), "{status:?}\n{}", serve.log());
    // Nothing is in flight: no reason to wait for the 10 s default bound.
    assert!(
        took < Duration::from_secs(2),
        "exited {took:?} after SIGTERM"
    );
    for s in &mut half {
        assert!(closed_within(s, Instant::now(), Duration::from_secs(1)).is_some());
    }
}

// ---- Readiness failures: at once, counted, and without details in the body.

#[test]
fn a_refused_connection_is_reported_at_once_and_counted_as_a_connect_failure() {
    let _timing = TIMING.lock().unwrap_or_else(|p| p.into_inner());
    // A real server's port, with the server stopped: the kernel refuses.
    let cluster = PrivateCluster::start_new().expect("PostgreSQL (scripts/setup-postgres.sh)");
    let url = cluster.url("postgres");
    cluster.stop().unwrap();
    let serve = Serve::start(&url, &[("HEALTH_READY_TIMEOUT", "2s")]);
    let started = Instant::now();
    let ready = serve.get("/health/ready");
    let took = started.elapsed();
    println!(
        "refused connection: readiness answered {} after {took:?}",
        ready.status
    );
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        took < Duration::from_millis(500),
        "a refused connection took {took:?}, HEALTH_READY_TIMEOUT is 2s: {}",
        ready.body
    );
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body["checks"]["postgres:responseTime"][0]["output"], "database: connection refused",
        "{body}"
    );
    let metrics = serve.get("/metrics").body;
    let failures = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("pgvigil_pool_connect_attempts_total{pool=\"main\",result=\"failure\"} ")
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no connect failure counter:\n{metrics}"));
    assert!(failures >= 1.0, "connect failures {failures}\n{metrics}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !serve.log().contains("Connection refused") {
        assert!(
            Instant::now() < deadline,
            "the detail is not logged:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_readiness_body_names_the_failed_check_without_user_or_server_text() {
    let cluster = counting_cluster();
    let url = cluster
        .url("postgres")
        .replace(cluster.password(), "not-the-password");
    assert_ne!(url, cluster.url("postgres"));
    let serve = Serve::start(&url, &[]);
    let ready = serve.get("/health/ready");
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(
        body["checks"]["postgres:responseTime"][0]["output"], "database: authentication failed",
        "{body}"
    );
    // The user is `postgres`: only the check's own key may say that word.
    let text = ready.body.replace("\"postgres:responseTime\"", "");
    for leak in [
        "postgres",
        "password authentication",
        "127.0.0.1",
        "not-the-password",
    ] {
        assert!(
            !text.to_lowercase().contains(&leak.to_lowercase()),
            "`{leak}` in the unauthenticated body: {}",
            ready.body
        );
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !serve.log().contains("password authentication failed") {
        assert!(
            Instant::now() < deadline,
            "the detail is not logged:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!serve.log().contains("not-the-password"), "{}", serve.log());
}

#[test]
fn listen_on_port_zero_logs_the_port_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", counting_cluster().url("postgres"))
        .env("PGVIGIL_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port: u16 = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("on http://127.0.0.1:").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no serving line:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let live = get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/health/live",
        &[],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(port, 0, "{}", std::fs::read_to_string(&log).unwrap());
    assert_eq!(live.map(|r| r.status).ok(), Some(200), "port {port}");
}

#[test]
fn a_bad_http_bound_is_refused_naming_the_flag_and_what_is_accepted() {
    for (flag, value, accepted) in [
        ("--http-max-header-bytes", "100", "from 1024 to 1048576"),
        ("--http-max-connections", "0", "from 1 to 65536"),
        ("--http-header-read-timeout", "0s", "at most 10m"),
        ("--http-idle-timeout", "forever", "at most 1d"),
        ("--http-shutdown-timeout", "1h", "at most 10m"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["serve", flag, value])
            .env_clear()
            .env("DATABASE_URL", "postgres://app:Pa55word@127.0.0.1:1/db")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && err.contains(value) && err.contains(accepted),
            "{flag} {value}: {err}"
        );
    }
}
