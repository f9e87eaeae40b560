//! Jobs panel: the running job with its elapsed time, what is queued, the last result of each
//! kind, and the latest dry-run's per-migration outcome, duration and locks.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, led, status_span, styled};
use crate::tui::keymap::{Action, keys_for};
use crate::tui::state::{JobKind, Panel, State};
use pgvigil::window::Outcome;
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
        }
        None => lines.push(Line::from(styled(
            format!(
                "idle: {} verify, {} dry-run",
                keys_for(Action::Verify),
                keys_for(Action::DryRun)
            ),
            t.dim,
        ))),
    }
    if let Some(q) = state.jobs.queued {
        lines.push(Line::from(styled(format!("queued: {}", q.label()), t.dim)));
    }
    for kind in [JobKind::Verify, JobKind::DryRun, JobKind::Status] {
        if let Some(last) = state.jobs.last.get(&kind) {
            // The mark and the summary are the verdict: wrapped, never cut.
            lines.extend(led(
                vec![status_span(last.status, look), Span::raw(" ")],
                &format!(
                    "{} {} ({:.1}s): {}",
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
    if let Some((_, report)) = &state.dry_run {
        for m in report
            .migrations
            .iter()
            .skip(state.scroll_of(Panel::Jobs) as usize)
        {
            let (word, style) = match &m.outcome {
                Outcome::Succeeded => ("ok", t.ok),
                Outcome::Failed { .. } => ("FAILED", t.danger),
                Outcome::NotRun { .. } => ("not run", t.warn),
            };
            lines.push(Line::from(styled(
                fit(
                    &format!(
                        "{} {} {word} {:.0}ms",
                        m.version, m.description, m.duration_ms
                    ),
                    width,
                ),
                style,
            )));
            if let Outcome::Failed { error, line, .. } = &m.outcome {
                let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
                lines.push(Line::from(styled(
                    fit(&format!("  {at}{error}"), width),
                    t.danger,
                )));
            }
            for l in m.locks.iter().filter(|l| !l.created_here) {
                let style = if l.mode == "ACCESS EXCLUSIVE" {
                    t.danger
                } else {
                    t.text
                };
                lines.push(Line::from(styled(fit(&format!("  {l}"), width), style)));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
