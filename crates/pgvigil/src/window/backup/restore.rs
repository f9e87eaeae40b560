//! Restoring a backup's dump into a scratch database on the dev server: the step `backup
//! verify` runs and the rehearsal reuses. Never on production's server: the caller has made
//! sure of that (`ensure_apart_from`, and [`restore_into_scratch`] refuses a server whose
//! system identifier is the source's: production itself or a physical copy of it).
//!
//! Before pg_restore runs, the dump's extensions are created at the source's versions where
//! the dev server has them (pg_dump writes `CREATE EXTENSION` without a version, so a plain
//! restore takes whatever default the target has); one the target lacks is a finding with its
//! fix, found before anything is restored. pg_restore then runs with parallel jobs, without
//! owners and privileges (the dev server has none of production's roles), stopping at the
//! first error.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::manifest::BackupManifest;
use super::tools::{self, NoClient};
use crate::db_error::DbError;
use crate::dev::{DevError, DevServer, Extension, RefusedExtension, ScratchDatabase};
use crate::window::{Progress, ProgressSink};

/// Why a dump could not be restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// No pg_restore of the dump's server version.
    #[error(transparent)]
    NoClient(#[from] NoClient),
    /// The restore target does not offer an extension the dump needs.
    #[error(
        "the restore target ({target}) does not have extension {name} (the backup has version \
         {version}): install it on that server (for pgvector on Debian/Ubuntu: apt-get install \
         postgresql-{major}-pgvector; scripts/setup-postgres.sh does it for the private \
         cluster), then verify again"
    )]
    ExtensionUnavailable {
        /// The extension.
        name: String,
        /// The version the source has.
        version: String,
        /// The source's major version (for the package name).
        major: u32,
        /// The restore target as reports name it.
        target: String,
    },
    /// The dev database's extension policy refuses an extension the dump has.
    #[error("{0}")]
    ExtensionRefused(RefusedExtension),
    /// The restore target is the source's own server (or a physical copy of it).
    #[error(
        "the restore target ({target}) has the source's system identifier {system_identifier}: it \
         is production's server or a physical replica of it, and a backup is never restored \
         there; pass --restore-url of a separate scratch server, or leave it out for a private \
         cluster"
    )]
    SameSystem {
        /// The target.
        target: String,
        /// The shared system identifier.
        system_identifier: String,
    },
    /// The dev server: no scratch database, no connection.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// A statement on the scratch database failed (creating the extensions).
    #[error("preparing the restore on {target}: {source}")]
    Prepare {
        /// The target.
        target: String,
        /// The failure, secrets removed.
        source: DbError,
    },
    /// pg_restore failed.
    #[error(
        "pg_restore failed ({status}): {message}; the dump could not be restored as it is: fix \
         what the message names on the restore target, or take a new backup"
    )]
    PgRestore {
        /// Its exit status.
        status: String,
        /// Its last lines of error output, secrets removed, made printable.
        message: String,
    },
    /// pg_restore could not be started or waited for.
    #[error("pg_restore: {0}")]
    Io(#[source] std::io::Error),
}

/// A restored copy: a scratch database holding the dump. Drop it with
/// [`ScratchDatabase::drop_now`] (a dropped value is dropped from a task of its own).
pub struct RestoredCopy {
    /// The scratch database.
    pub scratch: ScratchDatabase,
    /// Extensions created at another version than the source's (the target lacks that
    /// version): (name, source version, restored version).
    pub extension_versions: Vec<(String, String, String)>,
}

/// The extension versions `dev` offers, by name.
async fn available(dev: &DevServer) -> Result<Vec<(String, String)>, RestoreError> {
    let mut conn = dev.admin().await?;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name::text, version FROM pg_available_extension_versions")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| RestoreError::Prepare {
                target: dev.describe(),
                source: DbError::new(e, dev),
            })?;
    let _ = sqlx::Connection::close(conn).await;
    Ok(rows)
}

/// `pg_control_system()`'s system identifier of `dev`, when readable.
async fn system_identifier(dev: &DevServer) -> Option<String> {
    let mut conn = dev.admin().await.ok()?;
    let id: Option<String> = sqlx::query_scalar(
        "SELECT CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                     THEN (SELECT system_identifier::text FROM pg_control_system()) END",
    )
    .fetch_one(&mut conn)
    .await
    .ok()?;
    let _ = sqlx::Connection::close(conn).await;
    id
}

/// Restores the dump at `dump_dir` (described by `manifest`) into a new scratch database on
/// `dev` with `jobs` parallel jobs, reporting "restoring items i/n".
pub async fn restore_into_scratch(
    dev: &DevServer,
    manifest: &BackupManifest,
    dump_dir: &Path,
    jobs: usize,
    progress: &ProgressSink,
) -> Result<RestoredCopy, RestoreError> {
    let major = (manifest.source.server_version_num / 10000) as u32;
    let pg_restore = tools::find("pg_restore", major.max(dev.major()))?;
    if let (Some(source), Some(target)) = (
        manifest.source.system_identifier.as_deref(),
        system_identifier(dev).await,
    ) && source == target
    {
        return Err(RestoreError::SameSystem {
            target: dev.describe(),
            system_identifier: target,
        });
    }
    // Everything the dump needs must be there before anything is restored.
    let offered = available(dev).await?;
    let mut wanted = Vec::new();
    let mut downgraded = Vec::new();
    for e in &manifest.extensions {
        if let Some(why) = dev.extensions().refuses(&e.name) {
            return Err(RestoreError::ExtensionRefused(RefusedExtension {
                name: e.name.clone(),
                asked_by: "the backup (its source has it)".into(),
                reaches: why,
            }));
        }
        let versions: Vec<&str> = offered
            .iter()
            .filter(|(n, _)| *n == e.name)
            .map(|(_, v)| v.as_str())
            .collect();
        if versions.is_empty() {
            return Err(RestoreError::ExtensionUnavailable {
                name: e.name.clone(),
                version: e.version.clone(),
                major,
                target: dev.describe(),
            });
        }
        let version = versions
            .contains(&e.version.as_str())
            .then(|| e.version.clone());
        if version.is_none() {
            downgraded.push(e.name.clone());
        }
        wanted.push(Extension {
            name: e.name.clone(),
            version,
            schema: Some(e.schema.clone()),
        });
    }
    progress.report(Progress::phase("creating the scratch database", None));
    let scratch = dev.scratch().await?;
    scratch
        .create_extensions(&wanted)
        .await
        .map_err(|e| RestoreError::Prepare {
            target: dev.describe(),
            source: DbError::new(e, dev),
        })?;
    let mut extension_versions = Vec::new();
    if !downgraded.is_empty() {
        let mut conn = scratch
            .connect_admin()
            .await
            .map_err(|e| RestoreError::Prepare {
                target: dev.describe(),
                source: DbError::new(e, dev),
            })?;
        for name in downgraded {
            let got: String =
                sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = $1")
                    .bind(&name)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| RestoreError::Prepare {
                        target: dev.describe(),
                        source: DbError::new(e, dev),
                    })?;
            let source = manifest
                .extensions
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.version.clone())
                .unwrap_or_default();
            extension_versions.push((name, source, got));
        }
        let _ = sqlx::Connection::close(conn).await;
    }
    let total = toc_entries(&pg_restore, dump_dir)
        .await
        .map(|t| t.len() as u64);
    run_pg_restore(dev, &scratch, &pg_restore, dump_dir, jobs, total, progress).await?;
    Ok(RestoredCopy {
        scratch,
        extension_versions,
    })
}

/// One entry of the dump's table of contents (`pg_restore --list`): its kind (`TABLE DATA`)
/// and the rest of the line after the kind (`public documents owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// `EXTENSION`, `TABLE`, `TABLE DATA`, `INDEX`, `CONSTRAINT`, ...
    pub kind: String,
    /// What follows the kind: schema, name and owner, as pg_restore lists them.
    pub rest: String,
}

const KINDS: [&str; 8] = [
    "TABLE DATA",
    "SEQUENCE SET",
    "FK CONSTRAINT",
    "EXTENSION",
    "CONSTRAINT",
    "TABLE",
    "INDEX",
    "TRIGGER",
];

/// Parses `pg_restore --list` output: `3456; 0 16390 TABLE DATA public documents owner`.
pub fn parse_toc(list: &str) -> Vec<TocEntry> {
    list.lines()
        .filter(|l| !l.trim_start().starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let (_, after) = l.split_once(';')?;
            // "0 16390 TABLE DATA public documents owner": skip the two numbers.
            let mut words = after.split_whitespace();
            words.next()?;
            words.next()?;
            let rest: Vec<&str> = words.collect();
            let joined = rest.join(" ");
            let kind = KINDS
                .iter()
                .find(|k| joined.starts_with(&format!("{k} ")))
                .map(|k| k.to_string())
                .unwrap_or_else(|| rest.first().unwrap_or(&"").to_string());
            Some(TocEntry {
                rest: joined[kind.len()..].trim().to_string(),
                kind,
            })
        })
        .collect()
}

/// The dump's table of contents, `None` when pg_restore cannot read it.
pub async fn toc_entries(client: &tools::Client, dump_dir: &Path) -> Option<Vec<TocEntry>> {
    let out = tokio::process::Command::new(&client.path)
        .arg("--list")
        .arg(dump_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| parse_toc(&String::from_utf8_lossy(&out.stdout)))
}

async fn run_pg_restore(
    dev: &DevServer,
    scratch: &ScratchDatabase,
    client: &tools::Client,
    dump_dir: &Path,
    jobs: usize,
    total: Option<u64>,
    progress: &ProgressSink,
) -> Result<(), RestoreError> {
    let mut cmd = tokio::process::Command::new(&client.path);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    for (var, value) in dev.libpq_env(&scratch.name) {
        cmd.env(var, value);
    }
    cmd.env("PGAPPNAME", tools::application_name("restore"))
        .env("PGCONNECT_TIMEOUT", "30")
        .args([
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--verbose",
        ])
        .arg(format!("--jobs={}", jobs.max(1)))
        .arg(format!("--dbname={}", scratch.name))
        .arg(dump_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(RestoreError::Io)?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut done: BTreeSet<u64> = BTreeSet::new();
    let mut errors: Vec<String> = Vec::new();
    progress.report(Progress::phase("restoring items", total));
    while let Some(line) = lines.next_line().await.map_err(RestoreError::Io)? {
        if let Some(n) = item_number(&line) {
            if done.insert(n) {
                progress.report(Progress::phase("restoring items", total).at(done.len() as u64));
            }
        } else if !is_verbose_chatter(&line) {
            errors.push(line);
            if errors.len() > 40 {
                errors.remove(0);
            }
        }
    }
    let status = child.wait().await.map_err(RestoreError::Io)?;
    if !status.success() {
        let text = dev
            .libpq_env(&scratch.name)
            .iter()
            .fold(errors.join("; "), |t, (var, v)| {
                if *var == "PGPASSWORD" {
                    t.replace(v.as_str(), "***")
                } else {
                    t
                }
            });
        return Err(RestoreError::PgRestore {
            status: status.to_string(),
            message: crate::sanitize::printable(&text).into_owned(),
        });
    }
    Ok(())
}

/// The item number in pg_restore's `processing item 3456 ...` / `finished item 3456 ...`.
fn item_number(line: &str) -> Option<u64> {
    let at = line
        .find("processing item ")
        .map(|i| i + "processing item ".len())
        .or_else(|| {
            line.find("finished item ")
                .map(|i| i + "finished item ".len())
        })?;
    line[at..].split_whitespace().next()?.parse().ok()
}

/// pg_restore's --verbose narration (not an error).
fn is_verbose_chatter(line: &str) -> bool {
    [
        "connecting to database",
        "creating ",
        "processing ",
        "launching item",
        "entering main parallel loop",
        "entering restore_toc_entries",
        "finished main parallel loop",
        "executing ",
        "setting owner",
        "from TOC entry",
    ]
    .iter()
    .any(|w| line.contains(w))
        && !line.contains("error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_lines_are_read_by_kind() {
        let list = ";\n; Archive created at 2026-12-04\n;\n\
                    2; 3079 16385 EXTENSION - vector \n\
                    215; 1259 16400 TABLE public documents app\n\
                    3380; 0 16400 TABLE DATA public documents app\n\
                    3232; 2606 16410 CONSTRAINT public documents documents_pkey app\n\
                    3236; 1259 16420 INDEX public documents_source_idx app\n";
        let toc = parse_toc(list);
        assert_eq!(toc.len(), 5);
        assert_eq!(toc[0].kind, "EXTENSION");
        assert_eq!(toc[0].rest, "- vector");
        assert_eq!(toc[2].kind, "TABLE DATA");
        assert_eq!(toc[2].rest, "public documents app");
        assert_eq!(toc[3].kind, "CONSTRAINT");
        assert_eq!(toc[4].kind, "INDEX");
        assert_eq!(
            item_number("pg_restore: finished item 3380 TABLE DATA documents"),
            Some(3380)
        );
        assert_eq!(
            item_number("pg_restore: processing item 215 TABLE documents"),
            Some(215)
        );
    }
}
