//! Jobs panel: the running job with its elapsed time and progress, what is queued, the last
//! result of each kind, and under them the details of the last dry-run, lint or backup to
//! finish (scrollable when the panel is focused): per migration its outcome and locks, per
//! lint finding file:line:col, rule, severity, message and fix, per table of a backup its
//! rows and ranges compared, and every finding.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, broken, fit, fitted, led, status_span, styled, wrapped};
use crate::tui::keymap::{Action, keys_for};
use crate::tui::state::{BackupVerified, JobKind, Panel, State};
use pgvigil::window::backup::manifest::Coverage;
use pgvigil::window::lint::{LintReport, Severity};
use pgvigil::window::{DryRunReport, Outcome};
use ratatui::text::Span;

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let block = super::panel("Jobs", Panel::Jobs, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let t = look.theme;
    let width = inner.width as usize;
    let mut lines = Vec::new();
    match &state.jobs.running {
        Some(job) => {
            let secs = (state.now - job.started).num_seconds().max(0);
            lines.push(Line::from(styled(
                fit(
                    &format!(
                        "{} running {secs}s ({} cancels)",
                        job.kind.label(),
                        keys_for(Action::Cancel)
                    ),
                    width,
                ),
                t.warn,
            )));
            if let Some(p) = &job.progress {
                lines.push(progress_line(p, width, look));
            }
        }
        // Wrapped, not cut: the keys are the point of the line.
        None => lines.extend(wrapped(
            &format!(
                "idle: {} verify, {} dry-run, {} lint, {} backup, {} rehearse",
                keys_for(Action::Verify),
                keys_for(Action::DryRun),
                keys_for(Action::Lint),
                keys_for(Action::Backup),
                keys_for(Action::Rehearse)
            ),
            width,
            t.dim,
            2,
        )),
    }
    if let Some(q) = state.jobs.queued {
        lines.push(Line::from(styled(format!("queued: {}", q.label()), t.dim)));
    }
    for kind in [
        JobKind::Verify,
        JobKind::DryRun,
        JobKind::Lint,
        JobKind::Backup,
        JobKind::Rehearse,
        JobKind::Status,
    ] {
        if let Some(last) = state.jobs.last.get(&kind) {
            // The mark and the summary are the verdict: wrapped, never cut.
            let failure = last
                .failure
                .as_ref()
                .map_or(String::new(), |e| format!(": {e}"));
            lines.extend(led(
                vec![status_span(last.status, look), Span::raw(" ")],
                &format!(
                    "{} {} ({:.1}s): {}{failure}",
                    kind.label(),
                    ago(state, last.finished),
                    last.seconds,
                    last.summary
                ),
                width,
                t.text,
                3,
            ));
        }
    }
    let details = match state.jobs.details {
        Some(JobKind::Lint) => state
            .lint
            .as_ref()
            .map(|(_, r)| lint_details(r, width, look)),
        Some(JobKind::Backup) => state
            .backup
            .as_ref()
            .map(|(_, b)| backup_details(b, width, look)),
        Some(JobKind::DryRun) => state
            .dry_run
            .as_ref()
            .map(|(_, r)| dry_run_details(r, width, look)),
        Some(JobKind::Rehearse) => state
            .rehearsal
            .as_ref()
            .map(|(_, r)| rehearsal_details(&r.report, width, look)),
        _ => None,
    };
    if let (Some(kind), Some(details)) = (state.jobs.details, details) {
        // The details scroll under the lines above, which stay (the verdicts).
        let room = (inner.height as usize).saturating_sub(lines.len() + 1);
        let skip = (state.scroll_of(Panel::Jobs) as usize).min(details.len().saturating_sub(room));
        let hint = if details.len() <= room {
            String::new()
        } else if state.focus == Panel::Jobs {
            format!(
                " {}-{}/{} ({}/{})",
                skip + 1,
                (skip + room).min(details.len()),
                details.len(),
                keys_for(Action::ScrollUp),
                keys_for(Action::ScrollDown)
            )
        } else {
            format!(
                " +{} ({} here, {})",
                details.len() - room,
                keys_for(Action::FocusNext),
                keys_for(Action::ScrollDown)
            )
        };
        lines.push(fitted(
            &format!("{} details{hint}", kind.label()),
            width,
            t.title,
        ));
        lines.extend(details.into_iter().skip(skip));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The latest dry-run's per-migration outcome, duration and locks.
fn dry_run_details(report: &DryRunReport, width: usize, look: &Look) -> Vec<Line<'static>> {
    let t = look.theme;
    let mut lines = Vec::new();
    for m in &report.migrations {
        let (word, style) = match &m.outcome {
            Outcome::Succeeded => ("ok", t.ok),
            Outcome::Failed { .. } => ("FAILED", t.danger),
            Outcome::NotRun { .. } => ("not run", t.warn),
        };
        lines.push(fitted(
            &format!(
                "{} {} {word} {:.0}ms",
                m.version, m.description, m.duration_ms
            ),
            width,
            style,
        ));
        if let Outcome::Failed { error, line, .. } = &m.outcome {
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            lines.extend(wrapped(&format!("  {at}{error}"), width, t.danger, 4));
        }
        for l in m.locks.iter().filter(|l| !l.created_here) {
            let style = if l.mode.blocks_reads() {
                t.danger
            } else {
                t.text
            };
            lines.push(fitted(&format!("  {l}"), width, style));
        }
    }
    lines
}

/// The lint's findings (file:line:col rule severity message, then the fix), its waivers and
/// what it read of production's tables (or assumed without them).
fn lint_details(report: &LintReport, width: usize, look: &Look) -> Vec<Line<'static>> {
    let t = look.theme;
    let mut lines = Vec::new();
    for file in &report.files {
        // The file's name: the migrations directory is the same for all of them.
        let name = std::path::Path::new(&file.file)
            .file_name()
            .map_or(file.file.clone(), |n| n.to_string_lossy().into_owned());
        for f in &file.findings {
            let style = match f.severity {
                Severity::Error => t.danger,
                Severity::Warning => t.warn,
                Severity::Note => t.text,
            };
            lines.extend(wrapped(
                &format!(
                    "{name}:{}:{} {} {}: {}",
                    f.line,
                    f.column,
                    f.rule,
                    f.severity.label(),
                    f.message
                ),
                width,
                style,
                6,
            ));
            if let Some(why) = &f.why {
                lines.extend(wrapped(&format!("  {why}"), width, t.dim, 3));
            }
            if let Some(fix) = &f.fix {
                lines.extend(wrapped(&format!("  fix: {fix}"), width, t.dim, 6));
            }
        }
        for w in &file.waivers {
            lines.extend(wrapped(
                &format!("{name}:{} waived {}: {}", w.line, w.rule, w.reason),
                width,
                t.dim,
                3,
            ));
        }
    }
    if lines.is_empty() {
        lines.extend(wrapped(
            &format!("no findings in {}", report.selection),
            width,
            t.ok,
            3,
        ));
    }
    for table in &report.tables {
        lines.push(fitted(&format!("read {}", table.summary()), width, t.dim));
    }
    for a in &report.assumptions {
        lines.extend(wrapped(a, width, t.dim, 3));
    }
    lines
}

/// The backup's manifest, per table the rows and ranges compared, and every finding with its
/// fix.
fn backup_details(b: &BackupVerified, width: usize, look: &Look) -> Vec<Line<'static>> {
    let t = look.theme;
    let v = &b.verified;
    // The manifest's path whole, as `pgvigil backup verify` takes it.
    let mut lines = broken(
        &format!("manifest {}", b.created.manifest_path.display()),
        width,
        t.text,
    );
    lines.extend(wrapped(
        &format!(
            "files: {}/{} match their SHA-256; restored on {}",
            v.files_matching, v.files_checked, v.restored_on
        ),
        width,
        if v.files_matching == v.files_checked {
            t.text
        } else {
            t.danger
        },
        4,
    ));
    for table in &v.tables {
        let differ = &table.ranges_differing;
        let style = if differ.is_empty() && table.rows_found == Some(table.rows_expected) {
            t.ok
        } else {
            t.danger
        };
        let coverage = match table.coverage {
            Coverage::Full => "every row",
            Coverage::Sampled => "sampled",
        };
        lines.extend(wrapped(
            &format!(
                "{}: {} rows, {} restored; {} ranges ({coverage}), {} differ{}",
                table.table,
                table.rows_expected,
                table.rows_found.map_or("none".into(), |n| n.to_string()),
                table.ranges_checked,
                differ.len(),
                if differ.is_empty() {
                    String::new()
                } else {
                    format!(": {}", differ.join(", "))
                }
            ),
            width,
            style,
            4,
        ));
    }
    if v.restored {
        lines.push(fitted(
            &format!("indexes compared: {}", v.indexes_checked),
            width,
            t.text,
        ));
    }
    for f in &v.findings {
        lines.extend(wrapped(
            &format!("FAIL {}: {}", f.subject, f.detail),
            width,
            t.danger,
            6,
        ));
        lines.extend(wrapped(&format!("  fix: {}", f.fix), width, t.dim, 6));
    }
    lines
}

/// The rehearsal's report, as `pgvigil migrate rehearse` prints it: per migration its outcome
/// and duration, each lock with its wait, hold and what production would queue, rewrites,
/// indexes built, then the checks and notes. Flagged and failed lines in the danger colour.
fn rehearsal_details(
    report: &pgvigil::window::rehearsal::RehearsalReport,
    width: usize,
    look: &Look,
) -> Vec<Line<'static>> {
    use crate::commands::rehearse::{Tone, report_lines};
    let t = look.theme;
    // The verdict is the Jobs panel's line above; where it ran comes after the migrations,
    // which are what the panel has room for.
    let report = report_lines(report);
    let mut lines = Vec::new();
    for (tone, l) in report.body.iter().chain(&report.setting) {
        let style = match tone {
            Tone::Text => t.text,
            Tone::Warn => t.warn,
            Tone::Danger => t.danger,
        };
        lines.extend(wrapped(l, width, style, 6));
    }
    lines
}

/// "  applying migrations 2/5 ####------ 40%": the running job's latest progress, with a gauge
/// when the phase's total is known.
fn progress_line(p: &pgvigil::window::Progress, width: usize, look: &Look) -> Line<'static> {
    let t = look.theme;
    let text = format!("  {p}");
    let Some(fraction) = p.fraction() else {
        return Line::from(styled(fit(&text, width), t.text));
    };
    let tail = format!(" {:>3.0}%", fraction * 100.0);
    let bar_width = width
        .saturating_sub(text.chars().count() + 1 + tail.len())
        .min(20);
    if bar_width < 5 {
        return Line::from(styled(fit(&format!("{text}{tail}"), width), t.text));
    }
    let filled = (fraction * bar_width as f64).round() as usize;
    Line::from(vec![
        styled(format!("{text} "), t.text),
        styled(look.glyphs.gauge_filled.repeat(filled), t.gauge),
        styled(look.glyphs.gauge_empty.repeat(bar_width - filled), t.dim),
        styled(tail, t.text),
    ])
}

#[cfg(test)]
mod tests {
    use crate::tui::fixtures::{after_job, backup, joined, lint_report, screen, state};
    use crate::tui::state::{JobOutcome, Panel, update};

    fn press(s: &mut crate::tui::state::State, code: crossterm::event::KeyCode) {
        let key = crossterm::event::KeyEvent::new(code, crossterm::event::KeyModifiers::NONE);
        update(s, crate::tui::message::Message::Key(key));
    }

    #[test]
    fn a_finished_lint_lists_its_findings_whole_and_scrolls_when_focused() {
        let mut s = state();
        after_job(&mut s, 'm', JobOutcome::Linted(Box::new(lint_report())));
        for size in [(80, 24), (120, 40)] {
            let rows = screen(size, |f, look| super::render(f, f.area(), &s, look));
            let text = joined(&rows);
            for phrase in [
                "lint just now (0.0s): 1 error, 1 warning, 0 notes, 0 waivers in 1 file",
                "lint details",
                "20261201000000_index_title.sql:3:1 require-concurrent-index-creation error: \
                 CREATE INDEX without CONCURRENTLY blocks writes to documents",
                "fix: CREATE INDEX CONCURRENTLY in a -- no-transaction file",
                "20261201000000_index_title.sql:7:1 prefer-robust-stmts warning",
                "read documents: 200 k rows, 1.1 GiB, 140 writes/s, 3.0 scans/s",
            ] {
                assert!(text.contains(phrase), "{size:?} {phrase}: {text}");
            }
            assert!(
                !rows.iter().any(|r| r.contains(crate::tui::ui::CUT)),
                "{rows:#?}"
            );
        }
        // Focused and scrolled: the verdict stays, the details move up.
        while s.focus != Panel::Jobs {
            press(&mut s, crossterm::event::KeyCode::Tab);
        }
        press(&mut s, crossterm::event::KeyCode::Down);
        press(&mut s, crossterm::event::KeyCode::Down);
        let rows = screen((60, 9), |f, look| super::render(f, f.area(), &s, look));
        let text = joined(&rows);
        assert!(text.contains("lint just now"), "{text}");
        assert!(text.contains("lint details 3-"), "{text}");
        assert!(text.contains("(Up/Down)"), "{text}");
        assert!(
            !text.contains("index_title.sql:3:1"),
            "scrolled past: {text}"
        );
    }

    #[test]
    fn a_backup_shows_its_tables_ranges_and_findings() {
        let mut s = state();
        after_job(&mut s, 'b', JobOutcome::BackedUp(Box::new(backup(false))));
        for size in [(80, 24), (120, 40)] {
            let rows = screen(size, |f, look| super::render(f, f.area(), &s, look));
            let text = joined(&rows);
            for phrase in [
                "backup just now (0.0s): MISMATCH: 1 finding",
                "manifest /var/lib/pgvigil/backups/prod-20261126T120000Z/manifest.json",
                "files: 12/12 match their SHA-256",
                "public.documents: 2000 rows, 2000 restored; 8 ranges (every row), 1 differ: [250, 500)",
                "public._sqlx_migrations: 5 rows, 5 restored; 8 ranges (every row), 0 differ",
                "FAIL public.documents [250, 500): hash 9f2c... expected, 41aa... restored",
                "fix: do not rely on this backup; take a new one",
            ] {
                assert!(text.contains(phrase), "{size:?} {phrase}: {text}");
            }
            assert!(
                !rows.iter().any(|r| r.contains(crate::tui::ui::CUT)),
                "{rows:#?}"
            );
        }
        // In the 48 columns the grid gives the panel at 120: the path broken, never cut.
        let rows = screen((48, 30), |f, look| super::render(f, f.area(), &s, look));
        assert!(
            !rows.iter().any(|r| r.contains(crate::tui::ui::CUT)),
            "{rows:#?}"
        );
        assert!(
            rows.concat()
                .replace(['\u{2502}', ' '], "")
                .contains("/var/lib/pgvigil/backups/prod-20261126T120000Z/manifest.json"),
            "{rows:#?}"
        );
        for size in [(20, 5), (2, 2)] {
            screen(size, |f, look| super::render(f, f.area(), &s, look));
        }
    }

    #[test]
    fn a_running_backup_shows_its_phase_and_percentage() {
        let mut s = state();
        let key = crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('b'),
            crossterm::event::KeyModifiers::NONE,
        );
        update(&mut s, crate::tui::message::Message::Key(key));
        let id = s.jobs.running.as_ref().unwrap().id;
        update(
            &mut s,
            crate::tui::message::JobMessage::Progress {
                id,
                progress: pgvigil::window::Progress::phase("dumping tables", Some(4)).at(1),
            }
            .into(),
        );
        let rows = screen((80, 10), |f, look| super::render(f, f.area(), &s, look));
        let text = joined(&rows);
        assert!(text.contains("backup running 0s (Esc cancels)"), "{text}");
        assert!(text.contains("dumping tables 1/4"), "{text}");
        assert!(text.contains("25%"), "{text}");
    }
}
