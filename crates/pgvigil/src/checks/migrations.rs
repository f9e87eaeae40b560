//! Where the migrations stand: the local migrations directory against sqlx's ledger
//! (`_sqlx_migrations`), plus the partial state sqlx itself cannot see on PostgreSQL (a failed
//! migration leaves no ledger row): invalid indexes, unvalidated constraints, and objects of a
//! pending migration that already exist.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::expected::ExpectedSchema;
use super::local::{LocalMigration, hex};
use super::{Finding, Group};
use crate::catalog::{LedgerRow, ObjectKey, SchemaSnapshot};

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

impl MigrationState {
    /// How many entries have `status`.
    pub fn count(&self, status: MigrationStatus) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }

    /// The pending migrations, newest first.
    pub fn pending(&self) -> impl Iterator<Item = &MigrationEntry> {
        self.entries
            .iter()
            .filter(|e| e.status == MigrationStatus::Pending)
    }
}

fn short(bytes: &[u8]) -> String {
    hex(&bytes[..bytes.len().min(6)])
}

/// Puts the local directory, the ledger and the live catalog side by side.
pub fn state(
    local: &[LocalMigration],
    ledger: Option<&[LedgerRow]>,
    live: &SchemaSnapshot,
    expected: Option<&ExpectedSchema>,
) -> MigrationState {
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
    if let Some(expected) = expected {
        for e in entries
            .iter()
            .filter(|e| e.status == MigrationStatus::Pending)
        {
            for key in expected
                .objects_by_version
                .get(&e.version)
                .into_iter()
                .flatten()
            {
                // An enum label or a column appears with its parent; report the parent once.
                let reported_parent = match key {
                    ObjectKey::EnumLabel(en, _) => {
                        live.contains(&ObjectKey::Enum(en.clone()))
                            && expected.objects_by_version[&e.version]
                                .contains(&ObjectKey::Enum(en.clone()))
                    }
                    ObjectKey::Column(t, _)
                    | ObjectKey::Constraint(t, _)
                    | ObjectKey::Index(t, _)
                    | ObjectKey::Trigger(t, _) => {
                        live.contains(&ObjectKey::Table(t.clone()))
                            && expected.objects_by_version[&e.version]
                                .contains(&ObjectKey::Table(t.clone()))
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
    MigrationState {
        ledger_present: ledger.is_some(),
        entries,
        partial,
        pending_objects_checked: expected.is_some(),
    }
}

/// The findings for the report: ledger, pending, checksums, history and partial state.
pub fn findings(state: &MigrationState, dir: &Path) -> Vec<Finding> {
    use MigrationStatus::*;
    let mut out = Vec::new();
    let applied = state.count(Applied) + state.count(ChecksumMismatch);
    let newest = state.entries.iter().find(|e| e.installed_on.is_some());
    out.push(if state.ledger_present {
        let mut f = Finding::pass(
            Group::Migrations,
            "migrations.ledger",
            format!("ledger present: {applied} applied"),
        );
        if let Some(n) = newest {
            f.summary.push_str(&format!(
                ", newest {} ({}) at {}",
                n.version,
                n.description,
                n.installed_on
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            ));
        }
        f
    } else {
        Finding::warn(
            Group::Migrations,
            "migrations.ledger",
            "no _sqlx_migrations table: sqlx has never applied a migration to this database",
        )
    });
    let pending: Vec<&MigrationEntry> = state.pending().collect();
    out.push(if pending.is_empty() {
        Finding::pass(
            Group::Migrations,
            "migrations.pending",
            format!(
                "none pending ({} local in {})",
                state.entries.len() - state.count(MissingLocally),
                dir.display()
            ),
        )
    } else {
        Finding::warn(
            Group::Migrations,
            "migrations.pending",
            format!("{} pending", pending.len()),
        )
        .details(pending.iter().rev().map(|e| {
            format!(
                "{} {}{}",
                e.version,
                e.description,
                if e.no_transaction {
                    " (no-transaction)"
                } else {
                    ""
                }
            )
        }))
        .fix("pgvigil migrate dry-run, then apply in the maintenance window")
    });
    let mismatched: Vec<&MigrationEntry> = state
        .entries
        .iter()
        .filter(|e| e.status == ChecksumMismatch)
        .collect();
    out.push(if mismatched.is_empty() {
        Finding::pass(
            Group::Migrations,
            "migrations.checksums",
            format!("{applied} applied migrations match their files"),
        )
    } else {
        Finding::fail(
            Group::Migrations,
            "migrations.checksums",
            format!(
                "{} applied migration(s) edited after they were applied",
                mismatched.len()
            ),
        )
        .details(mismatched.iter().map(|e| {
            format!(
                "{} {}: applied {} but the file is now {}",
                e.version,
                e.description,
                e.applied_checksum.as_deref().unwrap_or("?"),
                e.local_checksum.as_deref().unwrap_or("?")
            )
        }))
        .fix("restore the applied file from version control; put the change in a new migration")
    });
    let missing: Vec<&MigrationEntry> = state
        .entries
        .iter()
        .filter(|e| e.status == MissingLocally)
        .collect();
    let failed: Vec<&MigrationEntry> = state
        .entries
        .iter()
        .filter(|e| e.status == Failed)
        .collect();
    out.push(if missing.is_empty() && failed.is_empty() {
        Finding::pass(
            Group::Migrations,
            "migrations.history",
            "every applied version exists locally and succeeded",
        )
    } else {
        let mut f = Finding::fail(
            Group::Migrations,
            "migrations.history",
            format!(
                "{} applied but missing locally, {} recorded as failed",
                missing.len(),
                failed.len()
            ),
        );
        for e in &missing {
            f = f.detail(format!(
                "{} {}: applied on the server, no such file in {} (wrong checkout or branch?)",
                e.version,
                e.description,
                dir.display()
            ));
        }
        for e in &failed {
            f = f.detail(format!(
                "{} {}: ledger row has success = false",
                e.version, e.description
            ));
        }
        f
    });
    let fails = state
        .partial
        .iter()
        .filter(|p| !matches!(p, PartialState::UnvalidatedConstraint { .. }))
        .count();
    let mut partial = if state.partial.is_empty() {
        Finding::pass(
            Group::Migrations,
            "migrations.partial",
            "no invalid indexes, unvalidated constraints or half-applied migrations",
        )
    } else if fails > 0 {
        Finding::fail(
            Group::Migrations,
            "migrations.partial",
            format!(
                "{} sign(s) of a half-applied migration",
                state.partial.len()
            ),
        )
    } else {
        Finding::warn(
            Group::Migrations,
            "migrations.partial",
            format!("{} constraint(s) NOT VALID", state.partial.len()),
        )
    };
    partial = partial.details(state.partial.iter().map(|p| match p {
        PartialState::PendingObjectExists { .. } => p.to_string(),
        PartialState::InvalidIndex { fix, .. }
        | PartialState::UnvalidatedConstraint { fix, .. } => {
            format!("{p}; fix: {fix}")
        }
    }));
    if !state.pending_objects_checked
        && !pending.is_empty()
        && partial.status == super::Status::Pass
    {
        partial = Finding::unknown(
            Group::Migrations,
            "migrations.partial",
            "could not tell whether objects of the pending migrations already exist (no expected schema)",
        );
    }
    out.push(partial);
    out
}
