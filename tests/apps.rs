//! The dashboard's application-pool scraper against three real `pgvigil serve` instances: all
//! read; one killed is marked unreachable within two ticks while the others keep updating; the
//! same one restarted on its port recovers.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgvigil::remote::Endpoint;
use pgvigil_cli::tui::apps::{AppsSnapshot, spawn};
use support::http::{free_port, get};
use tokio::sync::{mpsc, watch};

/// A `pgvigil serve` that is killed when dropped, so a failing test leaves no process behind.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(url: &str, addr: SocketAddr) -> Served {
    let child = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["serve", "--listen", &addr.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("POOL_MIN_CONNECTIONS", "1")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgvigil serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(addr, "/health/live", &[]).map(|r| r.status).ok() != Some(200) {
        assert!(Instant::now() < deadline, "serve on {addr} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served(child)
}

/// Serves tests/fixtures/hikaricp-micrometer.txt as a Spring Boot service would.
async fn hikari_endpoint() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hikaricp-micrometer.txt"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn next_where(
    rx: &mut mpsc::Receiver<AppsSnapshot>,
    within: usize,
    ok: impl Fn(&AppsSnapshot) -> bool,
) -> AppsSnapshot {
    let mut last = None;
    for _ in 0..within {
        let s = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a snapshot every tick")
            .expect("scraper alive");
        if ok(&s) {
            return s;
        }
        last = Some(s);
    }
    panic!("not within {within} ticks: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_unreachable_within_two_ticks_and_recovers() {
    let url = support::fresh_database(support::cluster(), "apps_scrape");
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
        .collect();
    let mut children: Vec<Served> = addrs.iter().map(|a| serve(&url, *a)).collect();
    let endpoints: Vec<Endpoint> = addrs
        .iter()
        .map(|a| Endpoint::parse(&format!("http://{a}/metrics"), "--app").unwrap())
        .collect();
    let (_refresh_tx, refresh) = watch::channel(Duration::from_millis(500));
    let (_paused_tx, paused) = watch::channel(false);
    let (tx, mut rx) = mpsc::channel(4);
    let task = spawn(endpoints, refresh, paused, tx);

    let all = next_where(&mut rx, 10, |s| {
        s.instances.iter().all(|i| i.figures.is_ok())
    })
    .await;
    assert_eq!(all.totals().answering, 3);
    assert_eq!(all.totals().max, 300.0, "three pools of 100");

    children[1].0.kill().unwrap();
    children[1].0.wait().unwrap();
    let down = next_where(&mut rx, 2, |s| s.instances[1].figures.is_err()).await;
    assert!(down.instances[0].figures.is_ok() && down.instances[2].figures.is_ok());
    assert!(
        down.instances[1].last_ok.is_some(),
        "the age of its last good reading"
    );
    let err = down.instances[1].figures.clone().unwrap_err();
    assert!(err.contains("cannot connect"), "{err}");
    let before = down.taken_at;
    let later = next_where(&mut rx, 2, |_| true).await;
    assert!(later.taken_at > before, "the others keep updating");
    assert!(later.instances[0].figures.is_ok());

    children[1] = serve(&url, addrs[1]);
    let direct = next_where(&mut rx, 10, |s| {
        s.instances.iter().all(|i| i.figures.is_ok())
    })
    .await;
    task.abort();

    // `pgvigil check` with the same sources says whether they can oversubscribe the server:
    // three pools of 100 against 97 usable connections.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgvigil"));
    cmd.args(["check", "--only", "pool", "--json"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .current_dir(std::env::temp_dir());
    for a in &addrs {
        cmd.args(["--app", &format!("http://{a}/metrics")]);
    }
    let out = cmd.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let sizing = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "pool.sizing")
        .unwrap_or_else(|| panic!("{report}"))
        .clone();
    assert_eq!(sizing["status"], "warn", "{sizing}");
    assert_eq!(sizing["data"]["demand"], 300, "{sizing}");
    assert_eq!(sizing["data"]["oversubscribed"], true, "{sizing}");
    assert_eq!(out.status.code(), Some(1), "WARNING");

    // The same three, plus a HikariCP (Micrometer) endpoint, through a real Prometheus: one
    // instant query gives the fleet's sums, equal to the instances' own figures.
    let hikari = hikari_endpoint().await;
    let mut targets = addrs.clone();
    targets.push(hikari);
    let prometheus =
        tokio::task::spawn_blocking(move || support::prometheus::Prometheus::start(&targets))
            .await
            .unwrap();
    let fleet = pgvigil::remote::Fleet::new(
        &format!("http://{}", prometheus.addr),
        Some("{job=\"pgvigil\"}"),
    )
    .unwrap();
    let started = Instant::now();
    let figures = loop {
        match fleet.read(Duration::from_secs(5)).await {
            Ok(f) if f.instances == 4.0 => break f,
            other => assert!(
                started.elapsed() < Duration::from_secs(30),
                "{other:?}\n{}\n{}",
                fleet.query(),
                prometheus.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let direct_max: f64 = direct
        .instances
        .iter()
        .map(|i| i.figures.as_ref().unwrap().reading.max)
        .sum();
    assert_eq!(figures.max, direct_max + 12.0, "{figures:?}");
    assert_eq!(
        figures.pending, 2.0,
        "HikariCP's pending threads: {figures:?}"
    );
    assert!(figures.active >= 8.0, "{figures:?}");
    assert_eq!(figures.top.len(), 4, "{figures:?}");
    assert_eq!(
        figures.top[0].0,
        hikari.to_string(),
        "the fullest first: {figures:?}"
    );

    // A selector that is not one is refused, naming the flag.
    let err = pgvigil::remote::Fleet::new("http://127.0.0.1:9090", Some("job=x")).unwrap_err();
    assert!(err.to_string().starts_with("--selector: `job=x`"), "{err}");

    drop(children);
}
