//! The dashboard's update function as a table: messages in, state and effects out.

mod support;

use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use pgvigil::checks::{CheckReport, Finding, Group};
use pgvigil::pool::{Down, LinkState};
use pgvigil_cli::tui::keymap::Action;
use pgvigil_cli::tui::message::{JobMessage, Message};
use pgvigil_cli::tui::snapshot::Snapshot;
use pgvigil_cli::tui::state::{Effect, JobKind, JobOutcome, Panel, State, update};

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn state() -> State {
    State::new(
        pgvigil::DatabaseUrl::parse("postgres://app:pw@db:5432/prod")
            .unwrap()
            .target(),
        t(0),
        FixedOffset::east_opt(3600).unwrap(),
        Duration::from_secs(1),
        0.8,
    )
}

fn key(c: char) -> Message {
    Message::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> Message {
    Message::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn connected_snapshot(at: i64) -> Message {
    Message::Server(Box::new(Snapshot {
        taken_at: t(at),
        link: LinkState::Connected { since: t(0) },
        server: None,
        pool: None,
    }))
}

fn report() -> CheckReport {
    CheckReport::assemble(
        "x".into(),
        t(0),
        10.0,
        vec![Finding::pass(Group::Pgvector, "pgvector.extension", "ok")],
        None,
        None,
    )
}

#[test]
fn two_v_presses_start_one_job() {
    let mut s = state();
    assert_eq!(
        update(&mut s, key('v')),
        vec![Effect::StartJob {
            id: 1,
            kind: JobKind::Verify
        }]
    );
    assert_eq!(update(&mut s, key('v')), vec![]);
    assert_eq!(s.jobs.running.as_ref().unwrap().kind, JobKind::Verify);
    assert_eq!(s.jobs.queued, None);
}

#[test]
fn a_request_of_another_kind_waits_and_the_newest_wins() {
    let mut s = state();
    update(&mut s, key('v'));
    assert_eq!(update(&mut s, key('d')), vec![]);
    assert_eq!(s.jobs.queued, Some(JobKind::DryRun));
    // A later request replaces the queued one.
    s.jobs.running.as_mut().unwrap().kind = JobKind::Status;
    update(&mut s, key('v'));
    assert_eq!(s.jobs.queued, Some(JobKind::Verify));
    // When the running job ends, the queued one starts.
    let effects = update(
        &mut s,
        Message::Job(JobMessage::Done {
            id: 1,
            outcome: JobOutcome::Checked(Box::new(report())),
        }),
    );
    assert_eq!(
        effects,
        vec![Effect::StartJob {
            id: 2,
            kind: JobKind::Verify
        }]
    );
    assert_eq!(s.jobs.queued, None);
}

#[test]
fn esc_cancels_the_running_job_and_drops_the_queue() {
    let mut s = state();
    update(&mut s, key('v'));
    update(&mut s, key('d'));
    assert_eq!(
        update(&mut s, code(KeyCode::Esc)),
        vec![Effect::CancelJob { id: 1 }]
    );
    assert_eq!(s.jobs.queued, None);
    // The cancelled job reports back; nothing else starts.
    assert_eq!(
        update(
            &mut s,
            Message::Job(JobMessage::Done {
                id: 1,
                outcome: JobOutcome::Cancelled
            })
        ),
        vec![]
    );
    assert!(s.jobs.running.is_none());
    assert_eq!(s.jobs.last[&JobKind::Verify].summary, "cancelled");
    // A stale result for a job that is no longer running changes nothing.
    assert_eq!(
        update(
            &mut s,
            Message::Job(JobMessage::Done {
                id: 9,
                outcome: JobOutcome::Cancelled
            })
        ),
        vec![]
    );
}

#[test]
fn table_of_keys_to_effects() {
    let table: Vec<(Message, Vec<Effect>)> = vec![
        (key('r'), vec![Effect::RetryNow]),
        (key('p'), vec![Effect::SetPaused(true)]),
        (key('p'), vec![Effect::SetPaused(false)]),
        (
            key('+'),
            vec![Effect::SetRefresh(Duration::from_millis(500))],
        ),
        (key('+'), vec![]), // already the fastest
        (key('-'), vec![Effect::SetRefresh(Duration::from_secs(1))]),
        (key('-'), vec![Effect::SetRefresh(Duration::from_secs(2))]),
        (
            key('l'),
            vec![Effect::SetLogLevel(tui_logger::LevelFilter::Debug)],
        ),
        (key('x'), vec![]),
        (key('q'), vec![Effect::Quit]),
    ];
    let mut s = state();
    for (i, (msg, want)) in table.into_iter().enumerate() {
        assert_eq!(update(&mut s, msg), want, "row {i}");
    }
}

#[test]
fn ctrl_c_quits_and_cancels_a_running_job() {
    let mut s = state();
    update(&mut s, key('d'));
    let effects = update(
        &mut s,
        Message::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert_eq!(effects, vec![Effect::CancelJob { id: 1 }, Effect::Quit]);
}

#[test]
fn focus_cycles_and_scrolling_follows_it() {
    let mut s = state();
    assert_eq!(s.focus, Panel::Pool);
    update(&mut s, code(KeyCode::Tab));
    assert_eq!(s.focus, Panel::Server);
    update(&mut s, code(KeyCode::Down));
    update(&mut s, code(KeyCode::PageDown));
    assert_eq!(s.scroll_of(Panel::Server), 11);
    update(&mut s, code(KeyCode::Up));
    assert_eq!(s.scroll_of(Panel::Server), 10);
    update(
        &mut s,
        Message::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)),
    );
    update(
        &mut s,
        Message::Key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT)),
    );
    assert_eq!(s.focus, Panel::Log);
    assert_eq!(
        update(&mut s, code(KeyCode::PageUp)),
        vec![Effect::ScrollLog(Action::PageUp)]
    );
}

#[test]
fn help_is_modal() {
    let mut s = state();
    update(&mut s, key('?'));
    assert!(s.help);
    // Any other key only closes it.
    assert_eq!(update(&mut s, key('v')), vec![]);
    assert!(!s.help);
    assert!(s.jobs.running.is_none());
}

#[test]
fn first_connection_reads_the_migration_status_once() {
    let mut s = state();
    assert_eq!(
        update(&mut s, connected_snapshot(1)),
        vec![Effect::StartJob {
            id: 1,
            kind: JobKind::Status
        }]
    );
    assert_eq!(update(&mut s, connected_snapshot(2)), vec![]);
    update(
        &mut s,
        Message::Job(JobMessage::Done {
            id: 1,
            outcome: JobOutcome::Checked(Box::new(report())),
        }),
    );
    assert!(s.checks.is_some());
    // Losing and regaining the connection does not repeat it once results exist.
    update(
        &mut s,
        Message::Server(Box::new(Snapshot {
            taken_at: t(3),
            link: LinkState::Connecting {
                attempt: 1,
                max_attempts: None,
                since: t(3),
                down: Some(Down {
                    since: t(3),
                    last_error: "refused".into(),
                }),
            },
            server: None,
            pool: None,
        })),
    );
    // No job again; the log hears once that the database answers again.
    assert_eq!(
        update(&mut s, connected_snapshot(5)),
        vec![Effect::Log(
            pgvigil_cli::tui::source_errors::SourceLog::Recovered {
                source: "database".into()
            }
        )]
    );
}

#[test]
fn snapshots_fill_history_and_pause_freezes_the_picture() {
    let mut s = state();
    let with_pool = |at: i64, in_use: u32| {
        let mut pool = support_pool();
        pool.in_use = in_use;
        Message::Server(Box::new(Snapshot {
            taken_at: t(at),
            link: LinkState::Connected { since: t(0) },
            server: None,
            pool: Some(pool),
        }))
    };
    update(&mut s, with_pool(1, 3));
    update(&mut s, with_pool(2, 7));
    assert_eq!(
        s.in_use_history.iter().copied().collect::<Vec<_>>(),
        vec![3, 7]
    );
    update(&mut s, key('p'));
    update(&mut s, with_pool(3, 19));
    assert_eq!(
        s.pool.as_ref().unwrap().in_use,
        7,
        "paused: the snapshot is not applied"
    );
    update(&mut s, key('p'));
    update(&mut s, with_pool(4, 19));
    assert_eq!(s.pool.as_ref().unwrap().in_use, 19);
    // The clock moves with ticks regardless.
    update(&mut s, Message::Tick(t(10)));
    assert_eq!(s.now, t(10));
}

fn support_pool() -> pgvigil::PoolStats {
    pgvigil::PoolStats {
        taken_at: t(0),
        size: 5,
        idle: 5,
        in_use: 0,
        peak_in_use: 0,
        min: 5,
        max: 20,
        waiters: 0,
        saturation: 0.0,
        saturation_warn_at: 0.8,
        saturation_warning: false,
        saturation_clear_below: 0.7,
        saturation_warnings_total: 0,
        acquire_wait: Default::default(),
        acquisitions_total: 0,
        timeouts_total: 0,
        errors_total: Default::default(),
        leaked: vec![],
        leaks_total: 0,
        closed: false,
        lifecycle: Default::default(),
    }
}

#[test]
fn s_cycles_the_pool_source_through_what_is_watched() {
    use pgvigil_cli::tui::state::PoolSource;
    let mut s = state();
    // Nothing watched, then one source: nothing to cycle through.
    assert!(update(&mut s, key('s')).is_empty());
    assert_eq!(s.pool_source(), PoolSource::All);
    update(
        &mut s,
        Message::Bouncer(Box::new(Err(bouncer_error(
            pgvigil::remote::pgbouncer::BouncerFailure::Failed,
            "refused",
        )))),
    );
    update(&mut s, key('s'));
    assert_eq!(s.pool_sources(), vec![PoolSource::Bouncer]);
    assert_eq!(s.pool_source(), PoolSource::All);
    // Two sources: all, applications, pgbouncer, and round again; the Pool panel takes focus.
    update(
        &mut s,
        Message::Apps(Box::new(pgvigil_cli::tui::apps::AppsSnapshot {
            taken_at: t(1),
            instances: Vec::new(),
        })),
    );
    s.focus = Panel::Log;
    let mut seen = Vec::new();
    for _ in 0..3 {
        update(&mut s, key('s'));
        seen.push(s.pool_source());
    }
    assert_eq!(
        seen,
        vec![PoolSource::Apps, PoolSource::Bouncer, PoolSource::All]
    );
    assert_eq!(s.focus, Panel::Pool);
    // A chosen source that is no longer watched falls back to all.
    update(&mut s, key('s'));
    assert_eq!(s.pool_source(), PoolSource::Apps);
    s.apps = None;
    assert_eq!(s.pool_source(), PoolSource::All);
}

fn bouncer_error(
    kind: pgvigil::remote::pgbouncer::BouncerFailure,
    reason: &str,
) -> pgvigil::remote::pgbouncer::BouncerError {
    pgvigil::remote::pgbouncer::BouncerError::new(
        "postgres://pgbadmin:***@127.0.0.1:6432/pgbouncer".into(),
        kind,
        reason.into(),
    )
}

fn logs(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(line) => Some(line.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_source_error_is_logged_when_it_starts_and_changes_never_each_tick() {
    use pgvigil::remote::pgbouncer::BouncerFailure;
    let mut s = state();
    let mut lines = Vec::new();
    // Ten ticks of the same failure, two of another, then an answer.
    for reason in ["no answer within 800ms"; 10]
        .into_iter()
        .chain(["connection refused"; 2])
    {
        let err = bouncer_error(BouncerFailure::NoAnswer, reason);
        lines.extend(logs(&update(&mut s, Message::Bouncer(Box::new(Err(err))))));
    }
    let view = pgvigil::remote::pgbouncer::BouncerView {
        pools: Vec::new(),
        databases: Vec::new(),
        state: None,
        lists: Default::default(),
    };
    for _ in 0..3 {
        lines.extend(logs(&update(
            &mut s,
            Message::Bouncer(Box::new(Ok(view.clone()))),
        )));
    }
    assert_eq!(
        lines,
        [
            "pgbouncer: no answer within 800ms (postgres://pgbadmin:***@127.0.0.1:6432/pgbouncer)",
            "pgbouncer: now connection refused (postgres://pgbadmin:***@127.0.0.1:6432/pgbouncer)",
            "pgbouncer: answering again",
        ]
    );
    // The same for the fleet, an application instance and the database.
    let fleet = |e: &str| {
        Message::Fleet(Box::new(Err(pgvigil::remote::ScrapeError::BadAnswer(
            e.to_string(),
        ))))
    };
    assert_eq!(logs(&update(&mut s, fleet("Prometheus: 503"))).len(), 1);
    assert!(logs(&update(&mut s, fleet("Prometheus: 503"))).is_empty());
    let apps = || {
        Message::Apps(Box::new(pgvigil_cli::tui::apps::AppsSnapshot {
            taken_at: t(1),
            instances: vec![pgvigil_cli::tui::apps::AppInstance {
                name: "10.0.4.13:8080".into(),
                app: None,
                figures: Err(pgvigil::remote::ScrapeError::Connect(
                    "Connection refused".into(),
                )),
                last_ok: None,
            }],
        }))
    };
    assert_eq!(
        logs(&update(&mut s, apps())),
        ["app 10.0.4.13:8080: cannot connect: Connection refused"]
    );
    assert!(logs(&update(&mut s, apps())).is_empty());
    let down = |at: i64| {
        Message::Server(Box::new(Snapshot {
            taken_at: t(at),
            link: LinkState::Waiting {
                attempt: 2,
                max_attempts: None,
                next_retry_at: t(at + 1),
                kind: pgvigil::pool::FailureKind::Io,
                down: Down {
                    since: t(0),
                    last_error: "Connection refused (os error 111)".into(),
                },
            },
            server: None,
            pool: None,
        }))
    };
    assert_eq!(
        logs(&update(&mut s, down(1))),
        ["database: Connection refused (os error 111)"]
    );
    assert!(logs(&update(&mut s, down(2))).is_empty());
}

#[test]
fn r_retries_pgbouncer_only_when_it_refused_the_login() {
    use pgvigil::remote::pgbouncer::BouncerFailure;
    let mut s = state();
    update(
        &mut s,
        Message::Bouncer(Box::new(Err(bouncer_error(
            BouncerFailure::NoAnswer,
            "slow",
        )))),
    );
    assert_eq!(update(&mut s, key('r')), vec![Effect::RetryNow]);
    update(
        &mut s,
        Message::Bouncer(Box::new(Err(bouncer_error(
            BouncerFailure::LoginRefused,
            "password authentication failed",
        )))),
    );
    assert_eq!(
        update(&mut s, key('r')),
        vec![Effect::RetryNow, Effect::RetryBouncer]
    );
}

// One message per producer: each lands in its own part of the state, errors as they came.

#[test]
fn an_application_scrape_keeps_each_instance_with_its_typed_error() {
    use pgvigil::remote::ScrapeError;
    use pgvigil_cli::tui::apps::{AppInstance, AppsSnapshot};
    let mut s = state();
    let refused = ScrapeError::Connect("Connection refused".into());
    update(
        &mut s,
        Message::Apps(Box::new(AppsSnapshot {
            taken_at: t(1),
            instances: vec![AppInstance {
                name: "10.0.4.13:8080".into(),
                app: None,
                figures: Err(refused.clone()),
                last_ok: None,
            }],
        })),
    );
    let apps = s.apps.as_ref().expect("the scrape is kept");
    assert_eq!(apps.taken_at, t(1));
    assert_eq!(apps.instances[0].figures.as_ref().unwrap_err(), &refused);
    assert!(s.source_errors.is_failing("app 10.0.4.13:8080"));
}

#[test]
fn a_pgbouncer_reading_keeps_the_view_or_its_typed_error() {
    use pgvigil::remote::pgbouncer::{BouncerFailure, BouncerView};
    let mut s = state();
    let refused = bouncer_error(
        BouncerFailure::LoginRefused,
        "password authentication failed",
    );
    update(&mut s, Message::Bouncer(Box::new(Err(refused.clone()))));
    assert_eq!(s.bouncer.as_ref().unwrap().as_ref().unwrap_err(), &refused);
    let view = BouncerView {
        pools: Vec::new(),
        databases: Vec::new(),
        state: None,
        lists: Default::default(),
    };
    update(&mut s, Message::Bouncer(Box::new(Ok(view.clone()))));
    assert_eq!(s.bouncer, Some(Ok(view)));
    assert!(!s.source_errors.is_failing("pgbouncer"));
}

#[test]
fn a_fleet_reading_keeps_the_figures_or_the_typed_scrape_error() {
    use pgvigil::remote::{FleetFigures, ScrapeError};
    let mut s = state();
    let slow = ScrapeError::Timeout(Duration::from_millis(800));
    let effects = update(&mut s, Message::Fleet(Box::new(Err(slow.clone()))));
    assert_eq!(s.fleet.as_ref().unwrap().as_ref().unwrap_err(), &slow);
    assert_eq!(logs(&effects), ["fleet: no answer within 800ms"]);
    let figures = FleetFigures {
        instances: 3,
        active: 12.0,
        max: 60.0,
        ..FleetFigures::default()
    };
    let effects = update(&mut s, Message::Fleet(Box::new(Ok(figures.clone()))));
    assert_eq!(s.fleet, Some(Ok(figures)));
    assert_eq!(logs(&effects), ["fleet: answering again"]);
}

#[test]
fn a_server_snapshot_sets_the_link_the_view_and_the_pool() {
    let mut s = state();
    let mut pool = support_pool();
    pool.in_use = 4;
    update(
        &mut s,
        Message::Server(Box::new(Snapshot {
            taken_at: t(2),
            link: LinkState::Connected { since: t(1) },
            server: None,
            pool: Some(pool),
        })),
    );
    assert_eq!(s.link, LinkState::Connected { since: t(1) });
    assert_eq!(s.pool.as_ref().unwrap().in_use, 4);
    assert_eq!(s.now, t(2), "the clock never runs behind a reading");
}

#[test]
fn terminal_messages_keys_resizes_and_ticks() {
    let mut s = state();
    assert!(key('?').draws_at_once() && Message::Resize.draws_at_once());
    assert!(!Message::Tick(t(1)).draws_at_once());
    assert!(update(&mut s, Message::Resize).is_empty());
    update(&mut s, Message::Tick(t(7)));
    assert_eq!(s.now, t(7));
    update(&mut s, key('?'));
    assert!(s.help);
}

fn progress(id: u64, done: u64) -> Message {
    Message::Job(JobMessage::Progress {
        id,
        progress: pgvigil::window::Progress::phase("applying migrations", Some(5)).at(done),
    })
}

#[test]
fn a_jobs_progress_then_its_result_in_the_order_sent() {
    let mut s = state();
    update(&mut s, key('d'));
    assert_eq!(s.jobs.running.as_ref().unwrap().progress, None);
    update(&mut s, progress(1, 1));
    update(&mut s, progress(1, 2));
    let running = s.jobs.running.as_ref().unwrap();
    assert_eq!(
        running.progress.as_ref().map(|p| p.to_string()).as_deref(),
        Some("applying migrations 2/5"),
        "the latest report is kept"
    );
    // Another job's report (one that crossed a cancel) changes nothing.
    update(&mut s, progress(7, 5));
    assert_eq!(
        s.jobs
            .running
            .as_ref()
            .unwrap()
            .progress
            .as_ref()
            .unwrap()
            .done,
        2
    );
    update(&mut s, Message::Tick(t(3)));
    update(
        &mut s,
        Message::Job(JobMessage::Done {
            id: 1,
            outcome: JobOutcome::Cancelled,
        }),
    );
    assert!(s.jobs.running.is_none());
    assert_eq!(s.jobs.last[&JobKind::DryRun].summary, "cancelled");
    assert_eq!(s.jobs.last[&JobKind::DryRun].seconds, 3.0);
    // A report after the end is about no running job.
    update(&mut s, progress(1, 3));
    assert!(s.jobs.running.is_none());
}

/// The dashboard at 120x40 (ASCII glyphs), as text.
fn draw(state: &State) -> String {
    support::screen::text(state, (120, 40), &pgvigil_cli::tui::theme::Glyphs::ascii())
}

#[test]
fn a_running_jobs_progress_shows_on_the_jobs_panel_with_a_gauge() {
    let mut s = state();
    update(&mut s, key('d'));
    update(&mut s, progress(1, 2));
    let screen = draw(&s);
    assert!(
        screen.contains("applying migrations 2/5 ######.........  40%"),
        "{screen}"
    );
    // A phase of unknown size: its words, no gauge.
    update(
        &mut s,
        Message::Job(JobMessage::Progress {
            id: 1,
            progress: pgvigil::window::Progress::phase("copying the schema", None),
        }),
    );
    let screen = draw(&s);
    assert!(screen.contains("  copying the schema "), "{screen}");
    assert!(!screen.contains("2/5"), "{screen}");
}

#[test]
fn a_jobs_typed_failure_is_shown_through_sanitize() {
    use pgvigil_cli::tui::jobs::JobError;
    let mut s = state();
    update(&mut s, key('d'));
    // The words come from outside pgvigil (the driver, a server): an escape sequence in them
    // must reach the screen as text, never as a command to the terminal.
    let failure = JobError::Session(pgvigil::DbError::new(
        sqlx::Error::Protocol("\u{1b}[2Jgone".into()),
        &pgvigil::db_error::NoSecrets,
    ));
    update(
        &mut s,
        Message::Job(JobMessage::Done {
            id: 1,
            outcome: JobOutcome::Failed(std::sync::Arc::new(failure)),
        }),
    );
    let last = &s.jobs.last[&JobKind::DryRun];
    assert_eq!(last.status, pgvigil::checks::Status::Unknown);
    assert!(
        matches!(
            last.failure.as_deref(),
            Some(JobError::Session(e)) if matches!(e.driver(), Some(sqlx::Error::Protocol(_)))
        ),
        "the state keeps the error itself: {last:?}"
    );
    let screen = draw(&s);
    assert!(
        screen.contains("dry-run just now (0.0s): failed: encountered")
            && screen.contains("  unexpected or invalid data: \\e[2Jgone"),
        "{screen}"
    );
    assert!(!screen.contains('\u{1b}'), "{screen:?}");
}
