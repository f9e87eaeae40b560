//! The read-only session on production and the [`Reader`] every production read goes through.
//!
//! Three layers, so that no caller (careless or hostile) can write through it:
//! - the server refuses writes: every statement runs inside `BEGIN READ ONLY`, whose first
//!   statement takes a snapshot (after which `transaction_read_only` cannot be switched off),
//!   and the transaction always ends in ROLLBACK, so even a setting changed inside it is undone;
//! - the reader refuses what could leave that transaction or outlive it: only prepared
//!   statements (one statement each, the extended protocol) that start with SELECT, WITH, SHOW,
//!   VALUES, TABLE or EXPLAIN, and none that calls a function with effects outside the transaction
//!   (`set_config`, `pg_terminate_backend`, `pg_advisory_lock`, `dblink`, ...);
//! - the startup parameters (`default_transaction_read_only=on`, lock_timeout,
//!   statement_timeout) bound even pgvigil's own BEGIN and ROLLBACK, verified after
//!   connecting. A pooler may drop them (PgBouncer in transaction mode does, or refuses them
//!   unless told to ignore `options`); then they hold per transaction only, set again with
//!   SET LOCAL in each one. Never with a session-wide SET: through a transaction pooler that
//!   would stay on a server connection the application gets next, and make its writes fail.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo, Postgres,
};
use sqlx::{ConnectOptions, Connection, Either, Execute, Executor, PgConnection, Transaction};

use crate::config::{PoolConfig, ReadOnlySession};
use crate::pool::Checkout;

/// Statements a reader sends: the first keyword of each (after comments and parentheses).
/// EXPLAIN too: it plans (ANALYZE runs the statement, under the same read-only rules).
const READING_KEYWORDS: [&str; 6] = ["SELECT", "WITH", "SHOW", "VALUES", "TABLE", "EXPLAIN"];

/// Functions whose effects a READ ONLY transaction does not stop or a ROLLBACK does not undo:
/// lifting the session's own timeouts, stopping other sessions, session advisory locks (one
/// would block sqlx's migrator), a second connection that is not read-only, notifications,
/// resetting the statistics others read, the server's log and WAL files, replication slots.
const OUTSIDE_EFFECTS: [&str; 17] = [
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_advisory",
    "pg_try_advisory",
    "pg_notify",
    "dblink",
    "pg_promote",
    "pg_stat_reset",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_log_backend_memory_contexts",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_replication_origin",
];

/// Where the session's guards hold: from its first statement (the startup parameters took),
/// or per transaction only (a pooler dropped them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardsHeldBy {
    /// The server took the startup parameters: every statement, BEGIN included, is bounded.
    StartupParameters,
    /// A pooler dropped them; each transaction sets them again (SET LOCAL) and starts READ
    /// ONLY, so every read is still bounded and read-only.
    EachTransaction,
}

/// What a reader would not send to production.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not a reading statement (COMMIT, SET, INSERT, BEGIN, ...): it could end the read-only
    /// transaction or change the session.
    #[error(
        "pgvigil's read-only session refused a statement starting with `{keyword}`: only \
         SELECT, WITH, SHOW, VALUES, TABLE and EXPLAIN statements run on production"
    )]
    NotARead {
        /// The statement's first word, upper-cased (at most 32 characters).
        keyword: String,
    },
    /// It calls a function whose effect outlives the transaction or reaches other sessions.
    #[error(
        "pgvigil's read-only session refused a statement calling {function}: its effect is \
         not undone by the transaction's ROLLBACK"
    )]
    OutsideEffect {
        /// The function (or prefix of a family, such as `pg_advisory`).
        function: &'static str,
    },
    /// A Unicode-escaped identifier or string (`U&"\0070g_..."`) can spell any function's name
    /// past the check above: pgvigil's own reads never use one.
    #[error("a read on production may not use a Unicode-escaped name or string (U&\"...\")")]
    EscapedName,
    /// Sent with the simple protocol (a string or `raw_sql`), which can carry several
    /// statements at once: only prepared statements (`sqlx::query(...)`) run.
    #[error(
        "pgvigil's read-only session refused a statement sent as plain text (it could carry \
         several); use sqlx::query"
    )]
    PlainText,
    /// The transaction did not start READ ONLY (a proxy that rewrites BEGIN?).
    #[error("the server did not start the transaction READ ONLY (transaction_read_only = {0})")]
    NotReadOnly(String),
}

impl Refusal {
    /// The refusal a statement's text earns, if any.
    pub(crate) fn of(sql: &str) -> Option<Self> {
        let keyword = first_keyword(sql);
        if !READING_KEYWORDS.contains(&keyword.as_str()) {
            return Some(Self::NotARead { keyword });
        }
        let lower = sql.to_ascii_lowercase();
        if lower.contains("u&\"") || lower.contains("u&'") {
            return Some(Self::EscapedName);
        }
        OUTSIDE_EFFECTS
            .iter()
            .find(|f| mentions(&lower, f))
            .map(|function| Self::OutsideEffect { function })
    }

    fn into_error(self) -> sqlx::Error {
        sqlx::Error::Configuration(Box::new(self))
    }
}

/// The first word of `sql` after whitespace, comments and opening parentheses, upper-cased.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if trimmed.starts_with("/*") {
            rest = skip_block_comment(trimmed);
        } else {
            rest = trimmed;
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// What follows a (nested, as in PostgreSQL) block comment at the start of `s`.
fn skip_block_comment(s: &str) -> &str {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &s[i..];
                }
            }
            _ => i += 1,
        }
    }
    // An unterminated comment: nothing follows, and the empty keyword is refused.
    ""
}

/// `name` appears in `lower` as the start of an identifier (not inside another one).
fn mentions(lower: &str, name: &str) -> bool {
    lower.match_indices(name).any(|(at, _)| {
        lower[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
    })
}

/// PgBouncer's answer to a startup parameter it does not pass on (`options`).
fn refuses_startup_parameters(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("unsupported startup parameter"))
}

fn millis(d: Duration) -> u128 {
    d.as_millis().max(1)
}

enum Held {
    Dedicated(PgConnection),
    Pooled(Checkout),
}

impl Held {
    fn conn(&mut self) -> &mut PgConnection {
        match self {
            Self::Dedicated(c) => c,
            Self::Pooled(c) => c,
        }
    }
}

/// A read-only session on production. It offers no connection, only [`Reader`]s: each a READ
/// ONLY transaction, bounded by the session's (or the given) lock and statement timeouts,
/// ended by ROLLBACK. Built in one place ([`ProductionSession::connect`] for a connection of
/// its own, [`ProductionSession::from_checkout`] for one of a pool's), both verified the
/// same way.
pub struct ProductionSession {
    held: Held,
    /// Backend pid and how to reach the server, to cancel a statement left running when a
    /// read is dropped (a signal, Esc).
    pid: i32,
    cancel_with: PgConnectOptions,
    bounds: ReadOnlySession,
    held_by: GuardsHeldBy,
}

impl std::fmt::Debug for ProductionSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductionSession")
            .field("pid", &self.pid)
            .field("bounds", &self.bounds)
            .field("held_by", &self.held_by)
            .finish()
    }
}

impl ProductionSession {
    /// A connection of its own to `config`'s database, with the guards of
    /// `config.read_only` (its defaults when unset) as startup parameters, verified.
    pub async fn connect(config: &PoolConfig) -> Result<Self, sqlx::Error> {
        Self::connect_with(config, config.read_only.unwrap_or_default()).await
    }

    /// As [`connect`](Self::connect), with these bounds (`pgvigil check`: its own timeouts).
    pub async fn connect_with(
        config: &PoolConfig,
        bounds: ReadOnlySession,
    ) -> Result<Self, sqlx::Error> {
        let mut guarded = config.clone();
        guarded.read_only = Some(bounds);
        let options = crate::pool::connect_options(&guarded);
        let (conn, options) = match options.connect().await {
            Ok(conn) => (conn, options),
            // PgBouncer refuses startup parameters it does not know (unless told to ignore
            // them): connect without them; every transaction sets them instead.
            Err(e) if refuses_startup_parameters(&e) => {
                guarded.read_only = None;
                let plain = crate::pool::connect_options(&guarded);
                (plain.connect().await?, plain)
            }
            Err(e) => return Err(e),
        };
        let session = Self::establish(Held::Dedicated(conn), options, bounds).await?;
        if session.held_by == GuardsHeldBy::EachTransaction {
            tracing::warn!(target: "pgvigil::session", "the server ignored the read-only startup parameters (a pooler?); every read sets them again in its own transaction");
        }
        Ok(session)
    }

    /// A session on a connection checked out of a pool of `config` (the dashboard's poller,
    /// the health endpoint). An application's pool need not be read-only: the session's
    /// transactions are, whatever the connection's defaults.
    pub async fn from_checkout(conn: Checkout, config: &PoolConfig) -> Result<Self, sqlx::Error> {
        let bounds = config.read_only.unwrap_or_default();
        Self::establish(
            Held::Pooled(conn),
            crate::pool::connect_options(config),
            bounds,
        )
        .await
    }

    /// The one place a session is made: reads what the server actually applied.
    async fn establish(
        mut held: Held,
        cancel_with: PgConnectOptions,
        bounds: ReadOnlySession,
    ) -> Result<Self, sqlx::Error> {
        let (read_only, lock_ms, statement_ms, pid): (bool, i64, i64, i32) = sqlx::query_as(
            "SELECT current_setting('default_transaction_read_only') = 'on',
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'lock_timeout'),
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'statement_timeout'),
                    pg_backend_pid()",
        )
        .persistent(false)
        .fetch_one(held.conn())
        .await?;
        let took = read_only
            && lock_ms == millis(bounds.lock_timeout) as i64
            && statement_ms == millis(bounds.statement_timeout) as i64;
        Ok(Self {
            held,
            pid,
            cancel_with,
            bounds,
            held_by: if took {
                GuardsHeldBy::StartupParameters
            } else {
                GuardsHeldBy::EachTransaction
            },
        })
    }

    /// Whether the startup parameters took or each transaction sets the guards.
    pub fn guards_held_by(&self) -> GuardsHeldBy {
        self.held_by
    }

    /// The lock and statement timeouts each transaction runs under unless told otherwise.
    pub fn bounds(&self) -> ReadOnlySession {
        self.bounds
    }

    /// The server process of this session (through a transaction pooler: of its first
    /// transaction only).
    pub fn backend_pid(&self) -> i32 {
        self.pid
    }

    /// Starts a READ ONLY transaction under the session's bounds.
    pub async fn begin_read_only(&mut self) -> Result<Reader<'_>, sqlx::Error> {
        let bounds = self.bounds;
        self.begin_read_only_with(bounds).await
    }

    /// Starts a READ ONLY transaction with its own lock and statement timeouts (SET LOCAL), in
    /// one round trip: the three statements go as one simple-protocol message, written by
    /// pgvigil (two whole numbers of milliseconds; nothing of a caller's). A reader's first
    /// statement then takes the snapshot, after which the server refuses to make the
    /// transaction read-write.
    pub async fn begin_read_only_with(
        &mut self,
        bounds: ReadOnlySession,
    ) -> Result<Reader<'_>, sqlx::Error> {
        let begin = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
            millis(bounds.statement_timeout),
            millis(bounds.lock_timeout)
        );
        let tx = self
            .held
            .conn()
            .begin_with(sqlx::AssertSqlSafe(begin))
            .await?;
        Ok(Reader {
            inner: Inner::Transaction(tx),
        })
    }

    /// Starts a REPEATABLE READ, READ ONLY transaction and exports its snapshot
    /// (`pg_export_snapshot()`), for `pg_dump --snapshot`: what the reader then reads is
    /// exactly what a dump taken with that snapshot holds, whatever the application writes
    /// meanwhile. The snapshot stays importable until the reader ends, so keep it open until
    /// every pg_dump worker has started. Still read-only: the same vetting, the same ROLLBACK.
    /// (A transaction pooler would hand the snapshot's server connection to someone else
    /// between statements: connect directly to the server for this.)
    pub async fn begin_exported_snapshot(
        &mut self,
        bounds: ReadOnlySession,
    ) -> Result<(Reader<'_>, String), sqlx::Error> {
        let mut tx = self
            .held
            .conn()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let (_, _, read_only, snapshot): (String, String, String, String) = sqlx::query_as(
            "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true),
                    current_setting('transaction_read_only'), pg_export_snapshot()",
        )
        .bind(millis(bounds.statement_timeout).to_string())
        .bind(millis(bounds.lock_timeout).to_string())
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
        if read_only != "on" {
            let _ = tx.rollback().await;
            return Err(Refusal::NotReadOnly(read_only).into_error());
        }
        Ok((
            Reader {
                inner: Inner::Transaction(tx),
            },
            snapshot,
        ))
    }

    /// Runs `read` in one read-only transaction under the session's bounds.
    pub async fn read<T>(
        &mut self,
        read: impl AsyncFnOnce(&mut Reader<'_>) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut reader = self.begin_read_only().await?;
        let result = read(&mut reader).await;
        let ended = reader.finish().await;
        let value = result?;
        ended?;
        Ok(value)
    }

    /// Registers this session's backend so that a read dropped mid-statement (a signal, Esc)
    /// is cancelled on the server; the caller disarms it with `done()` when it finishes.
    /// `None` behind a pooler (the guards did not take): the backend pid read at the start
    /// may serve another client by then, and cancelling it could stop that client's statement.
    pub(crate) fn cancel_on_drop(&self) -> Option<crate::cleanup::Tracked> {
        (self.held_by == GuardsHeldBy::StartupParameters)
            .then(|| crate::cleanup::track_pid(&self.cancel_with, self.pid))
    }

    /// Closes the session's own connection (a pool's goes back to its pool).
    pub async fn close(self) {
        match self.held {
            Held::Dedicated(c) => {
                let _ = c.close().await;
            }
            Held::Pooled(c) => drop(c),
        }
    }
}

enum Inner<'c> {
    /// On production: a READ ONLY transaction, rolled back at the end (or when dropped).
    Transaction(Transaction<'c, Postgres>),
    /// On a dev database (not production): the same statements, no transaction of its own.
    Dev(&'c mut PgConnection),
}

/// What a library read goes through. An `&mut Reader` is a sqlx executor
/// (`sqlx::query(..).fetch_one(&mut *reader)`) that sends only reading statements (see the
/// module); from a [`ProductionSession`] it is a READ ONLY transaction that ends in ROLLBACK.
pub struct Reader<'c> {
    inner: Inner<'c>,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            Inner::Transaction(_) => "read-only transaction",
            Inner::Dev(_) => "dev database",
        };
        f.debug_struct("Reader").field("on", &kind).finish()
    }
}

impl<'c> Reader<'c> {
    /// A reader on a dev database connection: dev databases are not production (they are
    /// written by the migrations), but what reads them goes through the same functions.
    pub(crate) fn dev(conn: &'c mut PgConnection) -> Self {
        Self {
            inner: Inner::Dev(conn),
        }
    }

    /// Ends the transaction: ROLLBACK (nothing of it is kept, settings included).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self.inner {
            Inner::Transaction(tx) => tx.rollback().await,
            Inner::Dev(_) => Ok(()),
        }
    }

    fn conn(&mut self) -> &mut PgConnection {
        match &mut self.inner {
            Inner::Transaction(tx) => tx,
            Inner::Dev(c) => c,
        }
    }

    /// Sets a savepoint a failed read rolls back to (false outside a transaction).
    pub(crate) async fn savepoint(&mut self) -> bool {
        self.control("SAVEPOINT pgvigil_read").await
    }

    /// Keeps what the read did since the savepoint (it only read).
    pub(crate) async fn release_savepoint(&mut self) {
        self.control("RELEASE SAVEPOINT pgvigil_read").await;
    }

    /// Makes the transaction usable again after a failed read.
    pub(crate) async fn rollback_to_savepoint(&mut self) {
        self.control("ROLLBACK TO SAVEPOINT pgvigil_read").await;
    }

    /// `SET LOCAL` of a planner switch (`enable_seqscan`), for the duration of the
    /// transaction: the only setting a read may change.
    pub(crate) async fn set_planner_switch(
        &mut self,
        name: &'static str,
        on: bool,
    ) -> Result<(), sqlx::Error> {
        if !name.starts_with("enable_")
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(Refusal::NotARead {
                keyword: "SET".into(),
            }
            .into_error());
        }
        let value = if on { "on" } else { "off" };
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {name} = {value}")))
            .persistent(false)
            .execute(self.conn())
            .await
            .map(|_| ())
    }

    async fn control(&mut self, sql: &'static str) -> bool {
        sqlx::query(sql)
            .persistent(false)
            .execute(self.conn())
            .await
            .is_ok()
    }
}

/// A statement that passed [`Refusal::of`], sent unnamed (nothing left prepared on a server
/// connection a pooler hands to someone else).
struct Vetted {
    sql: sqlx::SqlStr,
    arguments: Option<PgArguments>,
    statement: Option<PgStatement>,
}

impl<'q> Execute<'q, Postgres> for Vetted {
    fn sql(self) -> sqlx::SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        false
    }
}

fn vet<'q, E: Execute<'q, Postgres>>(mut query: E) -> Result<Vetted, sqlx::Error> {
    let statement = query.statement().cloned();
    let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
    let sql = query.sql();
    let Some(arguments) = arguments else {
        return Err(Refusal::PlainText.into_error());
    };
    if let Some(refusal) = Refusal::of(sql.as_str()) {
        return Err(refusal.into_error());
    }
    Ok(Vetted {
        sql,
        arguments: Some(arguments),
        statement,
    })
}

fn conn_of<'a>(reader: &'a mut Reader<'_>) -> &'a mut PgConnection {
    reader.conn()
}

impl<'c> Executor<'c> for &'c mut Reader<'_> {
    type Database = Postgres;

    fn fetch_many<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Postgres>,
        'q: 'e,
        E: 'q,
    {
        match vet(query) {
            Ok(vetted) => conn_of(self).fetch_many(vetted),
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn fetch_optional<'e, 'q, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: Execute<'q, Postgres>,
        'q: 'e,
        E: 'q,
    {
        match vet(query) {
            Ok(vetted) => conn_of(self).fetch_optional(vetted),
            Err(e) => futures_util::future::ready(Err(e)).boxed(),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        // Preparing runs nothing; what the statement would do is vetted when it executes.
        conn_of(self).prepare_with(sql, parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "  select now()",
            "-- a comment\nSELECT 1",
            "/* a /* nested */ comment */ WITH x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1) UNION (SELECT 2)",
            "SHOW lock_timeout",
            "VALUES (1)",
            "TABLE _sqlx_migrations",
            "SELECT current_setting('statement_timeout')",
        ] {
            assert_eq!(Refusal::of(sql), None, "{sql}");
        }
    }

    #[test]
    fn what_could_leave_the_transaction_is_refused() {
        for (sql, keyword) in [
            ("COMMIT", "COMMIT"),
            ("end", "END"),
            ("ROLLBACK", "ROLLBACK"),
            ("SET default_transaction_read_only = off", "SET"),
            ("RESET ALL", "RESET"),
            ("BEGIN READ WRITE", "BEGIN"),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("/* SELECT */ DELETE FROM t", "DELETE"),
            ("CREATE TABLE t (a int)", "CREATE"),
            ("CALL p()", "CALL"),
            ("/* unterminated SELECT", ""),
            ("", ""),
        ] {
            assert_eq!(
                Refusal::of(sql),
                Some(Refusal::NotARead {
                    keyword: keyword.into()
                }),
                "{sql}"
            );
        }
    }

    #[test]
    fn functions_with_effects_outside_the_transaction_are_refused() {
        for (sql, function) in [
            (
                "SELECT set_config('default_transaction_read_only', 'off', false)",
                "set_config",
            ),
            (
                "SELECT pg_catalog.SET_CONFIG('a', 'b', false)",
                "set_config",
            ),
            ("SELECT pg_terminate_backend(42)", "pg_terminate_backend"),
            ("SELECT pg_advisory_lock(1)", "pg_advisory"),
            ("SELECT \"dblink_exec\"('x', 'y')", "dblink"),
        ] {
            assert_eq!(
                Refusal::of(sql),
                Some(Refusal::OutsideEffect { function }),
                "{sql}"
            );
        }
        // Only the start of an identifier counts.
        assert_eq!(Refusal::of("SELECT my_set_config_note FROM t"), None);
        for sql in [
            "SELECT pg_stat_reset()",
            "SELECT pg_stat_reset_shared('bgwriter')",
            "SELECT pg_switch_wal()",
            "SELECT pg_create_logical_replication_slot('s', 'pgoutput')",
        ] {
            assert!(
                matches!(Refusal::of(sql), Some(Refusal::OutsideEffect { .. })),
                "{sql}"
            );
        }
        // A name spelled with Unicode escapes is refused whatever it spells.
        for sql in [
            "SELECT U&\"\\0070g_terminate_backend\"(42)",
            "SELECT u&'\\0041'",
        ] {
            assert_eq!(Refusal::of(sql), Some(Refusal::EscapedName), "{sql}");
        }
    }
}
