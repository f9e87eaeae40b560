//! Live catalog reads, all in one place: the per-tick server view (one statement) and the
//! schema snapshot (one statement), both through a [`crate::session::Reader`], and the lock
//! model (modes, relation locks, blockers, the sampler). Everything here only reads. (The
//! migration ledger is read by the migrations module.)

pub mod activity;
pub mod locks;
mod server_view;
mod snapshot;

pub use activity::{ActivityTrace, PhaseSpan};
pub use locks::{LockMode, LockSampler, LockSpan, RelationLock};
pub use server_view::*;
pub use snapshot::*;
