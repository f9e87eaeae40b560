//! Plain-text rendering of check and dry-run reports for a terminal or a log: one line per
//! check, details and fixes under anything that is not a pass, a summary line last. Colour only
//! when asked for (never with NO_COLOR, --no-color, or when the output is not a terminal).

use std::fmt::Write;

use pgvigil::checks::DiffKind;
use pgvigil::checks::{CheckReport, Status};
use pgvigil::config::format_duration;
use pgvigil::sanitize::printable;
use pgvigil::window::{DryRunReport, Outcome};

/// Whether to colour output: NO_COLOR (non-empty) and --no-color win; otherwise only terminals.
pub fn colour_wanted(no_color_flag: bool, is_terminal: bool) -> bool {
    colour_decision(no_color_flag, std::env::var_os("NO_COLOR"), is_terminal)
}

/// The rule itself, apart from the process environment (see <https://no-color.org>).
pub fn colour_decision(
    no_color_flag: bool,
    no_color_env: Option<std::ffi::OsString>,
    is_terminal: bool,
) -> bool {
    let no_color_env = no_color_env.is_some_and(|v| !v.is_empty());
    !no_color_flag && !no_color_env && is_terminal
}

struct Paint(bool);

impl Paint {
    fn status(&self, s: Status) -> String {
        let code = match s {
            Status::Pass => "32",
            Status::Warn => "33",
            Status::Fail => "31;1",
            Status::Unknown => "35",
        };
        self.wrap(code, &format!("{:<7}", s.label()))
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }
}

pub fn render_check(report: &CheckReport, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    let version = report
        .server_version
        .as_deref()
        .map(|v| format!(" (PostgreSQL {v})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "pgvigil check: {}{}",
        printable(&report.target),
        printable(&version)
    );
    let width = report
        .findings
        .iter()
        .map(|f| f.id.len())
        .max()
        .unwrap_or(10);
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{} {:<width$}  {}",
            p.status(f.status),
            f.id,
            printable(&f.summary)
        );
        if f.status != Status::Pass {
            for d in &f.details {
                let _ = writeln!(out, "        {}", printable(d));
            }
            if let Some(fix) = &f.fix {
                for (i, line) in fix.split('\n').map(printable).enumerate() {
                    let lead = if i == 0 { "fix: " } else { "     " };
                    let _ = writeln!(out, "        {}", p.dim(&format!("{lead}{line}")));
                }
            }
        }
    }
    let overall = report.overall();
    let _ = writeln!(
        out,
        "{}: {} in {:.0} ms",
        p.wrap(
            match overall {
                Status::Pass => "32;1",
                Status::Warn => "33;1",
                Status::Fail => "31;1",
                Status::Unknown => "35;1",
            },
            overall.monitoring_word()
        ),
        report.counts.sentence(),
        report.duration_ms
    );
    out
}

/// Exit code of a dry-run: 0 every pending migration ran on the dev copy, 2 one failed (or
/// production changed meanwhile).
pub fn dry_run_exit_code(report: &DryRunReport) -> u8 {
    report.status().verdict().exit_code()
}

pub fn render_dry_run(report: &DryRunReport, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pgvigil migrate dry-run: {} (PostgreSQL {}; read only)",
        printable(&report.target),
        printable(&report.production_version),
    );
    if let Some(dev) = &report.dev {
        let _ = writeln!(
            out,
            "ran on: {} (lock_timeout {}, statement_timeout {}, bound {})",
            printable(dev),
            format_duration(std::time::Duration::from_millis(
                report.lock_timeout_ms as u64
            )),
            format_duration(std::time::Duration::from_millis(
                report.statement_timeout_ms as u64
            )),
            format_duration(std::time::Duration::from_millis(
                report.max_duration_ms as u64
            )),
        );
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {}", printable(n));
    }
    if report.migrations.is_empty() {
        let _ = writeln!(out, "no pending migrations");
    }
    for m in &report.migrations {
        let (status, word) = match &m.outcome {
            Outcome::Succeeded => (Status::Pass, "ok"),
            Outcome::Failed { .. } => (Status::Fail, "failed"),
            Outcome::NotRun { .. } => (Status::Unknown, "not run"),
        };
        let _ = writeln!(
            out,
            "{} {} {}{}: {word} in {:.1} ms",
            p.status(status),
            m.version,
            printable(&m.description),
            if m.no_transaction {
                " (no-transaction)"
            } else {
                ""
            },
            m.duration_ms
        );
        match &m.outcome {
            Outcome::Failed {
                error,
                line,
                column,
                ..
            } => {
                let at = match (line, column) {
                    (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                    _ => String::new(),
                };
                let _ = writeln!(out, "        error{at}: {}", printable(error));
            }
            Outcome::NotRun { reason } => {
                let _ = writeln!(out, "        {}", printable(reason));
            }
            Outcome::Succeeded => {}
        }
        if !m.locks.is_empty() {
            let _ = writeln!(
                out,
                "        locks{}:",
                if m.locks_sampled {
                    " (sampled while it ran)"
                } else {
                    ""
                }
            );
            for l in &m.locks {
                let _ = writeln!(out, "          {}", printable(&l.to_string()));
            }
        }
        if !m.changes.is_empty() {
            let _ = writeln!(out, "        schema changes:");
            for c in &m.changes {
                let sign = match c.kind {
                    DiffKind::Unexpected => "+",
                    DiffKind::Missing => "-",
                    DiffKind::Different | DiffKind::Pending => "~",
                };
                let detail = match c.kind {
                    DiffKind::Unexpected => c.actual.clone().unwrap_or_default(),
                    DiffKind::Missing => c.expected.clone().unwrap_or_default(),
                    DiffKind::Different | DiffKind::Pending => format!(
                        "{} -> {}",
                        c.expected.as_deref().unwrap_or("?"),
                        c.actual.as_deref().unwrap_or("?")
                    ),
                };
                let _ = writeln!(
                    out,
                    "          {sign} {}: {}",
                    printable(&c.object),
                    printable(&detail)
                );
            }
        }
        for l in &m.lint {
            let _ = writeln!(out, "        {}", p.dim(&format!("lint: {}", printable(l))));
        }
    }
    render_production(&mut out, report, p);
    out
}

/// What the claim about production rests on: what was compared, what the dev server could
/// reach, which extensions were refused, what was not checked.
fn render_production(out: &mut String, report: &DryRunReport, p: Paint) {
    let e = &report.production;
    for r in &e.refused_extensions {
        let _ = writeln!(out, "refused: {}", printable(&r.to_string()));
    }
    if !e.allowed_extensions.is_empty() {
        let _ = writeln!(
            out,
            "allowed (--allow-extension): {}",
            printable(&e.allowed_extensions.join(", "))
        );
    }
    if let Some(network) = &e.dev_network {
        let text = format!("dev server: {}", printable(&network.to_string()));
        let _ = match network {
            pgvigil::dev::DevNetwork::Isolated => writeln!(out, "{text}"),
            _ => writeln!(out, "{}", p.wrap("33;1", &text)),
        };
    }
    let claim = format!(
        "production{}: only read-only statements ran there; {}",
        if report.production_unchanged && e.rows_changed.is_empty() {
            " unchanged"
        } else {
            ""
        },
        printable(&e.claim())
    );
    if report.production_unchanged && e.rows_changed.is_empty() {
        let _ = writeln!(out, "{claim}");
    } else if report.production_unchanged {
        let _ = writeln!(out, "{}", p.wrap("33;1", &claim));
    } else {
        let _ = writeln!(
            out,
            "{}",
            p.wrap(
                "31;1",
                &format!("WARNING: {claim} (someone else is migrating?)")
            )
        );
    }
    for c in &e.rows_changed {
        let _ = writeln!(
            out,
            "        {}: {} -> {} rows{}, {} row(s) written",
            printable(&c.table),
            c.rows_before,
            c.rows_after,
            if c.exact { "" } else { " (estimated)" },
            c.rows_written
        );
    }
    for n in &e.not_checked {
        let _ = writeln!(out, "{}", p.dim(&format!("not checked: {}", printable(n))));
    }
}

/// `pgvigil migrate lint`'s human report: per finding `file:line:column severity rule`, the
/// message and fix indented below, then the waivers, what the catalog said (or what was
/// assumed), and the summary. File and server text pass through `printable`.
pub fn render_lint(report: &pgvigil::window::lint::LintReport, colour: bool) -> String {
    use pgvigil::window::lint::Severity;
    let p = Paint(colour);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pgvigil migrate lint: {} (rules of PostgreSQL {})",
        printable(&report.selection),
        report.pg_version
    );
    for a in &report.assumptions {
        let _ = writeln!(out, "  {}", p.dim(&printable(a)));
    }
    for t in &report.tables {
        let _ = writeln!(out, "  {}", printable(&t.summary()));
    }
    for file in &report.files {
        if file.parse_failed {
            let _ = writeln!(out, "{}: does not parse; not linted", printable(&file.file));
        }
        for f in &file.findings {
            let code = match f.severity {
                Severity::Error => "31;1",
                Severity::Warning => "33",
                Severity::Note => "36",
            };
            let _ = writeln!(
                out,
                "{}:{}:{} {} {}",
                printable(&file.file),
                f.line,
                f.column,
                p.wrap(code, f.severity.label()),
                f.rule
            );
            let _ = writeln!(out, "    {}", printable(&f.message));
            if let Some(why) = &f.why {
                let _ = writeln!(
                    out,
                    "    {}",
                    p.dim(&format!("severity: {}", printable(why)))
                );
            }
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "    fix: {}", printable(fix));
            }
        }
        for w in &file.waivers {
            let _ = writeln!(
                out,
                "{}:{} waived {} ({}:{}): {}",
                printable(&file.file),
                w.line,
                w.rule,
                w.waived.severity.label(),
                w.waived.line,
                printable(&w.reason)
            );
        }
    }
    let _ = writeln!(out, "{}", report.summary());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgvigil::checks::{Finding, Group};

    #[test]
    fn no_color_and_the_flag_turn_colour_off() {
        assert!(colour_decision(false, None, true));
        assert!(!colour_decision(false, Some("1".into()), true));
        assert!(
            colour_decision(false, Some("".into()), true),
            "empty NO_COLOR is unset"
        );
        assert!(!colour_decision(true, None, true));
        assert!(!colour_decision(false, None, false), "pipes get no colour");
    }

    #[test]
    fn report_has_escapes_only_with_colour() {
        let mut r = CheckReport::unknown("postgres://u:***@h:5432/d".into(), "refused".into());
        r.findings.push(
            Finding::fail(Group::Pgvector, "pgvector.index", "missing").fix("CREATE INDEX ..."),
        );
        assert!(render_check(&r, true).contains('\x1b'));
        let plain = render_check(&r, false);
        assert!(!plain.contains('\x1b'));
        assert!(plain.contains("FAIL    pgvector.index"), "{plain}");
        assert!(plain.contains("fix: CREATE INDEX ..."), "{plain}");
    }
}
