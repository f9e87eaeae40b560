//! `backup verify`: a backup is verified when its restore matches its source, not when its
//! files are present. In order: every file against its SHA-256 (a damaged dump is not
//! restored), the table of contents (`pg_restore --list`: the extensions, every table and its
//! data, every index, the ledger), the restore into a scratch database on the dev server,
//! then every figure of the manifest against the restored copy, read with the same statements
//! (figures.rs): per table the row count and each range's hash, the index definitions and
//! their validity, the extension versions, the pgvector columns' dimensions, the ledger. The
//! restored copy is dropped on every way out. The outcome is `match` only when all agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::figures::{self, TableName};
use super::manifest::{BackupManifest, Coverage, ManifestError};
use super::restore::{RestoreError, parse_toc, restore_into_scratch};
use super::tools;
use crate::db_error::DbError;
use crate::dev::DevServer;
use crate::session::Reader;
use crate::window::{Progress, ProgressSink};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// pg_restore's parallel jobs (`None`: the cores available).
    pub jobs: Option<usize>,
    /// FOR TESTS OF THE VERIFICATION ITSELF: SQL run (as the dev server's administrator) on
    /// the restored copy after the restore and before the comparison, to show that a copy that
    /// differs from its source is caught. `None` in every real use.
    pub tamper_restored_copy: Option<String>,
}

/// What kind of disagreement a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A file of the manifest is absent.
    FileMissing,
    /// A file is shorter or longer than the manifest says.
    FileSize,
    /// A file's SHA-256 differs.
    FileAltered,
    /// A file the manifest does not list.
    FileUnexpected,
    /// The table of contents lacks an object or cannot be read.
    Toc,
    /// The restore failed (pg_restore, a missing extension, the dev server).
    Restore,
    /// A table's row count differs, or the table is absent.
    RowCount,
    /// A range's rows or hash differ.
    RangeHash,
    /// An index is absent, defined differently or invalid.
    Index,
    /// An extension's version differs.
    ExtensionVersion,
    /// A pgvector column's declared dimensions differ.
    VectorDimensions,
    /// The migration ledger differs.
    Ledger,
}

/// One disagreement, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Its kind.
    pub kind: FindingKind,
    /// What it is about: a file name, `public.documents`, `public.documents [a, b)`.
    pub subject: String,
    /// What differs (expected against found).
    pub detail: String,
    /// What to do.
    pub fix: String,
}

/// A table as checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCheck {
    /// `schema.name`.
    pub table: String,
    /// Rows in the manifest.
    pub rows_expected: u64,
    /// Rows in the restored copy (`None`: the table is absent).
    pub rows_found: Option<u64>,
    /// Every row hashed or sampled ranges.
    pub coverage: Coverage,
    /// Ranges compared.
    pub ranges_checked: usize,
    /// Ranges that differ, as labels (`[from, to)`).
    pub ranges_differing: Vec<String>,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// Every figure matched.
    Match,
    /// Something differs or failed (see the findings).
    Mismatch,
}

/// The verification's report.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The manifest verified.
    pub manifest: PathBuf,
    /// When (UTC, RFC 3339).
    pub verified_at: String,
    /// Where it was restored.
    pub restored_on: String,
    /// Files checked and how many matched.
    pub files_checked: usize,
    /// Files that matched.
    pub files_matching: usize,
    /// Whether the dump was restored.
    pub restored: bool,
    /// Per table.
    pub tables: Vec<TableCheck>,
    /// Indexes compared.
    pub indexes_checked: usize,
    /// Every disagreement.
    pub findings: Vec<Finding>,
    /// `match` only when there is no finding.
    pub outcome: VerifyOutcome,
}

impl VerifyReport {
    /// The verdict, as `check` words it: PASS only when every figure matched.
    pub fn status(&self) -> crate::checks::Status {
        match self.outcome {
            VerifyOutcome::Match => crate::checks::Status::Pass,
            VerifyOutcome::Mismatch => crate::checks::Status::Fail,
        }
    }

    /// "every figure matches: 2 tables, 14 ranges, 5 indexes" or "MISMATCH: 2 findings".
    pub fn summary(&self) -> String {
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match self.outcome {
            VerifyOutcome::Match => format!(
                "every figure matches: {}, {}, {}",
                count(self.tables.len(), "table", "tables"),
                count(
                    self.tables.iter().map(|t| t.ranges_checked).sum(),
                    "range",
                    "ranges"
                ),
                count(self.indexes_checked, "index", "indexes")
            ),
            VerifyOutcome::Mismatch => format!(
                "MISMATCH: {}",
                count(self.findings.len(), "finding", "findings")
            ),
        }
    }
}

/// Why the verification could not run at all (as opposed to a finding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The restored copy could not be read.
    #[error("reading the restored copy: {0}")]
    Read(#[source] DbError),
    /// The test hook failed.
    #[error("the test hook's SQL failed on the restored copy: {0}")]
    Hook(#[source] DbError),
}

const DAMAGED: &str = "the dump is damaged or was changed after it was written: do not rely \
                       on this backup; take a new one with `pgvigil backup create` (and keep \
                       backups where their files cannot change unnoticed)";

fn finding(
    kind: FindingKind,
    subject: impl Into<String>,
    detail: impl Into<String>,
    fix: &str,
) -> Finding {
    Finding {
        kind,
        subject: subject.into(),
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Compares the dump's files with the manifest.
pub fn check_files(manifest: &BackupManifest, dump_dir: &Path) -> (usize, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut matching = 0;
    let present: BTreeSet<String> = std::fs::read_dir(dump_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for f in &manifest.dump.files {
        let path = dump_dir.join(&f.name);
        match super::create::sha256_file(&path) {
            Err(e) => findings.push(finding(
                FindingKind::FileMissing,
                &f.name,
                format!("{}: {e}", path.display()),
                DAMAGED,
            )),
            Ok((bytes, _)) if bytes != f.bytes => findings.push(finding(
                FindingKind::FileSize,
                &f.name,
                format!("{bytes} bytes, the manifest says {} (truncated?)", f.bytes),
                DAMAGED,
            )),
            Ok((_, sha)) if sha != f.sha256 => findings.push(finding(
                FindingKind::FileAltered,
                &f.name,
                format!("SHA-256 {sha}, the manifest says {}", f.sha256),
                DAMAGED,
            )),
            Ok(_) => matching += 1,
        }
    }
    let listed: BTreeSet<&str> = manifest
        .dump
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for name in present.iter().filter(|n| !listed.contains(n.as_str())) {
        findings.push(finding(
            FindingKind::FileUnexpected,
            name,
            "in the dump directory but not in the manifest",
            "remove what was added to the dump directory, or take a new backup",
        ));
    }
    (matching, findings)
}

/// Checks that the table of contents lists what the manifest describes.
pub fn check_toc(manifest: &BackupManifest, list: &str) -> Vec<Finding> {
    let toc = parse_toc(list);
    let has = |kind: &str, words: &[&str]| {
        toc.iter().any(|e| {
            e.kind == kind && {
                let rest: Vec<&str> = e.rest.split_whitespace().collect();
                words.iter().all(|w| rest.contains(w))
            }
        })
    };
    let mut findings = Vec::new();
    let fix = "the dump lacks what its manifest describes: take a new backup";
    for e in &manifest.extensions {
        if !has("EXTENSION", &[e.name.as_str()]) {
            findings.push(finding(
                FindingKind::Toc,
                format!("extension {}", e.name),
                "not in the dump's table of contents",
                fix,
            ));
        }
    }
    for t in &manifest.tables {
        for kind in ["TABLE", "TABLE DATA"] {
            if !has(kind, &[t.schema.as_str(), t.name.as_str()]) {
                findings.push(finding(
                    FindingKind::Toc,
                    format!("{} {}", kind.to_lowercase(), t.qualified()),
                    "not in the dump's table of contents",
                    fix,
                ));
            }
        }
    }
    for i in &manifest.indexes {
        let (schema, name) = i.name.split_once('.').unwrap_or(("", i.name.as_str()));
        if !has("INDEX", &[schema, name]) && !has("CONSTRAINT", &[schema, name]) {
            findings.push(finding(
                FindingKind::Toc,
                format!("index {}", i.name),
                "not in the dump's table of contents",
                fix,
            ));
        }
    }
    if manifest.ledger.is_some() && !has("TABLE DATA", &["public", "_sqlx_migrations"]) {
        findings.push(finding(
            FindingKind::Toc,
            "the migration ledger",
            "public._sqlx_migrations's data is not in the dump",
            fix,
        ));
    }
    findings
}

/// What a failed restore finding says and what its fix is: the three failures a user fixes
/// on the restore target get the fix on its own line, the rest keep pg_restore's words.
fn restore_finding(e: &RestoreError) -> (String, String) {
    match e {
        RestoreError::ExtensionUnavailable {
            name,
            version,
            major,
            target,
        } => (
            format!(
                "the restore target ({target}) does not have extension {name} (the backup has \
                 version {version}); nothing was restored"
            ),
            if name == "vector" {
                format!(
                    "install pgvector {version} on that server (Debian/Ubuntu: apt-get install \
                     postgresql-{major}-pgvector; scripts/setup-postgres.sh does it for the \
                     private cluster), or pass --restore-url of a server that has it, then \
                     verify again"
                )
            } else {
                format!(
                    "install extension {name} {version} on that server, or pass --restore-url \
                     of a server that has it, then verify again"
                )
            },
        ),
        RestoreError::SameSystem { .. } => (
            e.to_string(),
            "pass --restore-url of a separate scratch server, or leave it out for a private \
             cluster"
                .into(),
        ),
        RestoreError::NoClient(n) => (e.to_string(), no_client_fix(n)),
        _ => (
            e.to_string(),
            "fix what the message names on the restore target, or take a new backup".into(),
        ),
    }
}

fn no_client_fix(n: &tools::NoClient) -> String {
    format!(
        "install postgresql-client-{} (scripts/setup-postgres.sh does) or put its bin \
         directory on PATH",
        n.needed
    )
}

/// Verifies the backup whose manifest is at `manifest_path` by restoring it on `dev`.
pub async fn verify(
    manifest_path: &Path,
    dev: &DevServer,
    options: &VerifyOptions,
    progress: &ProgressSink,
) -> Result<VerifyReport, VerifyError> {
    let manifest = BackupManifest::load(manifest_path)?;
    let dump_dir = manifest.dump_dir(manifest_path);
    let mut report = VerifyReport {
        manifest: manifest_path.to_path_buf(),
        verified_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        restored_on: dev.describe(),
        files_checked: manifest.dump.files.len(),
        files_matching: 0,
        restored: false,
        tables: Vec::new(),
        indexes_checked: 0,
        findings: Vec::new(),
        outcome: VerifyOutcome::Mismatch,
    };
    progress.report(Progress::phase(
        "checking the dump's files",
        Some(manifest.dump.files.len() as u64),
    ));
    let (matching, findings) = tokio::task::spawn_blocking({
        let (m, d) = (manifest.clone(), dump_dir.clone());
        move || check_files(&m, &d)
    })
    .await
    .unwrap_or_else(|e| {
        (
            0,
            vec![finding(
                FindingKind::FileMissing,
                "the dump",
                e.to_string(),
                DAMAGED,
            )],
        )
    });
    report.files_matching = matching;
    report.findings = findings;
    if !report.findings.is_empty() {
        return Ok(report);
    }
    let major = (manifest.source.server_version_num / 10000) as u32;
    match tools::find("pg_restore", major.max(dev.major())) {
        Err(e) => {
            report.findings.push(finding(
                FindingKind::Restore,
                "pg_restore",
                e.to_string(),
                &no_client_fix(&e),
            ));
            return Ok(report);
        }
        Ok(client) => {
            let out = tokio::process::Command::new(&client.path)
                .arg("--list")
                .arg(&dump_dir)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => {
                    report
                        .findings
                        .extend(check_toc(&manifest, &String::from_utf8_lossy(&o.stdout)));
                }
                Ok(o) => report.findings.push(finding(
                    FindingKind::Toc,
                    "toc.dat",
                    crate::sanitize::printable(String::from_utf8_lossy(&o.stderr).trim())
                        .into_owned(),
                    DAMAGED,
                )),
                Err(e) => report.findings.push(finding(
                    FindingKind::Toc,
                    "pg_restore --list",
                    e.to_string(),
                    "pg_restore could not be run: check its installation (scripts/setup-postgres.sh installs it)",
                )),
            }
        }
    }
    if !report.findings.is_empty() {
        return Ok(report);
    }
    let jobs = options.jobs.unwrap_or_else(super::create::default_jobs);
    let copy = match restore_into_scratch(dev, &manifest, &dump_dir, jobs, progress).await {
        Ok(c) => c,
        Err(e) => {
            let (detail, fix) = restore_finding(&e);
            report
                .findings
                .push(finding(FindingKind::Restore, dev.describe(), detail, &fix));
            return Ok(report);
        }
    };
    report.restored = true;
    for (name, source, restored) in &copy.extension_versions {
        report.findings.push(finding(
            FindingKind::ExtensionVersion,
            format!("extension {name}"),
            format!("{source} on the source, {restored} restored (the restore target lacks {source})"),
            &format!("install {name} {source} on the restore target, or run ALTER EXTENSION {name} UPDATE TO '{source}' after restoring"),
        ));
    }
    // The comparison runs with the copy alive; whatever happens, it is dropped afterwards.
    let compared = compare(
        &manifest,
        &copy.scratch,
        dev,
        options,
        progress,
        &mut report,
    )
    .await;
    progress.report(Progress::phase("dropping the restored copy", None));
    let dropped = copy.scratch.drop_now().await;
    compared?;
    if let Err(e) = dropped {
        tracing::warn!(target: "pgvigil::backup", "the restored copy could not be dropped now: {}", DbError::new(e, dev));
    }
    if report.findings.is_empty() {
        report.outcome = VerifyOutcome::Match;
    }
    Ok(report)
}

async fn compare(
    manifest: &BackupManifest,
    scratch: &crate::dev::ScratchDatabase,
    dev: &DevServer,
    options: &VerifyOptions,
    progress: &ProgressSink,
    report: &mut VerifyReport,
) -> Result<(), VerifyError> {
    let read_err = |e| VerifyError::Read(DbError::new(e, dev));
    let mut conn = scratch.connect_admin().await.map_err(read_err)?;
    if let Some(sql) = &options.tamper_restored_copy {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
            .map_err(|e| VerifyError::Hook(DbError::new(e, dev)))?;
    }
    let mut reader = Reader::dev(&mut conn);
    let total = manifest.tables.len() as u64;
    for (i, t) in manifest.tables.iter().enumerate() {
        progress.report(Progress::phase("comparing tables", Some(total)).at(i as u64));
        let name = TableName {
            schema: t.schema.clone(),
            name: t.name.clone(),
        };
        let mut check = TableCheck {
            table: t.qualified(),
            rows_expected: t.rows,
            rows_found: None,
            coverage: t.coverage,
            ranges_checked: 0,
            ranges_differing: Vec::new(),
        };
        let exists: bool = sqlx::query_scalar(
            "SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL",
        )
        .bind(&t.schema)
        .bind(&t.name)
        .fetch_one(&mut reader)
        .await
        .map_err(read_err)?;
        if !exists {
            report.findings.push(finding(
                FindingKind::RowCount,
                t.qualified(),
                "absent from the restored copy",
                "take a new backup",
            ));
            report.tables.push(check);
            continue;
        }
        let rows = figures::row_count(&mut reader, &name)
            .await
            .map_err(read_err)?;
        check.rows_found = Some(rows);
        if rows != t.rows {
            report.findings.push(finding(
                FindingKind::RowCount,
                t.qualified(),
                format!("{} rows in the backup's snapshot, {rows} restored", t.rows),
                "the restore lost or gained rows: do not rely on this backup; take a new one",
            ));
        }
        for r in &t.ranges {
            let (Some(want_rows), Some(want_hash)) = (r.rows, r.sha256.as_ref()) else {
                continue;
            };
            check.ranges_checked += 1;
            let (got_rows, got_hash) = figures::range_figure(
                &mut reader,
                &name,
                t.key.as_ref(),
                r.from.as_deref(),
                r.to.as_deref(),
            )
            .await
            .map_err(read_err)?;
            if got_rows != want_rows || &got_hash != want_hash {
                let key = t
                    .key
                    .as_ref()
                    .map(|k| k.column.as_str())
                    .unwrap_or("all rows");
                check.ranges_differing.push(r.label());
                report.findings.push(finding(
                    FindingKind::RangeHash,
                    format!("{} {key} {}", t.qualified(), r.label()),
                    if got_rows != want_rows {
                        format!("{want_rows} rows in the backup's snapshot, {got_rows} restored")
                    } else {
                        format!("same {got_rows} rows, different content (hash {got_hash}, the manifest says {want_hash})")
                    },
                    "the restored rows differ from the source's: do not rely on this backup; take a new one",
                ));
            }
        }
        report.tables.push(check);
    }
    progress.report(Progress::phase("comparing tables", Some(total)).at(total));
    let restored_indexes = figures::indexes(&mut reader).await.map_err(read_err)?;
    for i in &manifest.indexes {
        report.indexes_checked += 1;
        match restored_indexes.iter().find(|r| r.name == i.name) {
            None => report.findings.push(finding(FindingKind::Index, &i.name, "absent from the restored copy", "take a new backup")),
            Some(r) if r.definition != i.definition => report.findings.push(finding(
                FindingKind::Index,
                &i.name,
                format!("restored as `{}`, the source has `{}`", r.definition, i.definition),
                "take a new backup",
            )),
            Some(r) if !r.valid => report.findings.push(finding(
                FindingKind::Index,
                &i.name,
                "invalid in the restored copy",
                "its build failed on restore: rebuild it (REINDEX) and look at pg_restore's messages",
            )),
            Some(_) => {}
        }
    }
    let extensions = figures::extensions(&mut reader).await.map_err(read_err)?;
    for e in &manifest.extensions {
        let restored = extensions.iter().find(|r| r.name == e.name);
        let already = report.findings.iter().any(|f| {
            f.kind == FindingKind::ExtensionVersion && f.subject == format!("extension {}", e.name)
        });
        match restored {
            Some(r) if r.version == e.version => {}
            _ if already => {}
            Some(r) => report.findings.push(finding(
                FindingKind::ExtensionVersion,
                format!("extension {}", e.name),
                format!("{} on the source, {} restored", e.version, r.version),
                &format!(
                    "ALTER EXTENSION {} UPDATE TO '{}' on the restored copy",
                    e.name, e.version
                ),
            )),
            None => report.findings.push(finding(
                FindingKind::ExtensionVersion,
                format!("extension {}", e.name),
                "absent from the restored copy",
                "install it on the restore target",
            )),
        }
    }
    let vectors = figures::vector_columns(&mut reader)
        .await
        .map_err(read_err)?;
    for v in &manifest.vector_columns {
        match vectors
            .iter()
            .find(|r| r.table == v.table && r.column == v.column)
        {
            Some(r) if r.dimensions == v.dimensions && r.type_name == v.type_name => {}
            found => report.findings.push(finding(
                FindingKind::VectorDimensions,
                format!("{}.{}", v.table, v.column),
                format!(
                    "{}({}) on the source, {} restored",
                    v.type_name,
                    v.dimensions.map_or("any".into(), |d| d.to_string()),
                    found.map_or("absent".into(), |r| format!(
                        "{}({})",
                        r.type_name,
                        r.dimensions.map_or("any".into(), |d| d.to_string())
                    ))
                ),
                "take a new backup",
            )),
        }
    }
    let ledger = figures::ledger(&mut reader).await.map_err(read_err)?;
    if ledger != manifest.ledger {
        report.findings.push(finding(
            FindingKind::Ledger,
            "public._sqlx_migrations",
            format!(
                "{} entries on the source, {} restored, or their checksums differ",
                manifest.ledger.as_ref().map_or(0, |l| l.len()),
                ledger.as_ref().map_or(0, |l| l.len())
            ),
            "take a new backup",
        ));
    }
    drop(reader);
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}
