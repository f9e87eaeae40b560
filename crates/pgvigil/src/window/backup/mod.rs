//! The verified backup: `create` dumps one exported snapshot with pg_dump while the same
//! read-only transaction computes the figures of a manifest; `verify` checks the files,
//! restores the dump into a scratch database on the dev server and compares every figure with
//! the restored copy; the result is recorded for the apply gate. One concern per file: the
//! manifest's format (`manifest.rs`), the figures and the SQL that computes them on both sides
//! (`figures.rs`), the client programs (`tools.rs`), taking the backup (`create.rs`), the
//! reusable restore into a scratch database (`restore.rs`, the rehearsal's too), the
//! verification (`verify.rs`) and its record (`record.rs`).

mod create;
pub mod figures;
pub mod manifest;
pub mod record;
mod restore;
mod target;
pub mod tools;
mod verify;

pub use create::{
    CreateError, CreateOptions, CreateReport, DEFAULT_COMPRESS, DEFAULT_FULL_HASH_LIMIT, create,
    default_jobs, sha256_file,
};
pub use manifest::{BackupManifest, ManifestError};
pub use record::{RecordError, VerificationRecord};
pub use restore::{RestoreError, RestoredCopy, TocEntry, parse_toc, restore_into_scratch};
pub use target::{TargetError, restore_target};
pub use verify::{
    Finding, FindingKind, TableCheck, VerifyError, VerifyOptions, VerifyOutcome, VerifyReport,
    check_files, check_toc, verify,
};
