//! Where the migrations stand: the local files against sqlx's ledger (`_sqlx_migrations`),
//! one [`MigrationState`] from one function ([`MigrationState::of`]), plus the partial state
//! sqlx itself cannot see on PostgreSQL (a failed migration leaves no ledger row) read from
//! the live catalog ([`MigrationState::with_catalog`]): invalid indexes, unvalidated
//! constraints, and objects of a pending migration that already exist.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ledger::LedgerRow;
use super::local::{LocalMigration, hex};
use crate::catalog::{ObjectKey, SchemaSnapshot};

/// Where one migration stands, the local file against the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    /// In the ledger, succeeded, with the same checksum as the local file.
    Applied,
    /// A local file with no ledger row: not applied yet.
    Pending,
    /// Applied, but the local file has changed since (checksums differ); sqlx refuses to migrate.
    ChecksumMismatch,
    /// In the ledger but no local file has its version (a branch ahead of this checkout, or a
    /// deleted file).
    MissingLocally,
    /// In the ledger with `success = false`: it failed partway and blocks further migrations.
    Failed,
}

/// One migration in the report: local file and ledger row side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationEntry {
    /// Version: the local file's name prefix, and the ledger's key.
    pub version: i64,
    /// Description, from the local file or else the ledger.
    pub description: String,
    /// Applied, pending, changed since applied, missing locally or failed.
    pub status: MigrationStatus,
    /// When it was applied (from the ledger), `None` while pending.
    pub installed_on: Option<DateTime<Utc>>,
    /// How long it took to apply, in milliseconds (the ledger's nanoseconds converted).
    pub execution_ms: Option<f64>,
    /// The local file runs outside a transaction (`-- no-transaction`); `false` when there is
    /// no local file.
    pub no_transaction: bool,
    /// Short SHA-384 prefixes (12 hex digits), for checksum mismatches: the local file's.
    pub local_checksum: Option<String>,
    /// The ledger's checksum, shortened the same way; `None` while pending.
    pub applied_checksum: Option<String>,
}

/// Partial state left by an interrupted or hand-run migration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartialState {
    /// An index left INVALID, typically by an interrupted `CREATE INDEX CONCURRENTLY`.
    InvalidIndex {
        /// The index, as reports name it.
        object: String,
        /// The statement that clears it (drop it concurrently, then re-run its migration).
        fix: String,
    },
    /// A constraint still `NOT VALID`: existing rows have not been checked against it.
    UnvalidatedConstraint {
        /// The constraint, as reports name it.
        object: String,
        /// The `ALTER TABLE ... VALIDATE CONSTRAINT` statement that checks it.
        fix: String,
    },
    /// An object a pending migration creates already exists: the migration was partly run, or run
    /// by hand, and will likely fail when applied.
    PendingObjectExists {
        /// The pending migration's version.
        version: i64,
        /// The object that already exists, as reports name it.
        object: String,
    },
}

impl std::fmt::Display for PartialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidIndex { object, .. } => write!(f, "{object} is INVALID"),
            Self::UnvalidatedConstraint { object, .. } => {
                write!(f, "{object} is NOT VALID (existing rows unchecked)")
            }
            Self::PendingObjectExists { version, object } => {
                write!(
                    f,
                    "{object} already exists although migration {version} is pending"
                )
            }
        }
    }
}

/// Where the migrations stand: local directory, ledger and live catalog side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationState {
    /// Whether `_sqlx_migrations` exists on the database.
    pub ledger_present: bool,
    /// Newest first.
    pub entries: Vec<MigrationEntry>,
    /// Partial state found in the live catalog (invalid indexes, unvalidated constraints,
    /// objects of pending migrations).
    pub partial: Vec<PartialState>,
    /// False when no expected schema was available to tell which objects pending migrations create.
    pub pending_objects_checked: bool,
}

fn short(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(6)])
}

impl MigrationState {
    /// Where the migrations stand: every local file against the ledger (`None`: there is no
    /// `_sqlx_migrations` table). The one place pending, applied, edited after apply, missing
    /// locally and failed are decided. Partial state needs the catalog: see
    /// [`with_catalog`](Self::with_catalog).
    pub fn of(local: &[LocalMigration], ledger: Option<&[LedgerRow]>) -> Self {
        let applied: BTreeMap<i64, &LedgerRow> = ledger
            .unwrap_or(&[])
            .iter()
            .map(|r| (r.version, r))
            .collect();
        let mut entries = Vec::new();
        for m in local {
            let entry = match applied.get(&m.version) {
                None => MigrationEntry {
                    version: m.version,
                    description: m.description.clone(),
                    status: MigrationStatus::Pending,
                    installed_on: None,
                    execution_ms: None,
                    no_transaction: m.no_tx,
                    local_checksum: Some(short(&m.checksum)),
                    applied_checksum: None,
                },
                Some(row) => {
                    let status = if !row.success {
                        MigrationStatus::Failed
                    } else if row.checksum != m.checksum {
                        MigrationStatus::ChecksumMismatch
                    } else {
                        MigrationStatus::Applied
                    };
                    MigrationEntry {
                        version: m.version,
                        description: m.description.clone(),
                        status,
                        installed_on: Some(row.installed_on),
                        execution_ms: Some(row.execution_time_ns as f64 / 1e6),
                        no_transaction: m.no_tx,
                        local_checksum: Some(short(&m.checksum)),
                        applied_checksum: Some(short(&row.checksum)),
                    }
                }
            };
            entries.push(entry);
        }
        for row in applied.values() {
            if !local.iter().any(|m| m.version == row.version) {
                entries.push(MigrationEntry {
                    version: row.version,
                    description: row.description.clone(),
                    status: if row.success {
                        MigrationStatus::MissingLocally
                    } else {
                        MigrationStatus::Failed
                    },
                    installed_on: Some(row.installed_on),
                    execution_ms: Some(row.execution_time_ns as f64 / 1e6),
                    no_transaction: false,
                    local_checksum: None,
                    applied_checksum: Some(short(&row.checksum)),
                });
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.version));
        MigrationState {
            ledger_present: ledger.is_some(),
            entries,
            partial: Vec::new(),
            pending_objects_checked: false,
        }
    }

    /// Adds the partial state the live catalog shows: invalid indexes, unvalidated
    /// constraints, and (with the expected schema, which knows what each migration creates)
    /// objects of pending migrations that already exist.
    pub fn with_catalog(
        mut self,
        live: &SchemaSnapshot,
        objects_by_version: Option<&BTreeMap<i64, Vec<ObjectKey>>>,
    ) -> Self {
        let mut partial = Vec::new();
        for (t, table) in &live.tables {
            let table_sql = live.qualified(t);
            let schema_prefix = table_sql
                .strip_suffix(&crate::sanitize::quote_ident(
                    t.rsplit('.').next().unwrap_or(t),
                ))
                .unwrap_or("")
                .to_string();
            for (name, idx) in &table.indexes {
                if !idx.valid {
                    partial.push(PartialState::InvalidIndex {
                        object: ObjectKey::Index(t.clone(), name.clone()).to_string(),
                        fix: format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {schema_prefix}{}; then re-run the migration that creates it",
                            crate::sanitize::quote_ident(name)
                        ),
                    });
                }
            }
            for (name, con) in &table.constraints {
                if !con.validated {
                    partial.push(PartialState::UnvalidatedConstraint {
                        object: ObjectKey::Constraint(t.clone(), name.clone()).to_string(),
                        fix: format!(
                            "ALTER TABLE {table_sql} VALIDATE CONSTRAINT {};",
                            crate::sanitize::quote_ident(name)
                        ),
                    });
                }
            }
        }
        if let Some(created) = objects_by_version {
            for e in self
                .entries
                .iter()
                .filter(|e| e.status == MigrationStatus::Pending)
            {
                for key in created.get(&e.version).into_iter().flatten() {
                    // An enum label or a column appears with its parent; report the parent once.
                    let reported_parent = match key {
                        ObjectKey::EnumLabel(en, _) => {
                            live.contains(&ObjectKey::Enum(en.clone()))
                                && created[&e.version].contains(&ObjectKey::Enum(en.clone()))
                        }
                        ObjectKey::Column(t, _)
                        | ObjectKey::Constraint(t, _)
                        | ObjectKey::Index(t, _)
                        | ObjectKey::Trigger(t, _) => {
                            live.contains(&ObjectKey::Table(t.clone()))
                                && created[&e.version].contains(&ObjectKey::Table(t.clone()))
                        }
                        _ => false,
                    };
                    if live.contains(key) && !reported_parent {
                        partial.push(PartialState::PendingObjectExists {
                            version: e.version,
                            object: key.to_string(),
                        });
                    }
                }
            }
        }
        self.partial = partial;
        self.pending_objects_checked = objects_by_version.is_some();
        self
    }

    /// How many entries have `status`.
    pub fn count(&self, status: MigrationStatus) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }

    /// The pending migrations (no ledger row), newest first.
    pub fn pending(&self) -> impl Iterator<Item = &MigrationEntry> {
        self.entries
            .iter()
            .filter(|e| e.status == MigrationStatus::Pending)
    }

    /// Every count at once.
    pub fn counts(&self) -> MigrationCounts {
        use MigrationStatus::*;
        MigrationCounts {
            applied: self.count(Applied),
            edited: self.count(ChecksumMismatch),
            missing_locally: self.count(MissingLocally),
            failed: self.count(Failed),
            pending: self.count(Pending),
        }
    }

    /// Versions of the local migrations with no successful ledger row, oldest first: what an
    /// apply runs (a failed row must be cleared first), what the dry-run runs on its copy and
    /// what the schema check expects to be missing. A version older than the newest applied
    /// one (a branch merged late) is among them: sqlx applies it too.
    pub fn unapplied_versions(&self) -> Vec<i64> {
        let mut versions: Vec<i64> = self
            .entries
            .iter()
            .filter(|e| {
                e.status == MigrationStatus::Pending
                    || (e.status == MigrationStatus::Failed && e.local_checksum.is_some())
            })
            .map(|e| e.version)
            .collect();
        versions.sort_unstable();
        versions
    }

    /// The newest version with a ledger row (whatever its status), with its description and
    /// when it was applied.
    pub fn newest_recorded(&self) -> Option<&MigrationEntry> {
        self.entries.iter().find(|e| e.installed_on.is_some())
    }

    /// Pending migrations older than the newest recorded one: out of order (a branch merged
    /// after a newer migration was applied), oldest first.
    pub fn out_of_order(&self) -> Vec<&MigrationEntry> {
        let newest = self.newest_recorded().map(|e| e.version);
        let mut out: Vec<&MigrationEntry> = self
            .pending()
            .filter(|e| newest.is_some_and(|n| e.version < n))
            .collect();
        out.reverse();
        out
    }

    /// Entries whose history is wrong: edited after apply, missing locally, or failed.
    pub fn history_problems(&self) -> usize {
        let c = self.counts();
        c.edited + c.missing_locally + c.failed
    }
}

/// How many migrations stand where: one count per [`MigrationStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MigrationCounts {
    /// Applied with the same checksum as the local file.
    pub applied: usize,
    /// Applied, but the local file was edited since (checksums differ).
    pub edited: usize,
    /// In the ledger with no local file.
    pub missing_locally: usize,
    /// Recorded with `success = false`.
    pub failed: usize,
    /// Local files with no ledger row.
    pub pending: usize,
}

impl MigrationCounts {
    /// Ledger rows that succeeded, whether or not a local file matches them (what sqlx
    /// counts as applied).
    pub fn succeeded_in_ledger(&self) -> usize {
        self.applied + self.edited + self.missing_locally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn local(version: i64, sql: &str) -> LocalMigration {
        use sha2::{Digest, Sha384};
        LocalMigration {
            version,
            description: format!("m{version}"),
            sql: sql.into(),
            checksum: Sha384::digest(sql.as_bytes()).to_vec(),
            no_tx: sql.starts_with("-- no-transaction"),
        }
    }

    fn row(m: &LocalMigration, success: bool) -> LedgerRow {
        LedgerRow {
            version: m.version,
            description: m.description.clone(),
            installed_on: Utc.timestamp_opt(1_700_000_000 + m.version, 0).unwrap(),
            success,
            checksum: m.checksum.clone(),
            execution_time_ns: 2_500_000,
        }
    }

    fn status_of(state: &MigrationState, version: i64) -> MigrationStatus {
        state
            .entries
            .iter()
            .find(|e| e.version == version)
            .map(|e| e.status)
            .unwrap_or_else(|| panic!("no entry {version}: {state:?}"))
    }

    #[test]
    fn no_ledger_means_everything_is_pending() {
        let files = [
            local(1, "SELECT 1"),
            local(2, "-- no-transaction\nSELECT 2"),
        ];
        let state = MigrationState::of(&files, None);
        assert!(!state.ledger_present);
        assert_eq!(state.counts().pending, 2);
        assert_eq!(state.unapplied_versions(), vec![1, 2]);
        assert!(state.newest_recorded().is_none());
        // Newest first, with the file's no-transaction marker.
        assert_eq!(state.entries[0].version, 2);
        assert!(state.entries[0].no_transaction);
        assert_eq!(state.history_problems(), 0);
    }

    #[test]
    fn applied_and_pending_side_by_side() {
        let files = [
            local(1, "SELECT 1"),
            local(2, "SELECT 2"),
            local(3, "SELECT 3"),
        ];
        let ledger = [row(&files[0], true), row(&files[1], true)];
        let state = MigrationState::of(&files, Some(&ledger));
        assert!(state.ledger_present);
        assert_eq!(status_of(&state, 1), MigrationStatus::Applied);
        assert_eq!(status_of(&state, 3), MigrationStatus::Pending);
        assert_eq!(
            state.counts(),
            MigrationCounts {
                applied: 2,
                pending: 1,
                ..MigrationCounts::default()
            }
        );
        assert_eq!(state.unapplied_versions(), vec![3]);
        assert_eq!(state.newest_recorded().map(|e| e.version), Some(2));
        let applied = &state.entries[1];
        assert_eq!(applied.execution_ms, Some(2.5));
        assert_eq!(applied.local_checksum, applied.applied_checksum);
        assert_eq!(applied.local_checksum.as_deref().map(str::len), Some(12));
        assert!(state.out_of_order().is_empty());
    }

    #[test]
    fn a_file_edited_after_apply_is_a_checksum_mismatch() {
        let applied = local(1, "SELECT 1");
        let edited = local(1, "SELECT 1 -- edited");
        let state = MigrationState::of(&[edited], Some(&[row(&applied, true)]));
        assert_eq!(status_of(&state, 1), MigrationStatus::ChecksumMismatch);
        let e = &state.entries[0];
        assert_ne!(e.local_checksum, e.applied_checksum);
        assert_eq!(state.counts().edited, 1);
        assert_eq!(state.counts().succeeded_in_ledger(), 1);
        assert_eq!(state.history_problems(), 1);
        // Edited is applied, not to run again.
        assert!(state.unapplied_versions().is_empty());
    }

    #[test]
    fn a_ledger_row_without_a_file_is_missing_locally() {
        let files = [local(1, "SELECT 1")];
        let gone = local(2, "SELECT 2");
        let state = MigrationState::of(&files, Some(&[row(&files[0], true), row(&gone, true)]));
        assert_eq!(status_of(&state, 2), MigrationStatus::MissingLocally);
        let e = &state.entries[0];
        assert_eq!(e.description, "m2");
        assert_eq!(e.local_checksum, None);
        assert!(!e.no_transaction);
        assert_eq!(state.counts().missing_locally, 1);
        assert_eq!(state.counts().succeeded_in_ledger(), 2);
        assert_eq!(state.history_problems(), 1);
        assert_eq!(state.newest_recorded().map(|e| e.version), Some(2));
    }

    #[test]
    fn a_failed_row_is_failed_with_or_without_its_file() {
        let files = [local(1, "SELECT 1"), local(2, "SELECT 2")];
        let orphan = local(3, "SELECT 3");
        let ledger = [
            row(&files[0], true),
            row(&files[1], false),
            row(&orphan, false),
        ];
        let state = MigrationState::of(&files, Some(&ledger));
        assert_eq!(status_of(&state, 2), MigrationStatus::Failed);
        assert_eq!(status_of(&state, 3), MigrationStatus::Failed);
        assert_eq!(state.counts().failed, 2);
        assert_eq!(state.counts().succeeded_in_ledger(), 1);
        assert_eq!(state.history_problems(), 2);
        // The failed one with a file is what an apply runs again (once its row is cleared);
        // the orphan has nothing to run.
        assert_eq!(state.unapplied_versions(), vec![2]);
    }

    #[test]
    fn a_pending_version_older_than_the_newest_applied_is_out_of_order() {
        let files = [
            local(10, "SELECT 10"),
            local(15, "SELECT 15"),
            local(20, "SELECT 20"),
            local(30, "SELECT 30"),
        ];
        let ledger = [row(&files[0], true), row(&files[2], true)];
        let state = MigrationState::of(&files, Some(&ledger));
        assert_eq!(status_of(&state, 15), MigrationStatus::Pending);
        let versions: Vec<i64> = state.entries.iter().map(|e| e.version).collect();
        assert_eq!(versions, vec![30, 20, 15, 10]);
        assert_eq!(state.unapplied_versions(), vec![15, 30]);
        let late: Vec<i64> = state.out_of_order().iter().map(|e| e.version).collect();
        assert_eq!(late, vec![15]);
        assert_eq!(state.newest_recorded().map(|e| e.version), Some(20));
    }

    #[test]
    fn the_catalog_adds_partial_state() {
        let files = [local(1, "SELECT 1")];
        let mut live = SchemaSnapshot::default();
        let mut table = crate::catalog::Table::default();
        table.indexes.insert(
            "documents_embedding_idx".into(),
            crate::catalog::Index {
                definition: "CREATE INDEX ...".into(),
                valid: false,
                unique: false,
            },
        );
        live.tables.insert("documents".into(), table);
        let state = MigrationState::of(&files, None).with_catalog(&live, None);
        assert!(!state.pending_objects_checked);
        assert!(matches!(
            state.partial.as_slice(),
            [PartialState::InvalidIndex { fix, .. }] if fix.starts_with("DROP INDEX CONCURRENTLY IF EXISTS")
        ));
    }
}
