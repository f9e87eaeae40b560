//! Live catalog reads, all in one place: the per-tick server view (one statement) and the
//! schema snapshot (one statement), both through a [`crate::session::Reader`]. Everything here
//! only reads. (The migration ledger is read in [`crate::migrations`].)

mod server_view;
mod snapshot;

pub use server_view::*;
pub use snapshot::*;
