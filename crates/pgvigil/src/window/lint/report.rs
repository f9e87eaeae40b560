//! What the lint found, as the CLI prints it and `--json` writes it (format `pgvigil.lint/1`,
//! docs/lint.md): per file its findings with file:line:column, rule, severity, message and fix,
//! the waivers that silenced a rule, and what the catalog said (or what was assumed without it).

use serde::Serialize;

use crate::checks::Status;

/// The JSON format's name and version; a change that removes or renames a field bumps it.
pub const LINT_FORMAT: &str = "pgvigil.lint/1";

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing to change (an empty table, a table this pending set creates).
    Note,
    /// Review before the window: it may lock or break something.
    Warning,
    /// Do not apply as it is: it fails, or blocks a big or busy table.
    Error,
}

impl Severity {
    /// `note`, `warning`, `error`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// squawk's rule name (`adding-required-field`), pgvigil's (`pgvector-...`, `pgvigil-...`)
    /// or `syntax-error`.
    pub rule: String,
    /// After the catalog's say.
    pub severity: Severity,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do instead, when the rule knows.
    pub fix: Option<String>,
    /// The table it touches, when known (`public.documents`).
    pub table: Option<String>,
    /// Why it has this severity ("documents: 2.1 M rows, 26 GB, 140 writes/s: big").
    pub why: Option<String>,
}

/// A `-- pgvigil:ignore RULE reason` that silenced a finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaiverUsed {
    /// The rule waived.
    pub rule: String,
    /// Line of the waiver comment.
    pub line: usize,
    /// The reason written after the rule.
    pub reason: String,
    /// The finding it silenced, as it would have read.
    pub waived: Finding,
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileLint {
    /// The file as given (a path).
    pub file: String,
    /// sqlx runs it outside a transaction (`-- no-transaction` first line).
    pub no_transaction: bool,
    /// It did not parse: its findings are its parse errors (rule `syntax-error`), and no rule ran.
    pub parse_failed: bool,
    /// What it found, in file order.
    pub findings: Vec<Finding>,
    /// Waivers that silenced a finding.
    pub waivers: Vec<WaiverUsed>,
}

/// What the catalog said about one table a finding touches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableFacts {
    /// `public.documents`.
    pub table: String,
    /// Live rows (pg_class.reltuples, or pg_stat_user_tables.n_live_tup when never analysed).
    pub rows: u64,
    /// pg_total_relation_size.
    pub bytes: u64,
    /// Inserts + updates + deletes per second between the two readings.
    pub writes_per_s: f64,
    /// Sequential + index scans per second between the two readings.
    pub scans_per_s: f64,
}

impl TableFacts {
    /// "documents: 2.1 M rows, 26 GB, 140 writes/s, 3 scans/s".
    pub fn summary(&self) -> String {
        let name = self.table.strip_prefix("public.").unwrap_or(&self.table);
        format!(
            "{name}: {} rows, {}, {} writes/s, {} scans/s",
            count(self.rows),
            crate::window::progress::bytes(self.bytes),
            per_second(self.writes_per_s),
            per_second(self.scans_per_s)
        )
    }
}

fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.0} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn per_second(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The whole lint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LintReport {
    /// [`LINT_FORMAT`].
    pub format: &'static str,
    /// Which files and why ("the 2 pending migrations (ledger on DATABASE_URL)").
    pub selection: String,
    /// The PostgreSQL version the rules assumed (`15` without a database).
    pub pg_version: String,
    /// Whether the catalog was read.
    pub catalog_read: bool,
    /// What was read from the catalog, or what was assumed without it.
    pub assumptions: Vec<String>,
    /// The tables the findings touch, as read.
    pub tables: Vec<TableFacts>,
    /// Per file.
    pub files: Vec<FileLint>,
    /// Milliseconds the rules took over all files (the catalog reads are not included).
    pub elapsed_ms: f64,
}

impl LintReport {
    /// Findings of this severity across files.
    pub fn count(&self, severity: Severity) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.findings)
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Every waiver used.
    pub fn waiver_count(&self) -> usize {
        self.files.iter().map(|f| f.waivers.len()).sum()
    }

    /// The verdict, as `check` words it: errors FAIL (exit 2), warnings WARN (1), notes or
    /// nothing PASS (0).
    pub fn status(&self) -> Status {
        if self.count(Severity::Error) > 0 {
            Status::Fail
        } else if self.count(Severity::Warning) > 0 {
            Status::Warn
        } else {
            Status::Pass
        }
    }

    /// "2 errors, 1 warning, 3 notes, 1 waiver in 4 files".
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}, {}, {}, {} in {}",
            plural(self.count(Severity::Error), "error"),
            plural(self.count(Severity::Warning), "warning"),
            plural(self.count(Severity::Note), "note"),
            plural(self.waiver_count(), "waiver"),
            plural(self.files.len(), "file")
        )
    }
}
