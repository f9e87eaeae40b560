//! The maintenance-window steps, one concern per file. The live-database policy pgvigil serves
//! asks for, in order: a lint of the pending migrations against the live tables, a backup whose
//! restore is verified against the source's figures, a rehearsal on a restored copy that measures
//! every lock, the gated apply (rolls forward, never waits unbounded on a lock), post-migration
//! verification, the emergency rollback, and an audit trail of every write. Each step gets its
//! own file here (`lint.rs`, `backup.rs`, `rehearsal.rs`, `apply.rs`, `verify.rs`,
//! `rollback.rs`, `audit.rs`) and reuses what is already here instead of copying it: the
//! migration runner, the copy of production's schema, the evidence that production was only
//! read, and [`Progress`] for long steps.
//!
//! Today: the shared migration runner ([`runner`]: in order, bounded from outside the session,
//! its locks sampled) and the migration dry-run, which runs the pending migrations through it on
//! a dev copy of production's schema, never on production.

pub mod backup;
mod dry_run;
pub mod ledger;
pub mod lint;
mod production_evidence;
mod progress;
pub mod rehearsal;
pub mod runner;
mod schema_copy;

pub use dry_run::{
    DryRunError, DryRunOptions, DryRunReport, DryRunStatus, LockTaken, MigrationDryRun, Outcome,
    dry_run, dry_run_migrations,
};
pub use production_evidence::{ProductionEvidence, RowChange};
pub use progress::{Progress, ProgressSink, Unit};
pub use runner::{MigrationRun, MigrationRunner, RunOutcome, RunnerOptions};
pub use schema_copy::{CopyError, ProductionFacts};
