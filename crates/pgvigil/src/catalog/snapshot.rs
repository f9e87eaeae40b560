//! A catalog snapshot of one database: extensions, enum types, tables with their columns,
//! constraints, indexes and triggers. Read from pg_catalog in ONE statement (a JSON document
//! built server-side), so a snapshot costs one round trip over a slow bastion link however many
//! tables there are. Both sides of a schema comparison are snapshots of this shape.

use std::collections::BTreeMap;

use crate::session::Reader;
use serde::{Deserialize, Serialize};

/// Version of the snapshot file format written by `pgvigil schema snapshot`.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One database's schema as pg_catalog describes it; what `pgvigil schema snapshot` writes and
/// what schema comparisons diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSnapshot {
    /// `server_version` of the server the snapshot was read from.
    pub server_version: String,
    /// Extension name -> installed version.
    pub extensions: BTreeMap<String, String>,
    /// Enum type (schema-qualified unless in public) -> labels in sort order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Table (schema-qualified unless in public) -> its definition.
    pub tables: BTreeMap<String, Table>,
    /// Table and enum names as SQL (`quote_ident` of schema and name, the schema left out in
    /// public), keyed like `tables` and `enums`: the keys are for people and can be ambiguous
    /// (a dot inside a name), these are exact. Absent in files from older versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sql_names: BTreeMap<String, String>,
}

/// One table's definition: its columns, constraints, indexes and triggers, each keyed by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Column name -> definition (dropped columns left out).
    pub columns: BTreeMap<String, Column>,
    /// Constraint name -> definition.
    pub constraints: BTreeMap<String, Constraint>,
    /// Index name -> definition.
    pub indexes: BTreeMap<String, Index>,
    /// Trigger name -> definition (internal triggers, e.g. for foreign keys, left out).
    pub triggers: BTreeMap<String, Trigger>,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// `attnum`: 1-based position in the table; dropped columns leave gaps.
    pub position: i32,
    /// `format_type(atttypid, atttypmod)`: `vector(3072)`, `timestamp with time zone`.
    pub data_type: String,
    /// Whether the column is `NOT NULL`.
    pub not_null: bool,
    /// The default expression as PostgreSQL prints it, `None` when there is none.
    pub default: Option<String>,
}

/// One table constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// p primary key, u unique, f foreign key, c check, x exclusion, n not null (PG 17+)
    pub kind: String,
    /// `pg_get_constraintdef`, without a trailing `NOT VALID` (see [`validated`](Self::validated)).
    pub definition: String,
    /// `false` for a constraint added `NOT VALID` and not yet validated.
    pub validated: bool,
}

/// One index on a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// `pg_get_indexdef`: the full `CREATE INDEX` statement.
    pub definition: String,
    /// `false` when unusable (`indisvalid`), e.g. after a failed `CREATE INDEX CONCURRENTLY`.
    pub valid: bool,
    /// Whether it is a unique index.
    pub unique: bool,
}

/// One user-defined trigger on a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `pg_get_triggerdef`: the full `CREATE TRIGGER` statement.
    pub definition: String,
    /// `false` when the trigger is disabled (`ALTER TABLE ... DISABLE TRIGGER`).
    pub enabled: bool,
}

/// An object in a snapshot, named the way reports name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum ObjectKey {
    /// An extension, by name.
    Extension(String),
    /// An enum type, by name (schema-qualified unless in public).
    Enum(String),
    /// One label of an enum type: (enum, label).
    EnumLabel(String, String),
    /// A table, by name (schema-qualified unless in public).
    Table(String),
    /// A column: (table, column).
    Column(String, String),
    /// A constraint: (table, constraint).
    Constraint(String, String),
    /// An index: (table, index).
    Index(String, String),
    /// A trigger: (table, trigger).
    Trigger(String, String),
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Extension(n) => write!(f, "extension {n}"),
            Self::Enum(n) => write!(f, "enum {n}"),
            Self::EnumLabel(e, l) => write!(f, "enum {e} label '{l}'"),
            Self::Table(n) => write!(f, "table {n}"),
            Self::Column(t, c) => write!(f, "column {t}.{c}"),
            Self::Constraint(t, c) => write!(f, "constraint {c} on {t}"),
            Self::Index(t, i) => write!(f, "index {i} on {t}"),
            Self::Trigger(t, g) => write!(f, "trigger {g} on {t}"),
        }
    }
}

impl SchemaSnapshot {
    /// The name of table or enum `key` as SQL, quoted as PostgreSQL's `quote_ident` would.
    pub fn qualified(&self, key: &str) -> String {
        if let Some(sql) = self.sql_names.get(key) {
            return sql.clone();
        }
        match key.split_once('.') {
            Some((schema, name)) => format!(
                "{}.{}",
                crate::sanitize::quote_ident(schema),
                crate::sanitize::quote_ident(name)
            ),
            None => crate::sanitize::quote_ident(key),
        }
    }

    /// Every object, for "which objects does this migration create" and partial-state checks.
    pub fn objects(&self) -> Vec<ObjectKey> {
        let mut out = Vec::new();
        out.extend(self.extensions.keys().cloned().map(ObjectKey::Extension));
        for (name, labels) in &self.enums {
            out.push(ObjectKey::Enum(name.clone()));
            out.extend(
                labels
                    .iter()
                    .map(|l| ObjectKey::EnumLabel(name.clone(), l.clone())),
            );
        }
        for (t, table) in &self.tables {
            out.push(ObjectKey::Table(t.clone()));
            out.extend(
                table
                    .columns
                    .keys()
                    .map(|c| ObjectKey::Column(t.clone(), c.clone())),
            );
            out.extend(
                table
                    .constraints
                    .keys()
                    .map(|c| ObjectKey::Constraint(t.clone(), c.clone())),
            );
            out.extend(
                table
                    .indexes
                    .keys()
                    .map(|i| ObjectKey::Index(t.clone(), i.clone())),
            );
            out.extend(
                table
                    .triggers
                    .keys()
                    .map(|g| ObjectKey::Trigger(t.clone(), g.clone())),
            );
        }
        out
    }

    /// Whether the snapshot has `key` (an enum label, column, ... only with its enum or table).
    pub fn contains(&self, key: &ObjectKey) -> bool {
        match key {
            ObjectKey::Extension(n) => self.extensions.contains_key(n),
            ObjectKey::Enum(n) => self.enums.contains_key(n),
            ObjectKey::EnumLabel(e, l) => self.enums.get(e).is_some_and(|ls| ls.contains(l)),
            ObjectKey::Table(t) => self.tables.contains_key(t),
            ObjectKey::Column(t, c) => self
                .tables
                .get(t)
                .is_some_and(|x| x.columns.contains_key(c)),
            ObjectKey::Constraint(t, c) => self
                .tables
                .get(t)
                .is_some_and(|x| x.constraints.contains_key(c)),
            ObjectKey::Index(t, i) => self
                .tables
                .get(t)
                .is_some_and(|x| x.indexes.contains_key(i)),
            ObjectKey::Trigger(t, g) => self
                .tables
                .get(t)
                .is_some_and(|x| x.triggers.contains_key(g)),
        }
    }
}

/// The single statement behind a snapshot. System schemas, extension-owned objects and sqlx's
/// own ledger table are left out: they are not the application's schema.
pub const SNAPSHOT_SQL: &str = r#"
WITH
user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
),
ext_owned AS (
    SELECT objid FROM pg_depend WHERE deptype = 'e'
),
rels AS (
    SELECT c.oid,
           CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS name
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND c.relname <> '_sqlx_migrations'
      AND c.oid NOT IN (SELECT objid FROM ext_owned)
)
SELECT json_build_object(
    'server_version', current_setting('server_version'),
    'extensions', (SELECT coalesce(json_object_agg(extname, extversion ORDER BY extname), '{}')
                   FROM pg_extension WHERE extname <> 'plpgsql'),
    'enums', (SELECT coalesce(json_object_agg(name, labels ORDER BY name), '{}') FROM (
                SELECT CASE WHEN n.nspname = 'public' THEN t.typname ELSE n.nspname || '.' || t.typname END AS name,
                       json_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
                FROM pg_type t
                JOIN user_ns n ON n.oid = t.typnamespace
                JOIN pg_enum e ON e.enumtypid = t.oid
                WHERE t.oid NOT IN (SELECT objid FROM ext_owned)
                GROUP BY 1) x),
    'tables', (SELECT coalesce(json_agg(name ORDER BY name), '[]') FROM rels),
    'sql_names', (SELECT coalesce(json_object_agg(name, sql_name), '{}') FROM (
                SELECT r.name, CASE WHEN n.nspname = 'public' THEN quote_ident(c.relname)
                                    ELSE quote_ident(n.nspname) || '.' || quote_ident(c.relname) END AS sql_name
                FROM rels r JOIN pg_class c ON c.oid = r.oid JOIN pg_namespace n ON n.oid = c.relnamespace
                UNION ALL
                SELECT CASE WHEN n.nspname = 'public' THEN t.typname ELSE n.nspname || '.' || t.typname END,
                       CASE WHEN n.nspname = 'public' THEN quote_ident(t.typname)
                            ELSE quote_ident(n.nspname) || '.' || quote_ident(t.typname) END
                FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
                WHERE t.typtype = 'e' AND t.oid NOT IN (SELECT objid FROM ext_owned)) q),
    'columns', (SELECT coalesce(json_agg(json_build_object(
                    'table', r.name, 'name', a.attname, 'position', a.attnum,
                    'data_type', format_type(a.atttypid, a.atttypmod),
                    'not_null', a.attnotnull,
                    'default', pg_get_expr(d.adbin, d.adrelid))), '[]')
                FROM rels r
                JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum),
    'constraints', (SELECT coalesce(json_agg(json_build_object(
                    'table', r.name, 'name', k.conname, 'kind', k.contype::text,
                    'definition', pg_get_constraintdef(k.oid), 'validated', k.convalidated)), '[]')
                FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid),
    'indexes', (SELECT coalesce(json_agg(json_build_object(
                    'table', r.name, 'name', ic.relname,
                    'definition', pg_get_indexdef(i.indexrelid),
                    'valid', i.indisvalid, 'unique', i.indisunique)), '[]')
                FROM rels r JOIN pg_index i ON i.indrelid = r.oid
                JOIN pg_class ic ON ic.oid = i.indexrelid),
    'triggers', (SELECT coalesce(json_agg(json_build_object(
                    'table', r.name, 'name', g.tgname,
                    'definition', pg_get_triggerdef(g.oid), 'enabled', g.tgenabled <> 'D')), '[]')
                FROM rels r JOIN pg_trigger g ON g.tgrelid = r.oid AND NOT g.tgisinternal)
)::text
"#;

#[derive(Deserialize)]
struct Raw {
    server_version: String,
    extensions: BTreeMap<String, String>,
    enums: BTreeMap<String, Vec<String>>,
    tables: Vec<String>,
    sql_names: BTreeMap<String, String>,
    columns: Vec<RawColumn>,
    constraints: Vec<RawConstraint>,
    indexes: Vec<RawIndex>,
    triggers: Vec<RawTrigger>,
}

#[derive(Deserialize)]
struct RawColumn {
    table: String,
    name: String,
    position: i32,
    data_type: String,
    not_null: bool,
    default: Option<String>,
}

#[derive(Deserialize)]
struct RawConstraint {
    table: String,
    name: String,
    kind: String,
    definition: String,
    validated: bool,
}

#[derive(Deserialize)]
struct RawIndex {
    table: String,
    name: String,
    definition: String,
    valid: bool,
    unique: bool,
}

#[derive(Deserialize)]
struct RawTrigger {
    table: String,
    name: String,
    definition: String,
    enabled: bool,
}

/// Takes a snapshot through `conn` (one statement).
pub async fn snapshot(conn: &mut Reader<'_>) -> Result<SchemaSnapshot, sqlx::Error> {
    let json: String = sqlx::query_scalar(SNAPSHOT_SQL).fetch_one(conn).await?;
    parse_snapshot_json(&json).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn parse_snapshot_json(json: &str) -> Result<SchemaSnapshot, serde_json::Error> {
    let raw: Raw = serde_json::from_str(json)?;
    let mut tables: BTreeMap<String, Table> = raw
        .tables
        .into_iter()
        .map(|t| (t, Table::default()))
        .collect();
    for c in raw.columns {
        tables.entry(c.table).or_default().columns.insert(
            c.name,
            Column {
                position: c.position,
                data_type: c.data_type,
                not_null: c.not_null,
                default: c.default,
            },
        );
    }
    for k in raw.constraints {
        tables.entry(k.table).or_default().constraints.insert(
            k.name,
            Constraint {
                kind: k.kind,
                // pg_get_constraintdef appends NOT VALID; `validated` already says so, and
                // keeping it out lets a NOT VALID copy compare equal in definition.
                definition: k
                    .definition
                    .strip_suffix(" NOT VALID")
                    .map(str::to_string)
                    .unwrap_or(k.definition),
                validated: k.validated,
            },
        );
    }
    for i in raw.indexes {
        tables.entry(i.table).or_default().indexes.insert(
            i.name,
            Index {
                definition: i.definition,
                valid: i.valid,
                unique: i.unique,
            },
        );
    }
    for g in raw.triggers {
        tables.entry(g.table).or_default().triggers.insert(
            g.name,
            Trigger {
                definition: g.definition,
                enabled: g.enabled,
            },
        );
    }
    Ok(SchemaSnapshot {
        server_version: raw.server_version,
        extensions: raw.extensions,
        enums: raw.enums,
        tables,
        sql_names: raw.sql_names,
    })
}
