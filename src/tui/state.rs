//! The dashboard's state and the one function that changes it. Messages come in (a poller
//! snapshot, a key, the clock, a finished job); effects go out for the app loop to perform
//! (start or cancel a job, change the refresh rate, retry now, quit). Nothing here does I/O,
//! so every transition is a plain table test.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::KeyEvent;

use super::keymap::{Action, action_for};
use super::snapshot::Snapshot;
use super::source_errors::{SourceErrors, SourceLog};
use pgvigil::catalog::ServerView;
use pgvigil::checks::{CheckReport, Status};
use pgvigil::pool::LinkState;
use pgvigil::pool::PoolStats;
use pgvigil::window::DryRunReport;

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
    Panel::Log,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    /// Migration state read at connect (no scratch database: pgvigil creates nothing on its own).
    Status,
    /// `v`: pgvector + schema + migrations.
    Verify,
    /// `d`: dry-run of the pending migrations.
    DryRun,
}

impl JobKind {
    pub fn label(self) -> &'static str {
        match self {
            JobKind::Status => "status",
            JobKind::Verify => "verify",
            JobKind::DryRun => "dry-run",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Checked(Box<CheckReport>),
    DryRun(Box<DryRunReport>),
    Failed(String),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub id: u64,
    pub kind: JobKind,
    pub started: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LastJob {
    pub finished: DateTime<Utc>,
    pub seconds: f64,
    pub status: Status,
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jobs {
    pub running: Option<RunningJob>,
    pub queued: Option<JobKind>,
    pub next_id: u64,
    pub last: BTreeMap<JobKind, LastJob>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// The clock (drives "checked 2 min ago", the retry countdown and the header time).
    Tick(DateTime<Utc>),
    Snapshot(Box<Snapshot>),
    /// The application pools' figures, one scrape of every `--app` endpoint.
    Apps(Box<crate::tui::apps::AppsSnapshot>),
    /// One reading of the PgBouncer admin console (`--pgbouncer`), or why not.
    Bouncer(
        Box<
            Result<
                pgvigil::remote::pgbouncer::BouncerView,
                pgvigil::remote::pgbouncer::BouncerError,
            >,
        >,
    ),
    /// The fleet's figures from Prometheus (`--prometheus`), or why not.
    Fleet(Box<Result<pgvigil::remote::FleetFigures, String>>),
    Key(KeyEvent),
    JobDone {
        id: u64,
        outcome: JobOutcome,
    },
}

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

#[derive(Debug, Clone, PartialEq)]
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
    pub fleet: Option<Result<pgvigil::remote::FleetFigures, String>>,
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
    pub log_level: tui_logger::LevelFilter,
    pub quitting: bool,
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
            log_level: tui_logger::LevelFilter::Info,
            quitting: false,
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

/// The one place state changes.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = now;
            Vec::new()
        }
        Msg::Snapshot(snapshot) => {
            let error = snapshot.link.down().map(|d| d.last_error.clone());
            let mut effects = log_source(state, "database", error.as_deref());
            effects.extend(on_snapshot(state, *snapshot));
            effects
        }
        Msg::Apps(apps) => {
            let mut effects = Vec::new();
            for i in &apps.instances {
                let source = format!("app {}", i.name);
                let error = i.figures.as_ref().err().map(|e| e.to_string());
                effects.extend(log_source(state, &source, error.as_deref()));
            }
            if !state.paused {
                state.verdicts.on_apps(&apps);
                state.apps = Some(*apps);
            }
            effects
        }
        Msg::Bouncer(view) => {
            // The reason first, then which console.
            let error = view
                .as_ref()
                .as_ref()
                .err()
                .map(|e| format!("{} ({})", e.reason, e.target));
            let effects = log_source(state, "pgbouncer", error.as_deref());
            if !state.paused {
                state.bouncer = Some(*view);
            }
            effects
        }
        Msg::Fleet(figures) => {
            let error = figures.as_ref().as_ref().err().cloned();
            let effects = log_source(state, "fleet", error.as_deref());
            if !state.paused {
                if let Ok(f) = figures.as_ref() {
                    state.verdicts.on_fleet(f, state.now);
                }
                state.fleet = Some(*figures);
            }
            effects
        }
        Msg::Key(key) => match action_for(&key) {
            Some(action) => on_action(state, action),
            None => Vec::new(),
        },
        Msg::JobDone { id, outcome } => on_job_done(state, id, outcome),
    }
}

/// The log line (as an effect) when `source`'s reading changes what the log last said.
fn log_source(state: &mut State, source: &str, error: Option<&str>) -> Vec<Effect> {
    state
        .source_errors
        .note(source, error)
        .map(Effect::Log)
        .into_iter()
        .collect()
}

fn on_snapshot(state: &mut State, snap: Snapshot) -> Vec<Effect> {
    if state.paused {
        // Frozen for reading: the picture does not move until resumed.
        return Vec::new();
    }
    let was_connected = state.link.is_connected();
    state.now = state.now.max(snap.taken_at);
    state.link = snap.link;
    if let Some(server) = snap.server {
        state.server = Some(server);
        state.server_at = Some(snap.taken_at);
    }
    if let Some(pool) = snap.pool {
        push(&mut state.in_use_history, pool.in_use as u64);
        push(
            &mut state.wait_history,
            (pool.acquire_wait.p95_ms * 10.0).round() as u64,
        );
        state.pool = Some(pool);
    }
    // First connection (or reconnection): read where the migrations stand, creating nothing.
    if !was_connected && state.link.is_connected() && state.checks.is_none() {
        return request_job(state, JobKind::Status);
    }
    Vec::new()
}

fn push(history: &mut VecDeque<u64>, value: u64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value);
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
            state.quitting = true;
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
        Action::Verify => request_job(state, JobKind::Verify),
        Action::DryRun => request_job(state, JobKind::DryRun),
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

/// One slot (gitui's model): a kind already running is not started twice; while another kind
/// runs, the request waits in the queue, and a newer request replaces a queued one.
fn request_job(state: &mut State, kind: JobKind) -> Vec<Effect> {
    match &state.jobs.running {
        Some(job) if job.kind == kind => Vec::new(),
        Some(_) => {
            state.jobs.queued = Some(kind);
            Vec::new()
        }
        None => start_job(state, kind),
    }
}

fn start_job(state: &mut State, kind: JobKind) -> Vec<Effect> {
    state.jobs.next_id += 1;
    let id = state.jobs.next_id;
    state.jobs.running = Some(RunningJob {
        id,
        kind,
        started: state.now,
    });
    vec![Effect::StartJob { id, kind }]
}

fn on_job_done(state: &mut State, id: u64, outcome: JobOutcome) -> Vec<Effect> {
    let Some(job) = state.jobs.running.take_if(|j| j.id == id) else {
        return Vec::new();
    };
    let seconds = (state.now - job.started).num_milliseconds().max(0) as f64 / 1000.0;
    let (status, summary) = match &outcome {
        JobOutcome::Checked(report) => (report.overall(), report.summary()),
        JobOutcome::DryRun(report) => (report.status().verdict(), report.summary()),
        JobOutcome::Failed(e) => (Status::Unknown, format!("failed: {e}")),
        JobOutcome::Cancelled => (Status::Unknown, "cancelled".to_string()),
    };
    state.jobs.last.insert(
        job.kind,
        LastJob {
            finished: state.now,
            seconds,
            status,
            summary,
        },
    );
    match outcome {
        JobOutcome::Checked(report) => {
            // An automatic status check never replaces a full verification's findings.
            let keep_full = job.kind == JobKind::Status && state.checks.is_some();
            if !keep_full {
                state.checks = Some((state.now, *report));
            }
        }
        JobOutcome::DryRun(report) => state.dry_run = Some((state.now, *report)),
        JobOutcome::Failed(_) | JobOutcome::Cancelled => {}
    }
    match state.jobs.queued.take() {
        Some(kind) => start_job(state, kind),
        None => Vec::new(),
    }
}
