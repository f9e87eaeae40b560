//! A hostile PgBouncer: a TCP server of our own that speaks enough of the PostgreSQL protocol
//! to pass for a console (startup, AuthenticationOk, ParameterStatus, BackendKeyData,
//! ReadyForQuery, then simple queries) and answers badly: a DataRow with fewer fields than its
//! RowDescription (which panics inside sqlx), an answer that never ends, a refused login, or a
//! well-formed console that says it is SUSPENDED. Each must be that source's error or state,
//! in `check` and on the dashboard, never a dead process or a half-alive one.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgvigil::DatabaseUrl;
use pgvigil::remote::pgbouncer::{BouncerFailure, MAX_ROWS};

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// SHOW POOLS: ten fields described, one sent.
    ShortRow,
    /// SHOW POOLS: rows forever, `width` bytes in each value.
    Endless { width: usize },
    /// Every login: FATAL, as PgBouncer 1.18 says it (SQLSTATE 08P01).
    RefuseLogin,
    /// A console that answers well and says SHOW STATE suspended = yes.
    Suspended,
}

/// The fake console: its address, the logins it saw and the bytes it sent.
struct Fake {
    addr: SocketAddr,
    logins: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Fake {
    fn start(answer: Answer) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let logins = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (l, s) = (logins.clone(), sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (l, s) = (l.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, answer, &l, &s);
                });
            }
        });
        Fake { addr, logins, sent }
    }

    fn url(&self) -> String {
        format!("postgres://pgbadmin@{}/pgbouncer", self.addr)
    }
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend(((body.len() + 4) as i32).to_be_bytes());
    m.extend(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.as_bytes());
    out.push(0);
}

fn row_description(fields: &[&str]) -> Vec<u8> {
    let mut b = (fields.len() as i16).to_be_bytes().to_vec();
    for f in fields {
        cstr(&mut b, f);
        b.extend(0i32.to_be_bytes()); // table
        b.extend(0i16.to_be_bytes()); // column
        b.extend(25i32.to_be_bytes()); // text
        b.extend((-1i16).to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.extend(0i16.to_be_bytes()); // text format
    }
    message(b'T', &b)
}

fn data_row(values: &[&[u8]]) -> Vec<u8> {
    let mut b = (values.len() as i16).to_be_bytes().to_vec();
    for v in values {
        b.extend((v.len() as i32).to_be_bytes());
        b.extend(*v);
    }
    message(b'D', &b)
}

fn done() -> Vec<u8> {
    let mut m = message(b'C', b"SHOW\0");
    m.extend(message(b'Z', b"I"));
    m
}

fn table(fields: &[&str], rows: &[&[&str]]) -> Vec<u8> {
    let mut m = row_description(fields);
    for r in rows {
        let values: Vec<&[u8]> = r.iter().map(|v| v.as_bytes()).collect();
        m.extend(data_row(&values));
    }
    m.extend(done());
    m
}

const POOLS: &[&str] = &[
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "sv_active",
    "sv_idle",
    "sv_used",
    "maxwait",
    "maxwait_us",
    "pool_mode",
];

fn serve(
    mut s: TcpStream,
    answer: Answer,
    logins: &AtomicU64,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    // SSLRequest (refused) then the StartupMessage.
    loop {
        let mut head = [0u8; 8];
        s.read_exact(&mut head)?;
        let len = i32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let code = i32::from_be_bytes(head[4..].try_into().unwrap());
        let mut rest = vec![0u8; len - 8];
        s.read_exact(&mut rest)?;
        if code == 80877103 || code == 80877104 {
            s.write_all(b"N")?;
            continue;
        }
        break;
    }
    logins.fetch_add(1, Ordering::SeqCst);
    if answer == Answer::RefuseLogin {
        let mut b = Vec::new();
        for (k, v) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "08P01"),
            (b'M', "password authentication failed"),
        ] {
            b.push(k);
            cstr(&mut b, v);
        }
        b.push(0);
        s.write_all(&message(b'E', &b))?;
        return Ok(());
    }
    let mut hello = message(b'R', &0i32.to_be_bytes());
    for (k, v) in [
        ("server_version", "1.18.0/bouncer"),
        ("client_encoding", "UTF8"),
    ] {
        let mut b = Vec::new();
        cstr(&mut b, k);
        cstr(&mut b, v);
        hello.extend(message(b'S', &b));
    }
    hello.extend(message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
    hello.extend(message(b'Z', b"I"));
    s.write_all(&hello)?;
    loop {
        let mut kind = [0u8; 1];
        s.read_exact(&mut kind)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut body)?;
        if kind[0] != b'Q' {
            return Ok(());
        }
        let query = String::from_utf8_lossy(&body)
            .trim_end_matches('\0')
            .to_string();
        let reply = match (answer, query.as_str()) {
            (Answer::ShortRow, "SHOW POOLS") => {
                let mut m = row_description(POOLS);
                m.extend(data_row(&[b"app"]));
                m.extend(done());
                m
            }
            (Answer::Endless { width }, "SHOW POOLS") => {
                s.write_all(&row_description(POOLS))?;
                let wide = vec![b'x'; width];
                let row = data_row(&[
                    &wide, b"u", b"1", b"0", b"1", b"0", b"0", b"0", b"0", b"session",
                ]);
                let batch: Vec<u8> = row.iter().copied().cycle().take(row.len() * 64).collect();
                loop {
                    s.write_all(&batch)?;
                    sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
            (_, "SHOW POOLS") => table(
                POOLS,
                &[
                    &[
                        "app",
                        "docs",
                        "2",
                        "0",
                        "2",
                        "1",
                        "0",
                        "0",
                        "0",
                        "transaction",
                    ],
                    &[
                        "app",
                        "batch",
                        "1",
                        "0",
                        "1",
                        "0",
                        "0",
                        "0",
                        "0",
                        "transaction",
                    ],
                ],
            ),
            (_, "SHOW STATS") => table(
                &[
                    "database",
                    "avg_xact_count",
                    "avg_query_count",
                    "avg_wait_time",
                ],
                &[&["app", "412", "1650", "35000"]],
            ),
            (_, "SHOW DATABASES") => table(
                &["name", "paused", "disabled"],
                &[&["app", "0", "0"], &["pgbouncer", "0", "0"]],
            ),
            (_, "SHOW LISTS") => table(&["list", "items"], &[&["used_clients", "3"]]),
            (_, "SHOW STATE") => table(
                &["key", "value"],
                &[&["active", "no"], &["paused", "no"], &["suspended", "yes"]],
            ),
            _ => {
                let mut b = Vec::new();
                for (k, v) in [(b'S', "ERROR"), (b'C', "08P01"), (b'M', "invalid command")] {
                    b.push(k);
                    cstr(&mut b, v);
                }
                b.push(0);
                let mut m = message(b'E', &b);
                m.extend(message(b'Z', b"I"));
                m
            }
        };
        s.write_all(&reply)?;
    }
}

fn check(bouncer: &str) -> (Option<i32>, serde_json::Value, String) {
    let url = support::fresh_database(support::cluster(), "hostile_bouncer");
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--only", "pool", "--json", "--pgbouncer", bouncer])
        .env_clear()
        .env("DATABASE_URL", &url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {stderr} {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), report, stderr)
}

fn finding<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {report}"))
}

#[tokio::test]
async fn a_short_data_row_is_that_sources_error_never_a_panic() {
    let fake = Fake::start(Answer::ShortRow);
    let url = DatabaseUrl::parse(&fake.url()).unwrap();
    // The library: the one-shot reading and the kept console, twice (the process goes on).
    let err = pgvigil::remote::pgbouncer::read(&url, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind, BouncerFailure::Malformed, "{err}");
    assert!(err.reason.contains("malformed"), "{err}");
    let console = pgvigil::remote::pgbouncer::Console::new(url);
    for _ in 0..2 {
        let err = console.read(Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(err.kind, BouncerFailure::Malformed, "{err}");
    }
    // `check`: UNKNOWN (3) with the reason on the sizing finding, not 101 and no panic report.
    let (code, report, stderr) = tokio::task::spawn_blocking({
        let u = fake.url();
        move || check(&u)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(3), "{report} {stderr}");
    let sizing = finding(&report, "pool.sizing");
    assert_eq!(sizing["status"], "unknown", "{sizing}");
    let summary = sizing["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("PgBouncer postgres://pgbadmin@127.0.0.1:")
            && summary.contains("malformed"),
        "{summary}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_short_data_row_on_the_dashboard_is_the_panels_error_and_q_still_quits() {
    let fake = Fake::start(Answer::ShortRow);
    let db = support::fresh_database(support::cluster(), "hostile_bouncer");
    let url = fake.url();
    let pane = support::pane::Pane::start(
        "short-row",
        (120, 40),
        &[("DATABASE_URL", db.as_str())],
        &["--pgbouncer", &url, "--migrations", "/nonexistent"],
    );
    let (screen, _) = pane.wait_for("malformed", Duration::from_secs(20));
    assert!(
        screen.contains("pgbouncer: the console's answer is"),
        "{screen}"
    );
    // It keeps reading (the next reading fails the same way) and the keys still work.
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(3)).as_deref(),
        Some("0"),
        "{}",
        pane.screen()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!pane.screen().contains("panicked"), "{}", pane.screen());
}

#[tokio::test]
async fn an_endless_answer_stops_at_the_row_bound_and_a_wide_one_at_the_byte_bound() {
    for (width, bound) in [
        (1, format!("more than {MAX_ROWS} rows")),
        (64 * 1024, "8 MiB".to_string()),
    ] {
        let fake = Fake::start(Answer::Endless { width });
        let url = DatabaseUrl::parse(&fake.url()).unwrap();
        let started = Instant::now();
        // A long timeout: the bound, not the time, must end the reading.
        let err = pgvigil::remote::pgbouncer::read(&url, Duration::from_secs(30))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.kind, BouncerFailure::TooLarge, "{err}");
        assert!(err.reason.contains(&bound), "{err}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        eprintln!(
            "width {width}: stopped after {:?}, the fake had sent {} bytes: {err}",
            took,
            fake.sent.load(Ordering::Relaxed)
        );
    }
}

#[test]
fn a_refused_login_is_tried_once_until_r() {
    let fake = Fake::start(Answer::RefuseLogin);
    let db = support::fresh_database(support::cluster(), "hostile_bouncer");
    let url = fake.url();
    let pane = support::pane::Pane::start(
        "refused",
        (120, 40),
        &[("DATABASE_URL", db.as_str())],
        &[
            "--pgbouncer",
            &url,
            "--migrations",
            "/nonexistent",
            "--refresh",
            "1s",
        ],
    );
    let (screen, _) = pane.wait_for("not retried", Duration::from_secs(20));
    assert!(
        screen.contains("password authentication failed"),
        "{screen}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        fake.logins.load(Ordering::SeqCst),
        1,
        "one login in 4 s, not one a tick"
    );
    pane.keys("r");
    let deadline = Instant::now() + Duration::from_secs(3);
    while fake.logins.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fake.logins.load(Ordering::SeqCst), 2, "r tries once more");
    pane.keys("q");
    assert_eq!(pane.exit_code(Duration::from_secs(3)).as_deref(), Some("0"));
}

#[test]
fn a_suspended_bouncer_and_rates_per_database_are_shown_as_such() {
    let fake = Fake::start(Answer::Suspended);
    let (code, report, stderr) = check(&fake.url());
    let held = finding(&report, "pool.pgbouncer");
    assert_eq!(held["status"], "warn", "{held} {stderr}");
    assert!(
        held["summary"].as_str().unwrap().contains("SUSPENDED"),
        "{held}"
    );
    assert_eq!(code, Some(1), "{report}");

    let db = support::fresh_database(support::cluster(), "hostile_bouncer");
    let url = fake.url();
    let pane = support::pane::Pane::start(
        "suspended",
        (120, 40),
        &[("DATABASE_URL", db.as_str())],
        &["--pgbouncer", &url, "--migrations", "/nonexistent"],
    );
    let (screen, _) = pane.wait_for("pgbouncer SUSPENDED", Duration::from_secs(20));
    // Two users on one database: the database's rates once, each user's pool under it.
    assert_eq!(screen.matches("412 tps").count(), 1, "{screen}");
    assert!(screen.contains("app/docs: 2 active"), "{screen}");
    assert!(screen.contains("app/batch: 1 active"), "{screen}");
    pane.keys("q");
    assert_eq!(pane.exit_code(Duration::from_secs(3)).as_deref(), Some("0"));
}

#[test]
fn any_other_panic_in_the_dashboard_restores_the_terminal_and_ends_it() {
    // The debug-only trigger (see tui::app): a tokio task panics 1.5 s in.
    let db = support::fresh_database(support::cluster(), "hostile_bouncer");
    let pane = support::pane::Pane::start(
        "panic",
        (120, 40),
        &[
            ("DATABASE_URL", db.as_str()),
            ("PGVIGIL_TEST_PANIC_AFTER_MS", "1500"),
        ],
        &["--migrations", "/nonexistent"],
    );
    pane.wait_for("Server connections", Duration::from_secs(20));
    let code = pane.exit_code(Duration::from_secs(8));
    // The report may be long (a backtrace): the pane's history too.
    let screen = pane.tmux(&["capture-pane", "-p", "-S", "-2000"]);
    assert!(
        code.as_deref().is_some_and(|c| c != "0"),
        "exit code {code:?}\n{screen}"
    );
    assert!(screen.contains("test-only panic"), "{screen}");
    assert!(screen.contains("a panic ended the dashboard"), "{screen}");
    // The terminal is restored: no alternate screen, the dashboard's frame is gone.
    assert_eq!(pane.tmux(&["display", "-p", "#{alternate_on}"]).trim(), "0");
    assert!(!pane.screen().contains("Server connections"), "{screen}");
}
