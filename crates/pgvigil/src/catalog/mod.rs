//! Live catalog reads, all in one place: the per-tick server view (one statement), the schema
//! snapshot (one statement) and the migration ledger. Everything here only reads.

mod ledger;
mod server_view;
mod snapshot;

pub use ledger::{LedgerRow, read_ledger};
pub use server_view::*;
pub use snapshot::*;
