//! Connection lifecycle, from sqlx's pool hooks: connections opened (and how long opening took),
//! closed and why, connect attempts by result, and how long each checkout held its connection.
//! Each event is a DEBUG line under `pgvigil::pool::lifecycle`; the counts feed [`PoolStats`]
//! and `/metrics`.
//!
//! sqlx closes some connections without a hook (its reaper, for idle timeout or max lifetime,
//! and a return past max lifetime). pgvigil checks lifetime and idle time itself before each
//! checkout and pings there (sqlx's own ping is turned off for instrumented pools), so most
//! closes carry their reason; the rest are counted as `reaped`: opened minus open minus the
//! closes with a known reason.
//!
//! [`PoolStats`]: super::PoolStats

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgPoolOptions};

use super::usage::UsageHistogram;
use crate::config::{PoolConfig, format_duration};

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Idle in the pool longer than POOL_IDLE_TIMEOUT.
    IdleTimeout,
    /// Older than POOL_MAX_LIFETIME.
    MaxLifetime,
    /// The ping before a checkout failed: the server or the network dropped it.
    Broken,
    /// It came back after being reported leaked: it may carry session state (an open
    /// transaction, SET values), so it is closed instead of reused.
    Leaked,
}

impl CloseReason {
    /// The label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::IdleTimeout => "idle_timeout",
            Self::MaxLifetime => "max_lifetime",
            Self::Broken => "broken",
            Self::Leaked => "leaked",
        }
    }

    const ALL: [CloseReason; 4] = [
        Self::IdleTimeout,
        Self::MaxLifetime,
        Self::Broken,
        Self::Leaked,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The lifecycle counts at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LifecycleStats {
    /// Connections opened by the pool.
    pub created_total: u64,
    /// Closes with a known reason, by [`CloseReason::label`].
    pub closed_total: BTreeMap<&'static str, u64>,
    /// Connections closed without a known reason (sqlx's reaper for idle timeout or max
    /// lifetime, a return past max lifetime, an explicit close, the pool closing): opened,
    /// minus open now, minus the closes above, never decreasing.
    pub reaped_total: u64,
    /// Connection attempts that succeeded (the pool's and the retry loop's).
    pub connect_successes_total: u64,
    /// Connection attempts that failed as pgvigil sees them: the retry loop's failed attempts,
    /// and acquires that failed for a reason other than a timeout or a closed pool. sqlx retries
    /// a refused connection inside an acquire until its deadline and reports a timeout, so an
    /// outage during which the pool is already open shows as acquire timeouts, not here.
    pub connect_failures_total: u64,
}

impl LifecycleStats {
    /// Every close reason with its count, `reaped` included, for `/metrics`.
    pub fn closed_by_reason(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = CloseReason::ALL
            .iter()
            .map(|r| {
                (
                    r.label(),
                    self.closed_total.get(r.label()).copied().unwrap_or(0),
                )
            })
            .collect();
        out.push(("reaped", self.reaped_total));
        out
    }
}

/// Counters shared by the pool's hooks and the instrumented pool.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    created: AtomicU64,
    closed: [AtomicU64; 4],
    connect_ok: AtomicU64,
    connect_failed: AtomicU64,
    /// The highest `reaped` computed so far: the inference dips while a connection is being
    /// opened or closed (sqlx's size moves before our hooks count), and a counter must not.
    reaped_high: AtomicU64,
    /// Time each checkout held its connection.
    pub(crate) usage: UsageHistogram,
}

impl Lifecycle {
    pub(crate) fn closed(&self, reason: CloseReason, age: Duration) {
        self.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: "pgvigil::pool::lifecycle",
            "connection closed: {} (age {})",
            reason.label(),
            format_duration(age)
        );
    }

    pub(crate) fn connect_failed(&self) {
        self.connect_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connect_succeeded(&self) {
        self.connect_ok.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self, open_now: u32) -> LifecycleStats {
        let created = self.created.load(Ordering::Relaxed);
        let closed_total: BTreeMap<&'static str, u64> = CloseReason::ALL
            .iter()
            .map(|r| (r.label(), self.closed[r.index()].load(Ordering::Relaxed)))
            .collect();
        let known: u64 = closed_total.values().sum();
        LifecycleStats {
            created_total: created,
            reaped_total: self
                .reaped_high
                .fetch_max(
                    created.saturating_sub(u64::from(open_now) + known),
                    Ordering::Relaxed,
                )
                .max(created.saturating_sub(u64::from(open_now) + known)),
            closed_total,
            connect_successes_total: self.connect_ok.load(Ordering::Relaxed),
            connect_failures_total: self.connect_failed.load(Ordering::Relaxed),
        }
    }
}

/// The pool options of an instrumented pool: sqlx's options from the configuration plus the
/// hooks that count and log the lifecycle, check age and idle time before each checkout, and
/// keep monitoring sessions read-only.
pub(crate) fn instrumented_options(
    config: &PoolConfig,
    lifecycle: &Arc<Lifecycle>,
) -> PgPoolOptions {
    let read_only = config.read_only;
    let idle_in_transaction = config.idle_in_transaction_timeout;
    let ping = config.test_before_acquire;
    let max_lifetime = config.max_lifetime;
    let idle_timeout = config.idle_timeout;
    let opened = lifecycle.clone();
    let checked = lifecycle.clone();
    super::pool_options(config)
        // Pinged in before_acquire instead, where a failure is counted as `broken`.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta: PoolConnectionMetadata| {
            let lifecycle = opened.clone();
            Box::pin(async move {
                if let Some(guard) = read_only {
                    super::ensure_read_only(conn, guard).await?;
                }
                // A SET, not a startup parameter: poolers such as PgBouncer refuse startup
                // `options` they do not know.
                if let Some(d) = idle_in_transaction {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "SET idle_in_transaction_session_timeout = {}",
                        d.as_millis().clamp(1, i32::MAX as u128)
                    )))
                    .execute(&mut *conn)
                    .await?;
                }
                lifecycle.created.fetch_add(1, Ordering::Relaxed);
                lifecycle.connect_succeeded();
                if tracing::enabled!(target: "pgvigil::pool::lifecycle", tracing::Level::DEBUG) {
                    // The server's view of how long opening took: from the backend's start
                    // (right after accept) through TLS, authentication and startup to now.
                    let took: Option<f64> = sqlx::query_scalar(
                        "SELECT extract(epoch FROM clock_timestamp() - backend_start)::float8 \
                         FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                    )
                    .fetch_optional(&mut *conn)
                    .await
                    .ok()
                    .flatten();
                    tracing::debug!(
                        target: "pgvigil::pool::lifecycle",
                        "connection opened in {}",
                        took.map_or("?".into(), |s| format_duration(Duration::from_secs_f64(s.max(0.0))))
                    );
                }
                Ok(())
            })
        })
        .before_acquire(move |conn: &mut PgConnection, meta: PoolConnectionMetadata| {
            let lifecycle = checked.clone();
            Box::pin(async move {
                if max_lifetime.is_some_and(|max| meta.age >= max) {
                    lifecycle.closed(CloseReason::MaxLifetime, meta.age);
                    return Ok(false);
                }
                if idle_timeout.is_some_and(|max| meta.idle_for >= max) {
                    lifecycle.closed(CloseReason::IdleTimeout, meta.age);
                    return Ok(false);
                }
                if ping && let Err(e) = conn.ping().await {
                    lifecycle.closed(CloseReason::Broken, meta.age);
                    return Err(e);
                }
                Ok(true)
            })
        })
}
