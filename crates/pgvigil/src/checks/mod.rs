//! The checks engine behind `pgvigil check` and the dashboard's verify key. Every check reads;
//! none changes the target database (they run in READ ONLY transactions). Each produces
//! [`Finding`]s with pass / warn / fail / unknown; when a check cannot decide, it says UNKNOWN
//! with the reason, because a wrong "pass" before a maintenance window is the worst outcome.

pub mod diff;
pub mod expected;
pub mod expected_cache;
pub mod guard;
pub mod local;
pub mod migrations;
pub mod pgvector;
mod run;

use serde::Serialize;

pub use run::{CheckOptions, CheckReport, Counts, Group, UnknownGroup, run_checks, run_checks_on};

/// The result of one check, ordered from best to worst for [`Status::worst`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Unknown,
    Fail,
}

impl Status {
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

    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Pass)
    }
}

/// One line of a check report, with what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable identifier: `pgvector.index`, `schema.diff`, `migrations.checksums`.
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    pub details: Vec<String>,
    /// A statement or command that would fix it, when there is one.
    pub fix: Option<String>,
    /// Structured content for JSON consumers (diff entries, migration list, timings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Finding {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            status,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
            data: None,
        }
    }

    pub fn pass(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, summary)
    }
    pub fn warn(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, summary)
    }
    pub fn fail(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, summary)
    }
    pub fn unknown(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Unknown, summary)
    }

    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    pub fn details(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(lines);
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn data(mut self, data: impl Serialize) -> Self {
        self.data = serde_json::to_value(data).ok();
        self
    }
}
