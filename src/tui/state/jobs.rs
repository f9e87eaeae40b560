//! The Jobs panel's state: one slot (gitui's model: a kind already running is not started
//! twice, another kind waits, a newer request replaces a queued one), the running job's latest
//! progress, and the last result of each kind. A job's messages arrive in the order it sent
//! them: progress reports, then its end; anything about a job that is no longer running (a
//! report that crossed Esc) changes nothing. A finished lint or backup also feeds the Window
//! panel's checklist (`state/window.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Effect, State};
use crate::tui::jobs::JobError;
use crate::tui::message::JobMessage;
use pgvigil::checks::{CheckReport, Status};
use pgvigil::window::backup::{CreateReport, VerificationRecord, VerifyReport};
use pgvigil::window::lint::LintReport;
use pgvigil::window::rehearsal::{RehearsalRecord, RehearsalReport};
use pgvigil::window::{DryRunReport, Progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    /// Migration state read at connect (no scratch database: pgvigil creates nothing on its own).
    Status,
    /// `v`: pgvector + schema + migrations.
    Verify,
    /// `d`: dry-run of the pending migrations.
    DryRun,
    /// Lint of the pending migrations against production's catalog.
    Lint,
    /// A backup of production, verified by restoring it on the dev database, and recorded.
    Backup,
    /// The pending migrations applied for real on a restored copy of the newest verified
    /// backup, every lock measured, and recorded for the apply gate.
    Rehearse,
}

impl JobKind {
    pub fn label(self) -> &'static str {
        match self {
            JobKind::Status => "status",
            JobKind::Verify => "verify",
            JobKind::DryRun => "dry-run",
            JobKind::Lint => "lint",
            JobKind::Backup => "backup",
            JobKind::Rehearse => "rehearse",
        }
    }
}

/// How a job ended. A failure is kept as the job's error (render writes its words).
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Checked(Box<CheckReport>),
    DryRun(Box<DryRunReport>),
    Linted(Box<LintReport>),
    BackedUp(Box<BackupVerified>),
    Rehearsed(Box<Rehearsed>),
    Failed(Arc<JobError>),
    Cancelled,
}

/// What the backup job made: the backup, its verification on the dev database, and the
/// record the Window panel (and the apply gate) read back from the state directory.
#[derive(Debug, Clone)]
pub struct BackupVerified {
    pub created: CreateReport,
    pub verified: VerifyReport,
    /// The state directory's record as read after writing it (`None`: no state directory).
    pub record: Option<VerificationRecord>,
}

/// What the rehearsal job found, and its record as read back from the state directory.
#[derive(Debug, Clone)]
pub struct Rehearsed {
    pub report: RehearsalReport,
    /// `None`: no state directory to record it in.
    pub record: Option<RehearsalRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    pub id: u64,
    pub kind: JobKind,
    pub started: DateTime<Utc>,
    /// The job's latest report of how far it has come (`None` until it sends one).
    pub progress: Option<Progress>,
}

#[derive(Debug, Clone)]
pub struct LastJob {
    pub finished: DateTime<Utc>,
    pub seconds: f64,
    pub status: Status,
    /// The report's own summary, "cancelled", or "failed" (the reason is `failure`).
    pub summary: String,
    /// Why the job failed, when it did.
    pub failure: Option<Arc<JobError>>,
}

#[derive(Debug, Clone, Default)]
pub struct Jobs {
    pub running: Option<RunningJob>,
    pub queued: Option<JobKind>,
    pub next_id: u64,
    pub last: BTreeMap<JobKind, LastJob>,
    /// Whose report the Jobs panel details (scrollable): the last dry-run, lint or backup to
    /// finish with one.
    pub details: Option<JobKind>,
}

pub(super) fn apply(state: &mut State, msg: JobMessage) -> Vec<Effect> {
    match msg {
        JobMessage::Progress { id, progress } => {
            if let Some(job) = state.jobs.running.as_mut().filter(|j| j.id == id) {
                job.progress = Some(progress);
            }
            Vec::new()
        }
        JobMessage::Done { id, outcome } => done(state, id, outcome),
    }
}

/// Starts `kind` now, queues it, or does nothing when it already runs (see the module doc).
pub(super) fn request(state: &mut State, kind: JobKind) -> Vec<Effect> {
    match &state.jobs.running {
        Some(job) if job.kind == kind => Vec::new(),
        Some(_) => {
            state.jobs.queued = Some(kind);
            Vec::new()
        }
        None => start(state, kind),
    }
}

fn start(state: &mut State, kind: JobKind) -> Vec<Effect> {
    state.jobs.next_id += 1;
    let id = state.jobs.next_id;
    state.jobs.running = Some(RunningJob {
        id,
        kind,
        started: state.now,
        progress: None,
    });
    vec![Effect::StartJob { id, kind }]
}

fn done(state: &mut State, id: u64, outcome: JobOutcome) -> Vec<Effect> {
    let Some(job) = state.jobs.running.take_if(|j| j.id == id) else {
        return Vec::new();
    };
    let seconds = (state.now - job.started).num_milliseconds().max(0) as f64 / 1000.0;
    let (status, summary, failure) = match &outcome {
        JobOutcome::Checked(report) => (report.overall(), report.summary(), None),
        JobOutcome::DryRun(report) => (report.status().verdict(), report.summary(), None),
        JobOutcome::Linted(report) => (report.status(), report.summary(), None),
        JobOutcome::BackedUp(b) => (b.verified.status(), b.verified.summary(), None),
        JobOutcome::Rehearsed(r) => (r.report.verdict.status(), r.report.summary(), None),
        JobOutcome::Failed(e) => (Status::Unknown, "failed".to_string(), Some(e.clone())),
        JobOutcome::Cancelled => (Status::Unknown, "cancelled".to_string(), None),
    };
    state.jobs.last.insert(
        job.kind,
        LastJob {
            finished: state.now,
            seconds,
            status,
            summary,
            failure,
        },
    );
    if matches!(
        outcome,
        JobOutcome::DryRun(_)
            | JobOutcome::Linted(_)
            | JobOutcome::BackedUp(_)
            | JobOutcome::Rehearsed(_)
    ) {
        // New details are read from their top.
        state.jobs.details = Some(job.kind);
        state.scroll.remove(&super::Panel::Jobs);
    }
    match outcome {
        JobOutcome::Checked(report) => {
            // An automatic status check never replaces a full verification's findings.
            let keep_full = job.kind == JobKind::Status && state.checks.is_some();
            if !keep_full {
                state.checks = Some((state.now, *report));
            }
        }
        JobOutcome::DryRun(report) => state.dry_run = Some((state.now, *report)),
        JobOutcome::Linted(report) => state.lint = Some((state.now, *report)),
        JobOutcome::BackedUp(b) => {
            if b.record.is_some() {
                state.window.backup_record = b.record.clone();
            }
            state.backup = Some((state.now, *b));
        }
        JobOutcome::Rehearsed(r) => {
            if r.record.is_some() {
                state.window.rehearsal_record = r.record.clone();
            }
            state.rehearsal = Some((state.now, *r));
        }
        JobOutcome::Failed(_) | JobOutcome::Cancelled => {}
    }
    match state.jobs.queued.take() {
        Some(kind) => start(state, kind),
        None => Vec::new(),
    }
}
