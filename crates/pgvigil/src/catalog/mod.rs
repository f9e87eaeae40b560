//! Live catalog reads, all in one place: the per-tick server view (one statement), the schema
//! snapshot (one statement), the migration ledger and the lock model (modes, relation locks,
//! blockers, the sampler). Everything here only reads.

mod ledger;
pub mod locks;
mod server_view;
mod snapshot;

pub use ledger::{LedgerRow, read_ledger};
pub use locks::{LockMode, LockSampler, LockSpan, RelationLock};
pub use server_view::*;
pub use snapshot::*;
