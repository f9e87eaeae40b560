//! pgvigil's dashboard against pg_top and pg_activity, same cluster, same load, same run: each
//! runs for N seconds at 1 s refresh in a 120x40 tmux pane against a private cluster under a
//! rate-limited pgbench load. Reported per tool: CPU seconds, bytes written to the terminal per
//! second (tmux pipe-pane), peak RSS (VmHWM) and statements per tick (pg_stat_statements, by the
//! tool's own role, counted after a 10 s warm-up).
//!
//! Run with `scripts/bench-dashboard.sh [seconds]` (release build; installs pg_top and
//! pg_activity from Debian when missing).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgvigil_cluster::{ClusterOptions, PrivateCluster};

struct Tool {
    name: &'static str,
    role: &'static str,
    command: String,
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

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    let pgvigil = std::env::var("PGVIGIL_BIN").unwrap_or_else(|_| "target/release/pgvigil".into());
    let cluster = PrivateCluster::start_with(
        ClusterOptions::default()
            .setting("shared_preload_libraries", "pg_stat_statements")
            .setting("pg_stat_statements.track", "all"),
    )
    .expect("private cluster (run scripts/setup-postgres.sh)");
    cluster.create_database("bench").unwrap();
    let pw = "bench-pw";
    cluster
        .psql(
            "bench",
            &format!(
                "CREATE EXTENSION pg_stat_statements;
                 CREATE ROLE pgvigil_bench LOGIN PASSWORD '{pw}' IN ROLE pg_monitor;
                 CREATE ROLE pgtop_bench LOGIN SUPERUSER PASSWORD '{pw}';
                 CREATE ROLE pgactivity_bench LOGIN SUPERUSER PASSWORD '{pw}';"
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
    let total = (seconds + 15) * 3 + 30;
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
    let tools = [
        Tool {
            name: "pgvigil",
            role: "pgvigil_bench",
            command: format!(
                "DATABASE_URL='{url}' LANG=C.UTF-8 exec {pgvigil} --refresh 1s --migrations /nonexistent"
            ),
        },
        Tool {
            name: "pg_top 4.0.0",
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
    println!("| tool | CPU s | bytes/s to terminal | peak RSS MB | statements per tick |");
    println!("|---|---|---|---|---|");
    for tool in &tools {
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
            println!("| {} | could not start | | | |", tool.name);
            continue;
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
        let calls: f64 = cluster
            .psql(
                "bench",
                &format!(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
                     WHERE r.rolname = '{}' AND s.query NOT LIKE '%pg_stat_statements_reset%'",
                    tool.role
                ),
            )
            .unwrap()
            .parse()
            .unwrap_or(0.0);
        let screen = tmux(&socket, &["capture-pane", "-p"]);
        tmux(&socket, &["kill-server"]);
        std::thread::sleep(Duration::from_millis(300));
        let bytes = std::fs::metadata(&bytes_file).map(|m| m.len()).unwrap_or(0);
        match (cpu, rss_kb) {
            (Some(cpu), Some(rss)) => println!(
                "| {} | {cpu:.2} | {:.0} | {:.1} | {:.2} |",
                tool.name,
                bytes as f64 / seconds as f64,
                rss as f64 / 1024.0,
                calls / counted_secs
            ),
            _ => {
                println!("| {} | exited early | | | |", tool.name);
                eprintln!("{} screen at the end:\n{screen}", tool.name);
            }
        }
        if Path::new(&bytes_file).exists() && bytes == 0 {
            eprintln!(
                "{}: nothing was written to the terminal?\n{screen}",
                tool.name
            );
        }
    }
    let _ = load.kill();
    let _ = load.wait();
}
