//! pgvigil's dashboard against pg_top and pg_activity, same cluster, same load, same run: each
//! runs for N seconds at 1 s refresh in a 120x40 tmux pane against a private cluster (with
//! pg_stat_statements) under a rate-limited pgbench load. Three scenes:
//!
//! 1. **plain**: the three tools on the database alone.
//! 2. **20 apps + PgBouncer**: pgvigil also scraping 20 application `/metrics` endpoints (real
//!    instrumented pools behind pgvigil's router, in this process) and reading a real
//!    PgBouncer's admin console every tick; the peers cannot watch those, so pgvigil's row is
//!    held against their plain rows.
//! 3. **1,000 connections**: 1,000 more client connections held open on the server; what each
//!    tool's statements cost the server per tick (pg_stat_statements' execution time).
//!
//! Reported per tool: CPU seconds of its process, bytes written to the terminal per second
//! (tmux pipe-pane), peak RSS (VmHWM), statements per tick, server milliseconds per tick and
//! per statement (all by the tool's own role from pg_stat_statements, counted after a 10 s
//! warm-up; a tick is the 1 s refresh), then the ratios and goals.
//!
//! Run with `scripts/bench-dashboard.sh [seconds]` (release build; installs pg_top and
//! pg_activity from Debian when missing).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pgvigil_cluster::{ClusterOptions, PrivateBouncer, PrivateCluster};
use sqlx::Connection;

struct Tool {
    name: &'static str,
    role: &'static str,
    command: String,
}

/// One tool's figures in one scene.
#[derive(Clone, Copy)]
struct Row {
    cpu: f64,
    bytes_per_second: f64,
    rss_mb: f64,
    statements_per_tick: f64,
    server_ms_per_tick: f64,
    server_ms_per_statement: f64,
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the ')'; include children
    // (16, 17) for tools that fork helpers.
    let ticks: u64 = [11, 12, 13, 14]
        .iter()
        .filter_map(|i| f.get(*i)?.parse::<u64>().ok())
        .sum();
    Some(ticks as f64 / 100.0)
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `tool` for `seconds` in a fresh 120x40 tmux pane and reads its figures.
fn run_tool(cluster: &PrivateCluster, tool: &Tool, seconds: u64) -> Option<Row> {
    let dir = tempfile::tempdir().unwrap();
    let bytes_file = dir.path().join("bytes");
    let socket = format!("pgvigil-bench-{}", std::process::id());
    let ok = Command::new("tmux")
        .args([
            "-L",
            &socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "bench",
            "-x",
            "120",
            "-y",
            "40",
        ])
        .arg(format!("TERM=xterm-256color {}", tool.command))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("{}: could not start", tool.name);
        return None;
    }
    tmux(
        &socket,
        &[
            "pipe-pane",
            "-o",
            &format!("cat >> '{}'", bytes_file.display()),
        ],
    );
    let pid: u32 = tmux(&socket, &["display-message", "-p", "#{pane_pid}"])
        .parse()
        .unwrap_or(0);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    cluster
        .psql("bench", "SELECT pg_stat_statements_reset()")
        .unwrap();
    let counted_from = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu = cpu_seconds(pid);
    let rss_kb = proc_field(pid, "status", "VmHWM:");
    let counted_secs = counted_from.elapsed().as_secs_f64();
    let stats = cluster
        .psql(
            "bench",
            &format!(
                "SELECT coalesce(sum(calls), 0) || '|' || coalesce(sum(total_exec_time), 0)
                 FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
                 WHERE r.rolname = '{}' AND s.query NOT LIKE '%pg_stat_statements_reset%'",
                tool.role
            ),
        )
        .unwrap();
    let (calls, exec_ms) = stats
        .split_once('|')
        .map(|(c, t)| (c.parse().unwrap_or(0.0), t.parse().unwrap_or(0.0)))
        .unwrap_or((0.0, 0.0));
    let screen = tmux(&socket, &["capture-pane", "-p"]);
    tmux(&socket, &["kill-server"]);
    std::thread::sleep(Duration::from_millis(300));
    let bytes = std::fs::metadata(&bytes_file).map(|m| m.len()).unwrap_or(0);
    if Path::new(&bytes_file).exists() && bytes == 0 {
        eprintln!(
            "{}: nothing was written to the terminal?\n{screen}",
            tool.name
        );
    }
    match (cpu, rss_kb) {
        (Some(cpu), Some(rss)) => Some(Row {
            cpu,
            bytes_per_second: bytes as f64 / seconds as f64,
            rss_mb: rss as f64 / 1024.0,
            statements_per_tick: calls / counted_secs,
            server_ms_per_tick: exec_ms / counted_secs,
            server_ms_per_statement: if calls > 0.0 { exec_ms / calls } else { 0.0 },
        }),
        _ => {
            eprintln!(
                "{} exited early; its screen at the end:\n{screen}",
                tool.name
            );
            None
        }
    }
}

fn print_row(scene: &str, name: &str, row: Option<Row>) {
    match row {
        Some(r) => println!(
            "| {scene} | {name} | {:.2} | {:.0} | {:.1} | {:.2} | {:.3} | {:.3} |",
            r.cpu,
            r.bytes_per_second,
            r.rss_mb,
            r.statements_per_tick,
            r.server_ms_per_tick,
            r.server_ms_per_statement
        ),
        None => println!("| {scene} | {name} | exited early | | | | | |"),
    }
}

/// pgvigil's row against the peers' (CPU and bytes per second): at most pg_top's, and at
/// least 4x below pg_activity's.
fn verdict(scene: &str, ours: Option<Row>, pg_top: Option<Row>, pg_activity: Option<Row>) {
    let (Some(o), Some(t), Some(a)) = (ours, pg_top, pg_activity) else {
        println!("{scene}: a tool exited early, no ratios");
        return;
    };
    let ok = |b: bool| if b { "met" } else { "NOT MET" };
    println!(
        "{scene}: CPU {:.2}x pg_top's ({}), pg_activity's is {:.1}x ours (goal >= 4: {}); \
         bytes/s {:.2}x pg_top's ({}), pg_activity's is {:.1}x ours ({})",
        o.cpu / t.cpu,
        ok(o.cpu <= t.cpu),
        a.cpu / o.cpu,
        ok(a.cpu >= 4.0 * o.cpu),
        o.bytes_per_second / t.bytes_per_second,
        ok(o.bytes_per_second <= t.bytes_per_second),
        a.bytes_per_second / o.bytes_per_second,
        ok(a.bytes_per_second >= 4.0 * o.bytes_per_second),
    );
}

/// Twenty application instances: each an instrumented pool (1 to 4 connections) behind
/// pgvigil's router on a free port, served by a runtime of their own on one thread.
fn start_apps(url: String, count: usize) -> (Vec<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut urls = Vec::new();
            let mut pools = Vec::new();
            for i in 0..count {
                let config = pgvigil::PoolConfig::builder(url.as_str())
                    .min_connections(1)
                    .max_connections(4)
                    .application_name(format!("bench-app-{i}"))
                    .build()
                    .unwrap();
                let pool = pgvigil::Connector::new(config).connect().await.unwrap();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                urls.push(format!("http://{}/metrics", listener.local_addr().unwrap()));
                let app = pgvigil::http::HttpFace::new(pgvigil::http::HealthSettings::default())
                    .pool("main", pool.clone())
                    .router::<()>();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                pools.push(pool);
            }
            tx.send(urls).unwrap();
            // Each instance serves a query now and then, so its figures move between scrapes.
            loop {
                for pool in &pools {
                    if let Ok(mut c) = pool.acquire().await {
                        let _ = sqlx::query("SELECT 1").execute(&mut *c).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    });
    (rx.recv().unwrap(), handle)
}

/// Opens `count` client connections (50 at a time) and keeps them open on a thread of their
/// own until the returned sender is dropped.
fn hold_connections(url: String, count: usize) -> std::sync::mpsc::Sender<()> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let conns: Vec<sqlx::PgConnection> = rt.block_on(async {
            futures_util::stream::iter(0..count)
                .map(|_| sqlx::PgConnection::connect(&url))
                .buffer_unordered(50)
                .filter_map(|c| async move { c.ok() })
                .collect()
                .await
        });
        ready_tx.send(conns.len()).unwrap();
        let _ = stop_rx.recv();
        drop(conns);
    });
    let opened = ready_rx.recv().unwrap();
    assert_eq!(opened, count, "opened {opened} of {count} connections");
    stop_tx
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    assert!(seconds > 15, "seconds per tool: more than the 10 s warm-up");
    let pgvigil_bin =
        std::env::var("PGVIGIL_BIN").unwrap_or_else(|_| "target/release/pgvigil".into());
    let cluster = PrivateCluster::start_with(
        ClusterOptions::default()
            .setting("shared_preload_libraries", "pg_stat_statements")
            .setting("pg_stat_statements.track", "all")
            .setting("max_connections", "1200"),
    )
    .expect("private cluster (run scripts/setup-postgres.sh)");
    cluster.create_database("bench").unwrap();
    let pw = "bench-pw";
    // On psql's stdin: the roles' password must not be in a command line.
    cluster
        .psql_stdin(
            "bench",
            &format!(
                "CREATE EXTENSION pg_stat_statements;
                 CREATE ROLE pgvigil_bench LOGIN PASSWORD '{pw}' IN ROLE pg_monitor;
                 CREATE ROLE pgtop_bench LOGIN SUPERUSER PASSWORD '{pw}';
                 CREATE ROLE pgactivity_bench LOGIN SUPERUSER PASSWORD '{pw}';
                 CREATE ROLE idle_client LOGIN PASSWORD '{pw}';"
            ),
        )
        .unwrap();
    let bin = pgvigil_cluster::find_bindir().unwrap();
    let port = cluster.port().to_string();
    let status = Command::new(bin.join("pgbench"))
        .args([
            "-i",
            "-s",
            "10",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "bench",
        ])
        .env("PGPASSWORD", cluster.password())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pgbench -i");
    let total = (seconds + 15) * 7 + 120;
    let mut load: Child = Command::new(bin.join("pgbench"))
        .args([
            "-c",
            "8",
            "-j",
            "2",
            "-R",
            "200",
            "-T",
            &total.to_string(),
            "--no-vacuum",
        ])
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "bench"])
        .env("PGPASSWORD", cluster.password())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let url = format!("postgres://pgvigil_bench:{pw}@127.0.0.1:{port}/bench");
    let pgvigil = |extra: &str| {
        format!(
            "DATABASE_URL='{url}' LANG=C.UTF-8 exec {pgvigil_bin} --refresh 1s --migrations /nonexistent{extra}"
        )
    };
    let peers = [
        Tool {
            name: "pg_top",
            role: "pgtop_bench",
            command: format!(
                "PGPASSWORD={pw} exec pg_top -s 1 -h 127.0.0.1 -p {port} -U pgtop_bench -d bench"
            ),
        },
        Tool {
            name: "pg_activity",
            role: "pgactivity_bench",
            command: format!(
                "PGPASSWORD={pw} exec pg_activity --refresh 1 -h 127.0.0.1 -p {port} -U pgactivity_bench -d bench"
            ),
        },
    ];
    println!(
        "dashboard benchmark: {seconds} s per tool at 1 s refresh, 120x40 tmux pane, pgbench -c 8 -R 200 load"
    );
    println!(
        "| scene | tool | CPU s | bytes/s to terminal | peak RSS MB | statements per tick | server ms per tick | server ms per statement |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    // 1. plain
    let plain = Tool {
        name: "pgvigil",
        role: "pgvigil_bench",
        command: pgvigil(""),
    };
    let ours = run_tool(&cluster, &plain, seconds);
    print_row("plain", "pgvigil", ours);
    let top = run_tool(&cluster, &peers[0], seconds);
    print_row("plain", "pg_top", top);
    let activity = run_tool(&cluster, &peers[1], seconds);
    print_row("plain", "pg_activity", activity);

    // 2. 20 application endpoints and PgBouncer
    let (apps, _apps_thread) = start_apps(cluster.url("bench"), 20);
    let bouncer = PrivateBouncer::start(&cluster, "bench", 4);
    let extra: String = apps.iter().map(|a| format!(" --app {a}")).collect();
    // The console's password in the environment, as DATABASE_URL's, not among the arguments.
    let watching = Tool {
        name: "pgvigil",
        role: "pgvigil_bench",
        command: format!(
            "PGBOUNCER_URL='{}' {}",
            bouncer.stats_url(),
            pgvigil(&extra)
        ),
    };
    let ours_apps = run_tool(&cluster, &watching, seconds);
    print_row("20 apps + PgBouncer", "pgvigil", ours_apps);
    drop(bouncer);

    // 3. 1,000 client connections held open
    let held = hold_connections(
        format!("postgres://idle_client:{pw}@127.0.0.1:{port}/bench"),
        1000,
    );
    let scale_ours = run_tool(&cluster, &plain, seconds);
    print_row("1,000 connections", "pgvigil", scale_ours);
    let scale_top = run_tool(&cluster, &peers[0], seconds);
    print_row("1,000 connections", "pg_top", scale_top);
    let scale_activity = run_tool(&cluster, &peers[1], seconds);
    print_row("1,000 connections", "pg_activity", scale_activity);
    drop(held);

    println!();
    verdict("plain", ours, top, activity);
    verdict(
        "20 apps + PgBouncer (against the peers' plain rows)",
        ours_apps,
        top,
        activity,
    );
    verdict("1,000 connections", scale_ours, scale_top, scale_activity);
    if let (Some(o), Some(a)) = (scale_ours, scale_activity) {
        println!(
            "1,000 connections: pgvigil's statements cost the server {:.3} ms per 1 s tick (goal <= 3 ms: {}); pg_activity's {:.3} ms ({:.1}x ours)",
            o.server_ms_per_tick,
            if o.server_ms_per_tick <= 3.0 {
                "met"
            } else {
                "NOT MET"
            },
            a.server_ms_per_tick,
            a.server_ms_per_tick / o.server_ms_per_tick
        );
    }
    let _ = load.kill();
    let _ = load.wait();
}
