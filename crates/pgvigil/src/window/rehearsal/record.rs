//! The rehearsal's record, where the apply gate finds it: `rehearsal.json` (0600) in the state
//! directory, replaced by each rehearsal. It names exactly what was rehearsed (the pending set
//! by version and SHA-384, the backup and its manifest's SHA-256, the server and extension
//! versions) and how it came out, so that a migration file edited since, a new pending file or
//! one applied meanwhile voids it ([`RehearsalRecord::still_matches`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::{RehearsalReport, RehearsalVerdict};
use crate::migrations::{LedgerRow, LocalMigration, MigrationStamp, MigrationState};

/// The record's format.
pub const RECORD_FORMAT: &str = "pgvigil.rehearsal-record/1";
/// Its file name in the state directory.
pub const RECORD_FILE: &str = "rehearsal.json";

/// What the gate needs to know of the last rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RehearsalRecord {
    /// [`RECORD_FORMAT`].
    pub format: String,
    /// When it ran (RFC 3339).
    pub rehearsed_at: String,
    /// The pending set rehearsed, in order: version, description, SHA-384.
    pub pending: Vec<MigrationStamp>,
    /// The manifest of the backup it was rehearsed on (absolute), if one was restored.
    pub manifest: Option<PathBuf>,
    /// That manifest's SHA-256 at the time.
    pub manifest_sha256: Option<String>,
    /// That backup had a successful verification recorded (`None`: a staging server). The
    /// gate wants a verified one.
    #[serde(default)]
    pub backup_verified: Option<bool>,
    /// Where it ran (a restored copy on the dev server, or the staging server, redacted).
    pub ran_on: String,
    /// The copy's server version.
    pub server_version: String,
    /// The copy's extensions and versions.
    pub extensions: Vec<(String, String)>,
    /// The verdict.
    pub verdict: RehearsalVerdict,
}

/// Why the record no longer matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Voided {
    /// A file of the rehearsed set changed since (its checksum differs).
    Edited(i64),
    /// The pending set differs (a new file, one applied meanwhile): the sets, as versions.
    PendingSet {
        /// Rehearsed.
        rehearsed: Vec<i64>,
        /// Pending now.
        now: Vec<i64>,
    },
}

impl std::fmt::Display for Voided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Edited(v) => write!(
                f,
                "migration {v} was edited after the rehearsal (its SHA-384 differs): rehearse again"
            ),
            Self::PendingSet { rehearsed, now } => write!(
                f,
                "the pending set changed since the rehearsal (rehearsed {}, pending now {}): rehearse again",
                versions(rehearsed),
                versions(now)
            ),
        }
    }
}

/// "1, 2, 3", or "none".
pub(crate) fn versions(v: &[i64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// The pending set now: the local files the ledger has not applied, as stamps.
pub fn pending_now(local: &[LocalMigration], ledger: Option<&[LedgerRow]>) -> Vec<MigrationStamp> {
    let unapplied = MigrationState::of(local, ledger).unapplied_versions();
    local
        .iter()
        .filter(|m| unapplied.contains(&m.version))
        .map(LocalMigration::stamp)
        .collect()
}

impl RehearsalRecord {
    /// The record of `report`, rehearsing `pending`.
    pub fn of(report: &RehearsalReport, pending: &[&LocalMigration]) -> Self {
        let manifest = report
            .manifest
            .as_ref()
            .map(|m| std::fs::canonicalize(m).unwrap_or_else(|_| m.clone()));
        let manifest_sha256 = manifest
            .as_ref()
            .and_then(|m| crate::window::backup::sha256_file(m).ok())
            .map(|(_, sha)| sha);
        Self {
            format: RECORD_FORMAT.into(),
            rehearsed_at: report.started_at.clone(),
            pending: pending.iter().map(|m| m.stamp()).collect(),
            manifest,
            manifest_sha256,
            backup_verified: report.backup_verified,
            ran_on: report.ran_on.clone(),
            server_version: report.server_version.clone(),
            extensions: report.extensions.clone(),
            verdict: report.verdict,
        }
    }

    /// Whether it still describes `now` (the pending set as [`pending_now`] gives it).
    pub fn still_matches(&self, now: &[MigrationStamp]) -> Result<(), Voided> {
        let versions = |s: &[MigrationStamp]| s.iter().map(|m| m.version).collect::<Vec<_>>();
        if versions(&self.pending) != versions(now) {
            return Err(Voided::PendingSet {
                rehearsed: versions(&self.pending),
                now: versions(now),
            });
        }
        match self
            .pending
            .iter()
            .zip(now)
            .find(|(a, b)| a.checksum != b.checksum)
        {
            Some((a, _)) => Err(Voided::Edited(a.version)),
            None => Ok(()),
        }
    }
}

impl RehearsalRecord {
    /// Whether it still describes the pending set of `state` (a migration state as the checks
    /// report it: its checksums are 12-hex-digit prefixes, enough to see an edit; the apply
    /// gate compares whole checksums).
    pub fn still_matches_state(&self, state: &MigrationState) -> Result<(), Voided> {
        // The same pending set as [`pending_now`]: pending files and failed ones sqlx retries.
        let unapplied = state.unapplied_versions();
        let mut now: Vec<(i64, &str)> = state
            .entries
            .iter()
            .filter(|e| unapplied.contains(&e.version))
            .map(|e| (e.version, e.local_checksum.as_deref().unwrap_or("")))
            .collect();
        now.sort();
        let rehearsed: Vec<i64> = self.pending.iter().map(|m| m.version).collect();
        let versions: Vec<i64> = now.iter().map(|(v, _)| *v).collect();
        if rehearsed != versions {
            return Err(Voided::PendingSet {
                rehearsed,
                now: versions,
            });
        }
        match self
            .pending
            .iter()
            .zip(&now)
            .find(|(a, (_, short))| short.is_empty() || !a.checksum.starts_with(short))
        {
            Some((a, _)) => Err(Voided::Edited(a.version)),
            None => Ok(()),
        }
    }
}

/// Why the record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("recording the rehearsal in {}: {source}", path.display())]
pub struct RecordError {
    /// The file or directory.
    pub path: PathBuf,
    /// The failure.
    pub source: std::io::Error,
}

/// Writes `record` into `state_dir` (created 0700 when missing); returns its path.
pub fn write(state_dir: &Path, record: &RehearsalRecord) -> Result<PathBuf, RecordError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|source| RecordError {
            path: state_dir.to_path_buf(),
            source,
        })?;
    let path = state_dir.join(RECORD_FILE);
    let json = serde_json::to_vec_pretty(record).expect("a record serialises");
    crate::files::write_private(&path, &json).map_err(|source| RecordError {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The last recorded rehearsal in `state_dir`, if there is a sound one.
pub fn last(state_dir: &Path) -> Option<RehearsalRecord> {
    let text = crate::files::read_text(&state_dir.join(RECORD_FILE), 1024 * 1024).ok()?;
    let rec: RehearsalRecord = serde_json::from_str(&text).ok()?;
    (rec.format == RECORD_FORMAT).then_some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: i64, checksum: &str) -> MigrationStamp {
        MigrationStamp {
            version,
            description: "m".into(),
            checksum: checksum.into(),
        }
    }

    #[test]
    fn an_edited_or_added_file_voids_the_record() {
        let rec = RehearsalRecord {
            format: RECORD_FORMAT.into(),
            rehearsed_at: "2026-12-04T00:00:00Z".into(),
            pending: vec![stamp(1, "aa"), stamp(2, "bb")],
            manifest: None,
            manifest_sha256: None,
            backup_verified: None,
            ran_on: "staging".into(),
            server_version: "15.18".into(),
            extensions: vec![],
            verdict: RehearsalVerdict::Passed,
        };
        assert_eq!(rec.still_matches(&[stamp(1, "aa"), stamp(2, "bb")]), Ok(()));
        assert_eq!(
            rec.still_matches(&[stamp(1, "aa"), stamp(2, "cc")]),
            Err(Voided::Edited(2))
        );
        let added = rec
            .still_matches(&[stamp(1, "aa"), stamp(2, "bb"), stamp(3, "dd")])
            .unwrap_err();
        assert_eq!(
            added.to_string(),
            "the pending set changed since the rehearsal (rehearsed 1, 2, pending now 1, 2, 3): rehearse again"
        );
    }
}
