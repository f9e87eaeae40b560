//! The Pool panel when application pools are watched (`--app`): the fleet's gauge (in use
//! against the sum of the maximums), waiting acquires, the worst p95 wait, timeouts per minute,
//! then one row per instance sorted by saturation (an unreachable one first, with its error and
//! the age of its last good reading), and pgvigil's own pool on one line at the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, fitted, styled};
use crate::tui::apps::AppsSnapshot;
use crate::tui::state::{PoolSource, State};

/// An acquire wait as the engineer needs it: under a millisecond is "<1ms" (its hundredths
/// change every tick and say nothing about the pool), then whole milliseconds, then seconds.
fn ms(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 0.001 => "<1ms".into(),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) => format!("{s:.1}s"),
    }
}

pub fn render(frame: &mut Frame, inner: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let width = inner.width as usize;
    let height = inner.height as usize;
    let source = state.pool_source();
    let shows = |s: PoolSource| source == PoolSource::All || source == s;
    let mut lines = Vec::new();
    if shows(PoolSource::Fleet)
        && let Some(f) = &state.fleet
    {
        // Alone, the fleet's fullest instances get a row each (all that Prometheus returned).
        let rows = if source == PoolSource::Fleet {
            height.saturating_sub(4)
        } else {
            0
        };
        fleet_lines(&mut lines, f, state, look, width, rows);
    }
    if shows(PoolSource::Apps) {
        match &state.apps {
            Some(apps) => lines.extend(fleet(state, source, apps, look, width, height)),
            None if state.fleet.is_none() => lines.push(fitted(
                "application pools: add --app http://HOST:PORT/metrics",
                width,
                t.dim,
            )),
            None => {}
        }
    }
    if shows(PoolSource::Bouncer)
        && let Some(bouncer) = &state.bouncer
    {
        bouncer_lines(&mut lines, bouncer, look, width);
        if source == PoolSource::Bouncer
            && let Ok(view) = bouncer
        {
            lists_line(&mut lines, view, look, width);
        }
    }
    // Sizing: can these pools together exhaust the server's connections?
    if let Some(server) = &state.server
        && let Some(input) = crate::tui::apps::sizing_input(
            server,
            state.apps.as_ref(),
            state.bouncer.as_ref().and_then(|b| b.as_ref().ok()),
            state.fleet.as_ref().and_then(|f| f.as_ref().ok()),
        )
    {
        let s = pgvigil::sizing::sizing(&input);
        let verdict = if s.oversubscribed {
            "OVERSUBSCRIBED"
        } else {
            "fits"
        };
        let suggest = s.suggested_max.map_or(String::new(), |m| {
            format!(", max {m}/instance fits (peak {})", s.peak)
        });
        lines.push(fitted(
            &format!(
                "sizing: {} + {} others vs {} usable: {verdict}{suggest}",
                s.demand, s.others, s.usable
            ),
            width,
            if s.oversubscribed { t.warn } else { t.dim },
        ));
    }
    let own = match &state.pool {
        Some(p) => format!(
            "pgvigil's own pool: {}/{} in use, wait p95 {:.1}ms",
            p.in_use, p.max, p.acquire_wait.p95_ms
        ),
        None => "pgvigil's own pool: not connected".to_string(),
    };
    let room = (inner.height as usize).saturating_sub(1);
    lines.truncate(room);
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
            Paragraph::new(fitted(&own, width, t.dim)),
            Rect {
                y: inner.y + inner.height - 1,
                height: 1,
                ..inner
            },
        );
    }
}

/// The fleet through Prometheus: its sums, then its fullest instances.
fn fleet_lines(
    lines: &mut Vec<Line<'static>>,
    figures: &Result<pgvigil::remote::FleetFigures, String>,
    state: &State,
    look: &Look,
    width: usize,
    rows: usize,
) {
    let t = look.theme;
    match figures {
        Err(e) => lines.push(fitted(
            &format!("fleet: {}", pgvigil::sanitize::printable(e)),
            width,
            t.danger,
        )),
        Ok(f) => {
            let sat = if f.max > 0.0 { f.active / f.max } else { 0.0 };
            lines.push(fitted(&format!(
                        "fleet of {}: in use {:.0}/{:.0} ({:.0}%), waiting {:.0}, p95 {}, timeouts {:.1}/min",
                        f.instances,
                        f.active,
                        f.max,
                        sat * 100.0,
                        f.pending,
                        ms(f.acquire_p95),
                        f.timeouts_per_minute
                    ), width, if sat >= state.warn_at { t.danger } else { t.text }));
            if rows > 0 {
                for (instance, s) in f.top.iter().take(rows) {
                    lines.push(fitted(
                        &format!(
                            "  {:<30} {:>4.0}%",
                            fit(&pgvigil::sanitize::printable(instance), 30),
                            s * 100.0
                        ),
                        width,
                        if *s >= state.warn_at {
                            t.danger
                        } else {
                            t.text
                        },
                    ));
                }
                return;
            }
            let top: Vec<String> = f
                .top
                .iter()
                .take(3)
                .map(|(i, s)| format!("{} {:.0}%", pgvigil::sanitize::printable(i), s * 100.0))
                .collect();
            if !top.is_empty() {
                lines.push(fitted(
                    &format!("  fullest: {}", top.join(", ")),
                    width,
                    t.dim,
                ));
            }
        }
    }
}

/// PgBouncer's pools: clients active and waiting, servers active/idle/used, the longest wait,
/// the mode and the rates; a pool whose clients wait is in the warning colour.
fn bouncer_lines(
    lines: &mut Vec<Line<'static>>,
    bouncer: &Result<pgvigil::pgbouncer::BouncerView, String>,
    look: &Look,
    width: usize,
) {
    let t = look.theme;
    match bouncer {
        Err(e) => lines.push(fitted(&pgvigil::sanitize::printable(e), width, t.danger)),
        // PgBouncer makes a pool when the first client connects to it.
        Ok(view) if view.pools.is_empty() => lines.push(fitted(
            "pgbouncer: no client pools yet (no client has connected)",
            width,
            t.dim,
        )),
        Ok(view) => {
            for p in &view.pools {
                let rate = match (p.xact_per_second, p.avg_wait_us) {
                    (Some(x), Some(w)) => format!(", {x:.0} tps, avg wait {:.1}ms", w / 1000.0),
                    (Some(x), None) => format!(", {x:.0} tps"),
                    _ => String::new(),
                };
                let style = if p.clients_wait() { t.warn } else { t.text };
                lines.push(fitted(
                    &format!(
                        "pgbouncer {}/{}: {} active, {} waiting, maxwait {:.1}s ({})",
                        pgvigil::sanitize::printable(&p.database),
                        pgvigil::sanitize::printable(&p.user),
                        p.cl_active,
                        p.cl_waiting,
                        p.maxwait_seconds,
                        pgvigil::sanitize::printable(&p.pool_mode),
                    ),
                    width,
                    style,
                ));
                lines.push(fitted(
                    &format!(
                        "  servers {} active {} idle {} used{rate}",
                        p.sv_active, p.sv_idle, p.sv_used
                    ),
                    width,
                    t.text,
                ));
            }
        }
    }
}

/// PgBouncer's SHOW LISTS in one line: how many clients and servers it holds, and how many are
/// still logging in (a login storm shows here first).
fn lists_line(
    lines: &mut Vec<Line<'static>>,
    view: &pgvigil::pgbouncer::BouncerView,
    look: &Look,
    width: usize,
) {
    let get = |k: &str| view.lists.get(k).copied().unwrap_or(0);
    lines.push(fitted(
        &format!(
            "  lists: clients {} used {} free {} logging in; servers {} used {} free",
            get("used_clients"),
            get("free_clients"),
            get("login_clients"),
            get("used_servers"),
            get("free_servers"),
        ),
        width,
        look.theme.dim,
    ));
}

fn fleet(
    state: &State,
    source: PoolSource,
    apps: &AppsSnapshot,
    look: &Look,
    width: usize,
    height: usize,
) -> Vec<Line<'static>> {
    let t = look.theme;
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
        fitted(
            &format!(
                "{:<18} {:>7} {:>4} {:>4} {:>7} {:>5} {:>3}",
                "instance", "in use", "sat", "wait", "p95", "to/m", "lk"
            ),
            width,
            t.dim,
        ),
    ];
    // Leave the last row for pgvigil's own pool, and four for PgBouncer when watched.
    let all = source == PoolSource::All;
    let bouncer_rows = match &state.bouncer {
        _ if !all => 0,
        Some(Ok(v)) => (2 * v.pools.len()).max(1),
        Some(Err(_)) => 1,
        None => 0,
    };
    // The fleet's rows above the table; pgvigil's own pool, the sizing line and PgBouncer's
    // rows below it.
    let fleet_rows = if all && state.fleet.is_some() { 2 } else { 0 };
    let reserve = 2 + bouncer_rows + fleet_rows;
    let mut room = height.saturating_sub(lines.len() + reserve);
    if room == 0 && !apps.instances.is_empty() {
        // No room for a table: the worst instance alone, in place of the column titles.
        lines.pop();
        room = 1;
    }
    let sorted = apps.by_saturation();
    for (i, inst) in sorted.iter().enumerate() {
        if i >= room {
            break;
        }
        // The last row says how many more did not fit, unless it is the only row: then the
        // worst instance is worth more than a count.
        if i + 1 == room && sorted.len() > room && room > 1 {
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
                lines.push(fitted(
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
                    row_style,
                ));
            }
            Err(e) => {
                let age = inst.last_ok.map_or("never read".to_string(), |at| {
                    format!("last ok {}", ago(state, at))
                });
                lines.push(fitted(
                    &format!(
                        "{:<18} {} {age}: {}",
                        fit(&name, 18),
                        e.verdict(),
                        pgvigil::sanitize::printable(&e.to_string())
                    ),
                    width,
                    t.danger,
                ));
            }
        }
    }
    lines
}
