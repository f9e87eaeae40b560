//! The app loop: every producer (the poller, each pool source, the jobs, the terminal, the
//! clock) sends on one bus; the loop receives a message, `update` applies it, the loop performs
//! the effects and draws the frame when something changed. The terminal is restored on every
//! way out: quit, error, panic (ratatui's hook, chained after color-eyre's), SIGTERM and SIGHUP
//! (an SSH link that drops).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, Utc};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;

use super::jobs::{JobRunner, JobSettings};
use super::keymap::Action;
use super::message::{self, Bus, Message};
use super::poller;
use super::state::{Effect, State, update};
use super::theme::{Glyphs, Theme};
use super::ui::{self, Look};
use pgvigil::config::PoolConfig;

pub struct DashboardOptions {
    pub refresh: Duration,
    pub theme: Theme,
    pub glyphs: Glyphs,
    pub migrations_dir: PathBuf,
    pub expected_file: Option<PathBuf>,
    /// Where `v` builds the expected schema and `d` runs the pending migrations.
    pub dev: pgvigil::dev::DevSource,
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
    // The last recorded backup verification, read once here; a backup job refreshes it.
    state.window = super::state::WindowState::load();
    let log_state = tui_logger::TuiWidgetState::new();
    let look = Look {
        theme: &options.theme,
        glyphs: &options.glyphs,
        log: Some(&log_state),
    };

    // The first frame, before anything touches the network.
    terminal.draw(|f| ui::render(f, &state, &look))?;

    let config = Arc::new(config);
    let (bus, mut messages) = message::bus();
    let poller = poller::spawn((*config).clone(), options.refresh, bus.clone());
    let apps_task = (!options.apps.is_empty()).then(|| {
        super::apps::spawn(
            options.apps,
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            bus.clone(),
        )
    });
    let bouncer_retry = pgvigil::pool::RetryNow::default();
    let bouncer_task = options.bouncer.map(|url| {
        super::apps::spawn_bouncer(
            url,
            bouncer_retry.clone(),
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            bus.clone(),
        )
    });
    let fleet_task = options.fleet.map(|fleet| {
        super::apps::spawn_fleet(
            fleet,
            poller.refresh.subscribe(),
            poller.paused.subscribe(),
            bus.clone(),
        )
    });
    let mut jobs = JobRunner::new(
        config.clone(),
        JobSettings {
            migrations_dir: options.migrations_dir,
            expected_file: options.expected_file,
            dev: options.dev,
        },
        bus.clone(),
    );
    let input_task = tokio::spawn(read_terminal(bus.clone()));
    let clock_task = tokio::spawn(tick_clock(bus));

    // A reading (the clock, the server view, each source) marks the frame stale; the frame is
    // drawn COALESCE after the first, so the sources that tick together cost one frame, not
    // one each. A key or a resize draws at once.
    const COALESCE: Duration = Duration::from_millis(30);
    let mut draw_at: Option<tokio::time::Instant> = None;
    let outcome: std::io::Result<()> = loop {
        let (at_once, effects) = tokio::select! {
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
            Some(msg) = messages.recv() => match msg {
                Message::InputClosed(None) => break Ok(()),
                Message::InputClosed(Some(e)) => break Err(e),
                msg => (msg.draws_at_once(), update(&mut state, msg)),
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
    input_task.abort();
    clock_task.abort();
    outcome
}

/// The terminal as messages: keys pressed, resizes, and the end of its input.
async fn read_terminal(bus: Bus) {
    let mut events = EventStream::new();
    loop {
        let msg = match events.next().await {
            Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => Message::Key(key),
            Some(Ok(Event::Resize(_, _))) => Message::Resize,
            Some(Ok(_)) => continue,
            Some(Err(e)) => Message::InputClosed(Some(e)),
            None => Message::InputClosed(None),
        };
        let closed = matches!(msg, Message::InputClosed(_));
        if bus.send(msg).await.is_err() || closed {
            return;
        }
    }
}

/// The clock ticks on whole seconds so the header's time changes once a second, no more.
async fn tick_clock(bus: Bus) {
    let mut clock = tokio::time::interval_at(next_second(), Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        clock.tick().await;
        if bus.send(Message::Tick(Utc::now())).await.is_err() {
            return;
        }
    }
}

fn next_second() -> tokio::time::Instant {
    let now = Utc::now();
    let into = now.timestamp_subsec_millis() as u64;
    tokio::time::Instant::now() + Duration::from_millis(1000 - into.min(999))
}
