//! Load on `pgvigil serve` with wrk (Debian's package, a standard HTTP load generator):
//! `/health/live` (the HTTP stack alone, the baseline), `/health/ready` (cached) and `/metrics`,
//! 50 connections for N seconds each, on a private cluster with pg_stat_statements so the
//! readiness statements the server saw are counted, not assumed. Run by scripts/bench-serve.sh.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgvigil_cluster::{ClusterOptions, PrivateCluster};

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

/// wrk's latency figures are printed as `50%  1.23ms` (or us, s).
fn millis(text: &str) -> f64 {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

fn wrk(url: &str, seconds: u32, connections: u32) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk (Debian package wrk; scripts/setup-postgres.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
            .unwrap_or_default()
    };
    Run {
        rps: field("Requests/sec:").trim().parse().unwrap_or(f64::NAN),
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
        non_2xx: field("Non-2xx or 3xx responses:")
            .trim()
            .parse()
            .unwrap_or(0),
    }
}

fn readiness_statements(cluster: &PrivateCluster) -> u64 {
    cluster
        .psql(
            "postgres",
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
             WHERE query LIKE 'SELECT % AS ready,%'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let connections: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let exe = std::env::current_exe().unwrap();
    let pgvigil = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("pgvigil"))
        .unwrap();
    let cluster = PrivateCluster::start_with(
        ClusterOptions::default().setting("shared_preload_libraries", "pg_stat_statements"),
    )
    .expect("private cluster (run scripts/setup-postgres.sh)");
    cluster
        .psql("postgres", "CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = Command::new(&pgvigil)
        .args(["serve", "--listen", &addr])
        .env("DATABASE_URL", cluster.url("postgres"))
        .env("PGVIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/pgvigil (scripts/bench-serve.sh builds it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Warm-up: the pool's connections, the first readiness reading.
    let _ = wrk(&format!("http://{addr}/health/ready"), 1, 4);
    let _ = wrk(&format!("http://{addr}/metrics"), 1, 4);

    println!(
        "pgvigil serve under wrk: {connections} connections, 2 threads, {seconds} s per endpoint, \
         HEALTH_CACHE_TTL 5 s, release build, client and server on the same {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| endpoint | requests/s | p50 ms | p99 ms | non-2xx | readiness statements on the server | vs /health/live |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let before = readiness_statements(&cluster);
        let run = wrk(&format!("http://{addr}{path}"), seconds, connections);
        let statements = readiness_statements(&cluster) - before;
        let base = *baseline.get_or_insert(run.rps);
        println!(
            "| {path} | {:.0} | {:.3} | {:.3} | {} | {statements} ({}) | {:.2} |",
            run.rps,
            run.p50_ms,
            run.p99_ms,
            run.non_2xx,
            // A run of s seconds overlaps at most floor(s / 5) + 1 windows of 5 s.
            seconds / 5 + 1,
            run.rps / base
        );
    }
    println!(
        "goals: /health/ready >= 20000 requests/s with at most one readiness statement per TTL; \
         /metrics p99 < 2 ms"
    );
    let _ = serve.kill();
    let _ = serve.wait();
}
