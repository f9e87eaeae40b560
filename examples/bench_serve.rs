//! Load on `pgvigil serve` with wrk (Debian's package, a standard HTTP load generator):
//! `/health/live` (the HTTP stack alone, the baseline), `/health/ready` (cached) and `/metrics`,
//! 50 connections for N seconds each, on a private cluster with pg_stat_statements so the
//! readiness statements the server saw are counted, not assumed. Then hostile clients against
//! the HTTP bounds (medians of several rounds): resident memory before, during and after
//! hundreds of clients sending 380 KB request heads, `/health/live` with 1,100 idle sockets
//! open, and how long SIGTERM takes with five half-sent requests. Run by scripts/bench-serve.sh.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
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
    hostile(&pgvigil, &cluster, &mut serve, &addr);
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn live_ms(addr: &str) -> Option<f64> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    raw.starts_with(b"HTTP/1.1 200")
        .then(|| started.elapsed().as_secs_f64() * 1000.0)
}

fn start(
    pgvigil: &std::path::Path,
    cluster: &PrivateCluster,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("sh");
    // 1,024 descriptors, as a container commonly has.
    cmd.args([
        "-c",
        "ulimit -n 1024 && exec \"$0\" serve --listen \"$1\"",
        pgvigil.to_str().unwrap(),
        &addr,
    ])
    .env("DATABASE_URL", cluster.url("postgres"))
    .env("PGVIGIL_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_ms(&addr).is_none() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

/// The HTTP bounds under hostile clients.
fn hostile(
    pgvigil: &std::path::Path,
    cluster: &PrivateCluster,
    serve: &mut std::process::Child,
    addr: &str,
) {
    let rounds = 3;
    println!();
    println!(
        "hostile clients, median of {rounds} rounds (default bounds: 16 KiB heads, 512 connections)"
    );
    let (mut before, mut during, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let clients = 600;
        before.push(rss_kib(serve.id()));
        let pad = Arc::new(format!("X-Pad: {}\r\n", "b".repeat(1000)).repeat(380));
        let barrier = Arc::new(Barrier::new(clients + 1));
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (addr, pad, barrier) = (addr.to_string(), pad.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(&addr).ok();
                    if let Some(s) = s.as_mut() {
                        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                        let _ = s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n");
                        let _ = s.write_all(pad.as_bytes());
                    }
                    barrier.wait();
                    barrier.wait();
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(Duration::from_millis(500));
        during.push(rss_kib(serve.id()));
        barrier.wait();
        handles.into_iter().for_each(|h| h.join().unwrap());
        std::thread::sleep(Duration::from_secs(1));
        after.push(rss_kib(serve.id()));
    }
    println!(
        "| 600 clients x 380 KB heads | RSS before {} KiB | during {} KiB | after {} KiB |",
        median(before),
        median(during),
        median(after)
    );
    let _ = serve.kill();
    let _ = serve.wait();

    // 1,100 idle sockets against a 1,024-descriptor process; the header bound set long so
    // only the connection limit keeps room.
    let (mut child, addr) = start(pgvigil, cluster, &[("HTTP_HEADER_READ_TIMEOUT", "60s")]);
    let idle: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let probes: Vec<f64> = (0..21)
        .map(|_| live_ms(&addr).unwrap_or(f64::INFINITY))
        .collect();
    let answered = probes.iter().filter(|p| p.is_finite()).count();
    println!(
        "| {} idle sockets, RLIMIT_NOFILE 1024 | /health/live median {:.3} ms | {answered}/21 answered within 2 s |",
        idle.len(),
        median(probes)
    );
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();

    // SIGTERM with five half-sent requests.
    let mut exits = Vec::new();
    for _ in 0..rounds {
        let (mut child, addr) = start(pgvigil, cluster, &[("HTTP_HEADER_READ_TIMEOUT", "60s")]);
        let half: Vec<TcpStream> = (0..5)
            .filter_map(|_| {
                let mut s = TcpStream::connect(&addr).ok()?;
                s.write_all(b"GET /health/live HTTP/1.1\r\nX-Half").ok()?;
                Some(s)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        sigterm(child.id());
        let deadline = started + Duration::from_secs(40);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        exits.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
        drop(half);
    }
    println!(
        "| SIGTERM with 5 half-sent requests | exit after {:.0} ms (median) |",
        median(exits)
    );
    println!(
        "goals: RSS during and after within 64 MiB of before; every probe answered; exit well \
         under HTTP_SHUTDOWN_TIMEOUT (10 s) when nothing is in flight"
    );
}

fn sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}
