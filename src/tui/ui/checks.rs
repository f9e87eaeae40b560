//! pgvector and schema panel: the latest check results with pass / warn / fail and their age.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Look, ago, fit, led, local_time, status_span, styled, wrapped};
use crate::tui::state::{Panel, State};
use pgvigil::checks::{Group, Status};
use ratatui::text::Span;

pub fn render(frame: &mut Frame, area: Rect, state: &State, look: &Look) {
    let block = super::panel("pgvector & schema", Panel::Checks, state, look);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let t = look.theme;
    let width = inner.width as usize;
    let Some((at, report)) = &state.checks else {
        frame.render_widget(
            Paragraph::new(styled("not checked yet: press v to verify", t.dim)),
            inner,
        );
        return;
    };
    let mut lines = vec![Line::from(vec![
        styled(
            format!("checked {} ({}) ", ago(state, *at), local_time(state, *at)),
            t.dim,
        ),
        status_span(report.overall(), look),
        styled(format!(" {}", report.overall().monitoring_word()), t.text),
    ])];
    let skip = state.scroll_of(Panel::Checks) as usize;
    let mut shown = 0;
    // The panel is about pgvector and the schema; a connection finding shows only when it is
    // not a pass (the header already says the server is reachable and what it is).
    let findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| match f.group {
            Group::Pgvector | Group::Schema => true,
            Group::Connection => f.status != Status::Pass,
            Group::Migrations | Group::Pool => false,
        })
        .collect();
    let short_id = |f: &pgvigil::Finding| match f.group {
        Group::Pgvector => f.id.trim_start_matches("pgvector."),
        _ => f.id,
    };
    // Each finding wrapped whole; when that does not fit the panel, a pass says less: one
    // row, its mark and name first, its detail cut (a finding that did not pass keeps every
    // word).
    let rows: Vec<usize> = findings
        .iter()
        .map(|f| {
            led(
                vec![Span::raw("  ")],
                &format!("{:<9} {}", short_id(f), f.summary),
                width,
                t.text,
                3,
            )
            .len()
        })
        .collect();
    // The passes lowest in the list say less first, until the rest fits.
    let mut compact = vec![false; findings.len()];
    let mut total = 1 + rows.iter().sum::<usize>();
    for i in (0..findings.len()).rev() {
        if total <= inner.height as usize {
            break;
        }
        if findings[i].status == Status::Pass && rows[i] > 1 {
            compact[i] = true;
            total -= rows[i] - 1;
        }
    }
    for (f, compact) in findings.into_iter().zip(compact) {
        if shown < skip {
            shown += 1;
            continue;
        }
        let id = short_id(f);
        // The mark and the summary are the verdict: wrapped, never cut.
        let text = format!("{id:<9} {}", f.summary);
        if compact && f.status == Status::Pass {
            lines.push(Line::from(vec![
                status_span(f.status, look),
                styled(fit(&format!(" {text}"), width.saturating_sub(1)), t.text),
            ]));
        } else {
            lines.extend(led(
                vec![status_span(f.status, look), Span::raw(" ")],
                &text,
                width,
                t.text,
                3,
            ));
        }
        if f.status != Status::Pass {
            for d in f.details.iter().take(3) {
                lines.push(Line::from(styled(fit(&format!("   {d}"), width), t.dim)));
            }
            if let Some(fix) = &f.fix {
                lines.extend(wrapped(
                    &format!("   fix: {}", fix.lines().next().unwrap_or("")),
                    width,
                    t.info,
                    2,
                ));
            }
        }
    }
    if !report.findings.iter().any(|f| f.group == Group::Pgvector) {
        lines.push(Line::from(styled(
            "pgvector and schema not checked: press v",
            t.dim,
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
