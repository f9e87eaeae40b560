//! sqlx's migration ledger (`_sqlx_migrations`), read as it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::session::Reader;

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerRow {
    /// Migration version: the number prefixing the migration file's name (often a timestamp).
    pub version: i64,
    /// Description taken from the migration file's name (underscores become spaces).
    pub description: String,
    /// When sqlx applied the migration (UTC).
    pub installed_on: DateTime<Utc>,
    /// `false` when the migration failed partway; sqlx refuses to run further until it is fixed.
    pub success: bool,
    /// SHA-384 of the migration's SQL as sqlx recorded it; compared with the file on disk, not
    /// serialized.
    #[serde(skip)]
    pub checksum: Vec<u8>,
    /// sqlx records nanoseconds.
    pub execution_time_ns: i64,
}

/// The ledger, or `None` when the table does not exist. Two statements.
pub async fn read_ledger(conn: &mut Reader<'_>) -> Result<Option<Vec<LedgerRow>>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT version, description, installed_on, success, checksum, execution_time
           FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerRow {
                version: r.try_get("version")?,
                description: r.try_get("description")?,
                installed_on: r.try_get("installed_on")?,
                success: r.try_get("success")?,
                checksum: r.try_get("checksum")?,
                execution_time_ns: r.try_get("execution_time")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Some)
}
