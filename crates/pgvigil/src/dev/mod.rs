//! The dev database: where migration SQL runs when pgvigil judges it, never the server behind
//! DATABASE_URL. Like Atlas's dev database, it is either a private throwaway PostgreSQL that
//! pgvigil starts on this machine (same major version as production, with pgvector), or an
//! empty scratch server the engineer names with `--dev-url` / `DEV_DATABASE_URL`. Each use gets
//! a database of its own (`pgvigil_scratch_...`) that is dropped afterwards; one left by a
//! process that was killed outright is found and dropped by the next run.
//!
//! One concern per file: where the dev server comes from (`source.rs`), the running server
//! (`server.rs`), the scratch databases made on it (`scratch.rs`), the sweep of ones a killed
//! run left (`stale.rs`), the extensions created there (`extensions.rs`; which are refused:
//! `extension_policy.rs`), its disk bound (`size_bound.rs`), what tells two servers apart
//! (`identity.rs`) and why none could be had (`error.rs`).

mod error;
mod extension_policy;
mod extensions;
mod identity;
mod scratch;
mod server;
mod size_bound;
mod source;
mod stale;

pub use error::DevError;
pub use extension_policy::{ExtensionPolicy, RefusedExtension, migration_file};
pub use extensions::Extension;
pub use identity::server_identity;
pub use scratch::ScratchDatabase;
pub use server::DevServer;
pub use size_bound::{ACCEPTED_SIZE, DEFAULT_MAX_DEV_SIZE, SizeWatch, format_size, parse_size};
pub use source::{DevNetwork, DevOrigin, DevProvider, DevSource};
