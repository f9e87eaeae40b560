//! Migrations panel: applied / pending / mismatched / failed / partial, newest first.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, styled, wrapped};
use crate::tui::state::{JobKind, Panel, State};
use pgvigil::checks::{MigrationStatus, PartialState};

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let block = super::panel("Migrations", Panel::Migrations, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let t = look.theme;
    let g = look.glyphs;
    let width = inner.width as usize;
    let Some((at, report)) = &state.checks else {
        let text = if state
            .jobs
            .running
            .as_ref()
            .is_some_and(|j| j.kind == JobKind::Status)
        {
            "reading the ledger..."
        } else {
            "not read yet (v verifies)"
        };
        frame.render_widget(Paragraph::new(styled(text, t.dim)), inner);
        return;
    };
    let Some(m) = &report.migrations else {
        let why = report
            .finding("migrations.ledger")
            .map(|f| f.summary.clone())
            .unwrap_or_else(|| "not checked".into());
        frame.render_widget(Paragraph::new(styled(fit(&why, width), t.warn)), inner);
        return;
    };
    let count = |s| m.count(s);
    let pending = count(MigrationStatus::Pending);
    let bad = m.history_problems();
    let failed = count(MigrationStatus::Failed);
    let missing = count(MigrationStatus::MissingLocally);
    let mut summary = vec![
        styled(
            format!("applied {}  ", count(MigrationStatus::Applied)),
            t.ok,
        ),
        styled(
            format!("pending {pending}  "),
            if pending > 0 { t.warn } else { t.text },
        ),
        styled(
            format!("partial {}  ", m.partial.len()),
            if m.partial.is_empty() {
                t.text
            } else {
                t.danger
            },
        ),
    ];
    let second = vec![
        styled(
            format!("mismatched {}  ", count(MigrationStatus::ChecksumMismatch)),
            if bad > 0 { t.danger } else { t.text },
        ),
        styled(
            format!("failed {failed}  "),
            if failed > 0 { t.danger } else { t.text },
        ),
        styled(
            format!("missing {missing}"),
            if missing > 0 { t.danger } else { t.text },
        ),
    ];
    let mut lines = Vec::new();
    if width >= 75 {
        summary.extend(second);
        lines.push(Line::from(summary));
    } else if bad > 0 {
        lines.push(Line::from(summary));
        lines.push(Line::from(second));
    } else {
        // Nothing wrong with the history: one line, and the rest of the panel for entries.
        if width >= 45 {
            summary.push(styled("history ok", t.dim));
        }
        lines.push(Line::from(summary));
    }
    if !m.ledger_present {
        lines.push(Line::from(styled("no _sqlx_migrations ledger", t.warn)));
    }
    for p in &m.partial {
        let style = if matches!(p, PartialState::UnvalidatedConstraint { .. }) {
            t.warn
        } else {
            t.danger
        };
        // A partial migration is a verdict: wrapped, never cut.
        lines.extend(wrapped(&format!("{} {p}", g.warn), width, style, 3));
    }
    let skip = state.scroll_of(Panel::Migrations) as usize;
    for e in m.entries.iter().skip(skip) {
        let (mark, style, note) = match e.status {
            MigrationStatus::Applied => (
                g.pass,
                t.ok,
                e.installed_on
                    .map(|d| {
                        d.with_timezone(&state.local)
                            .format("%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default(),
            ),
            MigrationStatus::Pending => (
                "-",
                t.warn,
                if e.no_transaction {
                    "pending, no-tx".into()
                } else {
                    "pending".into()
                },
            ),
            MigrationStatus::ChecksumMismatch => (
                g.fail,
                t.danger,
                format!(
                    "edited {}!={}",
                    e.applied_checksum.as_deref().unwrap_or("?"),
                    e.local_checksum.as_deref().unwrap_or("?")
                ),
            ),
            MigrationStatus::MissingLocally => (g.fail, t.danger, "not in local dir".into()),
            MigrationStatus::Failed => (g.fail, t.danger, "FAILED".into()),
        };
        let left = format!("{mark} {} {}", e.version, e.description);
        let room = width.saturating_sub(note.chars().count() + 1);
        lines.push(Line::from(vec![
            styled(format!("{:<room$} ", fit(&left, room)), style),
            styled(note, style),
        ]));
    }
    lines.push(Line::from(styled(
        format!("read {}", ago(state, *at)),
        t.dim,
    )));
    frame.render_widget(Paragraph::new(lines), inner);
}
