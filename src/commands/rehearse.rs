//! `pgvigil migrate rehearse`: the library's rehearsal (pgvigil::window::rehearsal) with its
//! phases on stderr, the report on stdout (text through sanitize, or JSON), the record written
//! to the state directory for the apply gate, and the verdict as the exit code (0 passed,
//! 1 flagged, 2 failed).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::DevSource;
use pgvigil::sanitize::printable;
use pgvigil::window::Outcome;
use pgvigil::window::rehearsal::{
    self, RehearsalOptions, RehearsalReport, RehearsalSource, RehearsalVerdict, Thresholds,
    projection,
};

use super::{connect_dedicated, print_json, print_out};
use crate::commands::migrate::progress_on_stderr;
use crate::error::CommandError;

/// The flags of `migrate rehearse`.
pub struct RehearseArgs {
    pub migrations: PathBuf,
    pub json: bool,
    pub from: Option<PathBuf>,
    pub staging_url: Option<String>,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub max_duration: Duration,
    pub sample_every: Duration,
    pub thresholds: Thresholds,
    pub jobs: Option<u16>,
    pub busy_interval: Duration,
}

pub async fn run(
    config: PoolConfig,
    args: RehearseArgs,
    dev: DevSource,
) -> Result<Status, CommandError> {
    let local = pgvigil::migrations::load_local(&args.migrations).await?;
    let source = match &args.staging_url {
        Some(raw) => RehearsalSource::Staging(Box::new(
            pgvigil::DatabaseUrl::parse(raw).map_err(CommandError::StagingUrl)?,
        )),
        None => RehearsalSource::Backup {
            manifest: args.from.clone(),
            dev,
        },
    };
    let mut options = RehearsalOptions::new(source);
    options.lock_timeout = args.lock_timeout;
    options.statement_timeout = args.statement_timeout;
    options.max_duration = args.max_duration;
    options.sample_every = args.sample_every;
    options.thresholds = args.thresholds;
    options.jobs = args.jobs.map(usize::from);
    options.busy_interval = args.busy_interval;
    options.progress = progress_on_stderr();
    // Production is read for the projection only; a rehearsal from a backup goes on without
    // it (and says so), one on a staging server does not (it could be production).
    let mut session = match connect_dedicated(&config).await {
        Ok(s) => Some(s),
        Err(e) => {
            crate::error::say(&format!("{e}"));
            None
        }
    };
    let result = rehearsal::rehearse(&config, session.as_mut(), &local, &options).await;
    if let Some(s) = session {
        s.close().await;
    }
    let (report, record) = result.map_err(|e| CommandError::Rehearse(Box::new(e)))?;
    let recorded = match pgvigil::checks::state_dir() {
        Some(dir) => Some(
            rehearsal::record::write(&dir, &record)
                .map_err(|e| CommandError::RehearsalRecord(Box::new(e)))?,
        ),
        None => None,
    };
    if args.json {
        print_json(&report);
    } else {
        let mut out = render(&report);
        if let Some(path) = recorded {
            let _ = writeln!(out, "  recorded for the apply gate in {}", path.display());
        }
        print_out(&out);
    }
    Ok(report.verdict.status())
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn secs(ms: f64) -> String {
    projection::seconds(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

/// How a report line reads: the CLI prints them plain, the dashboard colours them. Decided
/// here, from the report's values, once for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Text,
    Warn,
    Danger,
}

/// The human report as lines: the verdict, where it ran (`setting`), then per migration,
/// the checks and the notes (`body`). Every piece of server or file text through `printable`.
pub struct ReportLines {
    pub verdict: String,
    pub setting: Vec<(Tone, String)>,
    pub body: Vec<(Tone, String)>,
}

pub fn report_lines(r: &RehearsalReport) -> ReportLines {
    let word = match r.verdict {
        RehearsalVerdict::Passed => "PASSED",
        RehearsalVerdict::Flagged => "FLAGGED",
        RehearsalVerdict::Failed => "FAILED",
    };
    let verdict = format!("rehearsal {word}: {}", printable(&r.summary()));
    let mut setting = vec![(Tone::Text, format!("  ran on {}", printable(&r.ran_on)))];
    let exts: Vec<String> = r
        .extensions
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    setting.push((
        Tone::Text,
        format!(
            "  PostgreSQL {}, {}; database {} before, {} after; a reading every {} ms",
            printable(&r.server_version),
            printable(&exts.join(", ")),
            mib(r.size_before),
            mib(r.size_after),
            r.sample_interval_ms
        ),
    ));
    if let Some(p) = &r.production {
        setting.push((
            Tone::Text,
            format!("  production read for the projection: {}", printable(p)),
        ));
    }
    let mut body = Vec::new();
    for m in &r.migrations {
        let tx = if m.no_transaction {
            " (no-transaction)"
        } else {
            ""
        };
        let (tone, head) = match &m.outcome {
            Outcome::Succeeded => (Tone::Text, format!("ok in {}", secs(m.duration_ms))),
            Outcome::Failed {
                error,
                line,
                column,
                ..
            } => {
                let at = match (line, column) {
                    (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
                    _ => String::new(),
                };
                (
                    Tone::Danger,
                    format!(
                        "FAILED after {}{at}: {}",
                        secs(m.duration_ms),
                        printable(error)
                    ),
                )
            }
            Outcome::NotRun { reason } => (Tone::Warn, format!("not run: {}", printable(reason))),
        };
        body.push((
            tone,
            format!("  {} {}{tx}: {head}", m.version, printable(&m.description)),
        ));
        if let (Some(p), Some(model)) = (m.production_duration_ms, &m.scale_model) {
            body.push((
                Tone::Text,
                format!(
                    "    about {} at production's size ({})",
                    secs(p),
                    printable(model)
                ),
            ));
        }
        for l in &m.locks {
            let (tone, mark) = if l.over_threshold.is_some() {
                (Tone::Danger, "FLAG ")
            } else {
                (Tone::Text, "")
            };
            let created = if l.created_here {
                " (created by the pending migrations)"
            } else {
                ""
            };
            body.push((
                tone,
                format!("    {mark}{}{created}", printable(&projection::words(l))),
            ));
        }
        for rel in &m.rewrites {
            body.push((
                Tone::Text,
                format!("    rewrote {} (new relfilenode)", printable(rel)),
            ));
        }
        for i in &m.indexes_built {
            body.push((
                if i.valid { Tone::Text } else { Tone::Danger },
                format!(
                    "    built index {} ({} on {}): {}",
                    printable(&i.name),
                    printable(&i.method),
                    printable(&i.table),
                    if i.valid {
                        "valid"
                    } else {
                        "INVALID (indisvalid false): drop it and build again"
                    }
                ),
            ));
        }
        if !m.build_phases.is_empty() {
            let phases: Vec<String> = m
                .build_phases
                .iter()
                .map(|p| format!("{} {}", p.phase, secs(p.seen_ms as f64)))
                .collect();
            body.push((
                Tone::Text,
                format!("    build phases: {}", printable(&phases.join(", "))),
            ));
        }
        if !m.waits.is_empty() {
            let waits: Vec<String> = m
                .waits
                .iter()
                .take(4)
                .map(|(w, ms)| format!("{w} ~{}", secs(*ms as f64)))
                .collect();
            body.push((
                Tone::Text,
                format!("    waited on: {}", printable(&waits.join(", "))),
            ));
        }
    }
    for c in &r.checks {
        let tone = match c.status {
            Status::Pass => Tone::Text,
            Status::Warn | Status::Unknown => Tone::Warn,
            Status::Fail => Tone::Danger,
        };
        body.push((
            tone,
            format!(
                "  check {} {}: {}",
                c.status.label(),
                c.id,
                printable(&c.summary)
            ),
        ));
    }
    for n in &r.notes {
        body.push((Tone::Warn, format!("  note: {}", printable(n))));
    }
    ReportLines {
        verdict,
        setting,
        body,
    }
}

/// The human report, as `migrate rehearse` prints it.
pub fn render(r: &RehearsalReport) -> String {
    let lines = report_lines(r);
    let mut out = lines.verdict;
    out.push('\n');
    for (_, l) in lines.setting.iter().chain(&lines.body) {
        out.push_str(l);
        out.push('\n');
    }
    out
}
