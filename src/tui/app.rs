//! The app loop: terminal in, events and snapshots to `update`, effects performed, frame drawn
//! when something changed. The terminal is restored on every way out: quit, error, panic
//! (ratatui's hook, chained after color-eyre's), SIGTERM and SIGHUP (an SSH link that drops).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Utc};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::jobs::{JobRunner, JobSettings};
use super::keymap::Action;
use super::poller;
use super::state::{Effect, Msg, State, update};
use super::theme::{Glyphs, Theme};
use super::ui::{self, Look};
use pgvigil::config::PoolConfig;
use pgvigil::pool::InstrumentedPool;

pub struct DashboardOptions {
    pub refresh: Duration,
    pub theme: Theme,
    pub glyphs: Glyphs,
    pub migrations_dir: PathBuf,
    pub expected_file: Option<PathBuf>,
    /// Where `v` builds the expected schema and `d` runs the pending migrations.
    pub dev: pgvigil::dev::DevSource,
    /// Receives the current pool (for `pgvigil demo`'s workload).
    pub pool_out: Option<watch::Sender<Option<InstrumentedPool>>>,
    /// Application `/metrics` endpoints whose pools the Pool panel shows (`--app`).
    pub apps: Vec<pgvigil::remote::Endpoint>,
    /// The PgBouncer admin console (`--pgbouncer`).
    pub bouncer: Option<pgvigil::DatabaseUrl>,
    /// A fleet through Prometheus (`--prometheus`, `--selector`).
    pub fleet: Option<pgvigil::remote::Fleet>,
}

/// Restores the terminal when dropped, whatever path leaves the loop.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the dashboard until the engineer quits or the session ends. The caller has installed
/// color-eyre's hooks and the tui-logger tracing layer.
pub async fn run_dashboard(config: PoolConfig, options: DashboardOptions) -> std::io::Result<()> {
    let mut stops = crate::signal::Stops::session()?;
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    // In front of ratatui's hook (which restores the terminal) and color-eyre's (the report).
    let panics = super::panic::install();
    // Test-only (debug builds): a panic in a task after this many milliseconds, to prove that
    // any panic ends the dashboard (tests/hostile_bouncer.rs). Release builds have no trigger.
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("PGVIGIL_TEST_PANIC_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            panic!("test-only panic (PGVIGIL_TEST_PANIC_AFTER_MS={ms})");
        });
    }

    let now = Utc::now();
    let local = *Local::now().offset();
    let mut state = State::new(
        config.database_url.target(),
        now,
        local,
        options.refresh,
        config.saturation_warn,
    );
    let log_state = tui_logger::TuiWidgetState::new();
    let look = Look {
        theme: &options.theme,
        glyphs: &options.glyphs,
        log: Some(&log_state),
    };

    // The first frame, before anything touches the network.
    terminal.draw(|f| ui::render(f, &state, &look))?;

    let config = Arc::new(config);
    let (snap_tx, mut snap_rx) = mpsc::channel(16);
    let (msg_tx, mut msg_rx) = mpsc::channel(16);
    let poller = poller::spawn(
        (*config).clone(),
        options.refresh,
        snap_tx,
        options.pool_out,
    );
    let (apps_tx, mut apps_rx) = mpsc::channel(4);
    let apps_task = (!options.apps.is_empty()).then(|| {
        super::apps::spawn(
            options.apps,
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            apps_tx,
        )
    });
    let (bouncer_tx, mut bouncer_rx) = mpsc::channel(4);
    let bouncer_retry = pgvigil::pool::RetryNow::default();
    let bouncer_task = options.bouncer.map(|url| {
        super::apps::spawn_bouncer(
            url,
            bouncer_retry.clone(),
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            bouncer_tx,
        )
    });
    let (fleet_tx, mut fleet_rx) = mpsc::channel(4);
    let fleet_task = options.fleet.map(|fleet| {
        super::apps::spawn_fleet(
            fleet,
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            fleet_tx,
        )
    });
    let mut jobs = JobRunner::new(
        config.clone(),
        JobSettings {
            migrations_dir: options.migrations_dir,
            expected_file: options.expected_file,
            dev: options.dev,
        },
        msg_tx,
    );
    let mut events = EventStream::new();
    // The clock ticks on whole seconds so the header's time changes once a second, no more.
    let mut clock = tokio::time::interval_at(next_second(), Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    // A reading (the clock, the server view, each source) marks the frame stale; the frame is
    // drawn COALESCE after the first, so the sources that tick together cost one frame, not
    // one each. A key or a resize draws at once.
    const COALESCE: Duration = Duration::from_millis(30);
    let mut draw_at: Option<tokio::time::Instant> = None;
    let outcome: std::io::Result<()> = loop {
        let mut at_once = false;
        let effects = tokio::select! {
            _ = tokio::time::sleep_until(draw_at.unwrap_or_else(tokio::time::Instant::now)), if draw_at.is_some() => {
                draw_at = None;
                if panics.happened() {
                    break Err(super::panic::ended_by_panic());
                }
                tui_logger::move_events();
                if let Err(e) = terminal.draw(|f| ui::render(f, &state, &look)) {
                    break Err(e);
                }
                continue;
            }
            _ = clock.tick() => update(&mut state, Msg::Tick(Utc::now())),
            Some(snap) = snap_rx.recv() => update(&mut state, Msg::Snapshot(Box::new(snap))),
            Some(apps) = apps_rx.recv() => update(&mut state, Msg::Apps(Box::new(apps))),
            Some(view) = bouncer_rx.recv() => update(&mut state, Msg::Bouncer(Box::new(view))),
            Some(figures) = fleet_rx.recv() => update(&mut state, Msg::Fleet(Box::new(figures))),
            Some(msg) = msg_rx.recv() => update(&mut state, msg),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
                    at_once = true;
                    update(&mut state, Msg::Key(key))
                }
                Some(Ok(Event::Resize(_, _))) => {
                    at_once = true;
                    Vec::new()
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            _ = panics.wait() => break Err(super::panic::ended_by_panic()),
            _ = stops.recv() => break Ok(()),
        };
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::StartJob { id, kind } => jobs.start(id, kind),
                Effect::CancelJob { id } => jobs.cancel(id),
                Effect::RetryNow => {
                    tracing::info!(target: "pgvigil", "retry requested");
                    poller.retry_now.trigger();
                }
                Effect::SetRefresh(d) => {
                    let _ = poller.refresh.send(d);
                }
                Effect::SetPaused(p) => {
                    let _ = poller.paused.send(p);
                }
                Effect::RetryBouncer => bouncer_retry.trigger(),
                Effect::Log(line) if line.is_failure() => {
                    tracing::warn!(target: "pgvigil::sources", "{line}");
                }
                Effect::Log(line) => tracing::info!(target: "pgvigil::sources", "{line}"),
                Effect::SetLogLevel(level) => tui_logger::set_default_level(level),
                Effect::ScrollLog(action) => log_state.transition(match action {
                    Action::ScrollUp | Action::PageUp => tui_logger::TuiWidgetEvent::PrevPageKey,
                    _ => tui_logger::TuiWidgetEvent::NextPageKey,
                }),
                Effect::Quit => quit = true,
            }
        }
        if quit {
            break Ok(());
        }
        if !at_once {
            draw_at.get_or_insert_with(|| tokio::time::Instant::now() + COALESCE);
            continue;
        }
        draw_at = None;
        if panics.happened() {
            break Err(super::panic::ended_by_panic());
        }
        // Log lines reach the widget's buffer here (see init_tui_logging), then ratatui writes
        // only the cells that changed since the last frame.
        tui_logger::move_events();
        if let Err(e) = terminal.draw(|f| ui::render(f, &state, &look)) {
            break Err(e);
        }
    };
    // Every way out passes here: no job keeps working on the server behind our back.
    panics.leaving();
    jobs.shutdown().await;
    poller.task.abort();
    for task in [apps_task, bouncer_task, fleet_task].into_iter().flatten() {
        task.abort();
    }
    outcome
}

fn next_second() -> tokio::time::Instant {
    let now = Utc::now();
    let into = now.timestamp_subsec_millis() as u64;
    tokio::time::Instant::now() + Duration::from_millis(1000 - into.min(999))
}
