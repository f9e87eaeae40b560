//! Sessions on production, the server behind DATABASE_URL. pgvigil only reads it, and that
//! holds by construction: every library function that reads production takes a [`Reader`]
//! from a [`ProductionSession`], never a bare connection, and a reader sends nothing but
//! reading statements, each inside a READ ONLY transaction that always ends in ROLLBACK.
//!
//! The one writable session the gated apply will get is a different type, obtainable only
//! through its gate (the maintenance window's `window/` steps); it is not built here, and
//! nothing in this module can be turned into it.

mod read_only;

pub use read_only::{GuardsHeldBy, ProductionSession, Reader, Refusal};
