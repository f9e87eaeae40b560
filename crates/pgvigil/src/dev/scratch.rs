//! Scratch databases: one per use of the dev server, owned by the migrations' role, dropped when
//! the value is (from a task of its own when a job is cancelled, stopping a CREATE DATABASE
//! still running first).

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

use super::server::MIGRATOR;
use super::stale::host_name;
use super::{DevError, DevServer, ExtensionPolicy};
use crate::sanitize::quote_ident;

impl DevServer {
    /// Creates a scratch database of our own; it is dropped when the returned value is (or by
    /// the next run, if this process is killed before).
    pub async fn scratch(&self) -> Result<ScratchDatabase, DevError> {
        let name = scratch_name();
        let mut conn = self.admin().await?;
        let creator: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.db_err(e))?;
        // This session holds an advisory lock named after the database for as long as the
        // database lives: a later run's sweep drops only databases whose lock is free (their
        // maker's session is gone), whatever the pid and host say.
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(&name)
            .execute(&mut conn)
            .await
            .map_err(|e| self.db_err(e))?;
        // The guard exists before the database does: cancelled at any instant (even while
        // CREATE DATABASE runs on the server), its drop first stops the creating statement,
        // then drops whatever exists.
        let mut scratch = ScratchDatabase {
            options: self
                .migrator
                .clone()
                .unwrap_or_else(|| self.admin.clone())
                .database(&name),
            superuser: self.admin.clone().database(&name),
            admin: self.admin.clone(),
            extensions: self.extensions.clone(),
            name: name.clone(),
            dropped: false,
            creator: Some(creator),
            keeper: None,
        };
        let owner = if self.migrator.is_some() {
            format!(" OWNER {MIGRATOR}")
        } else {
            String::new()
        };
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {}{owner} TEMPLATE template0",
            quote_ident(&name)
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| self.db_err(e))?;
        // The comment says who made it, for the sweep of a later run.
        let stamp = format!(
            "pgvigil scratch: host={} pid={}",
            host_name(),
            std::process::id()
        );
        let _ = sqlx::query(AssertSqlSafe(format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(&name),
            crate::sanitize::quote_literal(&stamp)
        )))
        .execute(&mut conn)
        .await;
        scratch.creator = None;
        scratch.keeper = Some(conn);
        Ok(scratch)
    }
}

/// `pgvigil_scratch_<pid>_<ms>_<random>`: unique, and it names the process that made it.
fn scratch_name() -> String {
    format!(
        "pgvigil_scratch_{}_{}_{:08x}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis(),
        rand::random::<u32>()
    )
}

/// Cancels a CREATE DATABASE that may still be running on backend `pid` and waits (up to 10 s)
/// until that backend is no longer busy, so that the drop that follows sees the outcome.
async fn stop_creator(conn: &mut PgConnection, pid: i32) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(&mut *conn)
        .await?;
    for _ in 0..200 {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')",
        )
        .bind(pid)
        .fetch_one(&mut *conn)
        .await?;
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Drops a database, terminating sessions still in it (PostgreSQL 13+), or plainly on older
/// servers.
pub(crate) async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let forced = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    )))
    .execute(&mut *conn)
    .await;
    match forced {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42601") => sqlx::query(
            AssertSqlSafe(format!("DROP DATABASE IF EXISTS {}", quote_ident(name))),
        )
        .execute(&mut *conn)
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// A database of our own on the dev server. [`ScratchDatabase::drop_now`] drops it and waits;
/// plain dropping (a cancelled job) drops it from a task of its own.
pub struct ScratchDatabase {
    /// The scratch database's name, `pgvigil_scratch_<pid>_<ms>_<random>`.
    pub name: String,
    /// As the role migrations run as.
    options: PgConnectOptions,
    /// As the dev server's administrator (the superuser on a private cluster), for what only
    /// it may do: creating extensions.
    superuser: PgConnectOptions,
    admin: PgConnectOptions,
    /// Checked again where extensions are created, whoever asked for them.
    pub(super) extensions: ExtensionPolicy,
    dropped: bool,
    /// The backend running CREATE DATABASE while it may still be running.
    creator: Option<i32>,
    /// The session that made the database and holds its advisory lock until it is dropped.
    keeper: Option<PgConnection>,
}

impl ScratchDatabase {
    /// Connect options as the role migrations run as, for the scratch database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// A connection as the role migrations run as.
    pub async fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        self.options.connect().await
    }

    /// Which extensions may be created here.
    pub fn extensions(&self) -> &ExtensionPolicy {
        &self.extensions
    }

    /// A connection as the dev server's administrator.
    pub async fn connect_admin(&self) -> Result<PgConnection, sqlx::Error> {
        self.superuser.connect().await
    }

    /// Drops the database now and waits for the outcome (ending sessions still in it on
    /// PostgreSQL 13+).
    pub async fn drop_now(mut self) -> Result<(), sqlx::Error> {
        self.dropped = true;
        let mut conn = self.admin.connect().await?;
        let result = drop_database(&mut conn, &self.name).await;
        let _ = conn.close().await;
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.close().await;
        }
        result
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (name, admin, creator) = (self.name.clone(), self.admin.clone(), self.creator);
        // Closed only after the drop: until then its lock keeps other runs' sweeps away.
        let keeper = self.keeper.take();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                crate::cleanup::spawn(&handle, async move {
                    let dropped = async {
                        let mut conn = admin.connect().await?;
                        if let Some(pid) = creator {
                            stop_creator(&mut conn, pid).await?;
                        }
                        drop_database(&mut conn, &name).await?;
                        drop(keeper);
                        conn.close().await
                    };
                    if let Err(e) = dropped.await {
                        tracing::warn!(target: "pgvigil::dev", "could not drop abandoned scratch database {name}: {e}; the next run drops it");
                    }
                });
            }
            Err(_) => tracing::warn!(
                target: "pgvigil::dev",
                "scratch database {name} left behind; the next run drops it"
            ),
        }
    }
}
