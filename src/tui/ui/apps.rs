//! The Pool panel when production pools are watched (`--app`, `--pgbouncer`, `--prometheus`):
//! a fleet through Prometheus, the applications' gauge (in use against the sum of the
//! maximums), their waits and timeouts, one row per instance sorted by saturation (an
//! unreachable one first, with its error and the age of its last good reading), PgBouncer's
//! pools, the sizing verdict, and pgvigil's own pool on one line at the bottom. Every level
//! comes from tui::verdicts (the library's rule); every verdict line leads with its verdict
//! and wraps rather than lose it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, fitted, flow, styled, wrapped};
use crate::tui::apps::AppsSnapshot;
use crate::tui::state::{PoolSource, State};
use crate::tui::verdicts;
use pgvigil::pool::{SaturationLevel, wait_text};

/// An acquire wait in seconds, or `-` when the source has none.
fn wait(seconds: Option<f64>) -> String {
    seconds.map_or("-".into(), wait_text)
}

/// The colour of a pool's level: the warning's, the band's, or plain.
fn level_style(level: SaturationLevel, look: &Look) -> Style {
    match level {
        SaturationLevel::Saturated | SaturationLevel::Cooling => look.theme.danger,
        SaturationLevel::Near => look.theme.warn,
        SaturationLevel::Calm => look.theme.text,
    }
}

/// ` SATURATED` / ` was 80%+` after a pool's figures when its warning is raised.
fn level_words(level: SaturationLevel, state: &State) -> String {
    level
        .words(state.verdicts.rule())
        .map_or(String::new(), |w| format!(" {w}"))
}

pub fn render(frame: &mut Frame, inner: Rect, state: &State, look: &Look) {
    let t = look.theme;
    let width = inner.width as usize;
    let height = inner.height as usize;
    let source = state.pool_source();
    let shows = |s: PoolSource| source == PoolSource::All || source == s;
    // The parts whose rows are fixed first; the instance table gets what they leave.
    let mut above = Vec::new();
    if shows(PoolSource::Fleet)
        && let Some(f) = &state.fleet
    {
        // Alone, the fleet's fullest instances get a row each (all that Prometheus returned).
        let rows = if source == PoolSource::Fleet {
            height.saturating_sub(4)
        } else {
            0
        };
        fleet_lines(&mut above, f, state, look, width, rows);
    }
    let mut below = Vec::new();
    if shows(PoolSource::Bouncer)
        && let Some(bouncer) = &state.bouncer
    {
        bouncer_lines(&mut below, bouncer, look, width);
        if source == PoolSource::Bouncer
            && let Ok(view) = bouncer
        {
            lists_line(&mut below, view, look, width);
        }
    }
    // Sizing: can these pools together exhaust the server's connections?
    if let Some(s) = verdicts::sizing(state) {
        let text = match s.suggestion() {
            Some(m) => format!("sizing {}; {m}", s.short()),
            None => format!("sizing {}", s.short()),
        };
        below.extend(wrapped(
            &text,
            width,
            if s.oversubscribed { t.warn } else { t.dim },
            3,
        ));
    }
    let mut lines = above;
    if shows(PoolSource::Apps) {
        let room = height.saturating_sub(lines.len() + below.len() + 1);
        match &state.apps {
            Some(apps) => lines.extend(applications(state, apps, look, width, room)),
            None if state.fleet.is_none() => lines.push(fitted(
                "application pools: add --app [NAME=]http://HOST:PORT/metrics",
                width,
                t.dim,
            )),
            None => {}
        }
    }
    lines.extend(below);
    let room = height.saturating_sub(1);
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
            Paragraph::new(own_pool_line(state, look, width)),
            Rect {
                y: inner.y + inner.height - 1,
                height: 1,
                ..inner
            },
        );
    }
}

/// pgvigil's own pool, judged by the pool itself.
fn own_pool_line(state: &State, look: &Look, width: usize) -> Line<'static> {
    let t = look.theme;
    match &state.pool {
        Some(p) => {
            let level = p.saturation_level();
            fitted(
                &format!(
                    "pgvigil's own pool{}: {}/{} in use, wait p95 {}",
                    level_words(level, state),
                    p.in_use,
                    p.max,
                    wait_text(p.acquire_wait.p95_ms / 1000.0)
                ),
                width,
                if level.is_warning() { t.danger } else { t.dim },
            )
        }
        None => fitted("pgvigil's own pool: not connected", width, t.dim),
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
            let level = state.verdicts.fleet();
            let sat = if f.max > 0.0 { f.active / f.max } else { 0.0 };
            lines.extend(wrapped(
                &format!(
                    "fleet of {}{}: in use {:.0}/{:.0} ({:.0}%), waiting {:.0}, p95 {}, timeouts {:.1}/min",
                    f.instances,
                    level_words(level, state),
                    f.active,
                    f.max,
                    sat * 100.0,
                    f.pending,
                    wait(f.acquire_p95),
                    f.timeouts_per_minute
                ),
                width,
                level_style(level, look),
                2,
            ));
            if rows > 0 {
                for (instance, s) in f.top.iter().take(rows) {
                    let level = state.verdicts.fleet_instance(instance);
                    lines.push(fitted(
                        &format!(
                            "  {:<30} {:>4.0}%{}",
                            fit(&pgvigil::sanitize::printable(instance), 30),
                            s * 100.0,
                            level_words(level, state)
                        ),
                        width,
                        level_style(level, look),
                    ));
                }
                return;
            }
            let mut parts = vec![styled("  fullest:", t.dim)];
            parts.extend(f.top.iter().take(3).map(|(i, s)| {
                styled(
                    format!(" {} {:.0}%", pgvigil::sanitize::printable(i), s * 100.0),
                    level_style(state.verdicts.fleet_instance(i), look),
                )
            }));
            if parts.len() > 1 {
                // One row: the fullest first; those that do not fit are in the fleet view.
                lines.extend(flow(parts, width).into_iter().take(1));
            }
        }
    }
}

/// PgBouncer: what holds its clients (a SUSPEND, a PAUSE), then per database its rates (kept
/// per database by PgBouncer, so shown once) and pause, then its pools by user: clients
/// active and waiting, the longest wait, the mode (wrapped, never cut), servers
/// active/idle/used. A pool whose clients wait, or a paused database, is in the warning
/// colour. A failed reading says why first and which console after, wrapped so the reason is
/// read whole even in a narrow panel.
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
        lines.extend(wrapped(
            &format!("pgbouncer {what}: clients wait until RESUME"),
            width,
            t.danger,
            2,
        ));
    }
    // PgBouncer makes a pool when the first client connects to it.
    if view.pools.is_empty() && !view.databases.iter().any(|d| d.paused || d.disabled) {
        lines.extend(wrapped(
            "pgbouncer: no client pools yet (no client has connected)",
            width,
            t.dim,
            2,
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
                head.push_str(&format!(" avg wait {}", wait_text(w / 1e6)));
            }
        }
        let head = head.trim_end_matches(',').to_string();
        lines.extend(wrapped(&head, width, if held { t.warn } else { t.text }, 2));
        for p in view.pools.iter().filter(|p| p.database == name) {
            let style = if p.clients_wait() { t.warn } else { t.text };
            lines.extend(wrapped(
                &format!(
                    "  {}/{}: {} active, {} waiting, maxwait {} ({})",
                    pgvigil::sanitize::printable(&p.database),
                    pgvigil::sanitize::printable(&p.user),
                    p.cl_active,
                    p.cl_waiting,
                    wait_text(p.maxwait_seconds),
                    pgvigil::sanitize::printable(&p.pool_mode),
                ),
                width,
                style,
                2,
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

/// How many lines a source's error may take: its reason whole, the URL after it as room
/// allows.
pub(super) const ERROR_LINES: usize = 3;

/// PgBouncer's SHOW LISTS: how many clients and servers it holds, and how many are still
/// logging in (a login storm shows here first).
fn lists_line(
    lines: &mut Vec<Line<'static>>,
    view: &pgvigil::remote::pgbouncer::BouncerView,
    look: &Look,
    width: usize,
) {
    let get = |k: &str| view.lists.get(k).copied().unwrap_or(0);
    lines.extend(wrapped(
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
        2,
    ));
}

/// The width of the instance column: the rest of the row after the figures, within bounds.
fn name_width(width: usize) -> usize {
    width.saturating_sub(38).clamp(14, 34)
}

/// An instance's name for a column of `w`: its name beside its address when both fit, else
/// its name alone, else what fits.
fn instance_name(inst: &crate::tui::apps::AppInstance, w: usize) -> String {
    let full = pgvigil::sanitize::printable(&verdicts::instance_label(inst)).into_owned();
    match &inst.app {
        _ if full.chars().count() <= w => full,
        Some(app) if app.chars().count() <= w => pgvigil::sanitize::printable(app).into_owned(),
        _ => fit(&full, w),
    }
}

/// The applications: their gauge and sums, then the table of instances in `room` rows.
fn applications(
    state: &State,
    apps: &AppsSnapshot,
    look: &Look,
    width: usize,
    room: usize,
) -> Vec<Line<'static>> {
    let t = look.theme;
    let totals = apps.totals();
    let saturation = if totals.max > 0.0 {
        totals.active / totals.max
    } else {
        0.0
    };
    let level = state.verdicts.apps_total();
    let style = match level {
        SaturationLevel::Saturated | SaturationLevel::Cooling => t.gauge_danger,
        SaturationLevel::Near => t.gauge_warn,
        SaturationLevel::Calm => t.gauge,
    };
    let label = format!("apps in use {:>4}/{:<4} ", totals.active, totals.max);
    let tail = format!(" {:>3.0}%", saturation * 100.0);
    let words = match level.words(state.verdicts.rule()) {
        Some(w) => format!(" {} {w}", look.glyphs.warn),
        None => String::new(),
    };
    // The warning word is never the part that gets cut: the bar gives up its room first.
    let bar_width = width
        .saturating_sub(label.len() + tail.len() + words.chars().count())
        .min(30);
    let filled = (saturation.clamp(0.0, 1.0) * bar_width as f64).round() as usize;
    let mut lines = vec![Line::from(vec![
        styled(label, t.text),
        styled(look.glyphs.gauge_filled.repeat(filled), style),
        styled(look.glyphs.gauge_empty.repeat(bar_width - filled), t.dim),
        styled(tail, style),
        styled(words, t.danger),
    ])];
    lines.extend(flow(
        vec![
            styled(
                format!("waiting {}  ", totals.pending),
                if totals.pending > 0.0 { t.warn } else { t.text },
            ),
            styled(format!("p95 wait {}  ", wait(totals.worst_p95)), t.text),
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
        ],
        width,
    ));
    let name_w = name_width(width);
    lines.push(fitted(
        &format!(
            "{:<name_w$} {:>7} {:>4} {:>4} {:>6} {:>5} {:>3}",
            "instance", "in use", "sat", "wait", "p95", "to/m", "lk"
        ),
        width,
        t.dim,
    ));
    let mut room = room.saturating_sub(lines.len());
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
        let name = instance_name(inst, name_w);
        match &inst.figures {
            Ok(f) => {
                let r = &f.reading;
                let level = state.verdicts.app(inst);
                lines.push(fitted(
                    &format!(
                        "{name:<name_w$} {:>3}/{:<3} {:>3.0}% {:>4} {:>6} {:>5.1} {:>3}",
                        r.active,
                        r.max,
                        r.saturation() * 100.0,
                        r.pending,
                        wait(f.acquire_p95),
                        f.timeouts_per_minute,
                        r.leaked.map_or("-".to_string(), |l| l.to_string()),
                    ),
                    width,
                    level_style(level, look),
                ));
                used += 1;
            }
            Err(e) => {
                let age = inst.last_ok.map_or("never read".to_string(), |at| {
                    format!("last ok {}", ago(state, at))
                });
                // The reason (then the age) on the rows below, indented, in the room the
                // instances after this one leave (each keeps its row); without such room,
                // the age after the verdict (and the reason whole in the log).
                let spare = room.saturating_sub(used + left);
                let mut reason = wrapped(
                    &format!("{e} ({age})"),
                    width.saturating_sub(2),
                    t.danger,
                    spare.min(2),
                );
                for line in &mut reason {
                    line.spans.insert(0, Span::styled("  ", t.danger));
                }
                let head = if reason.is_empty() {
                    // No room for the reason: the verdict and the age (the reason is in
                    // the log), never a reason cut in the middle.
                    format!("{name:<name_w$} {} ({age})", e.verdict())
                } else {
                    format!("{name:<name_w$} {}", e.verdict())
                };
                lines.push(fitted(&head, width, t.danger));
                used += 1 + reason.len();
                lines.extend(reason);
            }
        }
    }
    lines
}
