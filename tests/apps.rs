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
    rx: &mut mpsc::Receiver<pgvigil_cli::tui::message::Message>,
    within: usize,
    ok: impl Fn(&AppsSnapshot) -> bool,
) -> AppsSnapshot {
    let mut last = None;
    for _ in 0..within {
        let pgvigil_cli::tui::message::Message::Apps(s) =
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a snapshot every tick")
                .expect("scraper alive")
        else {
            panic!("the scraper sends application snapshots");
        };
        let s = *s;
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
    let (tx, mut rx) = pgvigil_cli::tui::message::bus();
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
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert_eq!(err.verdict(), "UNREACHABLE");
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
            Ok(f) if f.instances == 4 => break f,
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

/// A peer answering every request with `content_type` and `body` (a /metrics endpoint or a
/// Prometheus API fake), on a real socket.
async fn answering(content_type: &'static str, body: String) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
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

fn check_pool(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--only", "pool"])
        .args(args)
        .env_clear()
        .env("DATABASE_URL", url)
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `app` / `p+ss` for Prometheus' basic auth (bcrypt, cost 4: a test fixture).
const PROMETHEUS_WEB_CONFIG: &str =
    "basic_auth_users:\n  app: $2b$04$FkDy08zBavzjTnWwSWuXpe5LrgAPipusG35KEhryK9Sw0e/yh77dS\n";

/// Real Prometheus scraping hostile targets: a NaN in use, a maximum of 1e300, the same series
/// twice (of which Prometheus keeps one), and a sound HikariCP target. Each impossible sum
/// is an error naming the figure and its value, in the library, in `check` and without a
/// password on screen; label-matcher selectors (`=~`, `!=`, `!~`) still select; and a `+` in
/// the URL's password reaches Prometheus' basic auth as a plus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_fleet_figures_from_a_real_prometheus_are_errors_naming_them() {
    let url = support::fresh_database(support::cluster(), "apps_fleet_bounds");
    let text = "text/plain; version=0.0.4";
    let nan = answering(
        text,
        "pgvigil_pool_connections{pool=\"m\",state=\"active\"} NaN\n\
         pgvigil_pool_connections_max{pool=\"m\"} 10\n"
            .into(),
    )
    .await;
    let huge = answering(
        text,
        "hikaricp_connections_active{pool=\"h\"} 1\nhikaricp_connections_max{pool=\"h\"} 1e300\n"
            .into(),
    )
    .await;
    let twice = answering(
        text,
        "hikaricp_connections_active{pool=\"d\"} 1\nhikaricp_connections_max{pool=\"d\"} 5\n\
         hikaricp_connections_max{pool=\"d\"} 5\n"
            .into(),
    )
    .await;
    let fine = answering(
        text,
        "hikaricp_connections_active{pool=\"f\"} 3\nhikaricp_connections_max{pool=\"f\"} 10\n"
            .into(),
    )
    .await;
    let jobs: Vec<(&'static str, String)> = vec![
        ("nan", format!("'{nan}'")),
        ("huge", format!("'{huge}'")),
        ("twice", format!("'{twice}'")),
        ("fine", format!("'{fine}'")),
    ];
    let prometheus = tokio::task::spawn_blocking(move || {
        let jobs: Vec<(&str, &str)> = jobs.iter().map(|(j, t)| (*j, t.as_str())).collect();
        support::prometheus::Prometheus::start_with(&jobs, Some(PROMETHEUS_WEB_CONFIG))
    })
    .await
    .unwrap();
    let base = format!("http://app:p+ss@{}", prometheus.addr);
    let fleet = |selector: &str| pgvigil::remote::Fleet::new(&base, Some(selector)).unwrap();

    // Matchers of every kind select the sound target alone, through basic auth.
    let sound = fleet(r#"{job=~"fi.e", instance!="", job!~"nan|huge"}"#);
    let started = Instant::now();
    let figures = loop {
        match sound.read(Duration::from_secs(5)).await {
            Ok(f) if f.instances == 1 => break f,
            other => assert!(
                started.elapsed() < Duration::from_secs(30),
                "{other:?}\n{}\n{}",
                sound.query(),
                prometheus.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!((figures.active, figures.max), (3.0, 10.0), "{figures:?}");

    // Prometheus stores the NaN and the 1e300 as scraped; pgvigil refuses the sums.
    for (selector, shown) in [
        (
            r#"{job="nan"}"#,
            "figure{figure=\"active\"} = NaN: a fleet's sum of connections in use is a whole number from 0 to 1000000",
        ),
        (r#"{job="huge"}"#, "figure{figure=\"max\"} = 1e300"),
    ] {
        let f = fleet(selector);
        let started = Instant::now();
        let err = loop {
            match f.read(Duration::from_secs(5)).await {
                Err(e) => break e,
                Ok(_) => assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{selector}: not refused\n{}",
                    prometheus.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(err.to_string().contains(shown), "{selector}: {err}");
        let (code, out) = check_pool(&url, &["--prometheus", &base, "--selector", selector]);
        assert_eq!(code, Some(3), "{out}");
        assert!(out.contains(shown), "{out}");
        assert!(!out.contains("p+ss"), "{out}");
    }

    // The same series twice: Prometheus keeps one and counts the other as a duplicate (it
    // never sums them); pgvigil refuses the body.
    let ask = |promql: &str| {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let r = get(
            prometheus.addr,
            &format!("/api/v1/query?query={encoded}"),
            &[("Authorization", "Basic YXBwOnArc3M=")],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["data"]["result"][0]["value"][1].clone()
    };
    assert_eq!(ask(r#"sum(hikaricp_connections_max{job="twice"})"#), "5");
    let duplicates = ask("sum(prometheus_target_scrapes_sample_duplicate_timestamp_total)");
    assert_ne!(duplicates, "0", "{duplicates}");
    let direct = pgvigil::remote::read_endpoint(
        &Endpoint::parse(&format!("http://{twice}/metrics"), "--app").unwrap(),
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(direct.to_string().contains("appears twice"), "{direct}");

    // Prometheus' own /metrics behind basic auth: the password's `+` arrives as a plus (a
    // space would be refused with 401).
    let own = |password: &str| {
        Endpoint::parse(
            &format!("http://app:{password}@{}/metrics", prometheus.addr),
            "--app",
        )
        .unwrap()
    };
    let with_plus = pgvigil::remote::read_endpoint(&own("p+ss"), Duration::from_secs(5)).await;
    assert!(
        matches!(with_plus, Err(pgvigil::remote::ScrapeError::NoPoolMetrics(n)) if n > 0),
        "{with_plus:?}"
    );
    let with_space = pgvigil::remote::read_endpoint(&own("p%20ss"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(with_space.to_string(), "answered 401 Unauthorized");
}

/// Answers a Prometheus can never give (`+Inf` or 2e7 instances) from a fake API: once an
/// allocation of one sizing entry per instance that aborted `check` (rc 134) and the
/// dashboard. Now `check` ends with the error named, the dashboard's fleet row shows it, and
/// a fleet at the bound is one sizing entry with a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_claiming_impossible_instances_is_an_error_not_an_abort() {
    use pgvigil_cli::tui::message::Message;
    use pgvigil_cli::tui::state::{State, update};
    let url = support::fresh_database(support::cluster(), "apps_fleet_inf");
    let answer = |instances: &str| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[
                {{"metric":{{"figure":"active"}},"value":[1700000000,"40"]}},
                {{"metric":{{"figure":"max"}},"value":[1700000000,"200000"]}},
                {{"metric":{{"figure":"instances"}},"value":[1700000000,"{instances}"]}}]}}}}"#
        )
    };
    let json = "application/json";
    for (instances, shown) in [
        (
            "+Inf",
            "figure{figure=\"instances\"} = +Inf: a fleet's instance count is a whole number from 1 to 10000",
        ),
        ("2e7", "figure{figure=\"instances\"} = 20000000"),
    ] {
        let fake = answering(json, answer(instances)).await;
        let (code, out) = check_pool(&url, &["--prometheus", &format!("http://{fake}")]);
        assert_eq!(code, Some(3), "{out}");
        assert!(out.contains(shown), "{out}");
    }

    // An instance read directly with a negative maximum: once "2 instance(s) may open -2
    // connection(s)", a PASS.
    let negative = answering(
        "text/plain; version=0.0.4",
        "hikaricp_connections_active{pool=\"x\"} 0\nhikaricp_connections_max{pool=\"x\"} -2\n"
            .into(),
    )
    .await;
    let app = format!("http://{negative}/metrics");
    let (code, out) = check_pool(&url, &["--app", &app, "--app", &app]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains(
            "hikaricp_connections_max{pool=\"x\"} = -2: a pool maximum is a whole number from 0 to 1000000"
        ),
        "{out}"
    );

    // The dashboard: the fleet task's reading goes into the state and onto the screen.
    let fake = answering(json, answer("+Inf")).await;
    let fleet = pgvigil::remote::Fleet::new(&format!("http://{fake}"), None).unwrap();
    let (_refresh_tx, refresh) = watch::channel(Duration::from_millis(500));
    let (_paused_tx, paused) = watch::channel(false);
    let (tx, mut rx) = pgvigil_cli::tui::message::bus();
    let task = pgvigil_cli::tui::apps::spawn_fleet(fleet, refresh, paused, tx);
    let reading = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(reading, Message::Fleet(_)), "{reading:?}");
    task.abort();
    let mut session = support::prod_connection(&url).await;
    let server = session.read(pgvigil::catalog::server_view).await.unwrap();
    let database: pgvigil::DatabaseUrl = pgvigil::DatabaseUrl::parse(&url).unwrap();
    let mut state = State::new(
        database.target(),
        chrono::Utc::now(),
        *chrono::Local::now().offset(),
        Duration::from_secs(1),
        0.8,
    );
    state.server = Some(server.clone());
    update(&mut state, reading);
    let screen = draw(&state);
    assert!(
        screen.contains("fleet: figure{figure=\"instances\"} = +Inf"),
        "{screen}"
    );

    // At the bound, ten thousand instances are one sizing entry, and the screen says so.
    let at_bound = pgvigil::remote::parse_answer(&answer("10000")).unwrap();
    let input = pgvigil_cli::tui::apps::sizing_input(&server, None, None, Some(&at_bound)).unwrap();
    assert_eq!(input.instances.len(), 1, "{input:?}");
    assert_eq!(input.instances[0].count, 10_000);
    assert_eq!(input.instances[0].max, 20);
    update(&mut state, Message::Fleet(Box::new(Ok(at_bound))));
    let screen = draw(&state);
    assert!(screen.contains("fleet of 10000"), "{screen}");
    assert!(
        screen.contains("sizing OVERSUBSCRIBED: 200000 + "),
        "{screen}"
    );
}

/// The dashboard at 120x40, as text.
fn draw(state: &pgvigil_cli::tui::state::State) -> String {
    support::screen::text(
        state,
        (120, 40),
        &pgvigil_cli::tui::theme::Glyphs::unicode(),
    )
}
