//! The server's side of the picture, read in ONE statement per dashboard tick: client
//! connections grouped by application and state (and how many wait on a lock), the total against
//! max_connections minus the reserved slots, the longest open transaction and the lock waiters
//! (each with the relation lock it waits for, in the lock model's [`LockMode`]).
//! This is what shows how the production application's own pool behaves.

use crate::session::Reader;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::locks::{LockMode, relation_name_sql};

/// Client connections of one application in one state (a row of the per-tick grouping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionGroup {
    /// `application_name` of the sessions, `(unnamed)` when empty.
    pub application: String,
    /// active, idle, idle in transaction, idle in transaction (aborted), fastpath function call...
    pub state: String,
    /// Client connections of this application in this state.
    pub count: i64,
    /// Of those, waiting on a lock.
    pub waiting_on_lock: i64,
}

/// The transaction open the longest (pgvigil's own session left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongestTransaction {
    /// Backend process id, for `pg_cancel_backend` / `pg_terminate_backend`.
    pub pid: i32,
    /// `application_name` of the session, `(unnamed)` when empty.
    pub application: String,
    /// The session's state (`active`, `idle in transaction`, ...).
    pub state: String,
    /// Seconds since the transaction started (`statement_timestamp() - xact_start`).
    pub seconds: f64,
    /// The session's current or last statement, whitespace collapsed, cut at 200 characters.
    pub query: String,
}

/// A session waiting on a lock, with the sessions that hold it up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// Backend process id of the waiting session.
    pub pid: i32,
    /// `application_name` of the waiting session, `(unnamed)` when empty.
    pub application: String,
    /// Seconds the waiting statement has been running (`statement_timestamp() - query_start`).
    pub seconds: f64,
    /// Pids blocking this one (`pg_blocking_pids`): the sessions to look at first.
    pub blocked_by: Vec<i32>,
    /// The waiting statement, whitespace collapsed, cut at 200 characters.
    pub query: String,
    /// The relation lock it waits for, when it waits for one (not a row or a transaction).
    #[serde(default)]
    pub awaiting: Option<AwaitedLock>,
}

/// The relation lock a waiting session asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitedLock {
    /// The relation (schema-qualified unless in public).
    pub relation: String,
    /// The mode asked for: whether the wait holds up readers or writers queued behind it is
    /// [`LockMode::blocks_reads`] / [`LockMode::blocks_writes`].
    pub mode: LockMode,
}

impl std::fmt::Display for AwaitedLock {
    /// "ACCESS EXCLUSIVE on documents".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.mode, self.relation)
    }
}

/// One poll's view of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// The server's `statement_timestamp()` when the view was read. Not `now()`: the read runs
    /// inside the session's READ ONLY transaction, whose start is earlier, and ages measured
    /// from it would come out negative.
    pub server_time: DateTime<Utc>,
    /// `server_version`, e.g. `16.4`.
    pub version: String,
    /// The server's `max_connections` setting.
    pub max_connections: i64,
    /// Slots kept back from ordinary clients: `superuser_reserved_connections` plus
    /// `reserved_connections` (PostgreSQL 16+).
    pub reserved_connections: i64,
    /// Client backends (all applications, pgvigil included).
    pub total: i64,
    /// Client connections grouped by application and state.
    pub groups: Vec<ConnectionGroup>,
    /// The longest open transaction, if any session other than pgvigil's has one.
    pub longest_transaction: Option<LongestTransaction>,
    /// Client backends waiting on a lock right now (all of them; [`lock_waits`](Self::lock_waits)
    /// lists at most five).
    pub lock_waiters: i64,
    /// The longest lock waits (at most five), with the pids blocking them.
    pub lock_waits: Vec<LockWait>,
    /// Index builds in progress (`pg_stat_progress_create_index`), by backend.
    #[serde(default)]
    pub index_builds: Vec<IndexBuild>,
    /// A standby in recovery (read-only replica).
    #[serde(default)]
    pub in_recovery: bool,
    /// Superuser or member of pg_read_all_stats (pg_monitor): other roles' sessions show their
    /// state and query. Without it they appear with state "unknown".
    #[serde(default = "yes")]
    pub sees_all_sessions: bool,
    /// What this reading cost the server, in milliseconds (measured by the statement itself, so
    /// a slow network does not count).
    #[serde(default)]
    pub read_ms: f64,
}

/// A `CREATE INDEX [CONCURRENTLY]` or `REINDEX` in progress, whoever runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexBuild {
    /// The backend building it.
    pub pid: i32,
    /// Its application_name (as the server has it: sanitise before showing).
    pub application: String,
    /// The table being indexed.
    pub table: String,
    /// The index, once the server has created its entry (not yet in the first phase).
    pub index: Option<String>,
    /// `CREATE INDEX`, `CREATE INDEX CONCURRENTLY`, `REINDEX` or `REINDEX CONCURRENTLY`.
    pub command: String,
    /// The phase, in the server's words (`building index: loading tuples in tree`, ...).
    pub phase: String,
    /// Blocks processed in this phase.
    pub blocks_done: i64,
    /// Blocks to process in this phase (0 when the phase does not count blocks).
    pub blocks_total: i64,
    /// Tuples processed in this phase.
    pub tuples_done: i64,
    /// Tuples to process in this phase (0 when the phase does not count tuples).
    pub tuples_total: i64,
    /// Seconds since its statement started.
    pub seconds: Option<f64>,
}

impl IndexBuild {
    /// Progress through the current phase (0 to 1), by blocks when the phase counts blocks,
    /// else by tuples; `None` when it counts neither (waiting phases).
    pub fn fraction(&self) -> Option<f64> {
        let (done, total) = if self.blocks_total > 0 {
            (self.blocks_done, self.blocks_total)
        } else if self.tuples_total > 0 {
            (self.tuples_done, self.tuples_total)
        } else {
            return None;
        };
        Some((done as f64 / total as f64).clamp(0.0, 1.0))
    }

    /// Seconds left in this phase at the rate so far, when the phase counts its work and has
    /// done some. PostgreSQL does not say when each phase began, so the rate is measured from the
    /// statement's start: an estimate that is honest only for the long phase (the build).
    pub fn eta_seconds(&self) -> Option<f64> {
        let f = self.fraction().filter(|f| *f > 0.0 && *f < 1.0)?;
        let elapsed = self.seconds?;
        Some(elapsed * (1.0 - f) / f)
    }
}

fn yes() -> bool {
    true
}

/// Client connections at or above this share of the usable slots (max_connections minus the
/// reserved ones) leave no room for a deploy's new pods or an incident's psql: CRITICAL in
/// `check`, red on the dashboard. One threshold, used by both.
pub const NEAR_MAX_CONNECTIONS: f64 = 0.95;

impl ServerView {
    /// Whether the server is near max_connections ([`NEAR_MAX_CONNECTIONS`]).
    pub fn near_max_connections(&self) -> bool {
        self.usage() >= NEAR_MAX_CONNECTIONS
    }

    /// Connections clients may use: max_connections minus the reserved slots.
    pub fn usable(&self) -> i64 {
        (self.max_connections - self.reserved_connections).max(1)
    }

    /// Client connections as a share of the usable slots (1.0 = full; may exceed 1.0 when
    /// reserved slots are in use).
    pub fn usage(&self) -> f64 {
        self.total as f64 / self.usable() as f64
    }

    /// Client connections in `state` (e.g. `idle in transaction`), summed over all applications.
    pub fn count_in_state(&self, state: &str) -> i64 {
        self.groups
            .iter()
            .filter(|g| g.state == state)
            .map(|g| g.count)
            .sum()
    }
}

/// The single statement behind [`server_view`]: pg_stat_activity and the connection settings as
/// one JSON document.
pub const SERVER_VIEW_SQL: &str = concat!(
    r#"
-- pg_stat_get_activity(NULL) is the view pg_stat_activity without its joins; at 1,000
-- connections it is most of the cost (about 4 ms on two cores), so it is read once and every
-- figure comes from that copy; query texts are not carried in it but looked up (and folded)
-- for the few backends shown.
WITH a AS MATERIALIZED (
    SELECT pid, coalesce(nullif(application_name, ''), '(unnamed)') AS application,
           coalesce(state, 'unknown') AS state, wait_event_type = 'Lock' AS on_lock, xact_start, query_start
    FROM pg_stat_get_activity(NULL)
    WHERE backend_type = 'client backend'
),
-- Relation locks asked for and not granted: read (once) only when some backend waits on a lock.
awaited AS MATERIALIZED (
    SELECT l.pid, l.mode, "#,
    relation_name_sql!("c", "n"),
    r#" AS relation
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT l.granted AND l.locktype = 'relation'
)
SELECT json_build_object(
    'server_time', statement_timestamp(),
    'in_recovery', pg_is_in_recovery(),
    'sees_all_sessions', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER'),
    'version', current_setting('server_version'),
    'max_connections', current_setting('max_connections')::int8,
    'reserved_connections', current_setting('superuser_reserved_connections')::int8
        + coalesce(current_setting('reserved_connections', true)::int8, 0),
    'total', (SELECT count(*) FROM a),
    'groups', (SELECT coalesce(json_agg(g ORDER BY g.application, g.state), '[]') FROM (
        SELECT application, state, count(*) AS count,
               count(*) FILTER (WHERE on_lock) AS waiting_on_lock
        FROM a GROUP BY application, state) g),
    -- The oldest first, then its text: the query text is read (and the regexp run) for one
    -- backend, not carried for every one.
    'longest_transaction', (SELECT json_build_object(
            'pid', pid, 'application', application, 'state', state,
            'seconds', extract(epoch FROM statement_timestamp() - xact_start)::float8,
            'query', (SELECT left(regexp_replace(s.query, '\s+', ' ', 'g'), 200)
                      FROM pg_stat_get_activity(oldest.pid) s))
        FROM (SELECT * FROM a WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
              ORDER BY xact_start LIMIT 1) oldest),
    'lock_waiters', (SELECT count(*) FROM a WHERE on_lock),
    -- pg_blocking_pids only for the (at most five) backends that wait on a lock: it takes the
    -- lock manager's partition locks, a cost that would grow with every connection.
    'lock_waits', (SELECT coalesce(json_agg(w), '[]') FROM (
        SELECT pid, application, seconds, pg_blocking_pids(pid) AS blocked_by,
               (SELECT left(regexp_replace(s.query, '\s+', ' ', 'g'), 200)
                FROM pg_stat_get_activity(waiting.pid) s) AS query,
               (SELECT json_build_object('relation', aw.relation, 'mode', aw.mode)
                FROM awaited aw WHERE aw.pid = waiting.pid LIMIT 1) AS awaiting
        FROM (SELECT pid, application,
                     extract(epoch FROM statement_timestamp() - query_start)::float8 AS seconds
              FROM a WHERE on_lock
              ORDER BY query_start LIMIT 5) waiting) w),
    -- CREATE INDEX [CONCURRENTLY] in progress, whoever runs it (the HNSW build on documents
    -- takes hours): phase, blocks and tuples done.
    'index_builds', (SELECT coalesce(json_agg(b), '[]') FROM (
        SELECT p.pid, coalesce(s.application, '(unnamed)') AS application,
               p.relid::regclass::text AS "table",
               CASE WHEN p.index_relid <> 0 THEN p.index_relid::regclass::text END AS index,
               p.command, p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
               extract(epoch FROM statement_timestamp() - s.query_start)::float8 AS seconds
        FROM pg_stat_progress_create_index p
        LEFT JOIN a s ON s.pid = p.pid
        -- Another role's build without pg_read_all_stats: its fields are NULL; left out (the
        -- panel already says only this role's sessions are visible).
        WHERE p.relid IS NOT NULL
        ORDER BY p.pid) b),
    -- Last, so that it covers the work above: what this reading cost the server.
    'read_ms', extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000
)::text
"#
);

/// Server time pgvigil allows itself for the server view, in milliseconds per second of
/// refresh interval. One reading costs about 0.5 ms with tens of connections and about 5 ms
/// with a thousand (two cores): past the budget the view is read every few ticks instead.
pub const SERVER_VIEW_BUDGET_MS_PER_SECOND: f64 = 2.5;

/// Read the server view once every this many ticks, given what the last reading cost the
/// server (`read_ms`) and the refresh interval: within
/// [`SERVER_VIEW_BUDGET_MS_PER_SECOND`], never less often than every 10 ticks.
pub fn server_view_every(read_ms: f64, refresh: std::time::Duration) -> u32 {
    let budget = SERVER_VIEW_BUDGET_MS_PER_SECOND * refresh.as_secs_f64();
    if !read_ms.is_finite() || budget <= 0.0 {
        return 1;
    }
    (read_ms / budget).ceil().clamp(1.0, 10.0) as u32
}

/// Reads the server view (one statement).
pub async fn server_view(conn: &mut Reader<'_>) -> Result<ServerView, sqlx::Error> {
    let json: String = sqlx::query_scalar(SERVER_VIEW_SQL).fetch_one(conn).await?;
    serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_server_view_is_read_less_often_only_past_the_budget() {
        let second = Duration::from_secs(1);
        // (cost of one reading in ms, refresh) -> read every n ticks
        let table = [
            (0.4, second, 1),
            (2.5, second, 1),
            (2.6, second, 2),
            (5.1, second, 3),
            (8.2, second, 4),
            // A faster refresh has a smaller budget per tick, a slower one a larger.
            (2.0, Duration::from_millis(250), 4),
            (8.2, Duration::from_secs(5), 1),
            // Never less often than every 10 ticks, and a nonsense figure reads every tick.
            (900.0, second, 10),
            (f64::NAN, second, 1),
            (-1.0, second, 1),
        ];
        for (cost, refresh, every) in table {
            assert_eq!(
                server_view_every(cost, refresh),
                every,
                "{cost} ms at {refresh:?}"
            );
        }
    }
}
