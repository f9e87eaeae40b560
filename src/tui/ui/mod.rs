//! Rendering: a pure function of the state, the theme and the glyphs. It never touches the
//! database and never awaits; time comes from `state.now`, so a frame is deterministic and can
//! be snapshot-tested. Layout: header, then from 100 columns pool | server, migrations | checks,
//! jobs | the Window checklist with the log, and below them a tab bar and one panel at a time;
//! the footer last. The verdicts come from the state and the library (see tui::verdicts):
//! render decides nothing.

mod apps;
mod checks;
mod jobs;
mod migrations;
mod pool;
mod server;
mod text;
mod window;

pub use text::CUT;
pub(crate) use text::{broken, fit, fitted, flow, led, styled, wrapped};

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::keymap::{Action, FOOTER_IF_ROOM, HELP_NOTES, KEYMAP, keys_for};
use super::state::{PANELS, Panel, State};
use super::theme::{Glyphs, Theme};
use super::verdicts;
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
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(frame, header, state, look);
    if area.width >= WIDE {
        grid(frame, body, state, look);
    } else {
        one_panel(frame, body, state, look);
    }
    render_footer(frame, footer, state, look);
    if state.help {
        render_help(frame, area, look);
    }
    no_control_characters(frame);
}

/// From this width every panel has room beside another; below it, one panel at a time.
pub const WIDE: u16 = 100;

/// Wide: pool | server, migrations | checks, jobs | the Window checklist with the log.
fn grid(frame: &mut Frame, body: Rect, state: &State, look: &Look) {
    let tall = body.height >= 38;
    // The production pools (applications, PgBouncer, a fleet) need rows for their instance
    // table and columns for the instances' names; the Migrations panel gives up some rows
    // (it reads the same until a migration lands), the Server panel some columns.
    let production = state.apps.is_some() || state.bouncer.is_some() || state.fleet.is_some();
    let (top_h, mid_h) = match (tall, production) {
        (true, true) => (20, 8),
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
    let pool_share = if production { 60 } else { 50 };
    let [pool_area, server_area] =
        Layout::horizontal([Constraint::Percentage(pool_share), Constraint::Fill(1)]).areas(top);
    let [migrations_area, checks_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(mid);
    let [jobs_area, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Fill(1)]).areas(bottom);
    // The Window checklist sits above the log when the row is tall enough for both (the log
    // keeps 5 rows; the checklist scrolls), beside it otherwise (24 to 27 rows).
    let (window_area, log_area) = if bottom.height >= 12 {
        let window_h = window::height(state, right.width, look).min(bottom.height - 5);
        let [w, l] =
            Layout::vertical([Constraint::Length(window_h), Constraint::Fill(1)]).areas(right);
        (w, l)
    } else {
        let [w, l] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Fill(1)]).areas(right);
        (w, l)
    };
    pool::render(frame, pool_area, state, look);
    server::render(frame, server_area, state, look);
    migrations::render(frame, migrations_area, state, look);
    checks::render(frame, checks_area, state, look);
    jobs::render(frame, jobs_area, state, look);
    window::render(frame, window_area, state, look);
    render_log(frame, log_area, state, look);
}

/// Narrow (most SSH clients open at 80x24): a tab bar with every panel's verdict mark, and the
/// focused panel with the whole width, so that no verdict is cut; Tab moves between them.
fn one_panel(frame: &mut Frame, body: Rect, state: &State, look: &Look) {
    let [tabs, shown] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(body);
    render_tabs(frame, tabs, state, look);
    match state.focus {
        Panel::Pool => pool::render(frame, shown, state, look),
        Panel::Server => server::render(frame, shown, state, look),
        Panel::Migrations => migrations::render(frame, shown, state, look),
        Panel::Checks => checks::render(frame, shown, state, look),
        Panel::Jobs => jobs::render(frame, shown, state, look),
        Panel::Window => window::render(frame, shown, state, look),
        Panel::Log => render_log(frame, shown, state, look),
    }
}

/// `Pool ✗  Server ✓  Migrations ✓ ...`: each panel's worst verdict (from tui::verdicts), the
/// one shown highlighted.
fn render_tabs(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let mut spans = Vec::new();
    for panel in PANELS {
        let style = if *panel == state.focus {
            t.selected
        } else {
            t.dim
        };
        spans.push(Span::styled(format!(" {} ", panel_name(*panel)), style));
        if let Some(status) = verdicts::panel_status(state, *panel) {
            spans.push(status_span(status, look));
        }
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled(
        format!(
            " {}/{}",
            keys_for(Action::FocusNext),
            keys_for(Action::FocusPrev)
        ),
        t.key,
    ));
    let lines = flow(spans, area.width as usize);
    frame.render_widget(
        Paragraph::new(lines.into_iter().next().unwrap_or_default()),
        area,
    );
}

/// A panel's name on the tab bar.
fn panel_name(panel: Panel) -> &'static str {
    match panel {
        Panel::Pool => "Pool",
        Panel::Server => "Server",
        Panel::Migrations => "Migrations",
        Panel::Checks => "Checks",
        Panel::Jobs => "Jobs",
        Panel::Window => "Window",
        Panel::Log => "Log",
    }
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
    let utc = format!("{}Z", state.now.format("%H:%M:%S"));
    let times = format!("{} / {utc}", local_time(state, state.now));
    let paused = state.paused.then(|| "PAUSED (p resumes)".to_string());
    // Narrow terminals lose the product name first, then get the short target
    // (user@host:port/db), then lose the refresh interval and the local time; the link state
    // and the server version (a verdict: which server, a standby) are never cut.
    let mut lead = Some(" pgvigil".to_string());
    let mut target = state.target.url.clone();
    let mut times = Some(times);
    let mut every = Some(format!("every {}", format_duration(state.refresh)));
    let width = area.width as usize;
    let parts_of =
        |lead: &Option<String>, target: &str, times: &Option<String>, every: &Option<String>| {
            let mut parts = vec![format!("{dot} {link_text}"), target.to_string()];
            parts.extend(times.clone());
            parts.extend(every.clone());
            parts.push(version.clone());
            parts.extend(paused.clone());
            let len = lead.as_ref().map_or(1, |l| l.len() + 3)
                + parts.iter().map(|p| p.chars().count()).sum::<usize>()
                + 3 * (parts.len() - 1);
            (parts, len)
        };
    for step in 0..4 {
        if parts_of(&lead, &target, &times, &every).1 <= width {
            break;
        }
        match step {
            0 => lead = None,
            1 => target = state.target.short.clone(),
            2 => every = None,
            _ => times = Some(utc.clone()),
        }
    }
    let (parts, len) = parts_of(&lead, &target, &times, &every);
    // Still too wide: the target gives up what it must (it is in the Server panel's title too).
    let over = len.saturating_sub(width);
    let parts: Vec<String> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 1 && over > 0 {
                fit(&p, p.chars().count().saturating_sub(over))
            } else {
                p
            }
        })
        .collect();
    let mut spans = Vec::new();
    match lead {
        Some(lead) => {
            spans.push(Span::styled(
                lead,
                style.add_modifier(ratatui::style::Modifier::BOLD),
            ));
            spans.push(Span::styled(sep.clone(), style));
        }
        None => spans.push(Span::styled(" ", style)),
    }
    let n = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(sep.clone(), style));
        }
        if state.paused && i == n - 1 {
            spans.push(Span::styled(part, t.header_alert));
        } else {
            spans.push(styled(part, style));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(style), area);
}

fn render_footer(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let tail = format!("log {}", state.log_level.as_str().to_lowercase());
    let entry_width = |keys: &str, word: &str| keys.chars().count() + word.chars().count() + 3;
    let all: usize = KEYMAP
        .iter()
        .filter_map(|b| b.footer)
        .map(|(k, w)| entry_width(k, w))
        .sum::<usize>()
        + tail.len();
    // Without room for every hint, the ones the help lists anyway give way.
    let roomy = all <= area.width as usize;
    let mut spans = Vec::new();
    for b in KEYMAP {
        let Some((keys, word)) = b.footer else {
            continue;
        };
        if !roomy && FOOTER_IF_ROOM.contains(&b.action) {
            continue;
        }
        spans.push(Span::styled(keys, t.key));
        spans.push(Span::styled(format!(" {word}  "), t.dim));
    }
    spans.push(Span::styled(tail, t.dim));
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
    let width = 76.min(area.width.saturating_sub(4));
    let inner = width.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = KEYMAP
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(format!("{:>6}  ", b.keys), t.key),
                Span::styled(b.description, t.text),
            ])
        })
        .collect();
    let notes: Vec<Line> = HELP_NOTES
        .iter()
        .flat_map(|note| wrapped(note, inner, t.dim, 4))
        .collect();
    // The blank line between keys and notes is the first thing 24 rows give up.
    if lines.len() + notes.len() + 3 <= area.height as usize {
        lines.push(Line::from(""));
    }
    lines.extend(notes);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
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
