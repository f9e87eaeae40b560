//! What a rehearsal found, as `--json` prints it (format `pgvigil.rehearsal/1`) and as the
//! human report and the dashboard read it.

use serde::Serialize;

use crate::catalog::{LockMode, PhaseSpan};
use crate::checks::{Finding, Status};
use crate::window::Outcome;

/// The JSON format's name and version.
pub const FORMAT: &str = "pgvigil.rehearsal/1";

/// What production would see of one lock: how busy its table is there now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    /// Rows production writes to the table per second (inserts + updates + deletes between
    /// two readings of pg_stat_user_tables).
    pub writes_per_s: f64,
    /// Scans of the table per second (sequential + index).
    pub reads_per_s: f64,
    /// Statements that would queue behind the hold: hold × the writes it blocks (and the reads,
    /// when it blocks them).
    pub would_queue: u64,
}

/// The strongest lock a migration took on one relation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockHold {
    /// The relation (schema-qualified unless in public).
    pub relation: String,
    /// The mode (`"ACCESS EXCLUSIVE"`).
    pub mode: LockMode,
    /// It blocks plain reads.
    pub blocks_reads: bool,
    /// It blocks writes.
    pub blocks_writes: bool,
    /// The lock model's words: "blocks reads and writes", "blocks writes", "blocks neither".
    pub blocking: &'static str,
    /// The relation was created by the pending migrations (nobody else uses it yet).
    pub created_here: bool,
    /// How long the migration waited for it, in milliseconds.
    pub waited_ms: u64,
    /// How long it held it, in milliseconds, as exact as one reading interval.
    pub held_ms: u64,
    /// The hold scaled to production's size, when the copy is smaller (see the notes).
    pub production_held_ms: Option<u64>,
    /// How busy the table is on production, for a lock that blocks something on an existing
    /// table (when production was read).
    pub production: Option<Projection>,
    /// The threshold it passed ("past 10 s, the limit --max-exclusive-hold sets"), if any.
    pub over_threshold: Option<String>,
}

/// An index a migration built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexBuilt {
    /// The index.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Its access method (`hnsw`, `btree`).
    pub method: String,
    /// `pg_index.indisvalid` after the migration: false is the invalid leftover of a failed
    /// concurrent build.
    pub valid: bool,
}

/// One pending migration as rehearsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RehearsedMigration {
    /// Version, from the file name.
    pub version: i64,
    /// Description, from the file name.
    pub description: String,
    /// Lower-case hex SHA-384 of the file, as sqlx records it.
    pub checksum: String,
    /// The file runs outside a transaction (`-- no-transaction`).
    pub no_transaction: bool,
    /// How it went (`succeeded`, `failed` with its error, line and column, `not_run`).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Existing rows broke it (a data or integrity error): a schema-only dry-run has no rows
    /// and cannot see this.
    pub existing_rows_broke_it: bool,
    /// Wall-clock time on the copy, in milliseconds.
    pub duration_ms: f64,
    /// The duration scaled to production's size, when the copy is smaller.
    pub production_duration_ms: Option<f64>,
    /// How it was scaled ("linear in documents' rows", "n log n in documents' rows (HNSW)").
    pub scale_model: Option<String>,
    /// Per relation, the strongest lock it took, with its wait and hold.
    pub locks: Vec<LockHold>,
    /// Relations it rewrote (a new relfilenode).
    pub rewrites: Vec<String>,
    /// Indexes it built, with their validity.
    pub indexes_built: Vec<IndexBuilt>,
    /// The index build phases seen, in order.
    pub build_phases: Vec<PhaseSpan>,
    /// What its backend waited on (`Lock:relation`, `IO:DataFileRead`) and roughly how long,
    /// in milliseconds.
    pub waits: Vec<(String, u64)>,
}

/// How the rehearsal came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RehearsalVerdict {
    /// Every pending migration ran, no lock passed its threshold, the checks pass.
    Passed,
    /// Every migration ran, but a lock passed its threshold, an index was left invalid or a
    /// check did not pass: read the report before the window.
    Flagged,
    /// A migration failed or was stopped.
    Failed,
}

impl RehearsalVerdict {
    /// As a monitoring verdict.
    pub fn status(self) -> Status {
        match self {
            Self::Passed => Status::Pass,
            Self::Flagged => Status::Warn,
            Self::Failed => Status::Fail,
        }
    }
}

/// One table's size on the copy and on production.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableScale {
    /// `schema.table` (as lint reads it).
    pub table: String,
    /// Rows on the copy (the manifest's exact count, or the staging server's estimate).
    pub copy_rows: u64,
    /// Rows on production (its pg_class estimate), when read.
    pub production_rows: Option<u64>,
}

/// The whole rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    /// [`FORMAT`].
    pub format: &'static str,
    /// Where the migrations ran: "a restored copy of <manifest> on <dev server>" or the staging
    /// server (redacted).
    pub ran_on: String,
    /// The backup rehearsed on, when one was restored.
    pub manifest: Option<std::path::PathBuf>,
    /// That backup has a successful verification recorded (`None`: a staging server).
    pub backup_verified: Option<bool>,
    /// When that backup's snapshot was taken.
    pub backup_taken_at: Option<String>,
    /// Production (redacted), when it was read for the projection.
    pub production: Option<String>,
    /// When the rehearsal started (RFC 3339).
    pub started_at: String,
    /// Its wall-clock time, in milliseconds.
    pub duration_ms: f64,
    /// The copy's server version.
    pub server_version: String,
    /// The copy's extensions and versions.
    pub extensions: Vec<(String, String)>,
    /// The database's size before the migrations, in bytes.
    pub size_before: i64,
    /// And after.
    pub size_after: i64,
    /// Milliseconds between two readings of the migration's backend (0: none taken).
    pub sample_interval_ms: u64,
    /// Hold threshold for ACCESS EXCLUSIVE, in milliseconds.
    pub max_exclusive_hold_ms: u64,
    /// Hold threshold for the other modes that block writes, in milliseconds.
    pub max_write_block_ms: u64,
    /// The pending migrations in order.
    pub migrations: Vec<RehearsedMigration>,
    /// The checks run on the result (pgvector, the ledger against the files).
    pub checks: Vec<Finding>,
    /// The tables' sizes on the copy and production.
    pub scale: Vec<TableScale>,
    /// What differs from production and what was assumed.
    pub notes: Vec<String>,
    /// The verdict.
    pub verdict: RehearsalVerdict,
}

impl RehearsalReport {
    /// The report in one line: "3 pending migrations rehearsed on a restored copy: passed".
    pub fn summary(&self) -> String {
        let failed = self
            .migrations
            .iter()
            .filter(|m| matches!(m.outcome, Outcome::Failed { .. }))
            .count();
        let flagged = self
            .migrations
            .iter()
            .flat_map(|m| &m.locks)
            .filter(|l| l.over_threshold.is_some())
            .count();
        let verdict = match self.verdict {
            RehearsalVerdict::Passed => "passed".to_string(),
            RehearsalVerdict::Flagged if flagged > 0 => {
                format!("FLAGGED: {flagged} lock(s) past their threshold")
            }
            RehearsalVerdict::Flagged => "FLAGGED (see the report)".to_string(),
            RehearsalVerdict::Failed => format!("FAILED: {failed} migration(s) failed"),
        };
        if self.migrations.is_empty() {
            return format!("no pending migrations to rehearse: {verdict}");
        }
        format!(
            "{} pending migration(s) rehearsed: {verdict}",
            self.migrations.len()
        )
    }
}
