//! The Pool panel when application pools are watched (`--app`): the fleet's gauge (in use
//! against the sum of the maximums), waiting acquires, the worst p95 wait, timeouts per minute,
//! then one row per instance sorted by saturation (an unreachable one first, with its error and
//! the age of its last good reading), and pgvigil's own pool on one line at the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, styled};
use crate::tui::apps::AppsSnapshot;
use crate::tui::state::State;

fn ms(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.2}ms", s * 1000.0),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) => format!("{s:.1}s"),
    }
}

pub fn render(frame: &mut Frame, inner: Rect, state: &State, apps: &AppsSnapshot, look: &Look) {
    let t = look.theme;
    let width = inner.width as usize;
    let totals = apps.totals();
    let saturation = if totals.max > 0.0 {
        totals.active / totals.max
    } else {
        0.0
    };
    let warn_at = state.warn_at;
    let style = if saturation >= warn_at {
        t.gauge_danger
    } else if saturation >= warn_at * 0.9 {
        t.gauge_warn
    } else {
        t.gauge
    };
    let label = format!("apps in use {:>4}/{:<4} ", totals.active, totals.max);
    let tail = format!(" {:>3.0}%", saturation * 100.0);
    let bar_width = width.saturating_sub(label.len() + tail.len()).min(30);
    let filled = (saturation.clamp(0.0, 1.0) * bar_width as f64).round() as usize;
    let mut lines = vec![
        Line::from(vec![
            styled(label, t.text),
            styled(look.glyphs.gauge_filled.repeat(filled), style),
            styled(look.glyphs.gauge_empty.repeat(bar_width - filled), t.dim),
            styled(tail, style),
        ]),
        Line::from(vec![
            styled(
                format!("waiting {}  ", totals.pending),
                if totals.pending > 0.0 { t.warn } else { t.text },
            ),
            styled(format!("p95 wait {}  ", ms(totals.worst_p95)), t.text),
            styled(
                format!("timeouts {:.1}/min  ", totals.timeouts_per_minute),
                if totals.timeouts_per_minute > 0.0 {
                    t.danger
                } else {
                    t.text
                },
            ),
            styled(
                format!("{}/{} answering", totals.answering, apps.instances.len()),
                if totals.answering < apps.instances.len() {
                    t.danger
                } else {
                    t.dim
                },
            ),
        ]),
        Line::from(styled(
            fit(
                &format!(
                    "{:<18} {:>7} {:>4} {:>4} {:>7} {:>5} {:>3}",
                    "instance", "in use", "sat", "wait", "p95", "to/m", "lk"
                ),
                width,
            ),
            t.dim,
        )),
    ];
    // Leave the last row for pgvigil's own pool.
    let room = (inner.height as usize).saturating_sub(lines.len() + 1);
    let sorted = apps.by_saturation();
    for (i, inst) in sorted.iter().enumerate() {
        if i >= room {
            break;
        }
        if i + 1 == room && sorted.len() > room {
            lines.push(Line::from(styled(
                format!("... {} more", sorted.len() - i),
                t.dim,
            )));
            break;
        }
        let name = pgvigil::sanitize::printable(&inst.name).into_owned();
        match &inst.figures {
            Ok(f) => {
                let r = &f.reading;
                let sat = r.saturation();
                let row_style = if sat >= warn_at { t.danger } else { t.text };
                lines.push(Line::from(styled(
                    fit(
                        &format!(
                            "{:<18} {:>3}/{:<3} {:>3.0}% {:>4} {:>7} {:>5.1} {:>3}",
                            fit(&name, 18),
                            r.active,
                            r.max,
                            sat * 100.0,
                            r.pending,
                            ms(f.acquire_p95),
                            f.timeouts_per_minute,
                            r.leaked.map_or("-".to_string(), |l| l.to_string()),
                        ),
                        width,
                    ),
                    row_style,
                )));
            }
            Err(e) => {
                let age = inst.last_ok.map_or("never read".to_string(), |at| {
                    format!("last ok {}", ago(state, at))
                });
                lines.push(Line::from(styled(
                    fit(
                        &format!(
                            "{:<18} UNREACHABLE {age}: {}",
                            fit(&name, 18),
                            pgvigil::sanitize::printable(e)
                        ),
                        width,
                    ),
                    t.danger,
                )));
            }
        }
    }
    let own = match &state.pool {
        Some(p) => format!(
            "pgvigil's own pool: {}/{} in use, wait p95 {:.1}ms",
            p.in_use, p.max, p.acquire_wait.p95_ms
        ),
        None => "pgvigil's own pool: not connected".to_string(),
    };
    let top = lines.len() as u16;
    frame.render_widget(
        Paragraph::new(lines),
        Rect {
            height: top.min(inner.height),
            ..inner
        },
    );
    if inner.height > top {
        frame.render_widget(
            Paragraph::new(Line::from(styled(fit(&own, width), t.dim))),
            Rect {
                y: inner.y + inner.height - 1,
                height: 1,
                ..inner
            },
        );
    }
}
