//! The verification's result, recorded in the state directory where the apply gate looks for
//! the last verified backup: `backup-verified.json` (0600), replaced by each verification.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::BackupManifest;
use super::verify::{VerifyOutcome, VerifyReport};

/// The record's format.
pub const RECORD_FORMAT: &str = "pgvigil.backup-verification/1";
/// Its file name in the state directory.
pub const RECORD_FILE: &str = "backup-verified.json";

/// What the gate needs to know of the last verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// [`RECORD_FORMAT`].
    pub format: String,
    /// The manifest (absolute path).
    pub manifest: PathBuf,
    /// SHA-256 of the manifest file as verified (a manifest edited since voids the record).
    pub manifest_sha256: String,
    /// When the snapshot was taken.
    pub taken_at: String,
    /// The source database.
    pub database: String,
    /// The source's system identifier.
    pub system_identifier: Option<String>,
    /// When it was verified.
    pub verified_at: String,
    /// `match` or `mismatch`.
    pub outcome: VerifyOutcome,
    /// How many findings.
    pub findings: usize,
}

/// Why the record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("recording the verification in {}: {source}", path.display())]
pub struct RecordError {
    /// The file or directory.
    pub path: PathBuf,
    /// The failure.
    pub source: std::io::Error,
}

/// Writes the record for `report` into `state_dir` (created 0700 when missing); returns its path.
pub fn record(
    state_dir: &Path,
    manifest: &BackupManifest,
    report: &VerifyReport,
) -> Result<PathBuf, RecordError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(err(state_dir))?;
    let manifest_path = std::fs::canonicalize(&report.manifest).map_err(err(&report.manifest))?;
    let (_, manifest_sha256) =
        super::create::sha256_file(&manifest_path).map_err(err(&manifest_path))?;
    let rec = VerificationRecord {
        format: RECORD_FORMAT.into(),
        manifest: manifest_path,
        manifest_sha256,
        taken_at: manifest.taken_at.clone(),
        database: manifest.source.database.clone(),
        system_identifier: manifest.source.system_identifier.clone(),
        verified_at: report.verified_at.clone(),
        outcome: report.outcome,
        findings: report.findings.len(),
    };
    let path = state_dir.join(RECORD_FILE);
    let json = serde_json::to_vec_pretty(&rec).expect("a record serialises");
    crate::files::write_private(&path, &json).map_err(err(&path))?;
    Ok(path)
}

/// The last recorded verification in `state_dir`, if there is a sound one.
pub fn last(state_dir: &Path) -> Option<VerificationRecord> {
    let text = crate::files::read_text(&state_dir.join(RECORD_FILE), 1024 * 1024).ok()?;
    let rec: VerificationRecord = serde_json::from_str(&text).ok()?;
    (rec.format == RECORD_FORMAT).then_some(rec)
}
