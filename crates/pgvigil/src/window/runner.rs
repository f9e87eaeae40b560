//! Runs pending migrations on a target, one at a time and in order, as sqlx does: a file in a
//! transaction unless its first line is `-- no-transaction`, one session for all of them. The
//! dry-run uses it on a dev copy; the rehearsal and the apply reuse it.
//!
//! Its bounds hold from outside the session. A migration can lift any timeout it runs under
//! (`SET LOCAL statement_timeout = 0`), so a second session on the target, the observer, keeps
//! the time: when a migration runs past the bound the engineer gave (or the whole run past its
//! deadline, or the caller says stop), the observer cancels its statement (`pg_cancel_backend`)
//! and, if that does not end it within a grace period, ends its session
//! (`pg_terminate_backend`). The same observer samples the migration's locks ([`LockSampler`])
//! while it runs, so the locks of `CREATE INDEX CONCURRENTLY` and waits behind another session
//! are seen too.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};
use tokio::time::Instant;

use crate::catalog::ActivityTrace;
use crate::catalog::locks::{LockSampler, LockSpan, RelationLock, relation_locks_of};
use crate::cleanup::{Tracked, track_pid};
use crate::migrations::LocalMigration;
use crate::window::{Progress, ProgressSink};

/// The server's own timeout gets this long to fire first when the migration did not lift it, so
/// that its error (a server-side timeout) is what is reported then, not pgvigil's cancel.
const SERVER_FIRST: Duration = Duration::from_millis(200);

/// A limit pgvigil enforces from outside the migration's session, and the setting it comes
/// from (named in the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// How long.
    pub after: Duration,
    /// What sets it, as the engineer gives it: `--statement-timeout`, `--max-duration`.
    pub set_by: &'static str,
}

impl fmt::Display for Bound {
    /// "3 s (the bound --statement-timeout sets)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (the bound {} sets)", span(self.after), self.set_by)
    }
}

/// "3 s", "1.5 s", "200 ms", "2 min".
fn span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// How the runner runs migrations and bounds them.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// `lock_timeout` set on the migrations' session (a migration may change it).
    pub lock_timeout: Duration,
    /// `statement_timeout` set on the migrations' session (a migration may change it).
    pub statement_timeout: Duration,
    /// How long one statement of a migration may run, whatever the migration sets for itself:
    /// pgvigil cancels it from outside past this. A file reaches the server as one message, so
    /// from outside a file of n statements (`SET`s not counted) may run n times this.
    pub bound: Bound,
    /// When the whole run must end, and what sets that (`None`: no deadline).
    pub deadline: Option<(Instant, Bound)>,
    /// How long a cancelled statement may take to end before its session is terminated.
    pub grace: Duration,
    /// How often the observer reads the migration's locks (zero: never, for measuring what
    /// the readings cost; a transactional file's locks are still read before its COMMIT).
    pub sample_every: Duration,
    /// Where "applying migrations i/n" goes.
    pub progress: ProgressSink,
    /// Write sqlx's ledger as `sqlx migrate run` does ([`crate::window::ledger`]): the table,
    /// sqlx's advisory lock, a row per migration. Off for the dry-run (its copy has no
    /// ledger to keep); on for the rehearsal and the apply.
    pub ledger: bool,
    /// Read the migration's index build phases and wait events at each reading too
    /// ([`ActivityTrace`]).
    pub trace_activity: bool,
}

impl RunnerOptions {
    /// The session's timeouts, with pgvigil's own bound on each migration set to the
    /// statement timeout (named `set_by`); a 2 s grace and a reading of the locks every 100 ms.
    pub fn new(lock_timeout: Duration, statement_timeout: Duration, set_by: &'static str) -> Self {
        Self {
            lock_timeout,
            statement_timeout,
            bound: Bound {
                after: statement_timeout,
                set_by,
            },
            deadline: None,
            grace: Duration::from_secs(2),
            sample_every: Duration::from_millis(100),
            progress: ProgressSink::none(),
            ledger: false,
            trace_activity: false,
        }
    }
}

impl RunnerOptions {
    /// The options a window step runs with: its `--lock-timeout` and `--statement-timeout`,
    /// and the whole run ending at `deadline`, `--max-duration` after it began.
    pub fn bounded(
        lock_timeout: Duration,
        statement_timeout: Duration,
        deadline: Instant,
        max_duration: Duration,
    ) -> Self {
        let mut o = Self::new(lock_timeout, statement_timeout, "--statement-timeout");
        o.deadline = Some((
            deadline,
            Bound {
                after: max_duration,
                set_by: "--max-duration",
            },
        ));
        o
    }
}

/// Why pgvigil stopped a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It ran past [`RunnerOptions::bound`] (a file of one statement, not counting `SET`s).
    Bound(Bound),
    /// A file of several statements ran past [`RunnerOptions::bound`] for each of them. A file
    /// reaches the server as one message, so from outside its statements cannot be timed one
    /// by one; the server's own `statement_timeout` still ends any one of them at the bound,
    /// unless the migration lifted it.
    Statements {
        /// The bound on each statement.
        bound: Bound,
        /// How many statements the file has (its `SET` and `RESET` lines not counted).
        statements: usize,
    },
    /// The whole run reached [`RunnerOptions::deadline`].
    Deadline(Bound),
    /// The caller stopped it, for the reason given (a disk bound, say).
    Caller(String),
}

/// A migration pgvigil cancelled from outside its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// Why.
    pub stop: Stop,
    /// The cancel did not end it within the grace period: its session was terminated.
    pub terminated: bool,
    /// The locks it was waiting for when it was stopped, with who held it up.
    pub waiting_for: Vec<LockSpan>,
}

impl fmt::Display for Cancelled {
    /// "cancelled by pgvigil after 3 s (the bound --statement-timeout sets), whatever timeout
    /// the migration set for itself; it was waiting for ACCESS EXCLUSIVE on t (blocked by pid 9)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stop {
            Stop::Bound(b) => write!(
                f,
                "cancelled by pgvigil after {b}, whatever timeout the migration set for itself"
            )?,
            Stop::Statements { bound, statements } => write!(
                f,
                "cancelled by pgvigil after {}: {bound} for each of its {statements} \
                 statements, whatever timeout the migration set for itself",
                span(bound.after * (*statements as u32))
            )?,
            Stop::Deadline(b) => write!(
                f,
                "cancelled by pgvigil when the run reached its deadline of {b}, whatever timeout \
                 the migration set for itself"
            )?,
            Stop::Caller(why) => write!(f, "cancelled by pgvigil: {why}")?,
        }
        for w in &self.waiting_for {
            write!(f, "; it was {w}")?;
        }
        if self.terminated {
            f.write_str("; the cancel did not end it, so pgvigil ended its session")?;
        }
        Ok(())
    }
}

/// How one migration went.
#[derive(Debug)]
pub enum RunOutcome {
    /// It ran and committed.
    Succeeded,
    /// The server refused it or ended it (its error, a server-side timeout included).
    Failed(sqlx::Error),
    /// pgvigil cancelled it from outside.
    Cancelled(Cancelled),
    /// Not run: an earlier migration did not succeed (as a real apply stops).
    NotRun(String),
}

/// One migration as the runner ran it.
#[derive(Debug)]
pub struct MigrationRun {
    /// How it went.
    pub outcome: RunOutcome,
    /// Wall-clock time it ran.
    pub duration: Duration,
    /// The relation locks it took, one per relation and mode: read in its own transaction
    /// before COMMIT for a transactional file (exact), sampled while it ran otherwise.
    pub locks: Vec<RelationLock>,
    /// The locks came from the sampler (a no-transaction file): a very short one can slip
    /// between two readings.
    pub locks_sampled: bool,
    /// Every lock the observer saw, with its waits and holds.
    pub trace: LockSampler,
    /// Its index build phases and waits (empty unless [`RunnerOptions::trace_activity`]).
    pub activity: ActivityTrace,
    /// When its SQL returned (its transaction committed, so its locks were released), on the
    /// trace's clock.
    pub ended: Duration,
    /// How many of its statements completed: when it failed, the next one is the one that
    /// failed (the server runs a file's statements in order and stops at the first error).
    pub statements_done: usize,
}

/// The migrations' session and its observer on one target.
pub struct MigrationRunner {
    target: PgConnectOptions,
    session: Option<PgConnection>,
    observer: PgConnection,
    pid: i32,
    options: RunnerOptions,
    tracked: Option<Tracked>,
    total: usize,
    done: usize,
    stopped: Option<String>,
}

impl fmt::Debug for MigrationRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationRunner")
            .field("pid", &self.pid)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl MigrationRunner {
    /// Opens the migrations' session on `target` (with the options' timeouts) and the
    /// observer's; `total` is how many migrations will be run (for the progress reports). The
    /// session's backend is registered with [`crate::cleanup`], so a run dropped mid-way (a
    /// signal, Esc) has its statement cancelled on the server.
    pub async fn connect(
        target: &PgConnectOptions,
        options: RunnerOptions,
        total: usize,
    ) -> Result<Self, sqlx::Error> {
        let mut session = target.connect().await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            options.lock_timeout.as_millis().max(1),
            options.statement_timeout.as_millis().max(1)
        )))
        .execute(&mut session)
        .await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut session)
            .await?;
        if options.ledger {
            crate::window::ledger::prepare(&mut session).await?;
        }
        let observer = observer(target).await?;
        Ok(Self {
            tracked: Some(track_pid(target, pid)),
            target: target.clone(),
            session: Some(session),
            observer,
            pid,
            options,
            total,
            done: 0,
            stopped: None,
        })
    }

    /// The backend the migrations run on.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Runs `m`, bounded as the options say.
    pub async fn run(&mut self, m: &LocalMigration) -> MigrationRun {
        self.run_or_stop(m, std::future::pending()).await
    }

    /// Runs `m`, bounded as the options say, and stops it when `stop` completes first (with
    /// the words it gives as the reason).
    pub async fn run_or_stop(
        &mut self,
        m: &LocalMigration,
        stop: impl Future<Output = String>,
    ) -> MigrationRun {
        let mut trace = LockSampler::new(vec![self.pid]);
        let mut activity = ActivityTrace::new(self.pid, trace.started());
        let (Some(session), None) = (self.session.as_mut(), &self.stopped) else {
            let reason = self
                .stopped
                .clone()
                .unwrap_or_else(|| "the migrations' session is closed".into());
            return MigrationRun {
                outcome: RunOutcome::NotRun(reason),
                duration: Duration::ZERO,
                locks: Vec::new(),
                locks_sampled: m.no_tx,
                trace,
                activity,
                ended: Duration::ZERO,
                statements_done: 0,
            };
        };
        self.options.progress.report(
            Progress::phase("applying migrations", Some(self.total as u64)).at(self.done as u64),
        );
        let started = Instant::now();
        // The bound is on each statement (as statement_timeout is); a file is one message, so a
        // file of n statements gets n times the bound from outside.
        let statements = crate::sql_scan::timed_statements(&m.sql).max(1);
        let bound = self.options.bound;
        let mut limit = if statements == 1 {
            (started + bound.after + SERVER_FIRST, Stop::Bound(bound))
        } else {
            (
                started + bound.after * (statements as u32) + SERVER_FIRST,
                Stop::Statements { bound, statements },
            )
        };
        if let Some((deadline, bound)) = self.options.deadline
            && deadline < limit.0
        {
            limit = (deadline, Stop::Deadline(bound));
        }
        let pid = self.pid;
        let mut fired: Option<(Stop, Instant)> = None;
        let mut terminated = false;
        let mut next_sample = Instant::now();
        let far = started + Duration::from_secs(86_400 * 365);
        let sampling = !self.options.sample_every.is_zero();
        let (ledger, trace_activity) = (self.options.ledger, self.options.trace_activity);
        let completed = std::sync::atomic::AtomicUsize::new(0);
        let exec = execute(session, m, pid, ledger, &completed);
        tokio::pin!(stop);
        // In its own scope: the statement's future borrows the session until it is dropped.
        let result = {
            tokio::pin!(exec);
            loop {
                let terminate_at = fired
                    .as_ref()
                    .map_or(far, |(_, at)| *at + self.options.grace);
                // A backend that outlives even its termination: give up on it.
                let abandon_at = fired.as_ref().map_or(far, |(_, at)| {
                    *at + self.options.grace * 2 + Duration::from_secs(5)
                });
                tokio::select! {
                    biased;
                    r = &mut exec => break Some(r),
                    why = &mut stop, if fired.is_none() => {
                        signal(&mut self.observer, &self.target, "pg_cancel_backend", pid).await;
                        fired = Some((Stop::Caller(why), Instant::now()));
                    }
                    _ = tokio::time::sleep_until(limit.0), if fired.is_none() => {
                        signal(&mut self.observer, &self.target, "pg_cancel_backend", pid).await;
                        fired = Some((limit.1.clone(), Instant::now()));
                    }
                    _ = tokio::time::sleep_until(terminate_at), if !terminated => {
                        signal(&mut self.observer, &self.target, "pg_terminate_backend", pid).await;
                        terminated = true;
                    }
                    _ = tokio::time::sleep_until(abandon_at) => break None,
                    _ = tokio::time::sleep_until(next_sample), if sampling && fired.is_none() => {
                        if let Err(e) = trace.sample(&mut self.observer).await {
                            tracing::debug!(target: "pgvigil::runner", "a lock reading failed: {}", crate::db_error::DbError::new(e, &crate::db_error::NoSecrets));
                        }
                        if trace_activity && let Err(e) = activity.sample(&mut self.observer).await {
                            tracing::debug!(target: "pgvigil::runner", "an activity reading failed: {}", crate::db_error::DbError::new(e, &crate::db_error::NoSecrets));
                        }
                        next_sample = Instant::now() + self.options.sample_every;
                    }
                }
            }
        };
        let duration = started.elapsed();
        let ended = trace.elapsed();
        // Where the cancel was sent, it may still land on whatever the session runs next: the
        // session is not used again.
        let poisoned = fired.is_some();
        let (outcome, exact) = match (result, fired) {
            (Some(Ok(locks)), _) => (RunOutcome::Succeeded, locks),
            (Some(Err(e)), Some(_)) if server_timeout(&e) => (RunOutcome::Failed(e), Vec::new()),
            (Some(Err(e)), None) => (RunOutcome::Failed(e), Vec::new()),
            (_, Some((stop, _))) => (
                RunOutcome::Cancelled(Cancelled {
                    stop,
                    terminated,
                    waiting_for: trace.waiting().cloned().collect(),
                }),
                Vec::new(),
            ),
            (None, None) => unreachable!("the loop ends without a result only after a stop"),
        };
        let locks = if m.no_tx {
            let mut taken: Vec<RelationLock> = trace
                .taken()
                .map(|s| RelationLock {
                    pid: s.pid,
                    relation: s.relation.clone(),
                    mode: s.mode,
                    granted: true,
                })
                .collect();
            taken.dedup();
            taken
        } else {
            let mut exact = exact;
            exact.sort();
            exact.dedup();
            exact
        };
        match &outcome {
            RunOutcome::Succeeded => self.done += 1,
            _ => {
                self.stopped = Some(format!(
                    "migration {} did not succeed; a real apply stops there too",
                    m.version
                ))
            }
        }
        if poisoned && let Some(session) = self.session.take() {
            signal(
                &mut self.observer,
                &self.target,
                "pg_terminate_backend",
                pid,
            )
            .await;
            drop(session);
        }
        if self.done == self.total {
            self.options.progress.report(
                Progress::phase("applying migrations", Some(self.total as u64))
                    .at(self.done as u64),
            );
        }
        if ledger
            && matches!(outcome, RunOutcome::Succeeded)
            && let Some(session) = self.session.as_mut()
            && let Err(e) = crate::window::ledger::set_time(session, m, duration).await
        {
            // As sqlx says of it: the time is for lineage, not essential.
            tracing::warn!(target: "pgvigil::runner", "recording migration {}'s execution time failed: {}", m.version, crate::db_error::DbError::new(e, &crate::db_error::NoSecrets));
        }
        MigrationRun {
            outcome,
            duration,
            locks,
            locks_sampled: m.no_tx,
            trace,
            activity,
            ended,
            statements_done: completed.into_inner(),
        }
    }

    /// Closes both sessions (the migrations' one only if nothing may still run on it).
    pub async fn close(self) {
        let Self {
            session,
            observer,
            tracked,
            ..
        } = self;
        if let Some(t) = tracked {
            t.done();
        }
        if let Some(session) = session {
            let _ = session.close().await;
        }
        let _ = observer.close().await;
    }
}

/// The observer's session: short timeouts of its own, so a reading never holds up a cancel.
async fn observer(target: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let mut conn = target
        .clone()
        .log_statements(tracing::log::LevelFilter::Trace)
        .connect()
        .await?;
    sqlx::raw_sql("SET statement_timeout = 2000; SET lock_timeout = 1000")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Sends `pg_cancel_backend` / `pg_terminate_backend` to `pid` from the observer, or from a new
/// session if the observer cannot.
async fn signal(observer: &mut PgConnection, target: &PgConnectOptions, function: &str, pid: i32) {
    let sql = format!("SELECT {function}($1)");
    let bound = Duration::from_secs(3);
    let on_observer = sqlx::query(AssertSqlSafe(sql.clone()))
        .bind(pid)
        .execute(&mut *observer);
    if let Ok(Ok(_)) = tokio::time::timeout(bound, on_observer).await {
        return;
    }
    let fresh = async {
        let mut conn = target.connect().await?;
        sqlx::query(AssertSqlSafe(sql))
            .bind(pid)
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    match tokio::time::timeout(bound, fresh).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            target: "pgvigil::runner",
            "{function}({pid}) failed: {}",
            crate::db_error::DbError::new(e, &crate::db_error::NoSecrets)
        ),
        Err(_) => tracing::warn!(target: "pgvigil::runner", "{function}({pid}) timed out"),
    }
}

/// Runs a file's SQL as one message (as sqlx does), counting the statements that complete.
async fn statements(
    conn: &mut PgConnection,
    sql: &str,
    completed: &std::sync::atomic::AtomicUsize,
) -> Result<(), sqlx::Error> {
    use futures_util::StreamExt;
    let mut results = sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute_many(conn);
    while let Some(r) = results.next().await {
        r?;
        completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// The server ended the statement by a timeout of its own (statement_timeout or lock_timeout
/// as the session had them), before pgvigil's cancel reached it.
fn server_timeout(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("55P03") => true,
            Some("57014") => d.message().contains("statement timeout"),
            _ => false,
        },
        _ => false,
    }
}

/// One migration on the session: in a transaction (its locks read before COMMIT) unless it is a
/// `-- no-transaction` file; with `ledger`, its row written as sqlx writes it (in the same
/// transaction, or after the SQL for a no-transaction file).
async fn execute(
    conn: &mut PgConnection,
    m: &LocalMigration,
    pid: i32,
    ledger: bool,
    completed: &std::sync::atomic::AtomicUsize,
) -> Result<Vec<RelationLock>, sqlx::Error> {
    if m.no_tx {
        statements(&mut *conn, &m.sql, completed).await?;
        if ledger {
            crate::window::ledger::insert(conn, m).await?;
        }
        Ok(Vec::new())
    } else {
        let mut tx = conn.begin().await?;
        statements(&mut tx, &m.sql, completed).await?;
        if ledger {
            crate::window::ledger::insert(&mut tx, m).await?;
        }
        // Locks are held until the end of the transaction, and relations it created are
        // visible only inside it: read them here, before COMMIT.
        let locks = relation_locks_of(&mut *tx, &[pid]).await?;
        tx.commit().await?;
        Ok(locks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_in_the_engineer_s_units() {
        let b = |ms| Bound {
            after: Duration::from_millis(ms),
            set_by: "--statement-timeout",
        };
        assert_eq!(
            b(3000).to_string(),
            "3 s (the bound --statement-timeout sets)"
        );
        assert_eq!(
            b(1500).to_string(),
            "1.5 s (the bound --statement-timeout sets)"
        );
        assert_eq!(
            b(250).to_string(),
            "250 ms (the bound --statement-timeout sets)"
        );
        assert_eq!(
            b(120_000).to_string(),
            "2 min (the bound --statement-timeout sets)"
        );
    }
}
