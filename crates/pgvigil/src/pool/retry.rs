//! Connecting with exponential backoff. Each attempt is bounded by POOL_CONNECT_TIMEOUT, so the
//! worst case is predictable: attempts x connect timeout + the sum of the capped delays.
//! Fatal failures (authentication, missing database, TLS, configuration) end the loop at once
//! with what to fix; transient ones are retried, logged at WARN with the delay and the cause.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::InstrumentedPool;
use crate::config::{DatabaseUrl, Jitter, PoolConfig, RetryPolicy, format_duration};
use crate::db_error::{DbError, FailureKind};

/// The delay schedule: retry n (0-based) waits `min(initial * multiplier^n, max)`, randomised
/// into `0..=that` under full jitter. Ends after `max_retries` items (never when unlimited).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    retries: u32,
}

impl Backoff {
    /// The schedule of `policy`, starting at retry 0.
    pub fn new(policy: RetryPolicy) -> Self {
        Self { policy, retries: 0 }
    }

    /// The capped exponential delay of retry `n`, before jitter.
    pub fn ceiling(&self, n: u32) -> Duration {
        let p = &self.policy;
        let secs = p.initial_delay.as_secs_f64() * p.multiplier.powi(n.min(1024) as i32);
        if !secs.is_finite() || secs >= p.max_delay.as_secs_f64() {
            p.max_delay
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Retries handed out so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self
            .policy
            .max_retries
            .is_some_and(|max| self.retries >= max)
        {
            return None;
        }
        let ceiling = self.ceiling(self.retries);
        self.retries = self.retries.saturating_add(1);
        Some(match self.policy.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
                Duration::from_nanos(rand::rng().random_range(0..=nanos))
            }
        })
    }
}

/// Where the connection stands: the one state machine from the retry loop to a dashboard's
/// header or a readiness probe (after tokio-console's connection state). The retry loop moves
/// it through Connecting, Waiting, Connected and Failed; whoever reads through the pool reports
/// a lost or unanswering server with [`Connector::lost`] and [`Connector::unresponsive`], so
/// "down since" survives a reconnect and nobody re-derives it on the side.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Attempt `attempt` (1-based) is under way. `down` is set when the link was lost or an
    /// attempt failed before this one: the outage goes on.
    Connecting {
        /// The attempt under way, from 1.
        attempt: u32,
        /// The last attempt there will be; `None` when retries are unlimited.
        max_attempts: Option<u32>,
        /// When this attempt started.
        since: DateTime<Utc>,
        /// The outage this attempt is trying to end, if any.
        down: Option<Down>,
    },
    /// Attempt `attempt` failed; the next starts at `next_retry_at` unless cut short.
    Waiting {
        /// The attempt that failed.
        attempt: u32,
        /// The last attempt there will be; `None` when retries are unlimited.
        max_attempts: Option<u32>,
        /// When the next attempt starts.
        next_retry_at: DateTime<Utc>,
        /// What kind of failure the last attempt met.
        kind: FailureKind,
        /// Since when, and why, the database cannot be reached.
        down: Down,
    },
    /// Connected, and the last read answered.
    Connected {
        /// When the connection was made.
        since: DateTime<Utc>,
    },
    /// Connected, but the last read has not answered within its deadline (a frozen server,
    /// a lock): figures are stale, and nothing is retried until it answers or fails.
    Unresponsive {
        /// When it stopped answering.
        since: DateTime<Utc>,
        /// When the connection was made.
        connected_since: DateTime<Utc>,
    },
    /// Gave up: a fatal failure (nothing to retry until told to) or attempts exhausted.
    Failed {
        /// What kind of failure ended the loop.
        kind: FailureKind,
        /// The whole error, with what to fix.
        error: String,
        /// The attempts made.
        attempts: u32,
        /// Since when, and why, the database cannot be reached.
        down: Down,
    },
}

/// An outage: since when the database cannot be reached and the last reason, without secrets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Down {
    /// The first failure of this outage.
    pub since: DateTime<Utc>,
    /// The last failure's message, password removed.
    pub last_error: String,
}

impl LinkState {
    /// True when connected and answering.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    /// The outage under way, if any: set from the first failure until connected again.
    pub fn down(&self) -> Option<&Down> {
        match self {
            Self::Connecting { down, .. } => down.as_ref(),
            Self::Waiting { down, .. } | Self::Failed { down, .. } => Some(down),
            Self::Connected { .. } | Self::Unresponsive { .. } => None,
        }
    }
}

/// Cuts the current wait between attempts short ("retry now"). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RetryNow(Arc<Notify>);

impl RetryNow {
    /// Starts the next attempt at once. Pressed during an attempt, it skips the next wait.
    pub fn trigger(&self) {
        self.0.notify_one();
    }

    /// Resolves when `trigger` is called (or was called since the last wait).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// Why connecting ended without a pool. Messages carry the redacted URL, never the password;
/// the last attempt's failure is the source.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A failure retrying cannot cure (authentication, missing database, TLS, configuration):
    /// the loop ends at once.
    #[error(
        "cannot connect to {target} as user \"{user}\": {cause} ({kind_label}, not retried); {hint}"
    )]
    #[non_exhaustive]
    Fatal {
        /// The database, as its URL with the password redacted.
        target: String,
        /// The user name connected as.
        user: String,
        /// What kind of failure it was.
        kind: FailureKind,
        /// `kind` as its snake_case word, for the message.
        kind_label: &'static str,
        /// The driver's or server's message, password removed.
        cause: String,
        /// What to fix.
        hint: String,
        /// Attempts made, this one included.
        attempts: u32,
        /// The failure itself, scrubbed.
        #[source]
        source: DbError,
    },
    /// Every attempt failed with a retryable failure and the retries ran out.
    #[error(
        "gave up connecting to {target} after {attempts} attempts in {elapsed}; last error: {cause}"
    )]
    #[non_exhaustive]
    Exhausted {
        /// The database, as its URL with the password redacted.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to giving up, formatted (`2m05s`).
        elapsed: String,
        /// What kind of failure the last attempt met.
        kind: FailureKind,
        /// The last attempt's message, password removed.
        cause: String,
        /// The last attempt's failure, scrubbed.
        #[source]
        source: DbError,
    },
}

impl ConnectError {
    /// What kind of failure ended the connecting.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Fatal { kind, .. } | Self::Exhausted { kind, .. } => *kind,
        }
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Fatal { attempts, .. } | Self::Exhausted { attempts, .. } => *attempts,
        }
    }

    /// The last attempt's failure.
    pub fn failure(&self) -> &DbError {
        match self {
            Self::Fatal { source, .. } | Self::Exhausted { source, .. } => source,
        }
    }
}

/// What one attempt of [`Connector::retry`] may fail with: a [`DbError`] (a real connection),
/// or a kind and a message (a test driving the loop, an attempt of the caller's own), whose
/// message the loop scrubs of the URL's password as it takes it in.
pub trait AttemptFailure {
    /// The failure as the loop keeps it.
    fn into_db_error(self, url: &DatabaseUrl) -> DbError;
}

impl AttemptFailure for DbError {
    fn into_db_error(self, _: &DatabaseUrl) -> DbError {
        self
    }
}

impl AttemptFailure for (FailureKind, String) {
    fn into_db_error(self, url: &DatabaseUrl) -> DbError {
        DbError::observed(self.0, url.scrub(&self.1))
    }
}

/// Connects a pool from a [`PoolConfig`] with the configured retries.
pub struct Connector {
    config: Arc<PoolConfig>,
    retry_now: RetryNow,
    state: watch::Sender<LinkState>,
    /// The outage a reader reported with [`Connector::lost`], for the next `connect`.
    lost: std::sync::Mutex<Option<Down>>,
}

impl Connector {
    /// A connector for `config`, in state Connecting (attempt 1); nothing happens until
    /// [`connect`](Self::connect).
    pub fn new(config: PoolConfig) -> Self {
        let (state, _) = watch::channel(LinkState::Connecting {
            attempt: 1,
            max_attempts: config.retry.max_retries.map(|r| r + 1),
            since: Utc::now(),
            down: None,
        });
        Self {
            config: Arc::new(config),
            retry_now: RetryNow::default(),
            state,
            lost: std::sync::Mutex::new(None),
        }
    }

    /// The current state.
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// A reader lost the database (a retryable failure on a connected pool): records the
    /// outage, so the next [`Connector::connect`] continues it instead of starting afresh.
    /// `error` is scrubbed of the password here.
    pub fn lost(&self, error: &str) {
        let down = Down {
            since: Utc::now(),
            last_error: self.config.database_url.scrub(error),
        };
        *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(down.clone());
        self.state.send_replace(LinkState::Connecting {
            attempt: 1,
            max_attempts: self.config.retry.max_retries.map(|r| r + 1),
            since: Utc::now(),
            down: Some(down),
        });
    }

    /// A read on the connected pool has not answered since `since` (`None`: it answers again).
    pub fn unresponsive(&self, since: Option<DateTime<Utc>>) {
        self.state.send_if_modified(|state| {
            let connected_since = match state {
                LinkState::Connected { since } => *since,
                LinkState::Unresponsive {
                    connected_since, ..
                } => *connected_since,
                _ => return false,
            };
            let next = match since {
                Some(since) => LinkState::Unresponsive {
                    since,
                    connected_since,
                },
                None => LinkState::Connected {
                    since: connected_since,
                },
            };
            let changed = *state != next;
            *state = next;
            changed
        });
    }

    /// The configuration it connects with.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// A handle that cuts the current wait between attempts short (the dashboard's "retry now").
    pub fn retry_now(&self) -> RetryNow {
        self.retry_now.clone()
    }

    /// A receiver that sees every change of [`LinkState`], for a screen or a readiness probe.
    pub fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// Attempts until connected, a fatal failure, or the retries run out.
    pub async fn connect(&self) -> Result<InstrumentedPool, ConnectError> {
        let lifecycle = Arc::new(super::lifecycle::Lifecycle::default());
        let pool = self
            .retry(|| async {
                let result = open_pool(&self.config, &lifecycle).await;
                if result.is_err() {
                    lifecycle.connect_failed();
                }
                result
            })
            .await?;
        Ok(InstrumentedPool::with_lifecycle(
            pool,
            self.config.clone(),
            lifecycle,
        ))
    }

    /// Ends the loop: logs the error and publishes the Failed state.
    fn give_up(
        &self,
        err: ConnectError,
        kind: FailureKind,
        attempts: u32,
        down: Down,
    ) -> ConnectError {
        tracing::error!(target: "pgvigil::pool", "{err}");
        self.state.send_replace(LinkState::Failed {
            kind,
            error: err.to_string(),
            attempts,
            down,
        });
        err
    }

    /// The retry loop itself, around any attempt that reports a classified failure. `connect`
    /// uses it with a real connection; tests drive it under tokio's paused clock.
    pub async fn retry<T, E, F, Fut>(&self, mut attempt_once: F) -> Result<T, ConnectError>
    where
        E: AttemptFailure,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let config = &self.config;
        let url = &config.database_url;
        let max_attempts = config.retry.max_retries.map(|r| r + 1);
        let mut backoff = Backoff::new(config.retry.clone());
        let started = Instant::now();
        let mut down = self.lost.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut attempt = 1u32;
        loop {
            self.state.send_replace(LinkState::Connecting {
                attempt,
                max_attempts,
                since: Utc::now(),
                down: down.clone(),
            });
            let failure = match attempt_once().await {
                Ok(value) => {
                    if attempt > 1 {
                        tracing::info!(
                            target: "pgvigil::pool",
                            "connected to {url} on attempt {attempt} after {}",
                            format_duration(started.elapsed())
                        );
                    } else {
                        tracing::info!(target: "pgvigil::pool", "connected to {url}");
                    }
                    self.state
                        .send_replace(LinkState::Connected { since: Utc::now() });
                    return Ok(value);
                }
                Err(failure) => failure.into_db_error(url),
            };
            let (kind, cause) = (failure.kind(), failure.words().to_string());
            let down = down.insert(Down {
                since: down.as_ref().map_or_else(Utc::now, |d| d.since),
                last_error: cause.clone(),
            });
            if !kind.is_retryable() {
                let hint = failure.hint();
                let err = ConnectError::Fatal {
                    target: url.to_string(),
                    user: url.username(),
                    kind,
                    kind_label: kind.label(),
                    cause,
                    hint,
                    attempts: attempt,
                    source: failure,
                };
                return Err(self.give_up(err, kind, attempt, down.clone()));
            }
            let Some(delay) = backoff.next() else {
                let err = ConnectError::Exhausted {
                    target: url.to_string(),
                    attempts: attempt,
                    elapsed: format_duration(started.elapsed()),
                    kind,
                    cause,
                    source: failure,
                };
                return Err(self.give_up(err, kind, attempt, down.clone()));
            };
            let of = max_attempts.map_or("unlimited".to_string(), |m| m.to_string());
            tracing::warn!(
                target: "pgvigil::pool",
                "connect attempt {attempt} of {of} to {url} failed: {cause}; retrying in {}",
                format_duration(delay)
            );
            self.state.send_replace(LinkState::Waiting {
                attempt,
                max_attempts,
                next_retry_at: Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                kind,
                down: down.clone(),
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.retry_now.0.notified() => {
                    tracing::info!(target: "pgvigil::pool", "retrying now (wait cut short)");
                }
            }
            attempt += 1;
        }
    }
}

/// Connects once with the configured retries (see [`Connector`] for status and "retry now").
pub async fn connect(config: PoolConfig) -> Result<InstrumentedPool, ConnectError> {
    Connector::new(config).connect().await
}

/// The connect options every pool connection uses, application_name included.
pub fn connect_options(config: &PoolConfig) -> PgConnectOptions {
    let options = config
        .database_url
        .connect_options()
        .application_name(&config.application_name)
        // sqlx logs every statement at INFO and slow ones (> 1 s, with the full SQL) at WARN;
        // the dashboard's log is for people, and pgvigil reports slowness in its own words.
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(
            tracing::log::LevelFilter::Debug,
            std::time::Duration::from_secs(1),
        );
    match config.read_only {
        None => options,
        Some(guard) => guard.startup_parameters(options),
    }
}

/// The sqlx pool options derived from the configuration.
pub fn pool_options(config: &PoolConfig) -> PgPoolOptions {
    let options = PgPoolOptions::new()
        .min_connections(config.min_connections)
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .idle_timeout(config.idle_timeout)
        .max_lifetime(config.max_lifetime)
        .test_before_acquire(config.test_before_acquire);
    match config.read_only {
        None => options,
        Some(guard) => options.after_connect(move |conn, _| {
            Box::pin(async move { ensure_read_only(conn, guard).await })
        }),
    }
}

/// Makes sure a monitoring session really is read-only: the startup parameters say so, but a
/// connection pooler in between may have dropped them silently. Sets them when they did not
/// hold (one statement when they did).
pub async fn ensure_read_only(
    conn: &mut sqlx::PgConnection,
    guard: crate::config::ReadOnlySession,
) -> Result<(), sqlx::Error> {
    let on: String = sqlx::query_scalar("SHOW default_transaction_read_only")
        .fetch_one(&mut *conn)
        .await?;
    if on != "on" {
        tracing::warn!(target: "pgvigil::pool", "the server ignored the read-only startup parameters (a pooler?); setting them per session");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET default_transaction_read_only = on; SET lock_timeout = {}; SET statement_timeout = {}",
            guard.lock_timeout.as_millis().max(1),
            guard.statement_timeout.as_millis().max(1)
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One attempt, bounded by the connect timeout as a whole. A single probe connection goes
/// first because sqlx's pool silently retries "connection refused" until its own deadline,
/// which would hide the cause; once the probe succeeds the pool opens its minimum.
async fn open_pool(
    config: &PoolConfig,
    lifecycle: &Arc<super::lifecycle::Lifecycle>,
) -> Result<PgPool, DbError> {
    let options = connect_options(config);
    let attempt = async {
        let probe = sqlx::PgConnection::connect_with(&options).await?;
        let _ = probe.close().await;
        super::lifecycle::instrumented_options(config, lifecycle)
            .connect_with(options.clone())
            .await
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(e)) => Err(DbError::new(e, &config.database_url)),
        Err(_) => Err(DbError::observed(
            FailureKind::Timeout,
            format!(
                "no connection within POOL_CONNECT_TIMEOUT ({})",
                format_duration(config.connect_timeout)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn schedule_without_jitter_doubles_then_stops() {
        let delays: Vec<u64> = Backoff::new(policy(Jitter::None))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16]);
    }

    #[test]
    fn schedule_is_capped_at_max_delay() {
        let p = RetryPolicy {
            max_retries: Some(8),
            jitter: Jitter::None,
            ..RetryPolicy::default()
        };
        let delays: Vec<u64> = Backoff::new(p).map(|d| d.as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn full_jitter_stays_within_each_bound() {
        for _ in 0..200 {
            let backoff = Backoff::new(policy(Jitter::Full));
            let bounds: Vec<Duration> = (0..5).map(|n| backoff.ceiling(n)).collect();
            let delays: Vec<Duration> = backoff.collect();
            assert_eq!(delays.len(), 5);
            for (d, bound) in delays.iter().zip(&bounds) {
                assert!(d <= bound, "{d:?} > {bound:?}");
            }
        }
    }

    #[test]
    fn unlimited_never_ends_and_stays_capped() {
        let mut b = Backoff::new(policy(Jitter::None).unlimited());
        let last = b.by_ref().take(10_000).last().unwrap();
        assert_eq!(last, Duration::from_secs(30));
        assert!(b.next().is_some());
    }
}
