//! `pgvigil migrate dry-run`: the pending migrations on a dev copy of production's schema
//! (production is only read: a read-only session for the catalog, the ledger and pg_dump),
//! reported as text or JSON with the dry-run's verdict as the exit code.

use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::window::{DryRunOptions, dry_run};

use super::{connect_dedicated, print_json, print_out};
use crate::error::CommandError;
use crate::report::render_dry_run;

pub async fn dry_run_command(
    config: PoolConfig,
    dir: PathBuf,
    json: bool,
    options: DryRunOptions,
    colour: bool,
) -> Result<Status, CommandError> {
    let mut conn = connect_dedicated(&config).await?;
    let report = dry_run(&config, &mut conn, &dir, &options)
        .await
        .map_err(CommandError::DryRun)?;
    if json {
        print_json(&report);
    } else {
        print_out(&render_dry_run(&report, colour));
    }
    Ok(report.status().verdict())
}

/// The dry-run's phases on stderr when someone watches it there (a terminal); nothing on a pipe,
/// where the report is what a script reads.
pub fn progress_on_stderr() -> pgvigil::window::ProgressSink {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        pgvigil::window::ProgressSink::from_fn(|p| crate::error::say(&p.to_string()))
    } else {
        pgvigil::window::ProgressSink::none()
    }
}
