//! Which files a lint reads: the files given, every local migration (`--all`), or the pending
//! set (local files the ledger on production does not record as applied, read through the
//! read-only session), falling back to every local file, said so, when there is no database.
//! Then the catalog, and the lint itself: the whole step behind one call for the CLI and the
//! dashboard's job.

use std::path::{Path, PathBuf};

use super::{LintFile, LintOptions, LintReport, lint, read_catalog};
use crate::PoolConfig;
use crate::migrations::{MigrationError, MigrationState, load_local, read_ledger};
use crate::session::ProductionSession;
use crate::window::progress::Progress;

/// Which files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These files, in this order.
    Files(Vec<PathBuf>),
    /// Every local migration of the directory.
    All,
    /// The migrations the ledger does not record (every local one without a database).
    Pending,
}

/// Why the lint could not run. Each names the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// The migrations directory (`--migrations`).
    #[error(transparent)]
    Migrations(#[from] MigrationError),
    /// A file given to lint.
    #[error("{}: cannot read it: {source}; expected a readable SQL migration file", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A read on DATABASE_URL failed (the ledger or the catalog).
    #[error("reading DATABASE_URL's {what}: {source}")]
    Production {
        /// What was being read.
        what: &'static str,
        /// The driver's error, worded and scrubbed.
        #[source]
        source: crate::DbError,
    },
}

/// Lints the selected files; `session`: production, read-only, when it answered (`None`: the
/// lint runs without the catalog and says so). `no_database_because`: why there is none, for
/// the report.
pub async fn lint_migrations(
    config: &PoolConfig,
    mut session: Option<&mut ProductionSession>,
    dir: &Path,
    selection: &Selection,
    no_database_because: Option<&str>,
    options: &LintOptions,
) -> Result<LintReport, LintError> {
    options
        .progress
        .report(Progress::phase("reading the migrations", None));
    let (files, words) = match selection {
        Selection::Files(paths) => {
            let mut files = Vec::new();
            for path in paths {
                let sql = std::fs::read_to_string(path).map_err(|source| LintError::File {
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
        }
        Selection::All | Selection::Pending => {
            let local = load_local(dir).await?;
            let names = file_names(dir);
            let to_file = |m: &crate::migrations::LocalMigration| LintFile {
                name: names
                    .iter()
                    .find(|(v, _)| *v == m.version)
                    .map_or_else(|| m.version.to_string(), |(_, p)| p.display().to_string()),
                sql: m.sql.clone(),
            };
            let pending =
                match (&selection, session.as_deref_mut()) {
                    (Selection::Pending, Some(s)) => Some(s.read(read_ledger).await.map_err(
                        |e| LintError::Production {
                            what: "migration ledger",
                            source: crate::DbError::new(e, &config.database_url),
                        },
                    )?),
                    _ => None,
                };
            match pending {
                Some(ledger) => {
                    let versions =
                        MigrationState::of(&local, ledger.as_deref()).unapplied_versions();
                    let files: Vec<LintFile> = local
                        .iter()
                        .filter(|m| versions.contains(&m.version))
                        .map(to_file)
                        .collect();
                    let n = files.len();
                    (
                        files,
                        format!(
                            "the {n} pending migration(s) of {} (ledger on DATABASE_URL)",
                            dir.display()
                        ),
                    )
                }
                None => {
                    let why = match selection {
                        Selection::All => "--all".to_string(),
                        _ => format!(
                            "no database to tell which are pending: {}",
                            no_database_because.unwrap_or("not read")
                        ),
                    };
                    let files: Vec<LintFile> = local.iter().map(to_file).collect();
                    let n = files.len();
                    (
                        files,
                        format!("all {n} local migration(s) in {} ({why})", dir.display()),
                    )
                }
            }
        }
    };
    let catalog = match session {
        Some(s) => {
            options
                .progress
                .report(Progress::phase("reading production's catalog", None));
            Some(read_catalog(s, options.busy_interval).await.map_err(|e| {
                LintError::Production {
                    what: "catalog",
                    source: crate::DbError::new(e, &config.database_url),
                }
            })?)
        }
        None => None,
    };
    let options = LintOptions {
        selection: words,
        ..options.clone()
    };
    Ok(lint(&files, &options, catalog.as_ref()))
}

/// (version, path) of the up-migration files of `dir`, for naming files in the report.
fn file_names(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.ends_with(".down.sql") || !name.ends_with(".sql") {
                return None;
            }
            let version = name.split_once('_')?.0.parse().ok()?;
            Some((version, e.path()))
        })
        .collect();
    out.sort();
    out
}
