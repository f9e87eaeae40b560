//! Reading a PgBouncer in front of the database through its admin console (database
//! `pgbouncer`): `SHOW POOLS`, `SHOW STATS` and `SHOW LISTS`, each tick. The console speaks only
//! the simple query protocol and refuses unknown startup parameters, so this uses a plain
//! connection (no pool, no ping) without sqlx's `extra_float_digits`, and `raw_sql` (a simple
//! Query). Values arrive as text whatever their declared type (NUMERIC in SHOW STATS), so they
//! are read as text and parsed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::config::DatabaseUrl;

/// One database/user pool as `SHOW POOLS` and `SHOW STATS` describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BouncerPool {
    /// The database name clients connect to.
    pub database: String,
    /// The user.
    pub user: String,
    /// Clients linked to a server connection.
    pub cl_active: i64,
    /// Clients waiting for a server connection.
    pub cl_waiting: i64,
    /// Server connections linked to a client.
    pub sv_active: i64,
    /// Server connections idle and ready.
    pub sv_idle: i64,
    /// Server connections idle for a while, to be checked before reuse.
    pub sv_used: i64,
    /// How long the oldest waiting client has waited, seconds.
    pub maxwait_seconds: f64,
    /// session, transaction or statement.
    pub pool_mode: String,
    /// Transactions per second (the last stats period), from SHOW STATS.
    pub xact_per_second: Option<f64>,
    /// Queries per second, from SHOW STATS.
    pub query_per_second: Option<f64>,
    /// Average time clients waited for a server, microseconds, from SHOW STATS.
    pub avg_wait_us: Option<f64>,
}

impl BouncerPool {
    /// Clients wait: more than a few are queued, or the oldest has waited over a second.
    pub fn clients_wait(&self) -> bool {
        self.cl_waiting > 3 || self.maxwait_seconds > 1.0
    }
}

/// A PgBouncer's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BouncerView {
    /// Its pools, by database then user (the admin console's own `pgbouncer` pool left out).
    pub pools: Vec<BouncerPool>,
    /// SHOW LISTS: `databases`, `users`, `pools`, `free_clients`, `used_clients`,
    /// `login_clients`, `free_servers`, `used_servers`, ...
    pub lists: BTreeMap<String, i64>,
}

/// Why the console could not be read (its text scrubbed of the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PgBouncer {target}: {reason}")]
pub struct BouncerError {
    /// The console URL, password redacted.
    pub target: String,
    /// What went wrong.
    pub reason: String,
}

fn text(row: &PgRow, column: &str) -> Option<String> {
    row.try_get_unchecked::<Option<String>, _>(column)
        .ok()
        .flatten()
}

fn int(row: &PgRow, column: &str) -> i64 {
    text(row, column)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

/// Connects to the admin console (`url`, database `pgbouncer`) and reads it once, within
/// `timeout`.
pub async fn read(url: &DatabaseUrl, timeout: Duration) -> Result<BouncerView, BouncerError> {
    bounded(url, timeout, read_unbounded(url)).await
}

/// The admin console kept open between readings: a dashboard reads it every second, and a new
/// connection each time would cost a login (SCRAM's key derivation included) and churn
/// PgBouncer's own client lists.
pub struct Console {
    url: DatabaseUrl,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

impl Console {
    /// The console at `url` (database `pgbouncer`); nothing connects until the first reading.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the console once within `timeout`, on the kept connection when it still works
    /// (otherwise once more on a new one). A failed reading drops the connection.
    pub async fn read(&self, timeout: Duration) -> Result<BouncerView, BouncerError> {
        let mut slot = self.conn.lock().await;
        let reading = async {
            if let Some(mut kept) = slot.take()
                && let Ok(view) = read_on(&mut kept).await
            {
                *slot = Some(kept);
                return Ok(view);
            }
            let mut conn = connect(&self.url).await?;
            let view = read_on(&mut conn).await?;
            *slot = Some(conn);
            Ok(view)
        };
        bounded(&self.url, timeout, reading).await
    }
}

async fn bounded(
    url: &DatabaseUrl,
    timeout: Duration,
    reading: impl std::future::Future<Output = Result<BouncerView, sqlx::Error>>,
) -> Result<BouncerView, BouncerError> {
    let fail = |reason: String| BouncerError {
        target: url.to_string(),
        reason: url.scrub(&reason),
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| {
            fail(format!(
                "no answer within {}",
                crate::config::format_duration(timeout)
            ))
        })?
        .map_err(|e| fail(crate::pool::error_text(&e)))
}

async fn connect(url: &DatabaseUrl) -> Result<PgConnection, sqlx::Error> {
    let options = url
        .connect_options()
        // The console refuses startup parameters it does not know.
        .extra_float_digits(None);
    PgConnection::connect_with(&options).await
}

async fn read_unbounded(url: &DatabaseUrl) -> Result<BouncerView, sqlx::Error> {
    let mut conn = connect(url).await?;
    let view = read_on(&mut conn).await;
    let _ = conn.close().await;
    view
}

async fn read_on(conn: &mut PgConnection) -> Result<BouncerView, sqlx::Error> {
    let pools = sqlx::raw_sql("SHOW POOLS").fetch_all(&mut *conn).await?;
    let stats = sqlx::raw_sql("SHOW STATS").fetch_all(&mut *conn).await?;
    let lists = sqlx::raw_sql("SHOW LISTS").fetch_all(&mut *conn).await?;
    let stats: BTreeMap<String, &PgRow> = stats
        .iter()
        .filter_map(|r| text(r, "database").map(|d| (d, r)))
        .collect();
    let mut out = Vec::new();
    for r in &pools {
        let database = text(r, "database").unwrap_or_default();
        if database == "pgbouncer" {
            continue;
        }
        let s = stats.get(&database);
        let stat = |c: &str| {
            s.and_then(|r| text(r, c))
                .and_then(|v| v.trim().parse().ok())
        };
        out.push(BouncerPool {
            user: text(r, "user").unwrap_or_default(),
            cl_active: int(r, "cl_active"),
            cl_waiting: int(r, "cl_waiting"),
            sv_active: int(r, "sv_active"),
            sv_idle: int(r, "sv_idle"),
            sv_used: int(r, "sv_used"),
            maxwait_seconds: int(r, "maxwait") as f64 + int(r, "maxwait_us") as f64 / 1e6,
            pool_mode: text(r, "pool_mode").unwrap_or_default(),
            xact_per_second: stat("avg_xact_count"),
            query_per_second: stat("avg_query_count"),
            avg_wait_us: stat("avg_wait_time"),
            database,
        });
    }
    out.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
    let lists = lists
        .iter()
        .filter_map(|r| Some((text(r, "list")?, int(r, "items"))))
        .collect();
    Ok(BouncerView { pools: out, lists })
}
