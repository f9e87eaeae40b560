//! Text that fits its row: every span of server or file text is escaped first (an escape
//! sequence must never reach the terminal, a newline must not break a row); a detail may be
//! cut (it ends in `~`), a verdict never is: verdict lines wrap onto the rows below, verdict
//! first, and rows of parts flow whole parts onto the next row.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// The mark at the end of a cut text.
pub const CUT: char = '~';

/// Text cut to `width` columns (with `~`, character-safe), control characters shown as
/// escapes first. For details only: a verdict goes through [`wrapped`] or [`flow`].
pub(crate) fn fit(text: &str, width: usize) -> String {
    let text = pgvigil::sanitize::printable(text);
    if text.chars().count() <= width {
        text.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut s: String = text.chars().take(width - 1).collect();
        s.push(CUT);
        s
    }
}

/// One line of `text` cut to `width`, in `style`: the shape of a detail row.
pub(crate) fn fitted(text: &str, width: usize, style: Style) -> Line<'static> {
    Line::from(styled(fit(text, width), style))
}

/// A span whose control characters are escaped.
pub(crate) fn styled<'a>(text: impl Into<String>, style: Style) -> Span<'a> {
    let text = text.into();
    match pgvigil::sanitize::printable(&text) {
        std::borrow::Cow::Borrowed(_) => Span::styled(text, style),
        std::borrow::Cow::Owned(clean) => Span::styled(clean, style),
    }
}

/// `text` (control characters escaped) wrapped at spaces onto at most `max_lines` lines of
/// `width`, the lines after the first indented by two; what does not fit ends in `~`. For a
/// verdict line (the verdict leads, so it is on the first line) and a source's error (whose
/// reason must be read whole).
pub(crate) fn wrapped(
    text: &str,
    width: usize,
    style: Style,
    max_lines: usize,
) -> Vec<Line<'static>> {
    led(Vec::new(), text, width, style, max_lines)
}

/// As [`wrapped`], after `lead` on the first line (a status mark, say): the text wraps in
/// the room `lead` leaves, and continuation lines are indented under it.
pub(crate) fn led(
    lead: Vec<Span<'static>>,
    text: &str,
    width: usize,
    style: Style,
    max_lines: usize,
) -> Vec<Line<'static>> {
    let text = pgvigil::sanitize::printable(text);
    // The text's own indentation (a pool under its database) stays, and its continuation
    // lines are indented two more.
    let own = text.len() - text.trim_start_matches(' ').len();
    let mut lead = lead;
    if own > 0 {
        lead.push(Span::styled(" ".repeat(own), style));
    }
    let text = text.trim_start_matches(' ');
    let lead_width: usize = lead.iter().map(|s| s.content.chars().count()).sum();
    let indent = if own > 0 || lead_width == 0 {
        own + 2
    } else {
        lead_width
    };
    let mut rows: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let room = if rows.is_empty() {
            width.saturating_sub(lead_width)
        } else {
            width.saturating_sub(indent)
        };
        let len = current.chars().count();
        let extra = word.chars().count() + usize::from(len > 0);
        if len > 0 && len + extra > room {
            rows.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    rows.push(current);
    let cut = rows.len() > max_lines;
    rows.truncate(max_lines);
    let last = rows.len().saturating_sub(1);
    let mut lead = Some(lead);
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let room = if i == 0 {
                width.saturating_sub(lead_width)
            } else {
                width.saturating_sub(indent)
            };
            // A word longer than the row, or the rest that did not fit, ends in `~`.
            let row = if cut && i == last && row.chars().count() < room {
                format!("{row}{CUT}")
            } else {
                row
            };
            let mut spans = if i == 0 {
                lead.take().unwrap_or_default()
            } else {
                vec![Span::styled(" ".repeat(indent.min(width)), style)]
            };
            spans.push(styled(fit(&row, room), style));
            Line::from(spans)
        })
        .collect()
}

/// `text` (control characters escaped) broken into rows of `width` characters wherever it
/// must: for a path, which has no spaces to wrap at and is read whole to be used.
pub(crate) fn broken(text: &str, width: usize, style: Style) -> Vec<Line<'static>> {
    if width == 0 {
        return Vec::new();
    }
    let chars: Vec<char> = pgvigil::sanitize::printable(text).chars().collect();
    chars
        .chunks(width)
        .map(|row| Line::from(Span::styled(row.iter().collect::<String>(), style)))
        .collect()
}

/// Parts of a row (each a span, kept whole) laid out left to right, a part that would not fit
/// starting the next row, indented by two: a row of figures that says everything, on two rows
/// where one is too narrow. A part wider than a whole row is cut.
pub(crate) fn flow(parts: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for part in parts {
        // Separating spaces at the end of a part are not needed at the end of a row.
        let len = part.content.trim_end().chars().count();
        let part = if !current.is_empty() && used + len > width {
            lines.push(Line::from(std::mem::take(&mut current)));
            current.push(Span::raw("  "));
            used = 2;
            Span::styled(part.content.trim_start().to_string(), part.style)
        } else {
            part
        };
        let len = part.content.trim_end().chars().count();
        let room = width.saturating_sub(used);
        let part = if len > room {
            Span::styled(fit(part.content.trim_end(), room), part.style)
        } else {
            part
        };
        used += part.content.chars().count();
        current.push(part);
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_verdict_line_wraps_instead_of_losing_its_end() {
        let lines = wrapped(
            "sizing fits: 21 + 1 others of 297 usable; max 97/instance fits (peak 6)",
            38,
            Style::new(),
            3,
        );
        assert_eq!(
            text(&lines),
            [
                "sizing fits: 21 + 1 others of 297",
                "  usable; max 97/instance fits (peak",
                "  6)"
            ]
        );
        let lines = led(
            vec![Span::raw("✓ ")],
            "extension vector 0.8.0 installed",
            20,
            Style::new(),
            3,
        );
        assert_eq!(text(&lines), ["✓ extension vector", "  0.8.0 installed"]);
        // An indented line keeps its indentation, and wraps under it.
        let lines = wrapped("  app/docs: 2 waiting, maxwait 2.4s", 20, Style::new(), 3);
        assert_eq!(
            text(&lines),
            ["  app/docs: 2", "    waiting, maxwait", "    2.4s"]
        );
    }

    #[test]
    fn parts_flow_whole_onto_the_next_row() {
        let parts = vec![
            Span::raw("waiting 4  "),
            Span::raw("p95 wait 840ms  "),
            Span::raw("timeouts 2.0/min  "),
            Span::raw("2/3 answering"),
        ];
        assert_eq!(
            text(&flow(parts.clone(), 38)),
            [
                "waiting 4  p95 wait 840ms  ",
                "  timeouts 2.0/min  2/3 answering"
            ]
        );
        assert_eq!(text(&flow(parts, 80)).len(), 1);
        assert_eq!(text(&flow(vec![Span::raw("abcdef")], 4)), ["abc~"]);
        // A part that starts a row loses its leading spaces.
        assert_eq!(
            text(&flow(vec![Span::raw("abc"), Span::raw("  (def)")], 7)),
            ["abc", "  (def)"]
        );
    }
}
