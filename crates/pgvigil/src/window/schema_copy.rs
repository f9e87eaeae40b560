//! Production's schema, copied into a dev database: `pg_dump --schema-only` (which reads in a
//! READ ONLY, REPEATABLE READ transaction; pgvigil adds `default_transaction_read_only` and a
//! lock wait bound) and a restore into a scratch database on the dev server. Extensions are
//! created at production's versions where the dev server has them, and production's role names
//! exist on a private dev cluster (as NOLOGIN roles) so that a migration's GRANT finds them.
//! Only the schema is copied: data-dependent failures (a constraint that existing rows break)
//! need a restored backup.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection};

use crate::session::Reader;
use tokio::io::AsyncReadExt;

use crate::config::PoolConfig;
use crate::dev::{DevServer, ScratchDatabase};
use crate::sanitize::quote_ident;

/// Dumps larger than this are refused (a schema, not data, is being copied).
const MAX_DUMP_BYTES: usize = 256 * 1024 * 1024;

/// What is read from production (read-only) to build its copy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductionFacts {
    /// `server_version_num`, e.g. 160004: picks the pg_dump and the private cluster's version.
    pub version_num: i32,
    /// `server_version`, e.g. `16.4`, for reports.
    pub version: String,
    /// Production is a standby in recovery (read-only replica).
    pub in_recovery: bool,
    /// (name, installed version, schema)
    pub extensions: Vec<(String, String, String)>,
    /// Roles other than PostgreSQL's own `pg_*` ones.
    pub roles: Vec<String>,
    /// [`crate::dev::server_identity`]: a dev server must not be this one.
    pub identity: String,
}

impl ProductionFacts {
    /// The major version (`server_version_num / 10000`), e.g. 16.
    pub fn major(&self) -> u32 {
        (self.version_num / 10000) as u32
    }

    /// Two read-only statements.
    pub async fn read(conn: &mut Reader<'_>) -> Result<Self, sqlx::Error> {
        let (num, version, in_recovery): (String, String, bool) = sqlx::query_as(
            "SELECT current_setting('server_version_num'), current_setting('server_version'), pg_is_in_recovery()",
        )
        .fetch_one(&mut *conn)
        .await?;
        let (extensions, roles): (serde_json::Value, serde_json::Value) = sqlx::query_as(
            "SELECT (SELECT coalesce(json_agg(json_build_array(e.extname, e.extversion, n.nspname) ORDER BY e.extname), '[]')
                       FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                      WHERE e.extname <> 'plpgsql'),
                    (SELECT coalesce(json_agg(rolname ORDER BY rolname), '[]')
                       FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%')",
        )
        .fetch_one(&mut *conn)
        .await?;
        let extensions = serde_json::from_value(extensions).unwrap_or_default();
        let roles = serde_json::from_value(roles).unwrap_or_default();
        let identity = crate::dev::server_identity(&mut *conn).await?;
        Ok(Self {
            version_num: num.parse().unwrap_or(0),
            version,
            in_recovery,
            extensions,
            roles,
            identity,
        })
    }
}

/// Why production's schema could not be copied onto the dev database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// No pg_dump able to read production is installed on this machine.
    #[error(
        "pg_dump for PostgreSQL {major} or newer is not installed here (looked in \
         /usr/lib/postgresql/*/bin); install postgresql-client-{major}"
    )]
    NoPgDump {
        /// Production's major version: pg_dump must be this one or newer.
        major: u32,
    },
    /// pg_dump failed, timed out or produced an unusable dump (its message, password removed).
    #[error("pg_dump could not read production's schema: {0}")]
    Dump(String),
    /// pg_dump's output could not be read, or it could not be waited for.
    #[error("pg_dump could not read production's schema: {0}")]
    DumpIo(#[source] std::io::Error),
    /// Restoring the dump on the dev database failed.
    #[error(
        "production's schema could not be restored into the dev database: {source}; the dev \
         server needs the same extensions as production (pgvector for PostgreSQL {major})"
    )]
    Restore {
        /// The dev server's error, secrets removed.
        source: crate::db_error::DbError,
        /// Production's major version, for the hint.
        major: u32,
    },
    /// The dev server could not be reached to prepare the copy.
    #[error("the dev database: {0}")]
    Dev(#[source] crate::dev::DevError),
    /// Production has an extension that reaches other servers, which the dev database does
    /// not create unless allowed: its copy could not be faithful.
    #[error("production's schema cannot be copied: {0}")]
    ExtensionRefused(crate::dev::RefusedExtension),
}

/// The pg_dump that can read a server of `major`: the same major if installed, else the
/// oldest newer one (pg_dump reads older servers, never newer ones).
pub fn find_pg_dump(major: u32) -> Option<PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|v| *v >= major)
        .filter(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/pg_dump")).exists())
        .collect();
    versions.sort();
    versions
        .first()
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/pg_dump")))
}

/// Runs pg_dump against production. The password travels in the child's environment only;
/// the child is killed if this future is dropped (Ctrl-C, a cancelled job).
pub async fn dump_schema(
    config: &PoolConfig,
    major: u32,
    lock_timeout: Duration,
    bound: Duration,
) -> Result<String, CopyError> {
    let pg_dump = find_pg_dump(major).ok_or(CopyError::NoPgDump { major })?;
    let url = &config.database_url;
    let (target, params) = url.libpq_parts();
    // A name of its own, so that a way out can find its backend and cancel what it runs.
    let app = format!(
        "pgvigil-schema-dump-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut cmd = tokio::process::Command::new(&pg_dump);
    // Nothing of ours leaks into libpq's view (a PGPASSWORD, a PGSERVICE of another server).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    let mut options = "-c default_transaction_read_only=on".to_string();
    for (var, value) in params {
        if var == "PGOPTIONS" {
            // pg_dump reads in its own READ ONLY transaction; this makes every statement
            // read-only, whatever the URL's own options say.
            options = format!("{value} {options}");
        } else {
            cmd.env(var, value);
        }
    }
    cmd.arg(format!("--dbname={target}"))
        .env("PGOPTIONS", options)
        .env("PGAPPNAME", &app)
        .env("PGCONNECT_TIMEOUT", "30");
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-publications",
        "--no-subscriptions",
        "--no-security-labels",
        "--no-tablespaces",
        "--no-comments",
    ])
    .arg(format!(
        "--lock-wait-timeout={}",
        lock_timeout.as_millis().max(1)
    ))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    match url.password() {
        Some(password) => {
            cmd.env("PGPASSWORD", password);
        }
        // A URL without a password: the driver took it from PGPASSWORD or the password file
        // (PGPASSFILE, else ~/.pgpass), and pg_dump must find it in the same place.
        None => {
            for var in ["PGPASSWORD", "PGPASSFILE"] {
                if let Some(value) = std::env::var_os(var) {
                    cmd.env(var, value);
                }
            }
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CopyError::Dump(format!("{}: {e}", pg_dump.display())))?;
    // Killed with this future (kill_on_drop), pg_dump's backend would finish its statement
    // unaware; the guard cancels it on the server unless the dump completes.
    let guard = DumpGuard {
        options: crate::pool::connect_options(config),
        application: app,
        armed: true,
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut limited_out = (&mut stdout).take(MAX_DUMP_BYTES as u64 + 1);
        let mut limited_err = (&mut stderr).take(64 * 1024);
        let (o, e) = tokio::join!(
            limited_out.read_to_end(&mut out),
            limited_err.read_to_end(&mut err)
        );
        o.map_err(CopyError::DumpIo)?;
        e.map_err(CopyError::DumpIo)?;
        let status = child.wait().await.map_err(CopyError::DumpIo)?;
        Ok::<_, CopyError>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(bound, run)
        .await
        .map_err(|_| CopyError::Dump(format!("no schema within {} s", bound.as_secs())))??;
    guard.done();
    if !status.success() {
        let text = url.scrub(String::from_utf8_lossy(&err).trim());
        return Err(CopyError::Dump(format!("{status}: {text}")));
    }
    if out.len() > MAX_DUMP_BYTES {
        return Err(CopyError::Dump(format!(
            "the schema dump is larger than {} MiB",
            MAX_DUMP_BYTES / 1024 / 1024
        )));
    }
    String::from_utf8(out).map_err(|e| CopyError::Dump(format!("not UTF-8: {e}")))
}

/// Cancels the dump's statement on production if the dump is abandoned (a signal, Esc).
struct DumpGuard {
    options: sqlx::postgres::PgConnectOptions,
    application: String,
    armed: bool,
}

impl DumpGuard {
    fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for DumpGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (options, application) = (self.options.clone(), self.application.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            crate::cleanup::spawn(&handle, async move {
                use sqlx::ConnectOptions;
                if let Ok(mut conn) = options.connect().await {
                    let _ = sqlx::query(
                        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    )
                    .bind(&application)
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        }
    }
}

/// The dump without the psql meta-commands newer pg_dump writes (`\restrict KEY` and
/// `\unrestrict KEY`); everything else in a schema-only dump is SQL. Only those two are taken
/// out, so a line of a function body that happens to start with a backslash stays.
pub fn without_meta_commands(dump: &str) -> String {
    dump.lines()
        .filter(|l| !(l.starts_with("\\restrict ") || l.starts_with("\\unrestrict ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Restores `dump` into `scratch`, after creating production's extensions at their versions
/// (where the dev server offers them) and, on a private cluster, production's role names.
/// Returns notes on what could not be matched.
pub async fn restore(
    dev: &DevServer,
    scratch: &ScratchDatabase,
    production: &ProductionFacts,
    dump: &str,
) -> Result<Vec<String>, CopyError> {
    let mut notes = Vec::new();
    // An extension of production's that reaches other servers (dblink) would be created on
    // the dev copy, for any migration to use: not without --allow-extension.
    if let Some((name, _, _)) = production
        .extensions
        .iter()
        .find(|(name, _, _)| scratch.extensions().refuses(name).is_some())
    {
        return Err(CopyError::ExtensionRefused(crate::dev::RefusedExtension {
            name: name.clone(),
            asked_by: "production (its schema has it)".into(),
            reaches: scratch.extensions().refuses(name).unwrap_or_default(),
        }));
    }
    let restore_err = |e: sqlx::Error| CopyError::Restore {
        source: crate::db_error::DbError::new(e, dev),
        major: production.major(),
    };
    if dev.is_private() {
        let mut admin = dev.admin().await.map_err(CopyError::Dev)?;
        for role in &production.roles {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                    .bind(role)
                    .fetch_one(&mut admin)
                    .await
                    .map_err(restore_err)?;
            if !exists {
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE ROLE {} NOLOGIN",
                    quote_ident(role)
                )))
                .execute(&mut admin)
                .await
                .map_err(restore_err)?;
            }
        }
        let _ = admin.close().await;
    }
    // Extensions at production's versions where the dev server has them, created by its
    // administrator (the dump then finds them: it says IF NOT EXISTS).
    let mut admin = scratch.connect_admin().await.map_err(restore_err)?;
    let mut wanted = Vec::new();
    for (name, version, schema) in &production.extensions {
        let offered: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extension_versions WHERE name = $1 AND version = $2)",
        )
        .bind(name)
        .bind(version)
        .fetch_one(&mut admin)
        .await
        .map_err(restore_err)?;
        if !offered {
            notes.push(format!(
                "extension {name} {version} is not available on the dev server; its default \
                 version was used"
            ));
        }
        wanted.push(crate::dev::Extension {
            name: name.clone(),
            version: offered.then(|| version.clone()),
            schema: Some(schema.clone()),
        });
    }
    let _ = admin.close().await;
    scratch
        .create_extensions(&wanted)
        .await
        .map_err(restore_err)?;
    let mut conn = scratch.connect().await.map_err(restore_err)?;
    sqlx::raw_sql(AssertSqlSafe(without_meta_commands(dump)))
        .execute(&mut conn)
        .await
        .map_err(restore_err)?;
    let _ = conn.close().await;
    if dev.major() != production.major() {
        notes.push(format!(
            "major version mismatch: production runs PostgreSQL {}, the dev database {}; \
             locks and errors may differ",
            production.version, dev.version
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands_are_left_out() {
        let dump = "\\restrict abc\nSET x = 1;\nCREATE TABLE t (a int);\n\\unrestrict abc\n";
        assert_eq!(
            without_meta_commands(dump),
            "SET x = 1;\nCREATE TABLE t (a int);"
        );
    }
}
