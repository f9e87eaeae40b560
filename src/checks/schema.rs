//! Schema verification: the live catalog against what the migrations say it should be. The
//! expected side is a snapshot of a scratch database with the migrations applied (on the same
//! server, when the role may create databases) or a file written earlier by
//! `pgvigil schema snapshot`. The diff covers the objects the migrations create; other tables,
//! enums and extensions are ignored unless `strict`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use super::catalog::{ObjectKey, SNAPSHOT_FORMAT, SchemaSnapshot, Table, snapshot};
use super::migrations::LocalMigration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Missing,
    Unexpected,
    Different,
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
                .with_fix(format!("CREATE EXTENSION {name};")),
            ),
            Some(v) if v != version => out.push(DiffEntry::new(
                &key,
                DiffKind::Different,
                Some(format!("version {version}")),
                Some(format!("version {v}")),
                Severity::Warning,
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
                .with_fix(format!("ALTER TYPE {name} ADD VALUE '{l}';")),
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
            Some(live) => diff_table(name, table, live, &mut out),
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

fn diff_table(t: &str, expected: &Table, live: &Table, out: &mut Vec<DiffEntry>) {
    diff_objects(t, &expected.columns, &live.columns, out);
    diff_objects(t, &expected.constraints, &live.constraints, out);
    diff_objects(t, &expected.indexes, &live.indexes, out);
    diff_objects(t, &expected.triggers, &live.triggers, out);
}

/// What one kind of table-level object (column, constraint, index, trigger) contributes to a
/// diff: how it is named and shown, how a missing one is fixed, and how two versions differ.
trait TableObject {
    fn key(table: &str, name: &str) -> ObjectKey;
    /// Shown for a missing (expected) or unexpected (live) object.
    fn describe(&self) -> String;
    fn fix_missing(&self, _table: &str, _name: &str) -> Option<String> {
        None
    }
    /// (expected, actual, severity, fix) when the live object differs from the expected one.
    fn compare(&self, live: &Self, table: &str, name: &str) -> Option<Difference>;
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
                e.fix = want.fix_missing(t, name);
                out.push(e);
            }
            Some(have) => {
                if let Some((expected, actual, severity, fix)) = want.compare(have, t, name) {
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
    fn compare(&self, live: &Self, _: &str, _: &str) -> Option<Difference> {
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
    fn compare(&self, live: &Self, table: &str, name: &str) -> Option<Difference> {
        if live.definition != self.definition {
            redefined(&self.definition, &live.definition)
        } else if self.validated && !live.validated {
            Some((
                "validated".into(),
                "NOT VALID (existing rows unchecked)".into(),
                Severity::Warning,
                Some(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};")),
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
    fn fix_missing(&self, _: &str, _: &str) -> Option<String> {
        Some(concurrently(&self.definition))
    }
    fn compare(&self, live: &Self, _: &str, name: &str) -> Option<Difference> {
        if live.definition != self.definition {
            redefined(&self.definition, &live.definition)
        } else if self.valid && !live.valid {
            Some((
                "valid".into(),
                "INVALID".into(),
                Severity::Critical,
                Some(format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {name};\n{}",
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
    fn compare(&self, live: &Self, _: &str, _: &str) -> Option<Difference> {
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
    /// Where it came from: `scratch database on <server>` or a file path.
    pub source: String,
    pub migrations: Vec<MigrationStamp>,
    pub snapshot: SchemaSnapshot,
    /// Objects that first appear after each migration (by version).
    pub objects_by_version: BTreeMap<i64, Vec<ObjectKey>>,
}

/// Why the expected schema could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error(
        "role \"{role}\" may not create databases, so no scratch database can hold the migrations; \
         write a snapshot with `pgvigil schema snapshot --output FILE` where that is allowed \
         (staging) and pass --expected FILE"
    )]
    NotAllowed { role: String },
    #[error("migration {version} ({description}) failed in the scratch database: {error}")]
    MigrationFailed {
        version: i64,
        description: String,
        error: String,
    },
    #[error(
        "migration {version} contains `{statement}`, which would change the whole server, not \
         just a scratch database; build the expected schema on staging with `pgvigil schema \
         snapshot` and pass --expected FILE"
    )]
    ServerWide { version: i64, statement: String },
    #[error("{0}")]
    Database(String),
    #[error("--expected {path}: {reason}; expected a file written by `pgvigil schema snapshot`")]
    File { path: String, reason: String },
}

impl ExpectedSchema {
    pub fn read(path: &Path) -> Result<Self, ExpectedError> {
        let file_err = |reason: String| ExpectedError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
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
        std::fs::write(path, json + "\n")
    }

    /// Builds the expected schema in a scratch database on the server `conn` is connected to:
    /// created with a name that cannot collide, migrated one migration at a time (snapshotting
    /// after each), and dropped afterwards whatever happened.
    pub async fn from_scratch(
        conn: &mut PgConnection,
        options: &PgConnectOptions,
        migrations: &[LocalMigration],
    ) -> Result<Self, ExpectedError> {
        let db = |e: sqlx::Error| ExpectedError::Database(e.to_string());
        for m in migrations {
            if let Some(statement) = crate::safety::statements::server_wide(&m.sql) {
                return Err(ExpectedError::ServerWide {
                    version: m.version,
                    statement,
                });
            }
        }
        let (role, may_create): (String, bool) = sqlx::query_as(
            "SELECT current_user::text, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if !may_create {
            return Err(ExpectedError::NotAllowed { role });
        }
        let name = format!(
            "pgvigil_scratch_{}_{}_{:08x}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis(),
            rand::random::<u32>()
        );
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0"
        )))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        // If this future is dropped (Esc, quit) the guard still drops the database.
        let mut guard = ScratchGuard {
            name: name.clone(),
            admin: options.clone(),
            armed: true,
        };
        let result = build_in(options.clone().database(&name), migrations).await;
        if let Err(e) = drop_scratch(&mut *conn, &name).await {
            tracing::warn!(target: "pgvigil::checks", "could not drop scratch database {name}: {e}; drop it by hand");
        }
        guard.armed = false;
        let (snapshot, objects_by_version) = result?;
        Ok(Self {
            format: SNAPSHOT_FORMAT,
            source: format!(
                "scratch database {name} (dropped) on PostgreSQL {}",
                snapshot.server_version
            ),
            migrations: migrations.iter().map(LocalMigration::stamp).collect(),
            snapshot,
            objects_by_version,
        })
    }
}

/// Drops a scratch database, terminating sessions still in it (PostgreSQL 13+), or plainly on
/// older servers.
async fn drop_scratch(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let forced = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut *conn)
    .await;
    match forced {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42601") => {
            sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\"")))
                .execute(&mut *conn)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Drops the scratch database when the build is abandoned half-way (the future dropped by a
/// cancel or a quit): a task on a connection of its own does it.
struct ScratchGuard {
    name: String,
    admin: PgConnectOptions,
    armed: bool,
}

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (name, admin) = (self.name.clone(), self.admin.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let dropped = async {
                        let mut conn = admin.connect().await?;
                        drop_scratch(&mut conn, &name).await?;
                        conn.close().await
                    };
                    if let Err(e) = dropped.await {
                        tracing::warn!(target: "pgvigil::checks", "could not drop abandoned scratch database {name}: {e}");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(target: "pgvigil::checks", "scratch database {name} left behind; drop it by hand")
            }
        }
    }
}

async fn build_in(
    options: PgConnectOptions,
    migrations: &[LocalMigration],
) -> Result<(SchemaSnapshot, BTreeMap<i64, Vec<ObjectKey>>), ExpectedError> {
    let db = |e: sqlx::Error| ExpectedError::Database(e.to_string());
    let mut conn = options
        .log_statements(tracing::log::LevelFilter::Trace)
        .connect()
        .await
        .map_err(db)?;
    let mut previous = snapshot(&mut conn).await.map_err(db)?;
    let mut by_version = BTreeMap::new();
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
            error: e.to_string(),
        })?;
        let now = snapshot(&mut conn).await.map_err(db)?;
        let created: Vec<ObjectKey> = now
            .objects()
            .into_iter()
            .filter(|k| !previous.contains(k))
            .collect();
        by_version.insert(m.version, created);
        previous = now;
    }
    let _ = conn.close().await;
    Ok((previous, by_version))
}
