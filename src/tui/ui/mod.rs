//! Rendering: a pure function of the state, the theme and the glyphs. It never touches the
//! database and never awaits; time comes from `state.now`, so a frame is deterministic and can
//! be snapshot-tested. Layout: header, pool | server, migrations | checks, jobs | log, footer.

mod apps;
mod checks;
mod jobs;
mod migrations;
mod pool;
mod server;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::keymap::KEYMAP;
use super::state::{Panel, State};
use super::theme::{Glyphs, Theme};
use pgvigil::config::format_duration;
use pgvigil::pool::LinkState;

pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// What render needs besides the state.
pub struct Look<'a> {
    pub theme: &'a Theme,
    pub glyphs: &'a Glyphs,
    /// tui-logger's widget state; None renders a placeholder (tests).
    pub log: Option<&'a tui_logger::TuiWidgetState>,
}

pub fn render(frame: &mut Frame, state: &State, look: &Look) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area, look);
        return;
    }
    let tall = area.height >= 40;
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    // The production pools (applications, PgBouncer, a fleet) need rows for their instance
    // table; the Migrations panel gives up some (it reads the same until a migration lands).
    let production = state.apps.is_some() || state.bouncer.is_some() || state.fleet.is_some();
    let (top_h, mid_h) = match (tall, production) {
        (true, true) => (18, 10),
        (true, false) => (12, 12),
        (false, true) => (11, 6),
        (false, false) => (9, 7),
    };
    let [top, mid, bottom] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Length(mid_h),
        Constraint::Fill(1),
    ])
    .areas(body);
    let [pool_area, server_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(top);
    let [migrations_area, checks_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(mid);
    let [jobs_area, log_area] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Fill(1)]).areas(bottom);

    render_header(frame, header, state, look);
    pool::render(frame, pool_area, state, look);
    server::render(frame, server_area, state, look);
    migrations::render(frame, migrations_area, state, look);
    checks::render(frame, checks_area, state, look);
    jobs::render(frame, jobs_area, state, look);
    render_log(frame, log_area, state, look);
    render_footer(frame, footer, state, look);
    if state.help {
        render_help(frame, area, look);
    }
    no_control_characters(frame);
}

/// The last line of defence: whatever a widget wrote (the log widget draws messages that may
/// quote the server), no cell may hold a control character. Text pgvigil renders itself is
/// already escaped visibly (see `styled`); this only catches what slipped past.
fn no_control_characters(frame: &mut Frame) {
    for cell in frame.buffer_mut().content.iter_mut() {
        if cell.symbol().chars().any(char::is_control) {
            cell.set_symbol("?");
        }
    }
}

/// A bordered block whose border shows focus.
pub(crate) fn panel(
    title: impl Into<String>,
    panel: Panel,
    state: &State,
    look: &Look,
) -> Block<'static> {
    let focused = state.focus == panel;
    let t = look.theme;
    Block::bordered()
        .border_set(look.glyphs.border)
        .border_style(if focused { t.border_focused } else { t.border })
        .title(Span::styled(format!(" {} ", title.into()), t.title))
}

/// `2m05s ago`, from the state's clock.
pub(crate) fn ago(state: &State, then: DateTime<Utc>) -> String {
    let d = (state.now - then).to_std().unwrap_or_default();
    if d.as_secs() < 1 {
        "just now".into()
    } else {
        format!(
            "{} ago",
            format_duration(std::time::Duration::from_secs(d.as_secs()))
        )
    }
}

pub(crate) fn local_time(state: &State, t: DateTime<Utc>) -> String {
    t.with_timezone(&state.local).format("%H:%M:%S").to_string()
}

pub(crate) fn status_span<'a>(status: pgvigil::checks::Status, look: &Look) -> Span<'a> {
    use pgvigil::checks::Status;
    let (text, style) = match status {
        Status::Pass => (look.glyphs.pass, look.theme.ok),
        Status::Warn => (look.glyphs.warn, look.theme.warn),
        Status::Fail => (look.glyphs.fail, look.theme.danger),
        Status::Unknown => ("?", look.theme.warn),
    };
    Span::styled(text, style)
}

fn render_header(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let g = look.glyphs;
    let (dot, link_text, alert) = match (&state.link, state.link.down()) {
        (_, Some(down)) => (
            g.disconnected,
            format!("DISCONNECTED {}", ago(state, down.since)),
            true,
        ),
        (LinkState::Connecting { attempt, .. }, None) => (
            g.disconnected,
            format!("connecting (attempt {attempt})"),
            false,
        ),
        (LinkState::Connected { .. }, _) => (g.connected, "connected".to_string(), false),
        (LinkState::Unresponsive { since, .. }, _) => (
            g.warn,
            format!("NOT ANSWERING {}", ago(state, *since)),
            true,
        ),
        // Waiting and Failed always carry an outage (the first arm).
        (LinkState::Waiting { .. } | LinkState::Failed { .. }, None) => {
            (g.disconnected, "DISCONNECTED".to_string(), true)
        }
    };
    let style = if alert { t.header_alert } else { t.header };
    let version = state
        .server
        .as_ref()
        .map(|s| {
            format!(
                "PG {}{}",
                s.version.split_whitespace().next().unwrap_or(&s.version),
                if s.in_recovery { " STANDBY" } else { "" }
            )
        })
        .unwrap_or_else(|| "PG ?".into());
    let sep = format!(" {} ", g.separator);
    let times = format!(
        "{} / {}Z",
        local_time(state, state.now),
        state.now.format("%H:%M:%S")
    );
    let mut parts = vec![
        format!("{dot} {link_text}"),
        state.target.url.clone(),
        times,
        format!("every {}", format_duration(state.refresh)),
        version,
    ];
    // Narrow terminals lose the product name first, then get the short target
    // (user@host:port/db); the server version, last in line, is the first thing cut.
    let mut lead = " pgvigil".to_string();
    let total = |lead: &str, parts: &[String]| {
        lead.len() + parts.iter().map(|p| p.chars().count() + 3).sum::<usize>()
    };
    if total(&lead, &parts) > area.width as usize {
        lead = String::new();
    }
    if total(&lead, &parts) > area.width as usize {
        parts[1] = state.target.short.clone();
    }
    let mut spans = Vec::new();
    if !lead.is_empty() {
        spans.push(Span::styled(
            lead,
            style.add_modifier(ratatui::style::Modifier::BOLD),
        ));
        spans.push(Span::styled(sep.clone(), style));
    } else {
        spans.push(Span::styled(" ", style));
    }
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(sep.clone(), style));
        }
        spans.push(styled(part, style));
    }
    if state.paused {
        spans.push(Span::styled(sep, style));
        spans.push(Span::styled("PAUSED (p resumes)", t.header_alert));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(style), area);
}

fn render_footer(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let mut spans = Vec::new();
    for b in KEYMAP.iter().filter(|b| b.in_footer) {
        spans.push(Span::styled(b.keys, t.key));
        let short = b
            .description
            .split_whitespace()
            .next()
            .unwrap_or(b.description);
        spans.push(Span::styled(format!(" {short}  "), t.dim));
    }
    spans.push(Span::styled(
        format!("log {}", state.log_level.as_str().to_lowercase()),
        t.dim,
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_log(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let title = format!(
        "Log ({}+, PgUp/PgDn when focused)",
        state.log_level.as_str().to_lowercase()
    );
    let block = panel(title, Panel::Log, state, look);
    match look.log {
        Some(log_state) => {
            let t = look.theme;
            let widget = tui_logger::TuiLoggerWidget::default()
                .block(block)
                .style(t.text)
                .style_error(t.danger)
                .style_warn(t.warn)
                .style_info(t.text)
                .style_debug(t.dim)
                .style_trace(t.dim)
                .output_separator(' ')
                .output_timestamp(Some("%H:%M:%S".into()))
                .output_level(Some(tui_logger::TuiLoggerLevelOutput::Abbreviated))
                .output_target(false)
                .output_file(false)
                .output_line(false)
                .state(log_state);
            frame.render_widget(widget, area);
        }
        None => frame.render_widget(Paragraph::new("").block(block), area),
    }
}

fn render_help(frame: &mut Frame, area: Rect, look: &Look) {
    let t = look.theme;
    let width = 60.min(area.width.saturating_sub(4));
    let height = (KEYMAP.len() as u16 + 6).min(area.height.saturating_sub(2));
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let mut lines: Vec<Line> = KEYMAP
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!("{:>6}  ", b.keys), t.key),
                Span::styled(b.description, t.text),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "No key changes the database: dry-runs always roll back.",
        t.dim,
    )));
    lines.push(Line::from(Span::styled("Any key closes this help.", t.dim)));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_set(look.glyphs.border)
                .border_style(t.border_focused)
                .title(Span::styled(" Keys ", t.title)),
        ),
        rect,
    );
}

fn too_small(frame: &mut Frame, area: Rect, look: &Look) {
    let text = format!(
        "terminal too small (need {MIN_WIDTH}x{MIN_HEIGHT}, have {}x{})",
        area.width, area.height
    );
    let y = area.y + area.height / 2;
    let rect = Rect::new(
        area.x,
        y.min(area.y + area.height.saturating_sub(1)),
        area.width,
        1.min(area.height),
    );
    frame.render_widget(
        Paragraph::new(text)
            .style(look.theme.warn)
            .centered()
            .wrap(Wrap { trim: true }),
        rect,
    );
}

/// Text cut to `width` columns (with `~`, character-safe), with control characters shown as escapes first (names,
/// queries and messages come from the server; an escape sequence must never reach the
/// terminal, and a newline must not break a row).
pub(crate) fn fit(text: &str, width: usize) -> String {
    let text = pgvigil::sanitize::printable(text);
    if text.chars().count() <= width {
        text.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut s: String = text.chars().take(width - 1).collect();
        s.push('~');
        s
    }
}

/// Every span of server or file text goes through here: control characters become escapes.
/// One line of `text` cut to `width`, in `style`: the shape of most rows in the panels.
pub(crate) fn fitted(text: &str, width: usize, style: Style) -> Line<'static> {
    Line::from(styled(fit(text, width), style))
}

/// `text` (control characters escaped) wrapped at spaces onto at most `max_lines` lines of
/// `width`, the lines after the first indented by two; what does not fit ends in `~`. For a
/// source's error, whose reason must be read whole.
pub(crate) fn wrapped(
    text: &str,
    width: usize,
    style: Style,
    max_lines: usize,
) -> Vec<Line<'static>> {
    let text = pgvigil::sanitize::printable(text);
    let mut rows: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let room = if rows.is_empty() {
            width
        } else {
            width.saturating_sub(2)
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
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let (row, room) = if i == 0 {
                (row, width)
            } else {
                (format!("  {row}"), width)
            };
            // A word longer than the row, or the rest that did not fit, ends in `~`.
            let row = if cut && i == last && row.chars().count() < room {
                format!("{row}~")
            } else {
                row
            };
            fitted(&row, room, style)
        })
        .collect()
}

pub(crate) fn styled<'a>(text: impl Into<String>, style: Style) -> Span<'a> {
    let text = text.into();
    match pgvigil::sanitize::printable(&text) {
        std::borrow::Cow::Borrowed(_) => Span::styled(text, style),
        std::borrow::Cow::Owned(clean) => Span::styled(clean, style),
    }
}
