//! Pool panel: in use / idle / size / max as a gauge and numbers, saturation with its warning,
//! in-use and acquire-wait sparklines, errors and timeouts, leaked connections. When the database
//! is down it says so in words first: since when, which attempt, the next retry, the last error.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Wrap};

use super::{Look, ago, fit, local_time, styled};
use crate::tui::keymap::{Action, keys_for};
use crate::tui::state::{Panel, State};
use pgvigil::pool::{LinkState, SaturationLevel, wait_text};

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    // With several production sources the title says which one shows and how to change it.
    let title = if state.pool_sources().len() > 1 {
        format!(
            "Pool: {} ({} cycles)",
            state.pool_source().label(),
            keys_for(Action::CycleSource)
        )
    } else {
        "Pool".to_string()
    };
    let block = super::panel(title, Panel::Pool, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The production pools when watched; pgvigil's own pool shrinks to one line there.
    if state.apps.is_some() || state.bouncer.is_some() || state.fleet.is_some() {
        super::apps::render(frame, inner, state, look);
        return;
    }
    let t = look.theme;
    let width = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();

    if let Some(down) = state.link.down() {
        let (attempt, next) = match &state.link {
            LinkState::Failed { attempts, .. } => (*attempts, "not retried automatically".into()),
            LinkState::Waiting {
                attempt,
                next_retry_at,
                ..
            } if *next_retry_at > state.now => {
                let secs = (*next_retry_at - state.now).num_milliseconds().max(0) as f64 / 1000.0;
                (*attempt, format!("next retry in {:.0}s", secs.ceil()))
            }
            LinkState::Waiting { attempt, .. } | LinkState::Connecting { attempt, .. } => {
                (*attempt, "retrying now".into())
            }
            LinkState::Connected { .. } | LinkState::Unresponsive { .. } => (0, String::new()),
        };
        // A fatal failure's whole message carries what to fix; otherwise the last cause.
        let last_error = match &state.link {
            LinkState::Failed { error, .. } => error,
            _ => &down.last_error,
        };
        let since = down.since;
        lines.push(Line::from(styled(
            fit(
                &format!(
                    "DISCONNECTED since {} ({})",
                    local_time(state, since),
                    ago(state, since)
                ),
                width,
            ),
            t.danger,
        )));
        lines.push(Line::from(styled(
            fit(
                &format!(
                    "attempt {attempt}, {next} ({}: retry now)",
                    keys_for(Action::RetryNow)
                ),
                width,
            ),
            t.warn,
        )));
        lines.push(Line::from(styled(
            format!("last error: {last_error}"),
            t.text,
        )));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), inner);
        return;
    }
    match &state.link {
        LinkState::Connecting { attempt, since, .. } => {
            lines.push(Line::from(styled(
                format!(
                    "connecting, attempt {attempt} (started {})",
                    ago(state, *since)
                ),
                t.warn,
            )));
        }
        LinkState::Unresponsive { since, .. } => {
            lines.push(Line::from(styled(
                fit(
                    &format!(
                        "server not answering for {}; figures below are stale",
                        ago(state, *since).trim_end_matches(" ago")
                    ),
                    width,
                ),
                t.danger,
            )));
        }
        LinkState::Connected { .. } | LinkState::Waiting { .. } | LinkState::Failed { .. } => {}
    }
    let Some(p) = &state.pool else {
        lines.push(Line::from(styled("no pool figures yet", t.dim)));
        frame.render_widget(Paragraph::new(lines), inner);
        return;
    };

    // Gauge: in use of max, coloured by saturation.
    let pct = (p.saturation * 100.0).round() as u32;
    // The level as the pool judged it (the library's rule, the same for every pool shown).
    let level = p.saturation_level();
    let gauge_style = match level {
        SaturationLevel::Saturated | SaturationLevel::Cooling => t.gauge_danger,
        SaturationLevel::Near => t.gauge_warn,
        SaturationLevel::Calm => t.gauge,
    };
    let label = format!("in use {:>3}/{:<3} ", p.in_use, p.max);
    let tail = format!(" {pct:>3}%");
    // Leave room for the warning word: it must never be the part that gets cut.
    let bar_width = width.saturating_sub(label.len() + tail.len() + 13).min(40);
    let filled = ((p.saturation.clamp(0.0, 1.0)) * bar_width as f64).round() as usize;
    let mut gauge = vec![
        styled(label, t.text),
        styled(look.glyphs.gauge_filled.repeat(filled), gauge_style),
        styled(look.glyphs.gauge_empty.repeat(bar_width - filled), t.dim),
        styled(tail, gauge_style),
    ];
    // The warning outlives the peak until the pool has been calm for a while; the words say
    // which.
    if let Some(word) = level.words(&p.saturation_rule()) {
        gauge.push(styled(format!(" {} {word}", look.glyphs.warn), t.danger));
    }
    lines.push(Line::from(gauge));
    lines.push(Line::from(vec![
        styled(
            format!("size {}  idle {}  min {}  ", p.size, p.idle, p.min),
            t.text,
        ),
        styled(
            format!("waiting {}", p.waiters),
            if p.waiters > 0 { t.warn } else { t.text },
        ),
        styled(
            if width >= 50 {
                format!("  warns at {:.0}%", p.saturation_warn_at * 100.0)
            } else {
                String::new()
            },
            t.dim,
        ),
    ]));
    let w = &p.acquire_wait;
    let window = if width >= 50 {
        format!(" (last {}s)", w.window_secs)
    } else {
        String::new()
    };
    lines.push(Line::from(styled(
        fit(
            &format!(
                "wait p50 {} p95 {} p99 {} max {}{window}",
                wait_text(w.p50_ms / 1000.0),
                wait_text(w.p95_ms / 1000.0),
                wait_text(w.p99_ms / 1000.0),
                wait_text(w.max_ms / 1000.0)
            ),
            width,
        ),
        t.text,
    )));
    let errors: u64 = p.errors_total.values().sum();
    lines.push(Line::from(vec![
        styled(format!("acq {}  ", p.acquisitions_total), t.text),
        styled(
            format!("errors {errors}  "),
            if errors > 0 { t.warn } else { t.text },
        ),
        styled(
            format!("timeouts {}  ", p.timeouts_total),
            if p.timeouts_total > 0 {
                t.danger
            } else {
                t.text
            },
        ),
        styled(
            format!("leaks {}", p.leaked.len()),
            if p.leaked.is_empty() {
                t.text
            } else {
                t.danger
            },
        ),
    ]));
    // This is pgvigil's own pool; the production pools need a source.
    lines.push(Line::from(styled(
        fit(
            "(pgvigil's own pool; --app [NAME=]URL shows application pools)",
            width,
        ),
        t.dim,
    )));
    let text_rows = lines.len() as u16;
    let rest = inner.height.saturating_sub(text_rows);
    let [text_area, spark_area] = Layout::vertical([
        Constraint::Length(text_rows.min(inner.height)),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(lines), text_area);
    if rest == 0 {
        return;
    }
    // Sparklines share what is left: in use, then the p95 wait; leaks underneath when tall.
    let leak_rows = if rest >= 5 {
        p.leaked.len().min(2) as u16
    } else {
        0
    };
    let spark_rows = rest - leak_rows;
    let in_use_rows = spark_rows.div_ceil(2);
    let [a, b, c] = Layout::vertical([
        Constraint::Length(in_use_rows),
        Constraint::Length(spark_rows - in_use_rows),
        Constraint::Length(leak_rows),
    ])
    .areas(spark_area);
    sparkline(
        frame,
        a,
        "in use",
        &state.in_use_history,
        Some(p.max as u64),
        t.sparkline,
        look,
    );
    sparkline(
        frame,
        b,
        "p95 wt",
        &state.wait_history,
        None,
        t.sparkline_wait,
        look,
    );
    let leaks: Vec<Line> = p
        .leaked
        .iter()
        .map(|l| {
            Line::from(styled(
                fit(&format!("leak: {} held {:.0}s", l.label, l.age_secs), width),
                t.danger,
            ))
        })
        .collect();
    frame.render_widget(Paragraph::new(leaks), c);
}

fn sparkline(
    frame: &mut Frame,
    area: Rect,
    label: &str,
    history: &std::collections::VecDeque<u64>,
    max: Option<u64>,
    style: ratatui::style::Style,
    look: &Look,
) {
    if area.height == 0 || area.width < 10 {
        return;
    }
    let [label_area, chart] =
        Layout::horizontal([Constraint::Length(7), Constraint::Fill(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(Span::styled(label.to_string(), look.theme.dim)),
        label_area,
    );
    let n = chart.width as usize;
    let data: Vec<u64> = history.iter().rev().take(n).rev().copied().collect();
    let mut s = Sparkline::default()
        .data(&data)
        .style(style)
        .bar_set(look.glyphs.bars.clone());
    if let Some(m) = max {
        s = s.max(m.max(1));
    }
    frame.render_widget(s, chart);
}
