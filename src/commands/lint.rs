//! `pgvigil migrate lint`: which files (given FILES, `--all`, or the pending set from the
//! ledger when DATABASE_URL answers, else every local file, said so), the catalog read through
//! a read-only session when the database answers, then the library's lint, printed as text or
//! `--json` with Nagios exit codes (0 clean or notes, 1 warnings, 2 errors, 3 could not lint).

use std::path::PathBuf;
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::migrations::{MigrationState, load_local, read_ledger};
use pgvigil::window::lint::{LintFile, LintOptions, lint, read_catalog};

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
    let mut session = if args.no_database {
        None
    } else {
        match pgvigil::session::ProductionSession::connect(&config).await {
            Ok(s) => Some(s),
            Err(e) => {
                crate::error::say(&format!(
                    "DATABASE_URL did not answer ({}): linting without the catalog",
                    pgvigil::DbError::new(e, &config.database_url)
                ));
                None
            }
        }
    };
    let (files, selection) = if !args.files.is_empty() {
        let mut files = Vec::new();
        for path in &args.files {
            let sql = std::fs::read_to_string(path).map_err(|source| CommandError::LintFile {
                path: path.clone(),
                source,
            })?;
            files.push(LintFile {
                name: path.display().to_string(),
                sql,
            });
        }
        let n = files.len();
        (files, format!("{n} given file(s)"))
    } else {
        let local = load_local(&args.migrations).await?;
        let name = |version: i64| {
            std::fs::read_dir(&args.migrations)
                .ok()
                .and_then(|d| {
                    d.flatten().map(|e| e.path()).find(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(&format!("{version}_")) && !n.ends_with(".down.sql")
                        })
                    })
                })
                .map_or_else(|| version.to_string(), |p| p.display().to_string())
        };
        let all = |why: &str| {
            let files: Vec<LintFile> = local
                .iter()
                .map(|m| LintFile {
                    name: name(m.version),
                    sql: m.sql.clone(),
                })
                .collect();
            let n = files.len();
            (
                files,
                format!(
                    "all {n} local migration(s) in {} ({why})",
                    args.migrations.display()
                ),
            )
        };
        if args.all {
            all("--all")
        } else if let Some(s) = session.as_mut() {
            let ledger = s
                .read(read_ledger)
                .await
                .map_err(|e| CommandError::Query(pgvigil::DbError::new(e, &config.database_url)))?;
            let pending = MigrationState::of(&local, ledger.as_deref()).unapplied_versions();
            let files: Vec<LintFile> = local
                .iter()
                .filter(|m| pending.contains(&m.version))
                .map(|m| LintFile {
                    name: name(m.version),
                    sql: m.sql.clone(),
                })
                .collect();
            let n = files.len();
            (
                files,
                format!(
                    "the {n} pending migration(s) of {} (ledger on DATABASE_URL)",
                    args.migrations.display()
                ),
            )
        } else {
            all("no database to tell which are pending")
        }
    };
    let catalog =
        match session.as_mut() {
            Some(s) => Some(read_catalog(s, args.busy_interval).await.map_err(|e| {
                CommandError::Query(pgvigil::DbError::new(e, &config.database_url))
            })?),
            None => None,
        };
    if let Some(s) = session {
        s.close().await;
    }
    let options = LintOptions {
        busy_interval: args.busy_interval,
        selection,
        ..LintOptions::default()
    };
    let report = lint(&files, &options, catalog.as_ref());
    if args.json {
        print_json(&report);
    } else {
        print_out(&render_lint(&report, colour));
    }
    Ok(report.status())
}
