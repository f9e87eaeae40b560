//! The dashboard's state and the one function that changes it. Messages come in (see
//! `tui::message`: a poller snapshot, a source's reading, a key, the clock, a job's progress or
//! end); effects go out for the app loop to perform (start or cancel a job, change the refresh
//! rate, retry now, quit). Each producer's messages are applied by a module of its own
//! (`state/server.rs` the poller's, `sources.rs` the applications', PgBouncer's and the
//! fleet's, `jobs.rs` the jobs'; `window.rs` holds the preparation checklist); keys are
//! handled here.
//! Nothing here does I/O, so every transition is a plain table test.

mod jobs;
mod server;
mod sources;
mod window;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::keymap::{Action, action_for};
use super::message::Message;
use super::source_errors::{SourceErrors, SourceFailure, SourceLog};
use pgvigil::catalog::ServerView;
use pgvigil::checks::CheckReport;
use pgvigil::pool::LinkState;
use pgvigil::pool::PoolStats;
use pgvigil::window::DryRunReport;
use pgvigil::window::lint::LintReport;

pub use jobs::{BackupVerified, JobKind, JobOutcome, Jobs, LastJob, Rehearsed, RunningJob};
pub use window::{BACKUP_FRESH_FOR, ChecklistItem, WindowState, age, checklist};

/// Samples kept for the sparklines (five minutes at one per second).
pub const HISTORY: usize = 300;
/// Refresh intervals `+` and `-` step through.
pub const REFRESH_STEPS_MS: &[u64] = &[500, 1000, 2000, 5000, 10_000];
pub const LOG_LEVELS: &[tui_logger::LevelFilter] = &[
    tui_logger::LevelFilter::Error,
    tui_logger::LevelFilter::Warn,
    tui_logger::LevelFilter::Info,
    tui_logger::LevelFilter::Debug,
    tui_logger::LevelFilter::Trace,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Panel {
    Pool,
    Server,
    Migrations,
    Checks,
    Jobs,
    Window,
    Log,
}

/// What the Pool panel shows when several sources of production pool figures are watched:
/// all of them side by side, or one of them with the whole panel to itself (`s` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSource {
    All,
    Apps,
    Bouncer,
    Fleet,
}

impl PoolSource {
    pub fn label(self) -> &'static str {
        match self {
            PoolSource::All => "all sources",
            PoolSource::Apps => "applications",
            PoolSource::Bouncer => "pgbouncer",
            PoolSource::Fleet => "fleet",
        }
    }
}

pub const PANELS: &[Panel] = &[
    Panel::Pool,
    Panel::Server,
    Panel::Migrations,
    Panel::Checks,
    Panel::Jobs,
    Panel::Window,
    Panel::Log,
];

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StartJob {
        id: u64,
        kind: JobKind,
    },
    CancelJob {
        id: u64,
    },
    RetryNow,
    SetRefresh(Duration),
    SetPaused(bool),
    SetLogLevel(tui_logger::LevelFilter),
    ScrollLog(Action),
    /// A source started failing, failed otherwise or answers again: one log line.
    Log(SourceLog),
    /// `r` while PgBouncer refused the login: try it once more.
    RetryBouncer,
    Quit,
}

#[derive(Debug, Clone)]
pub struct State {
    pub now: DateTime<Utc>,
    /// The engineer's local zone, shown next to UTC.
    pub local: FixedOffset,
    pub target: pgvigil::config::Target,
    pub warn_at: f64,
    pub link: LinkState,
    pub server: Option<ServerView>,
    pub server_at: Option<DateTime<Utc>>,
    pub pool: Option<PoolStats>,
    /// The application pools (`--app`), when any are watched.
    pub apps: Option<crate::tui::apps::AppsSnapshot>,
    /// The PgBouncer in front of the database (`--pgbouncer`), when watched.
    pub bouncer: Option<
        Result<pgvigil::remote::pgbouncer::BouncerView, pgvigil::remote::pgbouncer::BouncerError>,
    >,
    /// The fleet through Prometheus (`--prometheus`), when watched.
    pub fleet: Option<Result<pgvigil::remote::FleetFigures, pgvigil::remote::ScrapeError>>,
    /// Which sources fail and why, as last logged (each failure is logged once).
    pub source_errors: SourceErrors,
    /// The source the engineer chose for the Pool panel (see [`State::pool_source`]).
    pub chosen_source: PoolSource,
    pub in_use_history: VecDeque<u64>,
    /// Acquire wait p95 per sample, in tenths of a millisecond.
    pub wait_history: VecDeque<u64>,
    pub paused: bool,
    pub refresh: Duration,
    pub focus: Panel,
    pub scroll: BTreeMap<Panel, u16>,
    pub help: bool,
    pub jobs: Jobs,
    pub checks: Option<(DateTime<Utc>, CheckReport)>,
    pub dry_run: Option<(DateTime<Utc>, DryRunReport)>,
    /// The last lint job's report (the Window panel counts its findings by severity).
    pub lint: Option<(DateTime<Utc>, LintReport)>,
    /// The last backup job's backup and verification.
    pub backup: Option<(DateTime<Utc>, BackupVerified)>,
    /// The last rehearsal this session, when it finished.
    pub rehearsal: Option<(DateTime<Utc>, Rehearsed)>,
    /// The preparation checklist's own state (the recorded verification).
    pub window: WindowState,
    pub log_level: tui_logger::LevelFilter,
    /// The other processes' pools judged by the library's saturation rule (see tui::verdicts).
    pub verdicts: crate::tui::verdicts::PoolVerdicts,
}

impl State {
    pub fn new(
        target: pgvigil::config::Target,
        now: DateTime<Utc>,
        local: FixedOffset,
        refresh: Duration,
        warn_at: f64,
    ) -> Self {
        Self {
            now,
            local,
            target,
            warn_at,
            link: LinkState::Connecting {
                attempt: 1,
                max_attempts: None,
                since: now,
                down: None,
            },
            server: None,
            apps: None,
            bouncer: None,
            fleet: None,
            source_errors: SourceErrors::default(),
            chosen_source: PoolSource::All,
            server_at: None,
            pool: None,
            in_use_history: VecDeque::with_capacity(HISTORY),
            wait_history: VecDeque::with_capacity(HISTORY),
            paused: false,
            refresh,
            focus: Panel::Pool,
            scroll: BTreeMap::new(),
            help: false,
            jobs: Jobs::default(),
            checks: None,
            dry_run: None,
            lint: None,
            backup: None,
            rehearsal: None,
            window: WindowState::default(),
            log_level: tui_logger::LevelFilter::Info,
            verdicts: crate::tui::verdicts::PoolVerdicts::new(warn_at, now),
        }
    }

    /// The sources of production pool figures being watched, in cycling order, `All` first
    /// when there are several (one source has nothing to cycle through).
    pub fn pool_sources(&self) -> Vec<PoolSource> {
        let present = [
            (self.apps.is_some(), PoolSource::Apps),
            (self.bouncer.is_some(), PoolSource::Bouncer),
            (self.fleet.is_some(), PoolSource::Fleet),
        ];
        let mut sources: Vec<PoolSource> = present
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| *s)
            .collect();
        if sources.len() > 1 {
            sources.insert(0, PoolSource::All);
        }
        sources
    }

    /// What the Pool panel shows: the chosen source while it is watched, otherwise all.
    pub fn pool_source(&self) -> PoolSource {
        let sources = self.pool_sources();
        if sources.len() > 1 && sources.contains(&self.chosen_source) {
            self.chosen_source
        } else {
            PoolSource::All
        }
    }

    pub fn scroll_of(&self, panel: Panel) -> u16 {
        self.scroll.get(&panel).copied().unwrap_or(0)
    }
}

/// The one place state changes: each message goes to the module of its concern.
pub fn update(state: &mut State, msg: Message) -> Vec<Effect> {
    match msg {
        Message::Tick(now) => {
            state.now = now;
            Vec::new()
        }
        Message::Key(key) => match action_for(&key) {
            Some(action) => on_action(state, action),
            None => Vec::new(),
        },
        // The terminal's new size is read by the next frame; an ended input ends the loop.
        Message::Resize | Message::InputClosed(_) => Vec::new(),
        Message::Server(snapshot) => server::apply(state, *snapshot),
        Message::Apps(apps) => sources::apply_apps(state, *apps),
        Message::Bouncer(view) => sources::apply_bouncer(state, *view),
        Message::Fleet(figures) => sources::apply_fleet(state, *figures),
        Message::Job(job) => jobs::apply(state, job),
    }
}

/// The log line (as an effect) when `source`'s reading changes what the log last said.
fn log_source(state: &mut State, source: &str, failure: Option<SourceFailure>) -> Vec<Effect> {
    state
        .source_errors
        .note(source, failure)
        .map(Effect::Log)
        .into_iter()
        .collect()
}

fn on_action(state: &mut State, action: Action) -> Vec<Effect> {
    if state.help && !matches!(action, Action::Help | Action::Cancel | Action::Quit) {
        // The help screen is modal: any other key closes it and does nothing else.
        state.help = false;
        return Vec::new();
    }
    match action {
        Action::Help => {
            state.help = !state.help;
            Vec::new()
        }
        Action::Quit => {
            let mut effects = Vec::new();
            if let Some(job) = &state.jobs.running {
                effects.push(Effect::CancelJob { id: job.id });
            }
            effects.push(Effect::Quit);
            effects
        }
        Action::Cancel => {
            if state.help {
                state.help = false;
                return Vec::new();
            }
            state.jobs.queued = None;
            match &state.jobs.running {
                Some(job) => vec![Effect::CancelJob { id: job.id }],
                None => Vec::new(),
            }
        }
        Action::FocusNext | Action::FocusPrev => {
            let i = PANELS.iter().position(|p| *p == state.focus).unwrap_or(0);
            let n = PANELS.len();
            let next = if action == Action::FocusNext {
                (i + 1) % n
            } else {
                (i + n - 1) % n
            };
            state.focus = PANELS[next];
            Vec::new()
        }
        Action::ScrollUp | Action::ScrollDown | Action::PageUp | Action::PageDown => {
            if state.focus == Panel::Log {
                return vec![Effect::ScrollLog(action)];
            }
            let step: i32 = match action {
                Action::ScrollUp => -1,
                Action::ScrollDown => 1,
                Action::PageUp => -10,
                _ => 10,
            };
            let entry = state.scroll.entry(state.focus).or_insert(0);
            *entry = (*entry as i32 + step).clamp(0, 500) as u16;
            Vec::new()
        }
        Action::Verify => jobs::request(state, JobKind::Verify),
        Action::DryRun => jobs::request(state, JobKind::DryRun),
        Action::Lint => jobs::request(state, JobKind::Lint),
        Action::Backup => jobs::request(state, JobKind::Backup),
        Action::Rehearse => jobs::request(state, JobKind::Rehearse),
        Action::RetryNow => {
            let mut effects = vec![Effect::RetryNow];
            // PgBouncer refused the login: it is tried again only when asked, as the database.
            if let Some(Err(e)) = &state.bouncer
                && e.kind == pgvigil::remote::pgbouncer::BouncerFailure::LoginRefused
            {
                effects.push(Effect::RetryBouncer);
            }
            effects
        }
        Action::TogglePause => {
            state.paused = !state.paused;
            vec![Effect::SetPaused(state.paused)]
        }
        Action::Faster | Action::Slower => {
            let ms = state.refresh.as_millis() as u64;
            let i = REFRESH_STEPS_MS.iter().position(|s| *s >= ms).unwrap_or(1);
            let j = if action == Action::Faster {
                i.saturating_sub(1)
            } else {
                (i + 1).min(REFRESH_STEPS_MS.len() - 1)
            };
            let next = Duration::from_millis(REFRESH_STEPS_MS[j]);
            if next == state.refresh {
                return Vec::new();
            }
            state.refresh = next;
            vec![Effect::SetRefresh(next)]
        }
        Action::CycleSource => {
            let sources = state.pool_sources();
            if sources.len() > 1 {
                let i = sources
                    .iter()
                    .position(|s| *s == state.pool_source())
                    .unwrap_or(0);
                state.chosen_source = sources[(i + 1) % sources.len()];
                state.focus = Panel::Pool;
            }
            Vec::new()
        }
        Action::CycleLogLevel => {
            let i = LOG_LEVELS
                .iter()
                .position(|l| *l == state.log_level)
                .unwrap_or(2);
            state.log_level = LOG_LEVELS[(i + 1) % LOG_LEVELS.len()];
            vec![Effect::SetLogLevel(state.log_level)]
        }
    }
}
