//! Reading a PgBouncer in front of the database through its admin console (database
//! `pgbouncer`): `SHOW POOLS`, `SHOW STATS`, `SHOW DATABASES`, `SHOW LISTS` and, where the
//! console has it (1.20 and later), `SHOW STATE`, each tick. The console speaks only the simple
//! query protocol and refuses unknown startup parameters, so this uses a plain connection (no
//! pool, no ping) without sqlx's `extra_float_digits`, and `raw_sql` (a simple Query). Values
//! arrive as text whatever their declared type (NUMERIC in SHOW STATS), so they are read as
//! text and parsed.
//!
//! The console is outside pgvigil: its answer is bounded in time (the caller's timeout), in
//! rows ([`MAX_ROWS`] per command) and in bytes ([`MAX_BYTES`] per reading), read row by row,
//! and read inside [`crate::contain::contained`], so that a malformed message that panics the
//! driver is this reading's error, never the process's end.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::config::DatabaseUrl;
use crate::db_error::{DbError, FailureKind};

/// At most this many rows are read from one command's answer (a PgBouncer has one row per
/// pool or database; ten thousand is far beyond any real one).
pub const MAX_ROWS: usize = 10_000;
/// At most this many bytes of field values are read in one reading, all commands together.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// One database/user pool as `SHOW POOLS` describes it.
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
}

impl BouncerPool {
    /// Clients wait: more than a few are queued, or the oldest has waited over a second.
    pub fn clients_wait(&self) -> bool {
        self.cl_waiting > 3 || self.maxwait_seconds > 1.0
    }
}

/// One database as `SHOW DATABASES` and `SHOW STATS` describe it. PgBouncer keeps its rates
/// per database, not per pool: every user's pool of a database shares these figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BouncerDatabase {
    /// The database name clients connect to.
    pub name: String,
    /// `PAUSE <db>` is in force: clients wait, no server connection is handed out.
    pub paused: bool,
    /// `DISABLE <db>` is in force: new clients are refused.
    pub disabled: bool,
    /// Transactions per second (the last stats period).
    pub xact_per_second: Option<f64>,
    /// Queries per second.
    pub query_per_second: Option<f64>,
    /// Average time clients waited for a server, microseconds.
    pub avg_wait_us: Option<f64>,
}

/// PgBouncer as a whole (`SHOW STATE`, PgBouncer 1.20 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BouncerState {
    /// A bare `PAUSE` is in force: every database waits.
    pub paused: bool,
    /// `SUSPEND` is in force: no socket is read, no new client is accepted.
    pub suspended: bool,
}

/// A PgBouncer's state at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BouncerView {
    /// Its pools, by database then user (the admin console's own `pgbouncer` pool left out).
    pub pools: Vec<BouncerPool>,
    /// Its databases by name, with their rates and pause (the console's own left out).
    pub databases: Vec<BouncerDatabase>,
    /// PgBouncer's own state; `None` where the console has no `SHOW STATE` (1.18, 1.19), so a
    /// bare PAUSE or a SUSPEND cannot be seen there.
    pub state: Option<BouncerState>,
    /// SHOW LISTS: `databases`, `users`, `pools`, `free_clients`, `used_clients`,
    /// `login_clients`, `free_servers`, `used_servers`, ...
    pub lists: BTreeMap<String, i64>,
}

impl BouncerView {
    /// The database of that name, when PgBouncer knows it.
    pub fn database(&self, name: &str) -> Option<&BouncerDatabase> {
        self.databases.iter().find(|d| d.name == name)
    }

    /// What stops clients from being served now, one phrase each, for a panel or a finding:
    /// a suspended or paused bouncer, paused or disabled databases. Empty when nothing does.
    pub fn holds(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = self.state {
            if s.suspended {
                out.push("PgBouncer is SUSPENDED (RESUME on the console)".to_string());
            } else if s.paused {
                out.push("PgBouncer is PAUSED (RESUME on the console)".to_string());
            }
        }
        for d in &self.databases {
            if d.paused {
                out.push(format!("database {} is PAUSED", d.name));
            }
            if d.disabled {
                out.push(format!("database {} is DISABLED", d.name));
            }
        }
        out
    }

    /// `pool.pgbouncer` for `check`: a WARN naming what holds clients (a paused or suspended
    /// PgBouncer, a paused or disabled database), else nothing to say.
    pub fn finding(&self) -> Option<crate::Finding> {
        let holds = self.holds();
        let first = holds.first()?;
        let mut f = crate::Finding::warn(
            crate::checks::Group::Pool,
            "pool.pgbouncer",
            format!("clients wait: {first}"),
        );
        for more in &holds[1..] {
            f = f.detail(more.clone());
        }
        Some(f.fix("RESUME (or ENABLE) the database on PgBouncer's admin console when the maintenance is over"))
    }
}

/// What kind of failure a reading met; the dashboard retries all but a refused login by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BouncerFailure {
    /// The console refused the login (authentication, no such user or database): trying again
    /// with the same URL fails the same way and counts against the account.
    LoginRefused,
    /// No complete answer within the time allowed.
    NoAnswer,
    /// The answer passed [`MAX_ROWS`] or [`MAX_BYTES`].
    TooLarge,
    /// The answer broke the driver (a malformed message); the panic was contained.
    Malformed,
    /// The network or the console failed otherwise.
    Failed,
}

/// Why the console could not be read (its text scrubbed of the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("PgBouncer {target}: {reason}")]
pub struct BouncerError {
    /// The console URL, password redacted.
    pub target: String,
    /// What went wrong.
    pub reason: String,
    /// Its kind.
    pub kind: BouncerFailure,
    /// The driver's failure, when the driver failed (not for a bound pgvigil drew).
    #[source]
    source: Option<DbError>,
}

impl BouncerError {
    /// A failure described in words of pgvigil's own (a bound, a malformed answer): `reason`
    /// must hold no secret.
    pub fn new(target: String, kind: BouncerFailure, reason: String) -> Self {
        Self {
            target,
            reason,
            kind,
            source: None,
        }
    }

    /// The driver's failure behind it, if any.
    pub fn driver_failure(&self) -> Option<&DbError> {
        self.source.as_ref()
    }
}

/// Why a reading stopped, before it becomes a [`BouncerError`].
enum ReadError {
    /// Logging in failed.
    Login(sqlx::Error),
    /// The connection or a command failed after the login.
    Driver(sqlx::Error),
    TooLarge(String),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        ReadError::Driver(e)
    }
}

fn text(row: &PgRow, column: &str) -> Option<String> {
    row.try_get_unchecked::<Option<String>, _>(column)
        .ok()
        .flatten()
}

fn int(row: &PgRow, column: &str) -> i64 {
    text(row, column)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map_or(0, |v| v as i64)
}

fn number(row: &PgRow, column: &str) -> Option<f64> {
    text(row, column)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
}

/// Connects to the admin console (`url`, database `pgbouncer`) and reads it once, within
/// `timeout`.
pub async fn read(url: &DatabaseUrl, timeout: Duration) -> Result<BouncerView, BouncerError> {
    let reading = async {
        let mut conn = connect(url).await.map_err(ReadError::Login)?;
        let view = read_on(&mut conn, &mut None).await;
        let _ = conn.close().await;
        view
    };
    bounded(url, timeout, reading).await
}

/// A connection kept between readings, with what this console turned out to support.
struct Kept {
    conn: PgConnection,
    /// Whether `SHOW STATE` works here; `None` until tried.
    has_state: Option<bool>,
}

/// The admin console kept open between readings: a dashboard reads it every second, and a new
/// connection each time would cost a login (SCRAM's key derivation included) and churn
/// PgBouncer's own client lists.
pub struct Console {
    url: DatabaseUrl,
    kept: tokio::sync::Mutex<Option<Kept>>,
}

impl Console {
    /// The console at `url` (database `pgbouncer`); nothing connects until the first reading.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            kept: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the console once within `timeout`, on the kept connection when it still works
    /// (otherwise once more on a new one). A failed reading drops the connection.
    pub async fn read(&self, timeout: Duration) -> Result<BouncerView, BouncerError> {
        let mut slot = self.kept.lock().await;
        let reading = async {
            if let Some(mut kept) = slot.take() {
                match read_on(&mut kept.conn, &mut kept.has_state).await {
                    Ok(view) => {
                        *slot = Some(kept);
                        return Ok(view);
                    }
                    // Only a connection that broke is worth a new one; an answer past a bound
                    // would only come again.
                    Err(ReadError::Driver(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let mut kept = Kept {
                conn: connect(&self.url).await.map_err(ReadError::Login)?,
                has_state: None,
            };
            let view = read_on(&mut kept.conn, &mut kept.has_state).await?;
            *slot = Some(kept);
            Ok(view)
        };
        bounded(&self.url, timeout, reading).await
    }
}

async fn bounded(
    url: &DatabaseUrl,
    timeout: Duration,
    reading: impl std::future::Future<Output = Result<BouncerView, ReadError>>,
) -> Result<BouncerView, BouncerError> {
    let fail =
        |kind: BouncerFailure, reason: String| BouncerError::new(url.to_string(), kind, reason);
    let driver = |kind: BouncerFailure, e: sqlx::Error| {
        let source = DbError::new(e, url);
        BouncerError {
            reason: source.to_string(),
            source: Some(source),
            ..fail(kind, String::new())
        }
    };
    let answer = tokio::time::timeout(timeout, crate::contain::contained(reading))
        .await
        .map_err(|_| {
            fail(
                BouncerFailure::NoAnswer,
                format!(
                    "no answer within {}",
                    crate::config::format_duration(timeout)
                ),
            )
        })?
        .map_err(|panic| {
            fail(
                BouncerFailure::Malformed,
                // The driver's panic message is its text: scrubbed as it comes in.
                url.scrub(&format!(
                    "the console's answer is malformed (it broke the driver: {panic})"
                )),
            )
        })?;
    answer.map_err(|e| match e {
        ReadError::TooLarge(why) => fail(BouncerFailure::TooLarge, why),
        ReadError::Login(e) if login_refused(&e) => driver(BouncerFailure::LoginRefused, e),
        ReadError::Login(e) | ReadError::Driver(e) => driver(BouncerFailure::Failed, e),
    })
}

/// Whether a failed login was refused (so that the same URL is refused again), not cut short.
/// PgBouncer up to 1.22 sends SQLSTATE 08P01 with every login error, so its messages count
/// too: "password authentication failed", "\"trust\" authentication failed", "no such user",
/// "no such database".
fn login_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let message = d.message();
            matches!(
                crate::db_error::classify(e),
                FailureKind::Authentication | FailureKind::DatabaseMissing
            ) || message.contains("authentication failed")
                || message.starts_with("no such user")
                || message.starts_with("no such database")
        }
        _ => false,
    }
}

async fn connect(url: &DatabaseUrl) -> Result<PgConnection, sqlx::Error> {
    let options = url
        .connect_options()
        // The console refuses startup parameters it does not know.
        .extra_float_digits(None);
    PgConnection::connect_with(&options).await
}

/// The bytes one reading may still take.
struct Budget {
    bytes_left: usize,
}

/// Sends `command` and turns each row into a value as it arrives, within [`MAX_ROWS`] and the
/// reading's byte budget: an endless answer stops at the bound, not at memory's end.
async fn answer<T>(
    conn: &mut PgConnection,
    command: &'static str,
    budget: &mut Budget,
    mut each: impl FnMut(&PgRow) -> Option<T>,
) -> Result<Vec<T>, ReadError> {
    let mut rows = sqlx::raw_sql(command).fetch(&mut *conn);
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(row) = rows.try_next().await? {
        seen += 1;
        if seen > MAX_ROWS {
            return Err(ReadError::TooLarge(format!(
                "{command} answered more than {MAX_ROWS} rows (pgvigil reads at most {MAX_ROWS} per command)"
            )));
        }
        let size: usize = (0..row.len())
            .map(|i| {
                row.try_get_raw(i)
                    .ok()
                    .and_then(|v| v.as_bytes().ok().map(<[u8]>::len))
                    .unwrap_or(0)
            })
            .sum();
        budget.bytes_left = budget.bytes_left.checked_sub(size).ok_or_else(|| {
            ReadError::TooLarge(format!(
                "the console's answers passed {} MiB at {command} (pgvigil reads at most {} MiB per reading)",
                MAX_BYTES >> 20,
                MAX_BYTES >> 20
            ))
        })?;
        out.extend(each(&row));
    }
    Ok(out)
}

/// Whether the console refused `SHOW STATE` as a command it does not know (before 1.20).
fn unknown_command(e: &ReadError) -> bool {
    matches!(e, ReadError::Driver(sqlx::Error::Database(d)) if d.message().contains("invalid command"))
}

async fn read_on(
    conn: &mut PgConnection,
    has_state: &mut Option<bool>,
) -> Result<BouncerView, ReadError> {
    let mut budget = Budget {
        bytes_left: MAX_BYTES,
    };
    let mut pools = answer(conn, "SHOW POOLS", &mut budget, |r| {
        let database = text(r, "database").unwrap_or_default();
        (database != "pgbouncer").then(|| BouncerPool {
            user: text(r, "user").unwrap_or_default(),
            cl_active: int(r, "cl_active"),
            cl_waiting: int(r, "cl_waiting"),
            sv_active: int(r, "sv_active"),
            sv_idle: int(r, "sv_idle"),
            sv_used: int(r, "sv_used"),
            maxwait_seconds: int(r, "maxwait") as f64 + int(r, "maxwait_us") as f64 / 1e6,
            pool_mode: text(r, "pool_mode").unwrap_or_default(),
            database,
        })
    })
    .await?;
    pools.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
    let stats: BTreeMap<String, [Option<f64>; 3]> = answer(conn, "SHOW STATS", &mut budget, |r| {
        Some((
            text(r, "database")?,
            [
                number(r, "avg_xact_count"),
                number(r, "avg_query_count"),
                number(r, "avg_wait_time"),
            ],
        ))
    })
    .await?
    .into_iter()
    .collect();
    let mut databases = answer(conn, "SHOW DATABASES", &mut budget, |r| {
        let name = text(r, "name")?;
        let [xact, query, wait] = stats.get(&name).copied().unwrap_or([None; 3]);
        (name != "pgbouncer").then(|| BouncerDatabase {
            paused: int(r, "paused") != 0,
            disabled: int(r, "disabled") != 0,
            xact_per_second: xact,
            query_per_second: query,
            avg_wait_us: wait,
            name,
        })
    })
    .await?;
    databases.sort_by(|a, b| a.name.cmp(&b.name));
    let lists = answer(conn, "SHOW LISTS", &mut budget, |r| {
        Some((text(r, "list")?, int(r, "items")))
    })
    .await?
    .into_iter()
    .collect();
    let state = if *has_state == Some(false) {
        None
    } else {
        match answer(conn, "SHOW STATE", &mut budget, |r| {
            Some((text(r, "key")?, text(r, "value")? == "yes"))
        })
        .await
        {
            Ok(pairs) => {
                *has_state = Some(true);
                let on = |k: &str| pairs.iter().any(|(key, yes)| key == k && *yes);
                Some(BouncerState {
                    paused: on("paused"),
                    suspended: on("suspended"),
                })
            }
            Err(e) if unknown_command(&e) => {
                *has_state = Some(false);
                None
            }
            Err(e) => return Err(e),
        }
    };
    Ok(BouncerView {
        pools,
        databases,
        state,
        lists,
    })
}
