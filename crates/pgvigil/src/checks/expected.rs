//! The schema the migrations produce, built on a dev database (never on production), one
//! migration at a time so that each one's objects are known; or read from a file written by
//! `pgvigil schema snapshot`. Objects a pending migration touches are "pending", not
//! "missing" ([`mark_pending`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Connection};

use super::diff::{DiffKind, SchemaDiff, Severity, diff};
use crate::catalog::{ObjectKey, SNAPSHOT_FORMAT, SchemaSnapshot, snapshot};
use crate::dev::{DevError, DevServer};
use crate::migrations::{LocalMigration, MigrationStamp};
use crate::session::Reader;

/// What the migrations produce, and which objects each one creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedSchema {
    /// File format version, [`SNAPSHOT_FORMAT`] when written; a file of another format is refused.
    pub format: u32,
    /// Where it came from: `dev database ...`, a file path, or the cache.
    pub source: String,
    /// The migration files it was built from; compared with the local directory to warn when the
    /// expected schema is stale.
    pub migrations: Vec<MigrationStamp>,
    /// The schema after every migration has run.
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
#[non_exhaustive]
pub enum ExpectedError {
    /// The dev database could not be started or reached.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// A migration failed on the scratch database, so the expected schema cannot be built.
    #[error("migration {version} ({description}) failed in the dev database: {error}")]
    MigrationFailed {
        /// Version of the failing migration.
        version: i64,
        /// Description of the failing migration (from its file name).
        description: String,
        /// The database's error message.
        error: String,
    },
    /// Another database error on the dev database (connecting, snapshotting).
    #[error("the dev database: {0}")]
    Database(#[source] crate::db_error::DbError),
    /// Building took longer than the bound (seconds) given to [`ExpectedSchema::build`].
    #[error(
        "building the expected schema passed its wall-clock bound of {0} s; raise it or pass \
         --expected FILE"
    )]
    TooSlow(u64),
    /// The `--expected` file could not be read or is not a snapshot file of a supported format.
    #[error("--expected {path}: {reason}; expected a file written by `pgvigil schema snapshot`")]
    File {
        /// The path given with `--expected`.
        path: String,
        /// Why it was refused (unreadable, too large, not JSON, another format...).
        reason: String,
    },
}

/// Snapshot files larger than this are refused.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

impl ExpectedSchema {
    /// Reads a file written by `pgvigil schema snapshot` (or [`write`](Self::write)): at most
    /// [`MAX_SNAPSHOT_BYTES`], of format [`SNAPSHOT_FORMAT`].
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

    /// Writes it as pretty JSON, readable by the owner only, replacing `path` atomically.
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
        let built = tokio::time::timeout(bound, build_in(dev, &scratch, migrations)).await;
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
    dev: &DevServer,
    scratch: &crate::dev::ScratchDatabase,
    migrations: &[LocalMigration],
) -> Result<Built, ExpectedError> {
    let db = |e| ExpectedError::Database(crate::db_error::DbError::new(e, dev));
    // Migrations run as an ordinary role on a private dev cluster; the extensions they create
    // with IF NOT EXISTS are made before the first one runs, by the administrator (an
    // extension script runs as the superuser and must not meet objects a migration planted),
    // and counted as created by the first migration that names each.
    let mut first_named: BTreeMap<i64, Vec<ObjectKey>> = BTreeMap::new();
    let mut extensions: Vec<crate::dev::Extension> = Vec::new();
    for m in migrations {
        for e in crate::sql_scan::extensions_created_if_not_exists(&m.sql) {
            if !extensions.iter().any(|x| x.name == e.name) {
                first_named
                    .entry(m.version)
                    .or_default()
                    .push(ObjectKey::Extension(e.name.clone()));
                extensions.push(e);
            }
        }
    }
    // One that would let migration SQL reach other servers (dblink) is refused by the dev
    // database's policy: the first migration asking for it cannot be built.
    for m in migrations {
        if let Some(refused) = scratch.extensions().refused_in(&[m]).into_iter().next() {
            return Err(ExpectedError::MigrationFailed {
                version: m.version,
                description: m.description.clone(),
                error: refused.to_string(),
            });
        }
    }
    scratch.create_extensions(&extensions).await.map_err(db)?;
    let mut conn = scratch.connect().await.map_err(db)?;
    let mut previous = snapshot(&mut Reader::dev(&mut conn)).await.map_err(db)?;
    let mut by_version = BTreeMap::new();
    let mut touched = BTreeMap::new();
    // The dev database's disk bound holds here too (the documented default: a check has no
    // --max-dev-size); past it the migration is abandoned and the database dropped by the caller.
    let mut watch = crate::dev::SizeWatch::start(scratch, crate::dev::DEFAULT_MAX_DEV_SIZE)
        .await
        .map_err(db)?;
    for m in migrations {
        let run = async {
            if m.no_tx {
                sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                    .execute(&mut conn)
                    .await
                    .map(|_| ())
            } else {
                let mut tx = conn.begin().await?;
                sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
        };
        let applied = tokio::select! {
            applied = run => applied,
            reached = watch.passed() => {
                return Err(ExpectedError::MigrationFailed {
                    version: m.version,
                    description: m.description.clone(),
                    error: format!(
                        "stopped by pgvigil: the dev database reached {}, past its bound of {}",
                        crate::dev::format_size(reached),
                        crate::dev::format_size(watch.bound())
                    ),
                });
            }
        };
        applied.map_err(|e| ExpectedError::MigrationFailed {
            version: m.version,
            description: m.description.clone(),
            error: crate::db_error::DbError::new(e, dev).to_string(),
        })?;
        let now = snapshot(&mut Reader::dev(&mut conn)).await.map_err(db)?;
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
    watch.close().await;
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
