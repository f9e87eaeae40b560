//! Where the migrations stand, in one place: the local files as sqlx reads them (`local.rs`),
//! sqlx's ledger on a database (`ledger.rs`), and the one function that puts them side by side
//! ([`MigrationState::of`]). `pgvigil check`, `/health/ready`, the dry-run and the dashboard
//! all decide pending, applied, edited, missing, failed and partial from it; each only words
//! the result its own way.

pub(crate) mod ledger;
pub(crate) mod local;
mod state;

pub use ledger::{LedgerRow, read_ledger};
pub use local::{
    DirectoryProblem, LocalMigration, MAX_MIGRATION_BYTES, MigrationError, MigrationStamp,
    load_local,
};
pub use state::{MigrationCounts, MigrationEntry, MigrationState, MigrationStatus, PartialState};
