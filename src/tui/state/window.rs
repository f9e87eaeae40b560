//! The Window panel's state: the preparation checklist a maintenance window needs, each step
//! with its verdict and its age from the state's clock. The checklist is a list of items built
//! from what the state already holds (the recorded verification, the last lint job), so a new
//! step (the rehearsal) is one more entry in [`checklist`]; a step with nothing to show says
//! so rather than showing made-up figures. Files are read at start-up and by jobs, never here.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};

use super::State;
use crate::tui::keymap::Action;
use pgvigil::checks::Status;
use pgvigil::window::backup::VerificationRecord;
use pgvigil::window::backup::record;
use pgvigil::window::lint::Severity;
use pgvigil::window::rehearsal::{RehearsalRecord, RehearsalVerdict};

/// A verified backup whose snapshot is older than this is stale for a window: production has
/// moved on since, and the rows written after it would be lost by a restore.
pub const BACKUP_FRESH_FOR: Duration = Duration::hours(24);

#[derive(Debug, Clone, Default)]
pub struct WindowState {
    /// Where the verification record lives (`None`: no PGVIGIL_STATE_DIR, XDG_STATE_HOME or HOME).
    pub state_dir: Option<PathBuf>,
    /// The last verification recorded there: read at start-up, replaced when a backup job ends.
    pub backup_record: Option<VerificationRecord>,
    /// The last rehearsal recorded there: read at start-up, replaced when a rehearsal ends.
    pub rehearsal_record: Option<RehearsalRecord>,
}

impl WindowState {
    /// Reads the record from the state directory: at start-up only (render never reads files).
    pub fn load() -> Self {
        let state_dir = pgvigil::checks::state_dir();
        let backup_record = state_dir.as_deref().and_then(record::last);
        let rehearsal_record = state_dir
            .as_deref()
            .and_then(pgvigil::window::rehearsal::record::last);
        Self {
            state_dir,
            backup_record,
            rehearsal_record,
        }
    }
}

/// One step of the checklist as the panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistItem {
    /// The step's name: `backup`, `lint`.
    pub step: &'static str,
    pub status: Status,
    /// The verdict, age first ("verified 2 h ago: every figure matches"): wrapped, never cut.
    pub verdict: String,
    /// Details (which manifest, counts by severity): may be cut to the panel's width.
    pub details: Vec<String>,
    /// The key that runs the step again.
    pub action: Action,
}

/// The checklist, in the order a window is prepared.
pub fn checklist(state: &State) -> Vec<ChecklistItem> {
    vec![backup_item(state), lint_item(state), rehearsal_item(state)]
}

/// "2 h ago", "5 min ago", "3 d ago": coarse on purpose, a checklist reads at a glance.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let d = now - then;
    let s = d.num_seconds();
    if s < 0 {
        "in the future (check this machine's clock)".into()
    } else if s < 60 {
        "just now".into()
    } else if s < 3600 {
        format!("{} min ago", s / 60)
    } else if s < 48 * 3600 {
        format!("{} h ago", s / 3600)
    } else {
        format!("{} d ago", s / 86_400)
    }
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn backup_item(state: &State) -> ChecklistItem {
    let item = |status, verdict: String, details| ChecklistItem {
        step: "backup",
        status,
        verdict,
        details,
        action: Action::Backup,
    };
    let Some(rec) = &state.window.backup_record else {
        let verdict = match &state.window.state_dir {
            Some(_) => "no verified backup recorded".to_string(),
            None => "no state directory to record a backup in (set PGVIGIL_STATE_DIR)".to_string(),
        };
        return item(Status::Warn, verdict, Vec::new());
    };
    let verified =
        parse_time(&rec.verified_at).map_or_else(|| rec.verified_at.clone(), |t| age(state.now, t));
    let taken = parse_time(&rec.taken_at);
    let mut details = vec![
        format!("manifest {}", rec.manifest.display()),
        format!(
            "database {}, snapshot {}",
            rec.database,
            taken.map_or_else(|| rec.taken_at.clone(), |t| age(state.now, t))
        ),
    ];
    match rec.outcome {
        pgvigil::window::backup::VerifyOutcome::Mismatch => item(
            Status::Fail,
            format!(
                "verified {verified}: MISMATCH ({} finding{}): do not rely on it",
                rec.findings,
                if rec.findings == 1 { "" } else { "s" }
            ),
            details,
        ),
        pgvigil::window::backup::VerifyOutcome::Match => {
            let stale = taken.is_none_or(|t| state.now - t > BACKUP_FRESH_FOR);
            if stale {
                details.insert(
                    0,
                    format!(
                        "snapshot older than {} h: take a new one before the window",
                        BACKUP_FRESH_FOR.num_hours()
                    ),
                );
            }
            item(
                if stale { Status::Warn } else { Status::Pass },
                format!("verified {verified}: every figure matches"),
                details,
            )
        }
    }
}

/// The last rehearsal: its verdict and age, and whether it still matches the pending set as
/// the last status read saw it (a file edited since, or a new one, voids it).
fn rehearsal_item(state: &State) -> ChecklistItem {
    let item = |status, verdict: String, details| ChecklistItem {
        step: "rehearsal",
        status,
        verdict,
        details,
        action: Action::Rehearse,
    };
    let Some(rec) = &state.window.rehearsal_record else {
        return item(Status::Warn, "no rehearsal recorded".into(), Vec::new());
    };
    let when = parse_time(&rec.rehearsed_at)
        .map_or_else(|| rec.rehearsed_at.clone(), |t| age(state.now, t));
    let (mut status, word) = match rec.verdict {
        RehearsalVerdict::Passed => (Status::Pass, "passed"),
        RehearsalVerdict::Flagged => (Status::Warn, "FLAGGED (a hold past its threshold)"),
        RehearsalVerdict::Failed => (Status::Fail, "FAILED"),
    };
    let versions: Vec<String> = rec.pending.iter().map(|m| m.version.to_string()).collect();
    let mut details = vec![format!(
        "rehearsed {}",
        if versions.is_empty() {
            "no pending migration".to_string()
        } else {
            versions.join(", ")
        }
    )];
    details.push(format!("on {}", rec.ran_on));
    if rec.backup_verified == Some(false) {
        // The gate wants a verified backup under the rehearsal.
        status = Status::worst([status, Status::Warn]);
        details.insert(
            0,
            "on a backup with no successful verification recorded".into(),
        );
    }
    let matching = state
        .checks
        .as_ref()
        .and_then(|(at, report)| report.migrations.as_ref().map(|m| (at, m)));
    let verdict = match matching.map(|(at, m)| (at, rec.still_matches_state(m))) {
        Some((_, Ok(()))) => format!("rehearsed {when}: {word}; still matches the pending set"),
        Some((at, Err(voided))) => {
            // Void is at least a warning; a failed rehearsal stays failed.
            status = Status::worst([status, Status::Warn]);
            details.insert(0, format!("as of the status read {}", age(state.now, *at)));
            format!("rehearsed {when}: {word}; VOID: {voided}")
        }
        None => {
            details.insert(
                0,
                "whether it still matches the pending set shows after a status read (v)".into(),
            );
            format!("rehearsed {when}: {word}")
        }
    };
    item(status, verdict, details)
}

fn lint_item(state: &State) -> ChecklistItem {
    let Some((at, report)) = &state.lint else {
        return ChecklistItem {
            step: "lint",
            status: Status::Unknown,
            verdict: "not linted this session".into(),
            details: Vec::new(),
            action: Action::Lint,
        };
    };
    let by_severity = [Severity::Error, Severity::Warning, Severity::Note]
        .iter()
        .map(|s| {
            let n = report.count(*s);
            format!("{n} {}{}", s.label(), if n == 1 { "" } else { "s" })
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut details = vec![report.selection.clone()];
    if report.waiver_count() > 0 {
        details.push(format!("{} waived", report.waiver_count()));
    }
    if !report.catalog_read {
        details.push("without production's catalog".into());
    }
    ChecklistItem {
        step: "lint",
        status: report.status(),
        verdict: format!("linted {}: {by_severity}", age(state.now, *at)),
        details,
        action: Action::Lint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::{after_job, backup, lint_report, state, t};
    use crate::tui::state::{JobKind, JobOutcome, Panel};

    /// A recorded rehearsal of migration 4 with `checksum`, and a status read that saw
    /// migration 4 pending with the file's SHA-384 `file`.
    fn rehearsed(checksum: &[u8], file: &[u8]) -> crate::tui::state::State {
        use pgvigil::migrations::{LocalMigration, MigrationState};
        let mut s = state();
        s.window.rehearsal_record = Some(RehearsalRecord {
            format: pgvigil::window::rehearsal::record::RECORD_FORMAT.into(),
            rehearsed_at: (t(0)).to_rfc3339(),
            pending: vec![pgvigil::migrations::MigrationStamp {
                version: 4,
                description: "hnsw".into(),
                checksum: checksum.iter().map(|b| format!("{b:02x}")).collect(),
            }],
            manifest: None,
            manifest_sha256: None,
            backup_verified: Some(true),
            ran_on: "a restored copy of /b/manifest.json on private cluster".into(),
            server_version: "15.18".into(),
            extensions: vec![],
            verdict: RehearsalVerdict::Passed,
        });
        let local = vec![LocalMigration {
            version: 4,
            description: "hnsw".into(),
            sql: "SELECT 1".into(),
            checksum: file.to_vec(),
            no_tx: true,
        }];
        let migrations = MigrationState::of(&local, Some(&[]));
        s.checks = Some((
            t(60),
            pgvigil::CheckReport::assemble(
                "prod".into(),
                t(60),
                1.0,
                vec![],
                Some(migrations),
                None,
            ),
        ));
        s.now = t(2 * 3600);
        s
    }

    #[test]
    fn a_rehearsal_matches_the_pending_set_until_a_file_is_edited() {
        let s = rehearsed(&[0xab; 48], &[0xab; 48]);
        let item = &checklist(&s)[2];
        assert_eq!(item.status, Status::Pass);
        assert_eq!(
            item.verdict,
            "rehearsed 2 h ago: passed; still matches the pending set"
        );
        let s = rehearsed(&[0xab; 48], &[0xcd; 48]);
        let item = &checklist(&s)[2];
        assert_eq!(item.status, Status::Warn);
        assert_eq!(
            item.verdict,
            "rehearsed 2 h ago: passed; VOID: migration 4 was edited after the rehearsal (its SHA-384 differs): rehearse again"
        );
        assert_eq!(item.details[0], "as of the status read 1 h ago");
    }

    #[test]
    fn ages_read_at_a_glance() {
        let now = Utc::now();
        assert_eq!(age(now, now - Duration::seconds(5)), "just now");
        assert_eq!(age(now, now - Duration::minutes(12)), "12 min ago");
        assert_eq!(age(now, now - Duration::minutes(150)), "2 h ago");
        assert_eq!(age(now, now - Duration::days(3)), "3 d ago");
    }

    #[test]
    fn before_any_job_the_checklist_says_what_is_missing_and_makes_nothing_up() {
        let mut s = state();
        s.window.state_dir = Some("/var/lib/pgvigil".into());
        let items = checklist(&s);
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].step, "rehearsal");
        assert_eq!(items[2].verdict, "no rehearsal recorded");
        assert_eq!(items[0].step, "backup");
        assert_eq!(items[0].status, Status::Warn);
        assert_eq!(items[0].verdict, "no verified backup recorded");
        assert_eq!(items[1].verdict, "not linted this session");
        assert_eq!(items[1].status, Status::Unknown);
    }

    #[test]
    fn a_finished_lint_counts_its_findings_by_severity_with_its_age() {
        let mut s = state();
        after_job(&mut s, 'm', JobOutcome::Linted(Box::new(lint_report())));
        assert_eq!(s.jobs.details, Some(JobKind::Lint));
        s.now = t(2 * 3600 + 30);
        let lint = &checklist(&s)[1];
        assert_eq!(lint.status, Status::Fail);
        assert_eq!(lint.verdict, "linted 2 h ago: 1 error, 1 warning, 0 notes");
        let last = &s.jobs.last[&JobKind::Lint];
        assert_eq!(
            last.summary,
            "1 error, 1 warning, 0 notes, 0 waivers in 1 file"
        );
    }

    #[test]
    fn a_finished_backup_replaces_the_record_and_resets_the_details_scroll() {
        let mut s = state();
        s.scroll.insert(Panel::Jobs, 7);
        // The job's clock: the fixture verified at 12:01, the state's now is 14:03.
        after_job(&mut s, 'b', JobOutcome::BackedUp(Box::new(backup(true))));
        assert_eq!(s.jobs.details, Some(JobKind::Backup));
        assert_eq!(s.scroll_of(Panel::Jobs), 0);
        let item = &checklist(&s)[0];
        assert_eq!(item.status, Status::Pass, "{item:?}");
        assert_eq!(item.verdict, "verified 2 h ago: every figure matches");
        assert!(item.details[0].contains("manifest.json"), "{item:?}");
        assert_eq!(
            s.jobs.last[&JobKind::Backup].summary,
            "every figure matches: 2 tables, 16 ranges, 5 indexes"
        );
        // A day later the same record is stale: the rows written since would be lost.
        s.now = t(26 * 3600);
        let item = &checklist(&s)[0];
        assert_eq!(item.status, Status::Warn);
        assert!(
            item.details[0].starts_with("snapshot older than 24 h"),
            "{item:?}"
        );
    }

    #[test]
    fn a_mismatch_fails_the_backup_step() {
        let mut s = state();
        after_job(&mut s, 'b', JobOutcome::BackedUp(Box::new(backup(false))));
        let item = &checklist(&s)[0];
        assert_eq!(item.status, Status::Fail);
        assert!(item.verdict.contains("MISMATCH (1 finding)"), "{item:?}");
        assert_eq!(s.jobs.last[&JobKind::Backup].status, Status::Fail);
    }

    #[test]
    fn a_cancelled_backup_keeps_the_recorded_one() {
        let mut s = state();
        s.window.backup_record = backup(true).record;
        after_job(&mut s, 'b', JobOutcome::Cancelled);
        assert_eq!(s.jobs.last[&JobKind::Backup].summary, "cancelled");
        assert_eq!(checklist(&s)[0].status, Status::Pass);
        assert!(s.backup.is_none());
    }
}
