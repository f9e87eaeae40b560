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
            if let Some(p) = &job.progress {
                lines.push(progress_line(p, width, look));
            }
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
                let style = if l.mode.blocks_reads() {
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
