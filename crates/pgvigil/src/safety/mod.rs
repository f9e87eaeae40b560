//! Steps of the live-database policy that pgvigil makes checkable. Today: the migration
//! dry-run, which always rolls back.

pub mod dry_run;
pub mod schema_copy;
