//! Schema verification: the live catalog against what the migrations say it should be. The
//! expected side is a snapshot of a scratch database with the migrations applied (on the same
//! server, when the role may create databases) or a file written earlier by
//! `pgvigil schema snapshot`. The diff covers the objects the migrations create; other tables,
//! enums and extensions are ignored unless `strict`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection};

use super::catalog::{ObjectKey, SNAPSHOT_FORMAT, SchemaSnapshot, Table, snapshot};
use super::migrations::LocalMigration;
use crate::dev::{DevError, DevServer};
use crate::sanitize::{quote_ident, quote_literal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Missing,
    Unexpected,
    Different,
    /// Differs only because a pending migration has not run yet: it will create, change or
    /// drop this object.
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One difference between the expected and the live schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    pub object: String,
    pub kind: DiffKind,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub severity: Severity,
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

fn column_text(c: &super::catalog::Column) -> String {
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

impl TableObject for super::catalog::Column {
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

impl TableObject for super::catalog::Constraint {
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

impl TableObject for super::catalog::Index {
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

impl TableObject for super::catalog::Trigger {
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

/// Identity of a migration an expected schema was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationStamp {
    pub version: i64,
    pub description: String,
    pub checksum: String,
}

/// What the migrations produce, and which objects each one creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedSchema {
    pub format: u32,
    /// Where it came from: `dev database ...`, a file path, or the cache.
    pub source: String,
    pub migrations: Vec<MigrationStamp>,
    pub snapshot: SchemaSnapshot,
    /// Objects that first appear after each migration (by version).
    pub objects_by_version: BTreeMap<i64, Vec<ObjectKey>>,
    /// Objects each migration creates, changes or drops: a difference on one of these, while
    /// that migration is pending, is "pending", not "missing". Absent in older files.
    #[serde(default)]
    pub touched_by_version: BTreeMap<i64, Vec<ObjectKey>>,
}

/// Why the expected schema could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error(transparent)]
    Dev(#[from] DevError),
    #[error("migration {version} ({description}) failed in the dev database: {error}")]
    MigrationFailed {
        version: i64,
        description: String,
        error: String,
    },
    #[error("the dev database: {}", crate::pool::error_text(.0))]
    Database(#[source] sqlx::Error),
    #[error(
        "building the expected schema passed its wall-clock bound of {0} s; raise it or pass \
         --expected FILE"
    )]
    TooSlow(u64),
    #[error("--expected {path}: {reason}; expected a file written by `pgvigil schema snapshot`")]
    File { path: String, reason: String },
}

/// Snapshot files larger than this are refused.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

impl ExpectedSchema {
    pub fn read(path: &Path) -> Result<Self, ExpectedError> {
        let file_err = |reason: String| ExpectedError::File {
            path: path.display().to_string(),
            reason,
        };
        let text =
            crate::files::read_text(path, MAX_SNAPSHOT_BYTES).map_err(|e| file_err(e.reason()))?;
        let parsed: Self = serde_json::from_str(&text)
            .map_err(|e| file_err(format!("not a snapshot file ({e})")))?;
        if parsed.format != SNAPSHOT_FORMAT {
            return Err(file_err(format!(
                "format {} is not supported (this pgvigil reads format {SNAPSHOT_FORMAT})",
                parsed.format
            )));
        }
        Ok(parsed)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("snapshot serialises");
        crate::files::write_private(path, (json + "\n").as_bytes())
    }

    /// Builds the expected schema on the dev server: a scratch database of its own, migrated
    /// one migration at a time (snapshotting after each), dropped afterwards whatever happened.
    /// Nothing here touches production. Bounded by `bound` of wall-clock time.
    pub async fn build(
        dev: &DevServer,
        migrations: &[LocalMigration],
        bound: std::time::Duration,
    ) -> Result<Self, ExpectedError> {
        let scratch = dev.scratch().await?;
        let built = tokio::time::timeout(bound, build_in(&scratch, migrations)).await;
        let name = scratch.name.clone();
        if let Err(e) = scratch.drop_now().await {
            tracing::warn!(target: "pgvigil::checks", "could not drop scratch database {name}: {e}; the next run drops it");
        }
        let (snapshot, objects_by_version, touched_by_version) =
            built.map_err(|_| ExpectedError::TooSlow(bound.as_secs()))??;
        Ok(Self {
            format: SNAPSHOT_FORMAT,
            source: dev.describe(),
            migrations: migrations.iter().map(LocalMigration::stamp).collect(),
            snapshot,
            objects_by_version,
            touched_by_version,
        })
    }
}

type Built = (
    SchemaSnapshot,
    BTreeMap<i64, Vec<ObjectKey>>,
    BTreeMap<i64, Vec<ObjectKey>>,
);

async fn build_in(
    scratch: &crate::dev::ScratchDatabase,
    migrations: &[LocalMigration],
) -> Result<Built, ExpectedError> {
    let db = ExpectedError::Database;
    // Migrations run as an ordinary role on a private dev cluster; the extensions they create
    // with IF NOT EXISTS are made before the first one runs, by the administrator (an
    // extension script runs as the superuser and must not meet objects a migration planted),
    // and counted as created by the first migration that names each.
    let mut first_named: BTreeMap<i64, Vec<ObjectKey>> = BTreeMap::new();
    let mut extensions: Vec<crate::dev::Extension> = Vec::new();
    for m in migrations {
        for e in crate::safety::statements::extensions_created_if_not_exists(&m.sql) {
            if !extensions.iter().any(|x| x.name == e.name) {
                first_named
                    .entry(m.version)
                    .or_default()
                    .push(ObjectKey::Extension(e.name.clone()));
                extensions.push(e);
            }
        }
    }
    scratch.create_extensions(&extensions).await.map_err(db)?;
    let mut conn = scratch.connect().await.map_err(db)?;
    let mut previous = snapshot(&mut conn).await.map_err(db)?;
    let mut by_version = BTreeMap::new();
    let mut touched = BTreeMap::new();
    for m in migrations {
        let applied = if m.no_tx {
            sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                .execute(&mut conn)
                .await
                .map(|_| ())
        } else {
            async {
                let mut tx = conn.begin().await?;
                sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        };
        applied.map_err(|e| ExpectedError::MigrationFailed {
            version: m.version,
            description: m.description.clone(),
            error: match &e {
                sqlx::Error::Database(d) => d.message().to_string(),
                other => other.to_string(),
            },
        })?;
        let now = snapshot(&mut conn).await.map_err(db)?;
        let mut created: Vec<ObjectKey> = now
            .objects()
            .into_iter()
            .filter(|k| !previous.contains(k) && !matches!(k, ObjectKey::Extension(_)))
            .collect();
        created.extend(first_named.remove(&m.version).unwrap_or_default());
        let changed: Vec<ObjectKey> = diff(&previous, &now, true)
            .into_iter()
            .filter_map(|e| e.key)
            .collect();
        by_version.insert(m.version, created);
        touched.insert(m.version, changed);
        previous = now;
    }
    let _ = conn.close().await;
    Ok((previous, by_version, touched))
}

/// Marks the differences that pending migrations explain: objects they create, change or drop.
pub fn mark_pending(d: &mut SchemaDiff, expected: &ExpectedSchema, pending: &[i64]) {
    let touched: std::collections::BTreeSet<&ObjectKey> = pending
        .iter()
        .flat_map(|v| {
            expected
                .touched_by_version
                .get(v)
                .into_iter()
                .chain(expected.objects_by_version.get(v))
                .flatten()
        })
        .collect();
    for e in d.iter_mut() {
        let explained = e.key.as_ref().is_some_and(|k| {
            touched.contains(k)
                || match k {
                    // A column or index of a table a pending migration creates.
                    ObjectKey::Column(t, _)
                    | ObjectKey::Constraint(t, _)
                    | ObjectKey::Index(t, _)
                    | ObjectKey::Trigger(t, _) => touched.contains(&ObjectKey::Table(t.clone())),
                    ObjectKey::EnumLabel(n, _) => touched.contains(&ObjectKey::Enum(n.clone())),
                    _ => false,
                }
        });
        // Unexpected too: a pending migration that drops or renames an object leaves it
        // "unexpected" until it runs; only objects it touches themselves count for that.
        let own = e.key.as_ref().is_some_and(|k| touched.contains(k));
        if explained && (e.kind != DiffKind::Unexpected || own) {
            e.kind = DiffKind::Pending;
            e.severity = Severity::Info;
            e.fix = None;
        }
    }
    d.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.object.cmp(&b.object))
    });
}
