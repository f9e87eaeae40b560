//! The Pool panel when application pools are watched (`--app`): the fleet's gauge (in use
//! against the sum of the maximums), waiting acquires, the worst p95 wait, timeouts per minute,
//! then one row per instance sorted by saturation (an unreachable one first, with its error and
//! the age of its last good reading), and pgvigil's own pool on one line at the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, fitted, styled, wrapped};
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
        let s = pgvigil::remote::sizing::sizing(&input);
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
    figures: &Result<pgvigil::remote::FleetFigures, pgvigil::remote::ScrapeError>,
    state: &State,
    look: &Look,
    width: usize,
    rows: usize,
) {
    let t = look.theme;
    match figures {
        Err(e) => lines.extend(wrapped(
            &format!("fleet: {e}"),
            width,
            t.danger,
            ERROR_LINES,
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

/// PgBouncer: what holds its clients (a SUSPEND, a PAUSE), then per database its rates (kept
/// per database by PgBouncer, so shown once) and pause, then its pools by user: clients active
/// and waiting, the longest wait, the mode, servers active/idle/used. A pool whose clients
/// wait, or a paused database, is in the warning colour. A failed reading says why first and
/// which console after, wrapped so the reason is read whole even in a narrow panel.
pub(super) fn bouncer_lines(
    lines: &mut Vec<Line<'static>>,
    bouncer: &Result<
        pgvigil::remote::pgbouncer::BouncerView,
        pgvigil::remote::pgbouncer::BouncerError,
    >,
    look: &Look,
    width: usize,
) {
    use pgvigil::remote::pgbouncer::BouncerFailure;
    let t = look.theme;
    let view = match bouncer {
        Err(e) => {
            let retry = if e.kind == BouncerFailure::LoginRefused {
                "; not retried (r retries)"
            } else {
                ""
            };
            lines.extend(wrapped(
                &format!("pgbouncer: {}{retry} ({})", e.reason, e.target),
                width,
                t.danger,
                ERROR_LINES,
            ));
            return;
        }
        Ok(view) => view,
    };
    if let Some(state) = view.state
        && (state.suspended || state.paused)
    {
        let what = if state.suspended {
            "SUSPENDED"
        } else {
            "PAUSED"
        };
        lines.push(fitted(
            &format!("pgbouncer {what}: clients wait until RESUME"),
            width,
            t.danger,
        ));
    }
    // PgBouncer makes a pool when the first client connects to it.
    if view.pools.is_empty() && !view.databases.iter().any(|d| d.paused || d.disabled) {
        lines.push(fitted(
            "pgbouncer: no client pools yet (no client has connected)",
            width,
            t.dim,
        ));
        return;
    }
    let mut names: Vec<&str> = view.pools.iter().map(|p| p.database.as_str()).collect();
    names.extend(
        view.databases
            .iter()
            .filter(|d| d.paused || d.disabled)
            .map(|d| d.name.as_str()),
    );
    names.sort();
    names.dedup();
    for name in names {
        let db = view.database(name);
        let mut head = format!("pgbouncer {}:", pgvigil::sanitize::printable(name));
        let held = db.is_some_and(|d| d.paused || d.disabled);
        if let Some(d) = db {
            if d.paused {
                head.push_str(" PAUSED,");
            }
            if d.disabled {
                head.push_str(" DISABLED,");
            }
            if let Some(x) = d.xact_per_second {
                head.push_str(&format!(" {x:.0} tps,"));
            }
            if let Some(w) = d.avg_wait_us {
                head.push_str(&format!(" avg wait {}", ms(Some(w / 1e6))));
            }
        }
        let head = head.trim_end_matches(',').to_string();
        lines.push(fitted(&head, width, if held { t.warn } else { t.text }));
        for p in view.pools.iter().filter(|p| p.database == name) {
            let style = if p.clients_wait() { t.warn } else { t.text };
            lines.push(fitted(
                &format!(
                    "  {}/{}: {} active, {} waiting, maxwait {:.1}s ({})",
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
                    "    servers {} active {} idle {} used",
                    p.sv_active, p.sv_idle, p.sv_used
                ),
                width,
                t.text,
            ));
        }
    }
}

/// How many lines a source's error may take: its reason whole in a 38-column panel (80
/// columns split in two), the URL after it as room allows.
pub(super) const ERROR_LINES: usize = 3;

/// PgBouncer's SHOW LISTS in one line: how many clients and servers it holds, and how many are
/// still logging in (a login storm shows here first).
fn lists_line(
    lines: &mut Vec<Line<'static>>,
    view: &pgvigil::remote::pgbouncer::BouncerView,
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
        Some(b) if all => {
            let mut scratch = Vec::new();
            bouncer_lines(&mut scratch, b, look, width);
            scratch.len()
        }
        _ => 0,
    };
    // The fleet's rows above the table; pgvigil's own pool, the sizing line and PgBouncer's
    // rows below it.
    let fleet_rows = match &state.fleet {
        Some(f) if all => {
            let mut scratch = Vec::new();
            fleet_lines(&mut scratch, f, state, look, width, 0);
            scratch.len()
        }
        _ => 0,
    };
    let reserve = 2 + bouncer_rows + fleet_rows;
    let mut room = height.saturating_sub(lines.len() + reserve);
    if room == 0 && !apps.instances.is_empty() {
        // No room for a table: the worst instance alone, in place of the column titles.
        lines.pop();
        room = 1;
    }
    let sorted = apps.by_saturation();
    let mut used = 0;
    for (i, inst) in sorted.iter().enumerate() {
        if used >= room {
            break;
        }
        // The last row says how many more did not fit, unless it is the only row: then the
        // worst instance is worth more than a count.
        let left = sorted.len() - i;
        if used + 1 == room && left > 1 && room > 1 {
            lines.push(Line::from(styled(format!("... {left} more"), t.dim)));
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
                used += 1;
            }
            Err(e) => {
                let age = inst.last_ok.map_or("never read".to_string(), |at| {
                    format!("last ok {}", ago(state, at))
                });
                // The reason (then the age) on the rows below, indented, in the room the
                // instances after this one leave (each keeps its row); without such room,
                // after the name on the one row (and whole in the log).
                let spare = room.saturating_sub(used + left);
                let mut reason = wrapped(
                    &format!("{e} ({age})"),
                    width.saturating_sub(2),
                    t.danger,
                    spare.min(2),
                );
                for line in &mut reason {
                    line.spans.insert(0, styled("  ", t.danger));
                }
                let head = if reason.is_empty() {
                    format!(
                        "{:<18} {}: {} ({age})",
                        fit(&name, 18),
                        e.verdict(),
                        pgvigil::sanitize::printable(&e.to_string())
                    )
                } else {
                    format!("{:<18} {}", fit(&name, 18), e.verdict())
                };
                lines.push(fitted(&head, width, t.danger));
                used += 1 + reason.len();
                lines.extend(reason);
            }
        }
    }
    lines
}
