//! The migration findings of `pgvigil check`: the words for where the migrations stand
//! ([`MigrationState`], decided in `migrations/state.rs`).

use std::path::Path;

use super::{Finding, Group};
use crate::migrations::{MigrationEntry, MigrationState, MigrationStatus, PartialState};

/// The findings for the report: ledger, pending, checksums, history and partial state.
pub fn findings(state: &MigrationState, dir: &Path) -> Vec<Finding> {
    use MigrationStatus::*;
    let mut out = Vec::new();
    let applied = state.count(Applied) + state.count(ChecksumMismatch);
    let newest = state.newest_recorded();
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
