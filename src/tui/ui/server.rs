//! Server connections panel: pg_stat_activity grouped by application and state, the total
//! against max_connections minus the reserved slots, the longest transaction and lock waiters.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Look, ago, fit, flow, styled, wrapped};
use crate::tui::state::{Panel, State};

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    // At a scale where one reading costs more than pgvigil's budget, the title says how often
    // the view is read and what a reading costs the server.
    let every = state.server.as_ref().map_or(1, |s| {
        pgvigil::catalog::server_view_every(s.read_ms, state.refresh)
    });
    let title = match &state.server {
        Some(s) if every > 1 => format!(
            "Server: read every {} ({:.1}ms)",
            pgvigil::config::format_duration(state.refresh * every),
            s.read_ms
        ),
        _ => "Server connections".to_string(),
    };
    let block = super::panel(title, Panel::Server, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let t = look.theme;
    let width = inner.width as usize;
    let Some(s) = &state.server else {
        frame.render_widget(Paragraph::new(styled("no server view yet", t.dim)), inner);
        return;
    };
    let usage = s.usage();
    let usage_style = match crate::tui::verdicts::server_connections(state) {
        pgvigil::checks::Status::Fail => t.danger,
        pgvigil::checks::Status::Warn => t.warn,
        _ => t.text,
    };
    let mut lines = flow(
        vec![
            styled(
                format!("clients {}/{} ({:.0}%)", s.total, s.usable(), usage * 100.0),
                usage_style,
            ),
            styled(
                format!("  lock waiters {}", s.lock_waiters),
                if s.lock_waiters > 0 { t.warn } else { t.text },
            ),
            styled(
                format!(
                    "  ({} max, {} reserved)",
                    s.max_connections, s.reserved_connections
                ),
                t.dim,
            ),
        ],
        width,
    );
    if s.in_recovery {
        lines.extend(wrapped(
            "STANDBY (in recovery): read-only; migrations apply on its primary",
            width,
            t.warn,
            2,
        ));
    }
    if !s.sees_all_sessions {
        lines.extend(wrapped(
            "grant pg_monitor: only this role's sessions are visible in detail",
            width,
            t.warn,
            2,
        ));
    }
    match &s.longest_transaction {
        Some(x) => lines.push(Line::from(styled(
            fit(
                &format!(
                    "longest xact {:.0}s pid {} {} ({}): {}",
                    x.seconds, x.pid, x.application, x.state, x.query
                ),
                width,
            ),
            if x.seconds >= 60.0 { t.warn } else { t.text },
        ))),
        None => lines.push(Line::from(styled("no open transactions", t.dim))),
    }
    if let Some(w) = s.lock_waits.first() {
        // Who blocks whom is the verdict: wrapped, never cut.
        lines.extend(wrapped(
            &format!(
                "waiting {:.0}s pid {} ({}) blocked by {:?}",
                w.seconds, w.pid, w.application, w.blocked_by
            ),
            width,
            t.warn,
            2,
        ));
    }
    // Index builds in progress (the HNSW build on documents runs for hours): phase, progress
    // through it and, where the phase counts its work, the time left at the rate so far.
    for b in s.index_builds.iter().take(2) {
        // What the engineer watches first leads: how far, how long; then which and how.
        let progress = match (b.fraction(), b.eta_seconds()) {
            (Some(f), Some(eta)) => format!(
                "{:.0}% ~{} left",
                f * 100.0,
                pgvigil::config::format_duration(std::time::Duration::from_secs_f64(eta))
            ),
            (Some(f), None) => format!("{:.0}%", f * 100.0),
            (None, _) => "waiting".to_string(),
        };
        let counted = if b.blocks_total > 0 {
            format!(" (blocks {}/{})", b.blocks_done, b.blocks_total)
        } else if b.tuples_total > 0 {
            format!(" (tuples {}/{})", b.tuples_done, b.tuples_total)
        } else {
            String::new()
        };
        lines.push(Line::from(styled(
            fit(
                &format!(
                    "index build {progress}: {} on {}, {}{counted}; {} pid {} ({})",
                    b.index.as_deref().unwrap_or("(not created yet)"),
                    b.table,
                    b.phase,
                    b.command,
                    b.pid,
                    b.application
                ),
                width,
            ),
            t.info,
        )));
    }
    if !state.link.is_connected()
        && let Some(at) = state.server_at
    {
        lines.push(Line::from(styled(
            format!("stale: as of {}", ago(state, at)),
            t.danger,
        )));
    }
    let header_rows = lines.len() as u16;
    frame.render_widget(
        Paragraph::new(lines),
        Rect {
            height: header_rows.min(inner.height),
            ..inner
        },
    );
    let table_area = Rect {
        y: inner.y + header_rows,
        height: inner.height.saturating_sub(header_rows),
        ..inner
    };
    if table_area.height < 2 {
        return;
    }
    // One row per application: active, idle, idle in transaction, waiting on a lock.
    let mut apps: Vec<(String, [i64; 4])> = Vec::new();
    for g in &s.groups {
        let entry = match apps.iter_mut().find(|(a, _)| *a == g.application) {
            Some(e) => e,
            None => {
                apps.push((g.application.clone(), [0; 4]));
                apps.last_mut().expect("just pushed")
            }
        };
        match g.state.as_str() {
            "active" => entry.1[0] += g.count,
            "idle" => entry.1[1] += g.count,
            s if s.starts_with("idle in transaction") => entry.1[2] += g.count,
            _ => entry.1[0] += g.count,
        }
        entry.1[3] += g.waiting_on_lock;
    }
    apps.sort_by(|a, b| {
        b.1.iter()
            .sum::<i64>()
            .cmp(&a.1.iter().sum::<i64>())
            .then(a.0.cmp(&b.0))
    });
    let skip = state.scroll_of(Panel::Server) as usize;
    let rows = apps.iter().skip(skip).map(|(app, c)| {
        Row::new(vec![
            Cell::from(styled(app.clone(), t.text)),
            Cell::from(c[0].to_string()),
            Cell::from(c[1].to_string()),
            Cell::from(styled(
                c[2].to_string(),
                if c[2] > 0 { t.warn } else { t.text },
            )),
            Cell::from(styled(
                c[3].to_string(),
                if c[3] > 0 { t.warn } else { t.text },
            )),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(6),
        ],
    )
    .header(Row::new(vec!["application", "active", "idle", "in tx", "locked"]).style(t.dim))
    .style(t.text);
    frame.render_widget(table, table_area);
}
