//! Window panel: the preparation checklist for a maintenance window (state/window.rs builds
//! it), each step's verdict with its age, its details, and the keys that run the steps.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Look, fitted, led, status_span, wrapped};
use crate::tui::keymap::keys_for;
use crate::tui::state::{Panel, State, checklist};

/// The checklist's rows at `width` columns (inside the border).
fn lines(state: &State, width: usize, look: &Look) -> Vec<Line<'static>> {
    let t = look.theme;
    let mut lines = Vec::new();
    for item in checklist(state) {
        // The mark, the step and its verdict: wrapped, never cut.
        lines.extend(led(
            vec![status_span(item.status, look), Span::raw(" ")],
            &format!("{}: {}", item.step, item.verdict),
            width,
            t.text,
            3,
        ));
        for detail in &item.details {
            lines.extend(wrapped(&format!("  {detail}"), width, t.dim, 2));
        }
    }
    // The keys that run the steps again, last: the verdicts come first.
    let keys = checklist(state)
        .iter()
        .map(|item| format!("{} {}", keys_for(item.action), item.step))
        .collect::<Vec<_>>()
        .join(", ");
    lines.push(fitted(&keys, width, t.dim));
    lines
}

/// Rows the panel wants at `width` columns of the screen (borders included), so that the grid
/// gives it what it needs and the log the rest.
pub fn height(state: &State, width: u16, look: &Look) -> u16 {
    (lines(state, width.saturating_sub(2) as usize, look).len() as u16 + 2).min(14)
}

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let block = super::panel("Window: preparation", Panel::Window, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = lines(state, inner.width as usize, look);
    // Scrolled no further than its last screenful.
    let skip = (state.scroll_of(Panel::Window) as usize)
        .min(lines.len().saturating_sub(inner.height as usize));
    frame.render_widget(
        Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()),
        inner,
    );
}

#[cfg(test)]
mod tests {
    use crate::tui::fixtures::{after_job, backup, joined, lint_report, screen, state};
    use crate::tui::state::{JobOutcome, Panel};

    #[test]
    fn the_checklist_reads_whole_at_80x24_and_120x40_and_a_tiny_window_does_not_panic() {
        let mut s = state();
        s.window.state_dir = Some("/var/lib/pgvigil".into());
        s.focus = Panel::Window;
        for size in [(80, 24), (120, 40)] {
            let rows = screen(size, |f, look| super::render(f, f.area(), &s, look));
            let text = joined(&rows);
            assert!(
                text.contains("backup: no verified backup recorded"),
                "{text}"
            );
            assert!(text.contains("lint: not linted this session"), "{text}");
            assert!(text.contains("b backup, m lint"), "{text}");
        }
        after_job(&mut s, 'm', JobOutcome::Linted(Box::new(lint_report())));
        after_job(&mut s, 'b', JobOutcome::BackedUp(Box::new(backup(false))));
        for size in [(80, 24), (120, 40)] {
            // The whole dashboard: at 80 columns the Window tab, at 120 the grid.
            let rows = screen(size, |f, look| crate::tui::ui::render(f, &s, look));
            let text = joined(&rows);
            assert!(
                text.contains("backup: verified 2 h ago: MISMATCH (1 finding): do not rely on it"),
                "{size:?}: {text}"
            );
            assert!(
                text.contains("lint: linted just now: 1 error, 1 warning, 0 notes"),
                "{size:?}: {text}"
            );
            assert!(text.contains("Window"), "{text}");
        }
        for size in [(20, 5), (3, 2), (1, 1)] {
            screen(size, |f, look| super::render(f, f.area(), &s, look));
            screen(size, |f, look| crate::tui::ui::render(f, &s, look));
        }
    }
}
