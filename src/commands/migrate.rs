//! `pgvigil migrate lint`, `migrate dry-run` and `migrate rehearse`: the flags become each step's options; the dry-run runs
//! the pending migrations on a dev copy of production's schema (production is only read: a
//! read-only session for the catalog, the ledger and pg_dump), as text or JSON, its verdict the exit code.

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

/// `pgvigil migrate lint|dry-run`: the flags become the step's options.
pub async fn run(
    command: crate::cli::MigrateCommand,
    config: PoolConfig,
    dev: pgvigil::dev::DevSource,
    colour: bool,
) -> Result<Status, CommandError> {
    use crate::cli::MigrateCommand;
    match command {
        MigrateCommand::Lint {
            files,
            all,
            dir,
            json,
            busy_interval,
            no_database,
        } => {
            let args = super::lint::LintArgs {
                files,
                all,
                migrations: dir.migrations,
                json,
                busy_interval,
                no_database,
            };
            super::lint::run(config, args, colour).await
        }
        MigrateCommand::DryRun {
            dir,
            json,
            lock_timeout,
            statement_timeout,
            max_duration,
            max_dev_size,
        } => {
            let options = DryRunOptions {
                lock_timeout,
                statement_timeout,
                max_duration,
                max_dev_size,
                dev: Some(dev),
                progress: progress_on_stderr(),
            };
            dry_run_command(config, dir.migrations, json, options, colour).await
        }
        MigrateCommand::Rehearse {
            dir,
            json,
            from,
            staging_url,
            lock_timeout,
            statement_timeout,
            max_duration,
            sample_every,
            max_exclusive_hold,
            max_write_block,
            jobs,
            busy_interval,
        } => {
            let args = super::rehearse::RehearseArgs {
                migrations: dir.migrations,
                json,
                from,
                staging_url,
                lock_timeout,
                statement_timeout,
                max_duration,
                sample_every,
                thresholds: pgvigil::window::rehearsal::Thresholds {
                    access_exclusive: max_exclusive_hold,
                    write_block: max_write_block,
                },
                jobs,
                busy_interval,
            };
            super::rehearse::run(config, args, dev).await
        }
    }
}
