//! Rendering of fixture states with ratatui's TestBackend, pinned with insta snapshots at
//! 80x24 and 120x40, plus one per theme file with colours, and the theme files themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use pgvigil::PoolStats;
use pgvigil::catalog::{ConnectionGroup, LongestTransaction, ServerView};
use pgvigil::checks::{CheckReport, Finding, Group, Status};
use pgvigil::checks::{MigrationEntry, MigrationState, MigrationStatus, PartialState};
use pgvigil::pool::{AcquireWait, LeakedConnection};
use pgvigil::pool::{Down, FailureKind, LinkState};
use pgvigil_cli::tui::message::Message;
use pgvigil_cli::tui::state::{JobKind, LastJob, Panel, PoolSource, RunningJob, State, update};
use pgvigil_cli::tui::theme::{Glyphs, Theme};
use pgvigil_cli::tui::ui::{Look, render};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 3, 0).unwrap() + chrono::Duration::seconds(s)
}

fn pool(in_use: u32) -> PoolStats {
    let saturation = in_use as f64 / 20.0;
    PoolStats {
        taken_at: t(12),
        size: 18,
        idle: 18 - in_use.min(18),
        in_use,
        peak_in_use: 19,
        min: 5,
        max: 20,
        waiters: if in_use >= 17 { 4 } else { 0 },
        saturation,
        saturation_warn_at: 0.8,
        saturation_warning: saturation >= 0.8,
        saturation_clear_below: 0.7,
        saturation_warnings_total: 3,
        acquire_wait: AcquireWait {
            window_secs: 60,
            window_count: 1200,
            p50_ms: 0.4,
            p95_ms: 12.5,
            p99_ms: 48.0,
            max_ms: 310.0,
            total_count: 81234,
            total_seconds: 42.0,
            max_ever_ms: 900.0,
        },
        acquisitions_total: 81234,
        timeouts_total: 0,
        errors_total: BTreeMap::new(),
        leaked: Vec::new(),
        leaks_total: 0,
        closed: false,
        lifecycle: Default::default(),
    }
}

fn server() -> ServerView {
    let g = |app: &str, state: &str, count, lock| ConnectionGroup {
        application: app.into(),
        state: state.into(),
        count,
        waiting_on_lock: lock,
    };
    ServerView {
        server_time: t(12),
        version: "15.20 (Debian 15.20-0+deb12u1)".into(),
        max_connections: 300,
        reserved_connections: 3,
        total: 112,
        groups: vec![
            g("docs-api", "active", 21, 1),
            g("docs-api", "idle", 64, 0),
            g("docs-api", "idle in transaction", 2, 0),
            g("docs-batch", "idle in transaction", 1, 0),
            g("pgvigil", "active", 1, 0),
            g("pgvigil", "idle", 4, 0),
            g("psql", "idle", 1, 0),
        ],
        longest_transaction: Some(LongestTransaction {
            pid: 48213,
            application: "docs-batch".into(),
            state: "idle in transaction".into(),
            seconds: 187.0,
            query: "UPDATE document_sources SET last_updated = now() WHERE source_name = $1".into(),
        }),
        lock_waiters: 1,
        lock_waits: vec![],
        index_builds: vec![],
        in_recovery: false,
        sees_all_sessions: true,
        read_ms: 0.4,
    }
}

fn migrations(pending: bool, mismatch: bool) -> MigrationState {
    let entry = |v: i64, d: &str, status| MigrationEntry {
        version: v,
        description: d.into(),
        status,
        installed_on: if status == MigrationStatus::Pending {
            None
        } else {
            Some(t(-86_400))
        },
        execution_ms: Some(12.0),
        no_transaction: v == 20261101000004,
        local_checksum: Some("a1b2c3d4e5f6".into()),
        applied_checksum: Some(
            if status == MigrationStatus::ChecksumMismatch {
                "0f9e8d7c6b5a"
            } else {
                "a1b2c3d4e5f6"
            }
            .into(),
        ),
    };
    let mut entries = vec![];
    if pending {
        entries.push(entry(
            20261201000000,
            "add language",
            MigrationStatus::Pending,
        ));
    }
    entries.push(entry(
        20261101000004,
        "documents embedding hnsw",
        MigrationStatus::Applied,
    ));
    entries.push(entry(20261101000003, "documents", MigrationStatus::Applied));
    entries.push(entry(
        20261101000002,
        "document sources",
        if mismatch {
            MigrationStatus::ChecksumMismatch
        } else {
            MigrationStatus::Applied
        },
    ));
    entries.push(entry(
        20261101000001,
        "pgvector and doc type",
        MigrationStatus::Applied,
    ));
    MigrationState {
        ledger_present: true,
        entries,
        partial: if mismatch {
            vec![PartialState::UnvalidatedConstraint {
                object: "constraint documents_token_count_check on documents".into(),
                fix: "ALTER TABLE documents VALIDATE CONSTRAINT documents_token_count_check;"
                    .into(),
            }]
        } else {
            vec![]
        },
        pending_objects_checked: true,
    }
}

fn healthy_findings() -> Vec<Finding> {
    vec![
        Finding::pass(
            Group::Pgvector,
            "pgvector.extension",
            "vector 0.8.0 installed (>= 0.7.0, no upgrade pending)",
        ),
        Finding::pass(
            Group::Pgvector,
            "pgvector.roundtrip",
            "3072-dim vector and halfvec round trip; cosine distance 0.184327 as expected",
        ),
        Finding::pass(
            Group::Pgvector,
            "pgvector.column",
            "documents.embedding is vector(3072)",
        ),
        Finding::pass(
            Group::Pgvector,
            "pgvector.index",
            "hnsw index documents_embedding_hnsw_idx on (embedding::halfvec(3072)) halfvec_cosine_ops, valid",
        ),
        Finding::pass(
            Group::Pgvector,
            "pgvector.knn",
            "KNN plan uses documents_embedding_hnsw_idx (planner chooses it); p95 3.1 ms over 10 KNN queries",
        ),
        Finding::pass(
            Group::Schema,
            "schema.diff",
            "matches the migrations (2 tables, 1 enums, 1 extensions; expected from scratch database on PostgreSQL 15.20)",
        ),
    ]
}

fn report(findings: Vec<Finding>, m: MigrationState) -> CheckReport {
    CheckReport::assemble(
        "postgres://app:***@db.internal:5432/prod".into(),
        t(-120),
        230.0,
        findings,
        Some(m),
        None,
    )
}

fn base() -> State {
    let mut s = State::new(
        pgvigil::DatabaseUrl::parse("postgres://app:pw@db.internal:5432/prod")
            .unwrap()
            .target(),
        t(12),
        FixedOffset::east_opt(3600).unwrap(),
        Duration::from_secs(1),
        0.8,
    );
    s.link = LinkState::Connected { since: t(-3600) };
    s.server = Some(server());
    s.server_at = Some(t(12));
    s.pool = Some(pool(9));
    for i in 0..300u64 {
        s.in_use_history.push_back(4 + (i * 7 % 11));
        s.wait_history.push_back(i * 13 % 40);
    }
    s.checks = Some((
        t(-120),
        report(healthy_findings(), migrations(false, false)),
    ));
    s.jobs.last.insert(
        JobKind::Verify,
        LastJob {
            finished: t(-120),
            seconds: 0.4,
            status: Status::Pass,
            summary: "OK: 0 failed, 0 warning, 0 unknown, 13 passed".into(),
            failure: None,
        },
    );
    s
}

fn fixture(name: &str) -> State {
    let mut s = base();
    match name {
        "healthy" => {}
        "saturated" => {
            s.pool = Some(pool(17));
            if let Some(p) = s.pool.as_mut() {
                p.leaked = vec![LeakedConnection {
                    label: "report-export".into(),
                    checked_out_at: t(-35),
                    age_secs: 35.0,
                }];
                p.timeouts_total = 2;
                p.errors_total.insert("timeout".into(), 2);
            }
            for v in s.in_use_history.iter_mut().rev().take(30) {
                *v = 17;
            }
        }
        "disconnected" => {
            s.link = LinkState::Waiting {
                attempt: 4,
                max_attempts: None,
                next_retry_at: t(20),
                kind: FailureKind::Io,
                down: Down {
                    since: t(-125),
                    last_error:
                        "error communicating with database: Connection refused (os error 111)"
                            .into(),
                },
            };
        }
        "job_running" => {
            s.jobs.running = Some(RunningJob {
                id: 3,
                kind: JobKind::Verify,
                started: t(5),
                progress: None,
            });
            s.jobs.queued = Some(JobKind::DryRun);
        }
        "job_failed" => {
            s.jobs.last.insert(
                JobKind::DryRun,
                LastJob {
                    finished: t(2),
                    seconds: 1.2,
                    status: Status::Unknown,
                    summary: "failed: lock_timeout: another session holds a conflicting lock"
                        .into(),
                    failure: None,
                },
            );
        }
        "migrations" => {
            s.checks = Some((t(-30), report(healthy_findings(), migrations(true, true))));
        }
        "pgvector_missing" => {
            let mut findings = vec![
                Finding::fail(
                    Group::Pgvector,
                    "pgvector.extension",
                    "extension vector is not created in this database (server offers 0.8.0)",
                )
                .fix("CREATE EXTENSION vector;"),
            ];
            for id in [
                "pgvector.roundtrip",
                "pgvector.column",
                "pgvector.index",
                "pgvector.knn",
            ] {
                findings.push(Finding::unknown(
                    Group::Pgvector,
                    id,
                    "not checked: the vector extension is not usable in this database",
                ));
            }
            s.checks = Some((t(-5), report(findings, migrations(false, false))));
        }
        "standby_unprivileged" => {
            // A standby, seen by a role without pg_monitor, with a hostile application name
            // and query text (escape sequences, a newline).
            if let Some(v) = s.server.as_mut() {
                v.in_recovery = true;
                v.sees_all_sessions = false;
                v.groups[0].application = "evil\x1b]0;pwned\x07\x1b[2J\nsecond line".into();
                if let Some(x) = v.longest_transaction.as_mut() {
                    x.query = "UPDATE t SET a = 1\x1b[31m -- red\r\nDROP".into();
                }
            }
        }
        "index_build" => {
            // The HNSW build on documents, a third of the way through, run by a hostile-named
            // client.
            if let Some(v) = s.server.as_mut() {
                v.index_builds.push(pgvigil::catalog::IndexBuild {
                    pid: 51234,
                    application: "psql\x1b[2J".into(),
                    table: "documents".into(),
                    index: Some("documents_embedding_hnsw_idx".into()),
                    command: "CREATE INDEX CONCURRENTLY".into(),
                    phase: "building index: loading tuples in tree".into(),
                    blocks_done: 41_000,
                    blocks_total: 123_000,
                    tuples_done: 0,
                    tuples_total: 0,
                    seconds: Some(5_400.0),
                });
            }
        }
        "apps" => {
            // Three application instances: one saturated, one healthy, one unreachable with a
            // hostile name in its error; HikariCP and pgvigil names mixed.
            use pgvigil::remote::{InstanceFigures, MetricFamily, PoolReading};
            use pgvigil_cli::tui::apps::{AppInstance, AppsSnapshot};
            let figures = |active: f64, max: f64, pending: f64, p95: f64, family| InstanceFigures {
                reading: PoolReading {
                    family,
                    active,
                    idle: max - active,
                    max,
                    pending,
                    timeouts_total: 0.0,
                    leaked: (family == MetricFamily::Pgvigil).then_some(0.0),
                    acquire_buckets: Vec::new(),
                    acquire_p95_reported: None,
                    pools: Vec::new(),
                },
                acquire_p95: Some(p95),
                timeouts_per_minute: if pending > 0.0 { 2.0 } else { 0.0 },
                peak_active: active,
            };
            // Through `update`, as the scraper's snapshots arrive: the verdicts are the state's.
            let _ = update(
                &mut s,
                Message::Apps(Box::new(AppsSnapshot {
                    taken_at: t(0),
                    instances: vec![
                        AppInstance {
                            name: "10.0.4.11:8080".into(),
                            // Named with `--app docs-api-1=URL`.
                            app: Some("docs-api-1".into()),
                            figures: Ok(figures(6.0, 20.0, 0.0, 0.0012, MetricFamily::Pgvigil)),
                            last_ok: Some(t(0)),
                        },
                        AppInstance {
                            name: "10.0.4.12:8080".into(),
                            // Named by the `pool` label of its metrics.
                            app: Some("orders-hikari".into()),
                            figures: Ok(figures(
                                19.0,
                                20.0,
                                4.0,
                                0.84,
                                MetricFamily::HikariMicrometer,
                            )),
                            last_ok: Some(t(0)),
                        },
                        AppInstance {
                            name: "10.0.4.13:8080\x1b[2J".into(),
                            app: None,
                            figures: Err(pgvigil::remote::ScrapeError::Connect(
                                "Connection refused (os error 111)\x1b]0;x\x07".into(),
                            )),
                            last_ok: Some(t(-14)),
                        },
                    ],
                })),
            );
        }
        "pgbouncer" => {
            // PgBouncer only (no --app): two users' pools on one database (its rates once),
            // clients queueing in one.
            let pool = |user: &str, cl_active, cl_waiting, maxwait_seconds| {
                pgvigil::remote::pgbouncer::BouncerPool {
                    database: "app".into(),
                    user: user.into(),
                    cl_active,
                    cl_waiting,
                    sv_active: cl_active,
                    sv_idle: 0,
                    sv_used: 0,
                    maxwait_seconds,
                    pool_mode: "transaction".into(),
                }
            };
            s.bouncer = Some(Ok(pgvigil::remote::pgbouncer::BouncerView {
                pools: vec![pool("batch", 1, 0, 0.0), pool("docs", 3, 2, 2.4)],
                databases: vec![pgvigil::remote::pgbouncer::BouncerDatabase {
                    name: "app".into(),
                    paused: false,
                    disabled: false,
                    xact_per_second: Some(412.0),
                    query_per_second: Some(1650.0),
                    avg_wait_us: Some(35_000.0),
                }],
                state: None,
                lists: Default::default(),
            }));
        }
        "pgbouncer_paused" => {
            // `PAUSE app` on the console: the database says so.
            s = fixture("pgbouncer");
            if let Some(Ok(view)) = &mut s.bouncer {
                view.databases[0].paused = true;
                view.databases[0].xact_per_second = Some(0.0);
            }
        }
        "source_errors" => {
            // Every source failing with a long reason: the reason is read first and whole,
            // the URL after it.
            use pgvigil_cli::tui::apps::{AppInstance, AppsSnapshot};
            s.apps = Some(AppsSnapshot {
                taken_at: t(0),
                instances: vec![AppInstance {
                    name: "10.0.4.13:8080".into(),
                    app: Some("docs-api-3".into()),
                    figures: Err(pgvigil::remote::ScrapeError::Timeout(
                        std::time::Duration::from_millis(800),
                    )),
                    last_ok: Some(t(-14)),
                }],
            });
            s.bouncer = Some(Err(pgvigil::remote::pgbouncer::BouncerError::new(
                "postgres://pgbadmin:***@127.0.0.1:57400/pgbouncer".into(),
                pgvigil::remote::pgbouncer::BouncerFailure::LoginRefused,
                "password authentication failed".into(),
            )));
            s.fleet = Some(Err(pgvigil::remote::ScrapeError::BadAnswer(
                "Prometheus http://prometheus.internal:9090: no answer within 800ms".into(),
            )));
        }
        "fleet" => {
            // A fleet through Prometheus beside two instances read directly.
            let _ = update(
                &mut s,
                Message::Fleet(Box::new(Ok(pgvigil::remote::FleetFigures {
                    instances: 40,
                    active: 610.0,
                    max: 800.0,
                    pending: 12.0,
                    timeouts_per_minute: 3.5,
                    acquire_p95: Some(0.22),
                    top: vec![
                        ("10.0.7.3:8080".into(), 1.0),
                        ("10.0.7.9:8080".into(), 0.95),
                        ("10.0.5.1:8080\x1b[31m".into(), 0.9),
                    ],
                }))),
            );
        }
        "thousand_connections" => {
            // One reading costs the server 5.1 ms: past the budget, the view is read every 3 s
            // and the title says so.
            let server = s.server.as_mut().unwrap();
            server.read_ms = 5.1;
            server.max_connections = 1200;
            server.total = 1005;
            server.groups[0].count = 1000;
        }
        "all_sources" | "source_apps" | "source_bouncer" | "source_fleet" => {
            // Applications, PgBouncer and a fleet at once: all side by side, or one of them
            // chosen with the cycling key (the title says which).
            let mut all = fixture("apps");
            all.bouncer = fixture("pgbouncer").bouncer;
            if let Some(Ok(view)) = &mut all.bouncer {
                view.lists = [
                    ("used_clients", 5),
                    ("free_clients", 45),
                    ("login_clients", 0),
                    ("used_servers", 3),
                    ("free_servers", 1),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            }
            if let Some(fleet) = fixture("fleet").fleet {
                let _ = update(&mut all, Message::Fleet(Box::new(fleet)));
            }
            all.chosen_source = match name {
                "source_apps" => PoolSource::Apps,
                "source_bouncer" => PoolSource::Bouncer,
                "source_fleet" => PoolSource::Fleet,
                _ => PoolSource::All,
            };
            return all;
        }
        "demo" | "demo_apps" | "demo_bouncer" => {
            // What `pgvigil demo` shows: three documents API instances named as the Server
            // panel names them (docs-api-1..3), the third through PgBouncer, and the long
            // verdict lines the issue found cut ("sizing: 21 + 1 others vs 297 usable: fits,
            // max 97/instanc~", "pgbouncer app/postgres: 3 active, 0 waiting, maxwait 0.0s~").
            use pgvigil::remote::{InstanceFigures, MetricFamily, PoolReading};
            use pgvigil_cli::tui::apps::{AppInstance, AppsSnapshot};
            let instance = |i: usize, active: f64, p95: f64| AppInstance {
                name: format!("127.0.0.1:3644{i}"),
                app: Some(format!("docs-api-{i}")),
                figures: Ok(InstanceFigures {
                    reading: PoolReading {
                        family: MetricFamily::Pgvigil,
                        active,
                        idle: 6.0 - active,
                        max: 6.0,
                        pending: 0.0,
                        timeouts_total: 0.0,
                        leaked: Some(0.0),
                        acquire_buckets: Vec::new(),
                        acquire_p95_reported: None,
                        pools: vec![format!("docs-api-{i}")],
                    },
                    acquire_p95: Some(p95),
                    timeouts_per_minute: 0.0,
                    peak_active: 6.0,
                }),
                last_ok: Some(t(0)),
            };
            if let Some(v) = s.server.as_mut() {
                v.total = 22;
                v.groups = ["docs-api-1", "docs-api-2", "docs-api-3", "pgvigil-demo"]
                    .iter()
                    .map(|app| ConnectionGroup {
                        application: app.to_string(),
                        state: "active".into(),
                        count: 5,
                        waiting_on_lock: 0,
                    })
                    .collect();
            }
            let _ = update(
                &mut s,
                Message::Apps(Box::new(AppsSnapshot {
                    taken_at: t(0),
                    instances: vec![
                        instance(1, 6.0, 0.015),
                        instance(2, 5.0, 0.011),
                        instance(3, 2.0, 0.021),
                    ],
                })),
            );
            s.bouncer = Some(Ok(pgvigil::remote::pgbouncer::BouncerView {
                pools: vec![pgvigil::remote::pgbouncer::BouncerPool {
                    database: "app".into(),
                    user: "postgres".into(),
                    cl_active: 3,
                    cl_waiting: 0,
                    sv_active: 2,
                    sv_idle: 1,
                    sv_used: 0,
                    maxwait_seconds: 0.0,
                    pool_mode: "transaction".into(),
                }],
                databases: vec![pgvigil::remote::pgbouncer::BouncerDatabase {
                    name: "app".into(),
                    paused: false,
                    disabled: false,
                    xact_per_second: Some(17.0),
                    query_per_second: Some(60.0),
                    avg_wait_us: Some(400.0),
                }],
                state: None,
                lists: Default::default(),
            }));
            s.chosen_source = match name {
                "demo_apps" => PoolSource::Apps,
                "demo_bouncer" => PoolSource::Bouncer,
                _ => PoolSource::All,
            };
        }
        other => panic!("no fixture {other}"),
    }
    s
}

fn draw(state: &State, theme: &Theme, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    let glyphs = Glyphs::unicode();
    let look = Look {
        theme,
        glyphs: &glyphs,
        log: None,
    };
    terminal.draw(|f| render(f, state, &look)).unwrap();
    terminal
}

const FIXTURES: &[&str] = &[
    "healthy",
    "saturated",
    "disconnected",
    "job_running",
    "job_failed",
    "migrations",
    "pgvector_missing",
    "standby_unprivileged",
    "index_build",
    "apps",
    "pgbouncer",
    "pgbouncer_paused",
    "source_errors",
    "fleet",
    "thousand_connections",
    "all_sources",
    "source_apps",
    "source_bouncer",
    "source_fleet",
    "demo",
    "demo_apps",
    "demo_bouncer",
];

/// Every Pool view (`s` cycles them when several sources are watched).
const POOL_VIEWS: &[&str] = &[
    "apps",
    "pgbouncer",
    "fleet",
    "all_sources",
    "source_apps",
    "source_bouncer",
    "source_fleet",
    "demo",
    "demo_apps",
    "demo_bouncer",
];

#[test]
fn text_from_the_server_never_reaches_the_terminal_raw() {
    let text = draw(
        &fixture("standby_unprivileged"),
        &Theme::builtin("default"),
        120,
        40,
    )
    .backend()
    .to_string();
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
    assert!(text.contains("evil\\e]0;pwned\\x07"), "{text}");
    assert!(text.contains("STANDBY"), "{text}");
    assert!(text.contains("grant pg_monitor"), "{text}");
}

#[test]
fn fixtures_at_80x24_and_120x40() {
    let theme = Theme::builtin("default");
    for name in FIXTURES {
        for (w, h) in [(80, 24), (120, 40)] {
            let terminal = draw(&fixture(name), &theme, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend().to_string());
        }
    }
}

#[test]
fn one_snapshot_per_theme_file_with_colours() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/themes")).unwrap() {
        let path = entry.unwrap().path();
        let theme = Theme::load(path.to_str().unwrap()).unwrap();
        let terminal = draw(&fixture("saturated"), &theme, 80, 24);
        // The buffer's Debug form lists the styles per run of cells: colours are part of it.
        insta::assert_snapshot!(
            format!("theme_{}", theme.name),
            format!("{:?}", terminal.backend().buffer())
        );
    }
}

#[test]
fn saturation_warning_is_red_in_the_default_theme_and_reversed_in_monochrome() {
    let cell_style = |theme: &Theme| {
        let terminal = draw(&fixture("saturated"), theme, 120, 40);
        let buffer = terminal.backend().buffer();
        for y in 0..40u16 {
            let row: Vec<&str> = (0..120u16).map(|x| buffer[(x, y)].symbol()).collect();
            for x in 0..row.len() - 9 {
                if row[x..x + 9].concat() == "SATURATED" {
                    return buffer[(x as u16, y)].style();
                }
            }
        }
        panic!("no SATURATED on screen");
    };
    let default = cell_style(&Theme::builtin("default"));
    assert_eq!(default.fg, Some(ratatui::style::Color::LightRed));
    let mono = cell_style(&Theme::builtin("monochrome"));
    assert!(
        mono.add_modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    assert!(matches!(mono.fg, None | Some(ratatui::style::Color::Reset)));
}

#[test]
fn small_windows_get_a_clear_message_never_a_panic() {
    let theme = Theme::builtin("default");
    for (w, h) in [
        (60, 20),
        (79, 24),
        (80, 23),
        (20, 5),
        (1, 1),
        (0, 0),
        (200, 3),
    ] {
        let terminal = draw(&fixture("healthy"), &theme, w, h);
        if w >= 10 && h >= 1 {
            let text = terminal.backend().to_string();
            assert!(
                text.contains(&format!("have {w}x{h}")) || w < 40,
                "{w}x{h}: {text}"
            );
        }
    }
    let terminal = draw(&fixture("healthy"), &theme, 60, 20);
    insta::assert_snapshot!("too_small_60x20", terminal.backend().to_string());
    // Every size from tiny to large renders without panicking.
    for w in (0..=130).step_by(7) {
        for h in (0..=45).step_by(5) {
            draw(&fixture("saturated"), &theme, w, h);
        }
    }
}

#[test]
fn ascii_glyphs_contain_no_unicode_outside_text() {
    let theme = Theme::builtin("default");
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let glyphs = Glyphs::ascii();
    let look = Look {
        theme: &theme,
        glyphs: &glyphs,
        log: None,
    };
    terminal
        .draw(|f| render(f, &fixture("saturated"), &look))
        .unwrap();
    let text = terminal.backend().to_string();
    assert!(text.is_ascii(), "{text}");
    assert!(text.contains("+--"), "{text}");
}

#[test]
fn password_never_appears_on_screen() {
    let mut s = fixture("disconnected");
    let url = pgvigil::DatabaseUrl::parse("postgres://app:Sup3r-S3cret@db.internal/prod").unwrap();
    s.target = url.target();
    if let LinkState::Waiting {
        down: Down { last_error, .. },
        ..
    } = &mut s.link
    {
        *last_error =
            url.scrub("password authentication failed for user \"app\" with Sup3r-S3cret");
    }
    let text = draw(&s, &Theme::builtin("default"), 120, 40)
        .backend()
        .to_string();
    assert!(!text.contains("Sup3r-S3cret"), "{text}");
    assert!(text.contains("app:***@db.internal:5432/prod"), "{text}");
}

#[test]
fn every_theme_file_parses_and_a_broken_one_names_file_and_key() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/themes");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let theme = Theme::load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            format!("{}.toml", theme.name),
            path.file_name().unwrap().to_str().unwrap()
        );
        names.push(theme.name);
    }
    names.sort();
    assert_eq!(names, ["default", "high-contrast", "light", "monochrome"]);

    let broken = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(format!("{dir}/default.toml"))
        .unwrap()
        .replace("warn = \"yellow bold\"", "warn = \"mustard bold\"");
    std::fs::write(broken.path(), text).unwrap();
    let err = Theme::load(broken.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&broken.path().display().to_string()), "{err}");
    assert!(err.contains("styles.warn"), "{err}");
    assert!(err.contains("mustard"), "{err}");

    let missing_key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        missing_key.path(),
        "name = \"x\"\n[styles]\ntext = \"reset\"\n",
    )
    .unwrap();
    let err = Theme::load(missing_key.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("styles.dim` is missing"), "{err}");

    let err = Theme::load("solarized").unwrap_err().to_string();
    assert!(err.starts_with("--theme solarized: no such theme"), "{err}");
}

#[test]
fn the_help_screen_lists_every_key_of_the_keymap_including_the_pool_source() {
    let mut state = fixture("all_sources");
    state.help = true;
    let text = draw(&state, &Theme::builtin("default"), 80, 24)
        .backend()
        .to_string();
    for binding in pgvigil_cli::tui::keymap::KEYMAP {
        assert!(
            text.contains(binding.description),
            "{}: {text}",
            binding.description
        );
    }
    assert!(
        text.contains("     s  pool source: all, apps, pgbouncer, fleet"),
        "{text}"
    );
}

#[path = "support/screen.rs"]
mod screen;
use screen::rows;

/// How a verdict line starts (after the panel's border and indentation): the lines whose end
/// carries the verdict or its figures.
const VERDICT_LINES: &[&str] = &[
    "sizing",
    "pgbouncer",
    "fleet of",
    "apps in use",
    "waiting",
    "timeouts",
    "app/",
    "docs-api-",
    "orders-hikari",
    "10.0.4.",
    "127.0.0.1:",
    "pgvigil's own pool",
    "clients",
    "STANDBY",
    "grant pg_monitor",
    // A failed or warning finding, a partial migration: the mark, then words that all count.
    // (A pass is its mark and its name, first on the row; its detail may be cut where the
    // panel is short of rows.)
    "\u{2717}",
    "\u{25b2}",
];

/// Every row of a panel that starts like a verdict line and ends in the cut mark: none may.
fn cut_verdicts(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let mut cut = Vec::new();
    for row in rows(terminal) {
        for segment in row.split('\u{2502}') {
            let text = segment.trim();
            if text.ends_with(pgvigil_cli::tui::ui::CUT)
                && VERDICT_LINES.iter().any(|v| text.starts_with(v))
            {
                cut.push(text.to_string());
            }
        }
    }
    cut
}

#[test]
fn no_verdict_is_cut_at_80_or_120_columns() {
    let theme = Theme::builtin("default");
    let mut failures = Vec::new();
    for name in FIXTURES {
        // At 80 columns one panel shows at a time: every one of them, as Tab moves.
        for panel in [
            Panel::Pool,
            Panel::Server,
            Panel::Migrations,
            Panel::Checks,
            Panel::Jobs,
            Panel::Window,
        ] {
            let mut state = fixture(name);
            state.focus = panel;
            let terminal = draw(&state, &theme, 80, 24);
            for c in cut_verdicts(&terminal) {
                failures.push(format!("{name} 80x24 {panel:?}: {c}"));
            }
        }
        let terminal = draw(&fixture(name), &theme, 120, 40);
        for c in cut_verdicts(&terminal) {
            failures.push(format!("{name} 120x40: {c}"));
        }
        // The header keeps the server version at both sizes.
        for (w, h) in [(80, 24), (120, 40)] {
            let header = rows(&draw(&fixture(name), &theme, w, h)).remove(0);
            if !header.contains("PG 15.20") {
                failures.push(format!(
                    "{name} {w}x{h}: header without the version: {header}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The screen's text with the panels' borders and the line breaks as spaces, whitespace
/// collapsed: a wrapped line reads whole.
fn joined(terminal: &Terminal<TestBackend>) -> String {
    let text = rows(terminal)
        .iter()
        .map(|r| r.replace('\u{2502}', " "))
        .collect::<Vec<_>>()
        .join(" ");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_demos_long_verdicts_are_read_whole_in_every_pool_view() {
    let theme = Theme::builtin("default");
    // At 80 columns the Pool panel has the width: a wrapped line reads whole when joined.
    let text = joined(&draw(&fixture("demo"), &theme, 80, 24));
    for phrase in [
        "sizing fits: 21 + 1 others of 297 usable; max 97/instance fits (peak 6)",
        "app/postgres: 3 active, 0 waiting, maxwait 0ms (transaction)",
        "docs-api-1 127.0.0.1:36441",
        "PG 15.20",
    ] {
        assert!(text.contains(phrase), "{phrase}: {text}");
    }
    let text = joined(&draw(&fixture("demo_bouncer"), &theme, 80, 24));
    assert!(
        text.contains("pgbouncer app: 17 tps, avg wait <1ms"),
        "{text}"
    );
    // Every Pool view with applications at both sizes names the instances as the Server
    // panel does.
    for name in POOL_VIEWS {
        let state = fixture(name);
        if state.apps.is_none()
            || !matches!(state.pool_source(), PoolSource::All | PoolSource::Apps)
        {
            continue;
        }
        for (w, h) in [(80, 24), (120, 40)] {
            let text = joined(&draw(&state, &theme, w, h));
            assert!(
                text.contains("docs-api-") || text.contains("orders-hikari"),
                "{name} {w}x{h}: {text}"
            );
        }
    }
}

/// Every Pool view is in FIXTURES (snapshots at 80x24 and 120x40); here the other panels at
/// 80x24, as Tab brings each to the screen, and the help.
#[test]
fn every_panel_at_80x24_as_tab_moves() {
    let theme = Theme::builtin("default");
    // Tab moves between the panels; each has the whole width.
    for panel in [
        Panel::Server,
        Panel::Migrations,
        Panel::Checks,
        Panel::Jobs,
        Panel::Window,
        Panel::Log,
    ] {
        let mut state = fixture("demo");
        state.focus = panel;
        let terminal = draw(&state, &theme, 80, 24);
        insta::assert_snapshot!(
            format!("narrow_{panel:?}_80x24").to_lowercase(),
            terminal.backend().to_string()
        );
    }
    let mut state = fixture("demo");
    state.help = true;
    let terminal = draw(&state, &theme, 80, 24);
    insta::assert_snapshot!("help_80x24", terminal.backend().to_string());
}

#[test]
fn the_help_says_where_dry_runs_run_and_lists_each_key_once() {
    let mut state = fixture("healthy");
    state.help = true;
    let text = rows(&draw(&state, &Theme::builtin("default"), 80, 24)).join("\n");
    assert!(!text.contains("rolled back"), "{text}");
    assert!(!text.contains("always roll back"), "{text}");
    assert!(text.contains("on the dev database"), "{text}");
    let minus_rows = text.lines().filter(|l| l.contains("     -  ")).count();
    assert_eq!(minus_rows, 1, "{text}");
}

#[test]
fn an_application_row_warns_by_the_librarys_rule_with_its_hold() {
    // An instance at 95 % raises the warning; at 50 % a second later it still warns ("was
    // 80%+", as pgvigil's own pool does), and clears only after the hold of calm.
    use pgvigil::pool::SaturationLevel;
    use pgvigil::remote::{InstanceFigures, MetricFamily, PoolReading};
    use pgvigil_cli::tui::apps::{AppInstance, AppsSnapshot};
    let snapshot = |at: i64, active: f64| {
        Message::Apps(Box::new(AppsSnapshot {
            taken_at: t(at),
            instances: vec![AppInstance {
                name: "10.0.4.11:8080".into(),
                app: Some("docs-api-1".into()),
                figures: Ok(InstanceFigures {
                    reading: PoolReading {
                        family: MetricFamily::Pgvigil,
                        active,
                        idle: 20.0 - active,
                        max: 20.0,
                        pending: 0.0,
                        timeouts_total: 0.0,
                        leaked: Some(0.0),
                        acquire_buckets: Vec::new(),
                        acquire_p95_reported: None,
                        pools: Vec::new(),
                    },
                    acquire_p95: Some(0.001),
                    timeouts_per_minute: 0.0,
                    peak_active: active,
                }),
                last_ok: Some(t(at)),
            }],
        }))
    };
    let mut s = base();
    let level = |s: &State| s.verdicts.app(&s.apps.as_ref().unwrap().instances[0]);
    let _ = update(&mut s, snapshot(20, 19.0));
    assert_eq!(level(&s), SaturationLevel::Saturated);
    let _ = update(&mut s, snapshot(21, 10.0));
    assert_eq!(level(&s), SaturationLevel::Cooling);
    // The gauge of the sum says so too, as pgvigil's own pool's would.
    let text = joined(&draw(&s, &Theme::builtin("default"), 120, 40));
    assert!(text.contains("was 80%+"), "{text}");
    let _ = update(&mut s, snapshot(30, 10.0));
    assert_eq!(level(&s), SaturationLevel::Cooling);
    let _ = update(&mut s, snapshot(32, 10.0));
    assert_eq!(level(&s), SaturationLevel::Calm);
    // 15/20 = 75 %: within ten points of the threshold, a band, not a warning.
    let _ = update(&mut s, snapshot(33, 15.0));
    assert_eq!(level(&s), SaturationLevel::Near);
}

#[test]
fn the_server_tab_warns_while_sessions_wait_on_a_lock() {
    // The demo fixture's server has a lock waiter (and connections well under the limit): the
    // panel draws the wait as a warning, and its mark in the narrow layout's tab bar says so.
    let theme = Theme::builtin("default");
    let mut state = fixture("demo");
    let bar = |s: &State| rows(&draw(s, &theme, 80, 24))[1].clone();
    assert!(bar(&state).contains("Server ▲"), "{}", bar(&state));
    if let Some(server) = state.server.as_mut() {
        server.lock_waiters = 0;
    }
    assert!(bar(&state).contains("Server ✓"), "{}", bar(&state));
}
