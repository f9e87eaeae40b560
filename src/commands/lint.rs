//! `pgvigil migrate lint`: opens the read-only session on DATABASE_URL (unless
//! `--no-database`; a database that does not answer is said on stderr and the lint goes on
//! without it), runs the library's [`lint_migrations`], prints text or `--json`, and exits with
//! Nagios codes (0 clean or notes, 1 warnings, 2 errors, 3 could not lint).

use std::path::PathBuf;
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::window::lint::{LintOptions, Selection, lint_migrations};

use super::{print_json, print_out};
use crate::error::CommandError;
use crate::report::render_lint;

/// What `migrate lint` was given.
#[derive(Debug)]
pub struct LintArgs {
    pub files: Vec<PathBuf>,
    pub all: bool,
    pub migrations: PathBuf,
    pub json: bool,
    pub busy_interval: Duration,
    pub no_database: bool,
}

pub async fn run(config: PoolConfig, args: LintArgs, colour: bool) -> Result<Status, CommandError> {
    let (mut session, why) = if args.no_database {
        (None, Some("--no-database".to_string()))
    } else {
        match pgvigil::session::ProductionSession::connect(&config).await {
            Ok(s) => (Some(s), None),
            Err(e) => {
                let why = format!(
                    "DATABASE_URL did not answer ({})",
                    pgvigil::DbError::new(e, &config.database_url)
                );
                crate::error::say(&format!("{why}: linting without the catalog"));
                (None, Some(why))
            }
        }
    };
    let selection = if !args.files.is_empty() {
        Selection::Files(args.files)
    } else if args.all {
        Selection::All
    } else {
        Selection::Pending
    };
    let options = LintOptions {
        busy_interval: args.busy_interval,
        progress: super::migrate::progress_on_stderr(),
        ..LintOptions::default()
    };
    let report = lint_migrations(
        &config,
        session.as_mut(),
        &args.migrations,
        &selection,
        why.as_deref(),
        &options,
    )
    .await;
    if let Some(s) = session {
        s.close().await;
    }
    let report = report.map_err(|e| CommandError::Lint(Box::new(e)))?;
    if args.json {
        print_json(&report);
    } else {
        print_out(&render_lint(&report, colour));
    }
    Ok(report.status())
}
