//! The schema diff: two catalog snapshots compared, pure (no database). The expected side
//! comes from `expected`; differences carry a severity and, where one exists, a fix whose
//! identifiers are quoted as PostgreSQL's `quote_ident` would.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{ObjectKey, SchemaSnapshot, Table};
use crate::sanitize::{quote_ident, quote_literal};

/// How the live schema differs from the expected one for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    /// The migrations create it; the live database does not have it.
    Missing,
    /// The live database has it; the migrations do not create it.
    Unexpected,
    /// Both have it, with different definitions (type, default, labels, validity...).
    Different,
    /// Differs only because a pending migration has not run yet: it will create, change or
    /// drop this object.
    Pending,
}

/// How much a difference matters. Ordered: the most severe is the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a line in the report; does not change the check's status.
    Info,
    /// Makes the schema check WARN: unusual, but the application should still work.
    Warning,
    /// Makes the schema check FAIL: something the application relies on is missing or wrong.
    Critical,
}

/// One difference between the expected and the live schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// The object as reports name it (`column documents.embedding`, `index i on t`).
    pub object: String,
    /// Missing, unexpected, different or pending.
    pub kind: DiffKind,
    /// What the migrations produce, as text; `None` for an unexpected object.
    pub expected: Option<String>,
    /// What the live database has, as text; `None` for a missing object.
    pub actual: Option<String>,
    /// How much it matters: decides whether the schema check passes, warns or fails.
    pub severity: Severity,
    /// SQL that would bring the live object in line (`CREATE INDEX CONCURRENTLY ...`), when a safe
    /// one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The object, for matching against what pending migrations touch.
    #[serde(skip)]
    pub key: Option<ObjectKey>,
}

impl DiffEntry {
    fn new(
        object: &ObjectKey,
        kind: DiffKind,
        expected: Option<String>,
        actual: Option<String>,
        severity: Severity,
    ) -> Self {
        Self {
            object: object.to_string(),
            kind,
            expected,
            actual,
            severity,
            fix: None,
            key: Some(object.clone()),
        }
    }

    fn with_fix(mut self, fix: String) -> Self {
        self.fix = Some(fix);
        self
    }
}

impl std::fmt::Display for DiffEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DiffKind::Missing => "missing",
            DiffKind::Unexpected => "unexpected",
            DiffKind::Different => "different",
            DiffKind::Pending => "pending",
        };
        write!(f, "{kind} {}", self.object)?;
        match (&self.expected, &self.actual) {
            (Some(e), Some(a)) => write!(f, ": expected {e}, actual {a}"),
            (Some(e), None) => write!(f, ": expected {e}"),
            (None, Some(a)) => write!(f, ": {a}"),
            (None, None) => Ok(()),
        }
    }
}

/// The list of differences, most severe first.
pub type SchemaDiff = Vec<DiffEntry>;

/// Compares two snapshots. Objects absent from `expected` are reported only inside tables the
/// migrations create, or everywhere when `strict`.
pub fn diff(expected: &SchemaSnapshot, actual: &SchemaSnapshot, strict: bool) -> SchemaDiff {
    let mut out = Vec::new();
    for (name, version) in &expected.extensions {
        let key = ObjectKey::Extension(name.clone());
        match actual.extensions.get(name) {
            None => out.push(
                DiffEntry::new(
                    &key,
                    DiffKind::Missing,
                    Some(version.clone()),
                    None,
                    Severity::Critical,
                )
                .with_fix(format!("CREATE EXTENSION {};", quote_ident(name))),
            ),
            // The expected side has whatever version the dev server defaults to: a different
            // installed version is worth a line, not a warning (pgvector.extension judges
            // whether an upgrade is pending).
            Some(v) if v != version => out.push(DiffEntry::new(
                &key,
                DiffKind::Different,
                Some(format!("version {version}")),
                Some(format!("version {v}")),
                Severity::Info,
            )),
            Some(_) => {}
        }
    }
    if strict {
        for (name, v) in &actual.extensions {
            if !expected.extensions.contains_key(name) {
                let key = ObjectKey::Extension(name.clone());
                out.push(DiffEntry::new(
                    &key,
                    DiffKind::Unexpected,
                    None,
                    Some(format!("version {v}")),
                    Severity::Info,
                ));
            }
        }
    }
    for (name, labels) in &expected.enums {
        let key = ObjectKey::Enum(name.clone());
        let Some(live) = actual.enums.get(name) else {
            out.push(DiffEntry::new(
                &key,
                DiffKind::Missing,
                Some(labels.join(", ")),
                None,
                Severity::Critical,
            ));
            continue;
        };
        for l in labels.iter().filter(|l| !live.contains(l)) {
            let k = ObjectKey::EnumLabel(name.clone(), l.clone());
            out.push(
                DiffEntry::new(
                    &k,
                    DiffKind::Missing,
                    Some(labels.join(", ")),
                    Some(live.join(", ")),
                    Severity::Critical,
                )
                .with_fix(format!(
                    "ALTER TYPE {} ADD VALUE {};",
                    expected.qualified(name),
                    quote_literal(l)
                )),
            );
        }
        for l in live.iter().filter(|l| !labels.contains(l)) {
            let k = ObjectKey::EnumLabel(name.clone(), l.clone());
            out.push(DiffEntry::new(
                &k,
                DiffKind::Unexpected,
                None,
                Some(live.join(", ")),
                Severity::Warning,
            ));
        }
        let common_expected: Vec<&String> = labels.iter().filter(|l| live.contains(l)).collect();
        let common_live: Vec<&String> = live.iter().filter(|l| labels.contains(l)).collect();
        if common_expected != common_live {
            out.push(DiffEntry::new(
                &key,
                DiffKind::Different,
                Some(format!("labels in order {}", labels.join(", "))),
                Some(format!("labels in order {}", live.join(", "))),
                Severity::Warning,
            ));
        }
    }
    if strict {
        for (name, labels) in &actual.enums {
            if !expected.enums.contains_key(name) {
                let key = ObjectKey::Enum(name.clone());
                out.push(DiffEntry::new(
                    &key,
                    DiffKind::Unexpected,
                    None,
                    Some(labels.join(", ")),
                    Severity::Warning,
                ));
            }
        }
    }
    for (name, table) in &expected.tables {
        let key = ObjectKey::Table(name.clone());
        match actual.tables.get(name) {
            None => out.push(DiffEntry::new(
                &key,
                DiffKind::Missing,
                Some("table".into()),
                None,
                Severity::Critical,
            )),
            Some(live) => diff_table(&expected.qualified(name), name, table, live, &mut out),
        }
    }
    if strict {
        for name in actual.tables.keys() {
            if !expected.tables.contains_key(name) {
                let key = ObjectKey::Table(name.clone());
                out.push(DiffEntry::new(
                    &key,
                    DiffKind::Unexpected,
                    None,
                    Some("table".into()),
                    Severity::Warning,
                ));
            }
        }
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
    });
    out
}

fn column_text(c: &crate::catalog::Column) -> String {
    let mut s = c.data_type.clone();
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(" DEFAULT ");
        s.push_str(d);
    }
    s
}

/// `qualified` is the table's name as SQL (quoted, schema-qualified outside public); `t` is
/// how reports name it.
fn diff_table(qualified: &str, t: &str, expected: &Table, live: &Table, out: &mut Vec<DiffEntry>) {
    let sql = SqlName {
        table: qualified.to_string(),
        schema_prefix: schema_prefix_of(qualified).unwrap_or_default(),
    };
    diff_objects(&sql, t, &expected.columns, &live.columns, out);
    diff_objects(&sql, t, &expected.constraints, &live.constraints, out);
    diff_objects(&sql, t, &expected.indexes, &live.indexes, out);
    diff_objects(&sql, t, &expected.triggers, &live.triggers, out);
}

/// `"my schema".t` -> `"my schema".`: the schema part of a quoted qualified name.
pub(crate) fn schema_prefix_of(qualified: &str) -> Option<String> {
    let mut in_quotes = false;
    let mut last_dot = None;
    for (i, c) in qualified.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => last_dot = Some(i),
            _ => {}
        }
    }
    last_dot.map(|i| qualified[..=i].to_string())
}

/// A table as SQL, for the fixes of the objects on it.
struct SqlName {
    table: String,
    /// `schema.` for tables outside public (indexes live in their table's schema).
    schema_prefix: String,
}

/// What one kind of table-level object (column, constraint, index, trigger) contributes to a
/// diff: how it is named and shown, how a missing one is fixed, and how two versions differ.
trait TableObject {
    fn key(table: &str, name: &str) -> ObjectKey;
    /// Shown for a missing (expected) or unexpected (live) object.
    fn describe(&self) -> String;
    fn fix_missing(&self, _table: &SqlName, _name: &str) -> Option<String> {
        None
    }
    /// (expected, actual, severity, fix) when the live object differs from the expected one.
    fn compare(&self, live: &Self, table: &SqlName, name: &str) -> Option<Difference>;
}

type Difference = (String, String, Severity, Option<String>);

/// A constraint, index or trigger whose definition changed: always critical.
fn redefined(expected: &str, actual: &str) -> Option<Difference> {
    Some((
        expected.to_string(),
        actual.to_string(),
        Severity::Critical,
        None,
    ))
}

fn diff_objects<T: TableObject>(
    sql: &SqlName,
    t: &str,
    expected: &BTreeMap<String, T>,
    live: &BTreeMap<String, T>,
    out: &mut Vec<DiffEntry>,
) {
    for (name, want) in expected {
        let key = T::key(t, name);
        match live.get(name) {
            None => {
                let mut e = DiffEntry::new(
                    &key,
                    DiffKind::Missing,
                    Some(want.describe()),
                    None,
                    Severity::Critical,
                );
                e.fix = want.fix_missing(sql, name);
                out.push(e);
            }
            Some(have) => {
                if let Some((expected, actual, severity, fix)) = want.compare(have, sql, name) {
                    let mut e = DiffEntry::new(
                        &key,
                        DiffKind::Different,
                        Some(expected),
                        Some(actual),
                        severity,
                    );
                    e.fix = fix;
                    out.push(e);
                }
            }
        }
    }
    for (name, have) in live {
        if !expected.contains_key(name) {
            out.push(DiffEntry::new(
                &T::key(t, name),
                DiffKind::Unexpected,
                None,
                Some(have.describe()),
                Severity::Warning,
            ));
        }
    }
}

impl TableObject for crate::catalog::Column {
    fn key(table: &str, name: &str) -> ObjectKey {
        ObjectKey::Column(table.into(), name.into())
    }
    fn describe(&self) -> String {
        column_text(self)
    }
    fn compare(&self, live: &Self, _: &SqlName, _: &str) -> Option<Difference> {
        let structural = live.data_type != self.data_type || live.not_null != self.not_null;
        if !structural && live.default == self.default {
            return None;
        }
        // Type and nullability break queries; a different default only changes new rows.
        let severity = if structural {
            Severity::Critical
        } else {
            Severity::Warning
        };
        Some((column_text(self), column_text(live), severity, None))
    }
}

impl TableObject for crate::catalog::Constraint {
    fn key(table: &str, name: &str) -> ObjectKey {
        ObjectKey::Constraint(table.into(), name.into())
    }
    fn describe(&self) -> String {
        let mut text = self.definition.clone();
        if !self.validated {
            text.push_str(" NOT VALID");
        }
        text
    }
    fn compare(&self, live: &Self, table: &SqlName, name: &str) -> Option<Difference> {
        if live.definition != self.definition {
            redefined(&self.definition, &live.definition)
        } else if self.validated && !live.validated {
            Some((
                "validated".into(),
                "NOT VALID (existing rows unchecked)".into(),
                Severity::Warning,
                Some(format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {};",
                    table.table,
                    quote_ident(name)
                )),
            ))
        } else {
            None
        }
    }
}

impl TableObject for crate::catalog::Index {
    fn key(table: &str, name: &str) -> ObjectKey {
        ObjectKey::Index(table.into(), name.into())
    }
    fn describe(&self) -> String {
        format!(
            "{}{}",
            self.definition,
            if self.valid { "" } else { " (INVALID)" }
        )
    }
    fn fix_missing(&self, _: &SqlName, _: &str) -> Option<String> {
        Some(concurrently(&self.definition))
    }
    fn compare(&self, live: &Self, table: &SqlName, name: &str) -> Option<Difference> {
        if live.definition != self.definition {
            redefined(&self.definition, &live.definition)
        } else if self.valid && !live.valid {
            Some((
                "valid".into(),
                "INVALID".into(),
                Severity::Critical,
                Some(format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}{};\n{}",
                    table.schema_prefix,
                    quote_ident(name),
                    concurrently(&self.definition)
                )),
            ))
        } else {
            None
        }
    }
}

impl TableObject for crate::catalog::Trigger {
    fn key(table: &str, name: &str) -> ObjectKey {
        ObjectKey::Trigger(table.into(), name.into())
    }
    fn describe(&self) -> String {
        self.definition.clone()
    }
    fn compare(&self, live: &Self, _: &SqlName, _: &str) -> Option<Difference> {
        if live.definition != self.definition {
            redefined(&self.definition, &live.definition)
        } else if self.enabled && !live.enabled {
            Some(("enabled".into(), "disabled".into(), Severity::Warning, None))
        } else {
            None
        }
    }
}

/// `CREATE [UNIQUE] INDEX name ON ...` as its CONCURRENTLY form, for fixes on a live table.
fn concurrently(definition: &str) -> String {
    let fixed = if let Some(rest) = definition.strip_prefix("CREATE UNIQUE INDEX ") {
        format!("CREATE UNIQUE INDEX CONCURRENTLY {rest}")
    } else if let Some(rest) = definition.strip_prefix("CREATE INDEX ") {
        format!("CREATE INDEX CONCURRENTLY {rest}")
    } else {
        definition.to_string()
    };
    format!("{fixed};")
}
