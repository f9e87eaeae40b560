//! The retrying, instrumented pool an application embeds. sqlx's pool exposes only its size and
//! idle count, so every acquire goes through [`InstrumentedPool::acquire`], which times the wait,
//! counts outcomes, tracks the checkout for leak detection and feeds the saturation alarm.
//! [`InstrumentedPool::stats`] reads all of it without a database round trip.

mod leak;
mod lifecycle;
mod retry;
mod saturation;
mod usage;
mod wait;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};

// Failures are classified and worded where they enter, in crate::db_error; the pool's API
// names the kinds it reports.
pub use self::leak::LeakedConnection;
pub use self::lifecycle::{CloseReason, LifecycleStats};
pub use self::retry::{
    Backoff, ConnectError, Connector, Down, LinkState, RetryNow, connect, connect_options,
    ensure_read_only, pool_options,
};
pub use self::saturation::{
    SaturationChange, SaturationLevel, SaturationRule, SaturationWatch, saturation,
};
pub use self::wait::{AcquireWait, WINDOW_SECS, wait_text};
pub use crate::db_error::{FailureKind, classify, classify_sqlstate};

use self::leak::LeakTracker;
use self::lifecycle::{Lifecycle, instrumented_options};
use self::saturation::SaturationAlarm;
use self::wait::WaitRecorder;
use crate::config::{PoolConfig, format_duration};
use crate::db_error::DbError;

/// Everything known about the pool at one instant, gathered without a database round trip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStats {
    /// When these figures were read.
    pub taken_at: DateTime<Utc>,
    /// Open connections, idle included (sqlx's `size`).
    pub size: u32,
    /// Open connections sitting idle in the pool, ready to hand out.
    pub idle: u32,
    /// Connections checked out through this pool.
    pub in_use: u32,
    /// Highest `in_use` since the pool was created.
    pub peak_in_use: u32,
    /// The configured minimum of open connections (`POOL_MIN_CONNECTIONS`).
    pub min: u32,
    /// The configured maximum (`POOL_MAX_CONNECTIONS`), the denominator of `saturation`.
    pub max: u32,
    /// Tasks waiting in `acquire` right now.
    pub waiters: u64,
    /// in_use / max.
    pub saturation: f64,
    /// Saturation at which the warning is raised (`POOL_SATURATION_WARN`, 0 to 1).
    pub saturation_warn_at: f64,
    /// Whether the saturation warning is raised right now.
    pub saturation_warning: bool,
    /// The warning clears only below this (hysteresis).
    pub saturation_clear_below: f64,
    /// How many times the warning has been raised since the pool was created.
    pub saturation_warnings_total: u64,
    /// How long successful acquires waited: the last [`WINDOW_SECS`] seconds and all time.
    pub acquire_wait: AcquireWait,
    /// Successful acquires since the pool was created.
    pub acquisitions_total: u64,
    /// Acquires that gave up after `POOL_ACQUIRE_TIMEOUT` since the pool was created.
    pub timeouts_total: u64,
    /// Failed acquires by [`FailureKind`] label (timeouts included).
    pub errors_total: BTreeMap<String, u64>,
    /// Connections checked out longer than the leak threshold right now, oldest first.
    pub leaked: Vec<LeakedConnection>,
    /// Checkouts that crossed the leak threshold since the pool was created (each counted once).
    pub leaks_total: u64,
    /// The pool has been closed: every acquire now fails.
    pub closed: bool,
    /// Connections opened and closed (with reasons), connect attempts by result.
    pub lifecycle: LifecycleStats,
}

/// A failed acquire, classified, worded and scrubbed of the password where it happened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[error("no connection from the pool after {waited_text} ({kind_label}): {source}")]
pub struct AcquireError {
    /// What went wrong, for deciding whether to retry.
    pub kind: FailureKind,
    kind_label: &'static str,
    /// How long the acquire waited before failing.
    pub waited: Duration,
    waited_text: String,
    /// The driver's failure, its words scrubbed of the password.
    pub source: DbError,
}

impl AcquireError {
    /// Whether no connection came in time (acquire or connect timeout).
    pub fn is_timeout(&self) -> bool {
        self.kind == FailureKind::Timeout
    }
}

struct Shared {
    pool: PgPool,
    config: Arc<PoolConfig>,
    waits: WaitRecorder,
    leaks: LeakTracker,
    alarm: SaturationAlarm,
    waiters: AtomicU64,
    peak_in_use: AtomicU64,
    acquisitions: AtomicU64,
    timeouts: AtomicU64,
    errors: Mutex<BTreeMap<FailureKind, u64>>,
    lifecycle: Arc<Lifecycle>,
}

/// sqlx's PgPool with the figures an on-call engineer needs. Cheap to clone.
#[derive(Clone)]
pub struct InstrumentedPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InstrumentedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("target", &self.shared.config.database_url)
            .field("size", &self.shared.pool.size())
            .finish()
    }
}

impl InstrumentedPool {
    /// Wraps an already connected pool. Starts the leak scanner on the current tokio runtime.
    /// A pool built elsewhere has none of pgvigil's hooks: its lifecycle counts stay at zero
    /// (use [`Connector`] or [`InstrumentedPool::lazy`] for those).
    pub fn from_parts(pool: PgPool, config: Arc<PoolConfig>) -> Self {
        Self::with_lifecycle(pool, config, Arc::default())
    }

    pub(crate) fn with_lifecycle(
        pool: PgPool,
        config: Arc<PoolConfig>,
        lifecycle: Arc<Lifecycle>,
    ) -> Self {
        let log_interval = config.log_interval;
        let shared = Arc::new(Shared {
            lifecycle,
            waits: WaitRecorder::new(),
            leaks: LeakTracker::new(config.leak_threshold),
            alarm: SaturationAlarm::new(config.saturation_warn, config.saturation_hold),
            waiters: AtomicU64::new(0),
            peak_in_use: AtomicU64::new(0),
            acquisitions: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            pool,
            config,
        });
        spawn_leak_scanner(Arc::downgrade(&shared));
        if let Some(every) = log_interval {
            spawn_status_log(Arc::downgrade(&shared), every);
        }
        Self { shared }
    }

    /// A pool that connects on first use instead of now: for callers that must start
    /// without the database (the dashboard shows its own connection state).
    pub fn lazy(config: PoolConfig) -> Self {
        let lifecycle = Arc::new(Lifecycle::default());
        let pool =
            instrumented_options(&config, &lifecycle).connect_lazy_with(connect_options(&config));
        Self::with_lifecycle(pool, Arc::new(config), lifecycle)
    }

    /// Checks out a connection, labelled with the caller's source location.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<Checkout, AcquireError>> + Send + '_ {
        let at = Location::caller();
        self.acquire_labeled(format!("{}:{}", at.file(), at.line()))
    }

    /// Checks out a connection under a label shown in leak reports (`"report-job"`).
    pub async fn acquire_labeled(
        &self,
        label: impl Into<Cow<'static, str>>,
    ) -> Result<Checkout, AcquireError> {
        let shared = &self.shared;
        let waiter = WaiterGuard::enter(&shared.waiters);
        let started = Instant::now();
        let result = shared.pool.acquire().await;
        let waited = started.elapsed();
        drop(waiter);
        match result {
            Ok(conn) => {
                shared.waits.record(waited);
                tracing::debug!(
                    target: "pgvigil::pool::lifecycle",
                    "connection acquired after {}",
                    wait_text(waited.as_secs_f64())
                );
                shared.acquisitions.fetch_add(1, Ordering::Relaxed);
                let (lease, in_use) = shared.leaks.checkout(label.into());
                shared
                    .peak_in_use
                    .fetch_max(in_use as u64, Ordering::Relaxed);
                shared.alarm.observe(in_use, shared.config.max_connections);
                Ok(Checkout {
                    conn: Some(conn),
                    lease,
                    shared: self.shared.clone(),
                })
            }
            Err(e) => {
                let closed = matches!(e, sqlx::Error::PoolClosed);
                let source = DbError::new(e, &shared.config.database_url);
                let kind = source.kind();
                if kind == FailureKind::Timeout {
                    shared.timeouts.fetch_add(1, Ordering::Relaxed);
                } else if !closed {
                    // The pool had to open a connection for this acquire and could not.
                    shared.lifecycle.connect_failed();
                }
                *shared
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(kind)
                    .or_default() += 1;
                Err(AcquireError {
                    kind,
                    kind_label: kind.label(),
                    waited,
                    waited_text: format_duration(waited),
                    source,
                })
            }
        }
    }

    /// The pool's figures, read from memory.
    pub fn stats(&self) -> PoolStats {
        self.read_stats(true)
    }

    /// The figures without the sliding-window quantiles of the acquire wait (`acquire_wait`
    /// keeps its default): what a scrape needs, since Prometheus computes quantiles from the
    /// histogram itself. Saves merging 60 one-second histograms per scrape.
    pub fn counters(&self) -> PoolStats {
        self.read_stats(false)
    }

    fn read_stats(&self, window: bool) -> PoolStats {
        let s = &self.shared;
        let in_use = s.leaks.in_use();
        let max = s.config.max_connections;
        let warning = s.alarm.observe(in_use, max);
        let errors_total = s
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.label().to_string(), *v))
            .collect();
        PoolStats {
            taken_at: Utc::now(),
            size: s.pool.size(),
            idle: s.pool.num_idle() as u32,
            in_use: in_use as u32,
            peak_in_use: s.peak_in_use.load(Ordering::Relaxed) as u32,
            min: s.config.min_connections,
            max,
            waiters: s.waiters.load(Ordering::Relaxed),
            saturation: saturation(in_use, max),
            saturation_warn_at: s.alarm.warn_at(),
            saturation_warning: warning,
            saturation_clear_below: s.alarm.clear_below(),
            saturation_warnings_total: s.alarm.raised_total(),
            acquire_wait: if window {
                s.waits.summary()
            } else {
                AcquireWait::default()
            },
            acquisitions_total: s.acquisitions.load(Ordering::Relaxed),
            timeouts_total: s.timeouts.load(Ordering::Relaxed),
            errors_total,
            leaked: s.leaks.leaked(),
            leaks_total: s.leaks.leaks_total(),
            closed: s.pool.is_closed(),
            lifecycle: s.lifecycle.stats(s.pool.size()),
        }
    }

    /// Cumulative connection-usage (time held) counts at the given bounds (seconds): (counts,
    /// total, sum).
    pub fn usage_histogram(&self, bounds_secs: &[f64]) -> (Vec<u64>, u64, f64) {
        self.shared.lifecycle.usage.cumulative_at(bounds_secs)
    }

    /// Cumulative acquire-wait counts at the given bounds (seconds): (counts, total, sum).
    pub fn acquire_wait_histogram(&self, bounds_secs: &[f64]) -> (Vec<u64>, u64, f64) {
        self.shared.waits.cumulative_at(bounds_secs)
    }

    /// Counts a connection attempt that failed outside sqlx's pool: readiness's connect probe,
    /// which sees a refused connection that sqlx would retry until its deadline.
    #[cfg(feature = "http")]
    pub(crate) fn connect_failed(&self) {
        self.shared.lifecycle.connect_failed();
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The underlying sqlx pool. Work done through it bypasses the instrumentation.
    pub fn raw(&self) -> &PgPool {
        &self.shared.pool
    }

    /// Closes the pool: waits for checked-out connections to come back, then closes them all;
    /// later acquires fail with [`FailureKind::PoolClosed`].
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }
}

/// A checked-out connection. Dereferences to `PgConnection`; returning it (drop) records the
/// return for leak detection and saturation.
pub struct Checkout {
    conn: Option<PoolConnection<Postgres>>,
    lease: u64,
    shared: Arc<Shared>,
}

impl Checkout {
    /// Closes this connection instead of returning it to the pool (after an error that leaves
    /// the session in doubt).
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("lease", &self.lease)
            .finish()
    }
}

impl Deref for Checkout {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let (in_use, held) = self.shared.leaks.checkin(self.lease);
        if let Some((held, leaked)) = held {
            self.shared.lifecycle.usage.record(held);
            tracing::debug!(
                target: "pgvigil::pool::lifecycle",
                "connection released after {} held",
                format_duration(held)
            );
            if leaked && let Some(conn) = self.conn.as_mut() {
                // It may carry an open transaction or session settings: close, never reuse.
                conn.close_on_drop();
                self.shared.lifecycle.closed(CloseReason::Leaked, held);
            }
        }
        self.shared
            .alarm
            .observe(in_use, self.shared.config.max_connections);
    }
}

/// Counts a task as waiting for as long as it is inside `acquire`, cancellation included.
struct WaiterGuard<'a>(&'a AtomicU64);

impl<'a> WaiterGuard<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One INFO line per POOL_LOG_INTERVAL with the figures an engineer reads first.
fn spawn_status_log(shared: Weak<Shared>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.pool.is_closed() {
                return;
            }
            let pool = InstrumentedPool { shared };
            let s = pool.stats();
            let p95 = wait_text(s.acquire_wait.p95_ms / 1000.0);
            tracing::info!(
                target: "pgvigil::pool",
                "pool {}: size {} (max {}), active {}, idle {}, pending {}, acquire p95 {p95}, timeouts {}, leaked {}",
                pool.config().application_name,
                s.size,
                s.max,
                s.in_use,
                s.idle,
                s.waiters,
                s.timeouts_total,
                s.leaked.len()
            );
        }
    });
}

fn spawn_leak_scanner(shared: Weak<Shared>) {
    let Some(threshold) = shared.upgrade().map(|s| s.leaks.threshold()) else {
        return;
    };
    // A quarter of the threshold bounds how late a leak is reported.
    let period = (threshold / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.pool.is_closed() {
                return;
            }
            shared.leaks.scan();
        }
    });
}
