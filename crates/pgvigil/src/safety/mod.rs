//! Steps of the maintenance-window policy that pgvigil makes checkable. Today: the migration
//! dry-run, which runs the pending migrations on a dev copy of production's schema, never on
//! production.

mod dry_run;
mod production_evidence;
mod schema_copy;

pub use dry_run::{
    DryRunError, DryRunOptions, DryRunReport, DryRunStatus, LockTaken, MigrationDryRun, Outcome,
    dry_run, dry_run_migrations, lock_mode_words,
};
pub use production_evidence::{ProductionEvidence, RowChange};
pub use schema_copy::{CopyError, ProductionFacts};
