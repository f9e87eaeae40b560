//! The extensions created on a scratch database before any migration runs, as its
//! administrator, checked against the [`ExtensionPolicy`](super::ExtensionPolicy).

use sqlx::{AssertSqlSafe, Connection};

use super::ScratchDatabase;
use crate::sanitize::quote_ident;

// The type lives with the scanner that finds extensions in a migration's text, so that the
// scanner needs nothing of dev (dev uses the scanner, never the other way round).
pub use crate::sql_scan::Extension;

/// The error of an extension the policy refuses, where no migration is known to name.
fn refused(name: &str, why: &str) -> sqlx::Error {
    sqlx::Error::InvalidArgument(format!(
        "extension {name} {why}, so the dev database does not create it; pass \
         --allow-extension {name} to create it anyway"
    ))
}

impl ScratchDatabase {
    /// Creates extensions a non-superuser may not (most are untrusted, pgvector included),
    /// before any migration runs (an extension script runs as the superuser and must not meet
    /// objects a migration planted), each in its schema (created, owned by the migrations' role,
    /// when missing). One the [`ExtensionPolicy`](super::ExtensionPolicy) refuses is not
    /// created, nor is one that would bring it along (`CASCADE`): nothing is, and the error
    /// names it.
    pub async fn create_extensions(&self, extensions: &[Extension]) -> Result<(), sqlx::Error> {
        if extensions.is_empty() {
            return Ok(());
        }
        if let Some((name, why)) = extensions
            .iter()
            .find_map(|e| self.extensions.refuses(&e.name).map(|why| (&e.name, why)))
        {
            return Err(refused(name, why));
        }
        let mut conn = self.connect_admin().await?;
        let owner: String = sqlx::query_scalar(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&mut conn)
        .await?;
        let mut tx = conn.begin().await?;
        for e in extensions {
            let version = e
                .version
                .as_ref()
                .map(|v| format!(" VERSION {}", crate::sanitize::quote_literal(v)))
                .unwrap_or_default();
            let schema = match &e.schema {
                Some(schema) => {
                    sqlx::raw_sql(AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}",
                        quote_ident(schema),
                        quote_ident(&owner)
                    )))
                    .execute(&mut *tx)
                    .await?;
                    format!(" SCHEMA {}", quote_ident(schema))
                }
                None => String::new(),
            };
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE EXTENSION IF NOT EXISTS {}{schema}{version} CASCADE",
                quote_ident(&e.name)
            )))
            .execute(&mut *tx)
            .await?;
        }
        // CASCADE creates what an extension requires: refused ones must not come in that way.
        let present: Vec<String> = sqlx::query_scalar("SELECT extname::text FROM pg_extension")
            .fetch_all(&mut *tx)
            .await?;
        if let Some((name, why)) = present
            .iter()
            .find_map(|n| self.extensions.refuses(n).map(|why| (n, why)))
        {
            tx.rollback().await?;
            return Err(refused(name, why));
        }
        tx.commit().await?;
        conn.close().await
    }
}
