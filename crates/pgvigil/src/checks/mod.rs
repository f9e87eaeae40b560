//! The checks engine behind `pgvigil check` and the dashboard's verify key. Every check reads;
//! none changes the target database (they run in READ ONLY transactions). Each produces
//! [`Finding`]s with pass / warn / fail / unknown; when a check cannot decide, it says UNKNOWN
//! with the reason, because a wrong "pass" before a maintenance window is the worst outcome.

pub(crate) mod diff;
pub(crate) mod expected;
pub(crate) mod expected_cache;
pub use expected_cache::state_dir;
pub(crate) mod guard;
pub(crate) mod migrations;
pub mod pgvector;
mod run;

use serde::Serialize;

pub use diff::{DiffEntry, DiffKind, SchemaDiff, Severity, diff};
pub use expected::{ExpectedError, ExpectedSchema, MAX_SNAPSHOT_BYTES, mark_pending};
pub use guard::ReadError;
// Where the migrations stand lives in `crate::migrations`; these paths stay for users of the
// check report (its `migrations` field) and of the local files.
pub use crate::migrations::{
    LocalMigration, MAX_MIGRATION_BYTES, MigrationEntry, MigrationError, MigrationStamp,
    MigrationState, MigrationStatus, PartialState, load_local,
};
pub use run::{CheckOptions, CheckReport, Counts, NoExpected, run_checks, run_checks_on};

/// The group a finding belongs to; every group but [`Group::Connection`] can be chosen with
/// `--only` (connection always runs: nothing else can be read without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Reaching the server and what it is (primary or standby, the role's rights).
    Connection,
    /// The pgvector extension, the embedding column and its ANN index.
    Pgvector,
    /// The live schema against the one the migrations produce (missing, unexpected, different).
    Schema,
    /// The migrations directory against sqlx's ledger, and partial state left by failed migrations.
    Migrations,
    /// The pool connects, and the server's client connections against max_connections.
    Pool,
}

/// A group name that is not one of pgvector, schema, migrations, pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a group of checks; expected pgvector, schema, migrations or pool")]
pub struct UnknownGroup(pub String);

impl std::str::FromStr for Group {
    type Err = UnknownGroup;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pgvector" => Ok(Self::Pgvector),
            "schema" => Ok(Self::Schema),
            "migrations" => Ok(Self::Migrations),
            "pool" => Ok(Self::Pool),
            // `connection` is not selectable: it runs whatever is chosen.
            other => Err(UnknownGroup(other.to_string())),
        }
    }
}

/// The result of one check, ordered from best to worst for [`Status::worst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Pass,
    /// Worth a look, but nothing known to be broken (a pending migration, usage near the limit).
    Warn,
    /// The check could not decide (a read failed, no expected schema): treat it as not passed.
    Unknown,
    /// Known broken: fix before relying on the database.
    Fail,
}

impl Status {
    /// The word for the status in reports: PASS, WARN, UNKNOWN or FAIL.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Unknown => "UNKNOWN",
            Self::Fail => "FAIL",
        }
    }

    /// Nagios-style exit code of an overall status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Warn => 1,
            Self::Fail => 2,
            Self::Unknown => 3,
        }
    }

    /// The monitoring word for an overall status.
    pub fn monitoring_word(self) -> &'static str {
        match self {
            Self::Pass => "OK",
            Self::Warn => "WARNING",
            Self::Fail => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The worst of `statuses` (FAIL, then UNKNOWN, WARN, PASS); PASS when there are none.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Pass)
    }
}

/// One line of a check report, with what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable identifier: `pgvector.index`, `schema.diff`, `migrations.checksums`.
    pub id: &'static str,
    /// The group the check belongs to: what the dashboard and `--only` select by.
    pub group: Group,
    /// How the check came out.
    pub status: Status,
    /// One line saying what was found, with its numbers.
    pub summary: String,
    /// Further lines: each difference, pending migration or note, one per line.
    pub details: Vec<String>,
    /// A statement or command that would fix it, when there is one.
    pub fix: Option<String>,
    /// Structured content for JSON consumers (diff entries, migration list, timings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Finding {
    /// A finding with no details, fix or data; the builder methods below add them.
    pub fn new(group: Group, id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            group,
            status,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
            data: None,
        }
    }

    /// A finding with [`Status::Pass`].
    pub fn pass(group: Group, id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(group, id, Status::Pass, summary)
    }
    /// A finding with [`Status::Warn`].
    pub fn warn(group: Group, id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(group, id, Status::Warn, summary)
    }
    /// A finding with [`Status::Fail`].
    pub fn fail(group: Group, id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(group, id, Status::Fail, summary)
    }
    /// A finding with [`Status::Unknown`].
    pub fn unknown(group: Group, id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(group, id, Status::Unknown, summary)
    }

    /// Adds one line of detail.
    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    /// Adds lines of detail.
    pub fn details(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(lines);
        self
    }

    /// Sets the fix: a statement or command that would resolve it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Attaches structured content for `--json` consumers (dropped if it does not serialize).
    pub fn data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).ok();
        self
    }
}
