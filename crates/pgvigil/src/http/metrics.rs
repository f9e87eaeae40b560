//! `/metrics`: the pools' figures in the Prometheus text format (0.0.4), or OpenMetrics when the
//! scraper asks for it, encoded by prometheus-client from [`PoolStats`] at scrape time. A scrape
//! reads memory only and never waits on the database; when the readiness reading behind
//! `pgvigil_pool_ready` is older than HEALTH_CACHE_TTL, the scrape starts one refresh in the
//! background (single flight, as for /health/ready) and reports the last one. The names follow HikariCP's set (active,
//! idle, pending, max, min, timeouts, acquire and usage time, created and closed), under the
//! prefix `pgvigil_pool_`, in base units, with the label `pool`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::health::ReadinessCache;
use crate::pool::{InstrumentedPool, PoolStats};

/// Bucket bounds of the acquire-wait histogram, in seconds: from half a millisecond (a warm
/// pool) to the 30 s default acquire timeout.
pub const ACQUIRE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds of the connection-usage (time held) histogram, in seconds.
pub const USAGE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Encodes every named pool at scrape time. Registered in the face's registry, beside whatever
/// the application registered there itself.
#[derive(Debug)]
pub(crate) struct PoolCollector {
    pub(crate) pools: Arc<Vec<(String, InstrumentedPool)>>,
    pub(crate) readiness: Arc<ReadinessCache>,
}

type Pool<'a> = [(&'static str, &'a str); 1];
/// Cumulative counts at the bounds, the total count and the sum, as the pool keeps them.
type Cumulative = (Vec<u64>, u64, f64);
type HistogramRow<'a> = (Pool<'a>, Cumulative, &'a [f64]);

/// Counts go out as integers (`3`, not `3.0`): less to format per scrape, and exact.
fn gauge<N>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&'static str, String)>, N)],
) -> Result<(), std::fmt::Error>
where
    N: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug + Send + Sync,
{
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&'static str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    // prometheus-client appends `_total` to a counter's samples.
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        m.encode_family(labels)?
            .encode_counter::<Vec<(String, String)>, _, f64>(value, None)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[HistogramRow<'_>],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, (cumulative, count, sum), bounds) in rows {
        // The encoder wants per-bucket counts and adds them up itself; +Inf takes the rest.
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0;
        for (bound, c) in bounds.iter().zip(cumulative) {
            buckets.push((*bound, c - below));
            below = *c;
        }
        buckets.push((f64::INFINITY, count - below));
        m.encode_family(labels)?
            .encode_histogram::<Vec<(String, String)>>(*sum, *count, &buckets, None)?;
    }
    Ok(())
}

impl Collector for PoolCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats: Vec<(&str, PoolStats, &InstrumentedPool)> = self
            .pools
            .iter()
            .map(|(name, pool)| (name.as_str(), pool.counters(), pool))
            .collect();
        let per_pool = |f: &dyn Fn(&PoolStats) -> f64| -> Vec<(Vec<(&'static str, String)>, f64)> {
            stats
                .iter()
                .map(|(name, s, _)| (vec![("pool", name.to_string())], f(s)))
                .collect()
        };
        let int_per_pool =
            |f: &dyn Fn(&PoolStats) -> i64| -> Vec<(Vec<(&'static str, String)>, i64)> {
                stats
                    .iter()
                    .map(|(name, s, _)| (vec![("pool", name.to_string())], f(s)))
                    .collect()
            };
        let count_per_pool =
            |f: &dyn Fn(&PoolStats) -> u64| -> Vec<(Vec<(&'static str, String)>, u64)> {
                stats
                    .iter()
                    .map(|(name, s, _)| (vec![("pool", name.to_string())], f(s)))
                    .collect()
            };

        let mut by_state = Vec::new();
        for (name, s, _) in &stats {
            let labels =
                |state: &str| vec![("pool", name.to_string()), ("state", state.to_string())];
            by_state.push((labels("active"), i64::from(s.in_use)));
            by_state.push((labels("idle"), i64::from(s.idle)));
        }
        gauge(
            &mut e,
            "pgvigil_pool_connections",
            "Open connections by state: active (checked out) and idle.",
            &by_state,
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_connections_max",
            "Most connections the pool opens (POOL_MAX_CONNECTIONS).",
            &int_per_pool(&|s| i64::from(s.max)),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_connections_min",
            "Connections the pool keeps open when idle (POOL_MIN_CONNECTIONS).",
            &int_per_pool(&|s| i64::from(s.min)),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_connections_pending",
            "Acquires waiting for a connection right now.",
            &int_per_pool(&|s| s.waiters as i64),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_saturation_ratio",
            "Connections in use over the maximum (0 to 1).",
            &per_pool(&|s| s.saturation),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_saturation_warn_ratio",
            "Saturation at which the warning is raised (POOL_SATURATION_WARN).",
            &per_pool(&|s| s.saturation_warn_at),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_saturation_warning",
            "1 while the saturation warning is raised (it clears with hysteresis).",
            &int_per_pool(&|s| i64::from(s.saturation_warning)),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_leaked_connections",
            "Connections checked out longer than POOL_LEAK_THRESHOLD right now.",
            &int_per_pool(&|s| s.leaked.len() as i64),
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_peak_connections_active",
            "Highest number of connections in use at once since the pool started.",
            &int_per_pool(&|s| i64::from(s.peak_in_use)),
        )?;

        counter(
            &mut e,
            "pgvigil_pool_acquisitions",
            "Connections handed out by acquire.",
            &count_per_pool(&|s| s.acquisitions_total),
        )?;
        counter(
            &mut e,
            "pgvigil_pool_acquire_timeouts",
            "Acquires that gave up after POOL_ACQUIRE_TIMEOUT.",
            &count_per_pool(&|s| s.timeouts_total),
        )?;
        let mut errors = Vec::new();
        for (name, s, _) in &stats {
            for (kind, n) in &s.errors_total {
                errors.push((vec![("pool", name.to_string()), ("kind", kind.clone())], *n));
            }
        }
        counter(
            &mut e,
            "pgvigil_pool_acquire_errors",
            "Failed acquires by kind (timeout, io, auth, ...).",
            &errors,
        )?;
        counter(
            &mut e,
            "pgvigil_pool_leaks",
            "Checkouts reported as leaked since the pool started.",
            &count_per_pool(&|s| s.leaks_total),
        )?;
        counter(
            &mut e,
            "pgvigil_pool_connections_created",
            "Connections opened.",
            &count_per_pool(&|s| s.lifecycle.created_total),
        )?;
        let mut closed = Vec::new();
        let mut attempts = Vec::new();
        for (name, s, _) in &stats {
            for (reason, n) in s.lifecycle.closed_by_reason() {
                closed.push((
                    vec![("pool", name.to_string()), ("reason", reason.to_string())],
                    n,
                ));
            }
            attempts.push((
                vec![
                    ("pool", name.to_string()),
                    ("result", "success".to_string()),
                ],
                s.lifecycle.connect_successes_total,
            ));
            attempts.push((
                vec![
                    ("pool", name.to_string()),
                    ("result", "failure".to_string()),
                ],
                s.lifecycle.connect_failures_total,
            ));
        }
        counter(
            &mut e,
            "pgvigil_pool_connections_closed",
            "Connections closed, by reason (idle_timeout, max_lifetime, broken, leaked; reaped: closed by sqlx without a hook).",
            &closed,
        )?;
        counter(
            &mut e,
            "pgvigil_pool_connect_attempts",
            "Attempts to open a connection, by result.",
            &attempts,
        )?;

        let acquire: Vec<_> = stats
            .iter()
            .map(|(name, _, pool)| {
                (
                    [("pool", *name)],
                    pool.acquire_wait_histogram(ACQUIRE_BUCKETS),
                    ACQUIRE_BUCKETS,
                )
            })
            .collect();
        histogram(
            &mut e,
            "pgvigil_pool_acquire_seconds",
            "Time acquire waited for a connection, in seconds.",
            &acquire,
        )?;
        let usage: Vec<_> = stats
            .iter()
            .map(|(name, _, pool)| {
                (
                    [("pool", *name)],
                    pool.usage_histogram(USAGE_BUCKETS),
                    USAGE_BUCKETS,
                )
            })
            .collect();
        histogram(
            &mut e,
            "pgvigil_pool_usage_seconds",
            "Time a connection was held between acquire and return, in seconds.",
            &usage,
        )?;

        // Readiness as last read (a scrape never waits for the database; a stale reading
        // starts a refresh in the background and the next scrape sees it).
        let ready: Vec<_> = stats
            .iter()
            .filter_map(|(name, _, _)| {
                self.readiness
                    .pool_ready(name)
                    .map(|ok| (vec![("pool", name.to_string())], i64::from(ok)))
            })
            .collect();
        gauge(
            &mut e,
            "pgvigil_pool_ready",
            "1 when the last readiness reading of this pool passed or warned, 0 when it failed.",
            &ready,
        )?;
        gauge(
            &mut e,
            "pgvigil_pool_build_info",
            "pgvigil's version; always 1.",
            &[(
                vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                1i64,
            )],
        )?;
        Ok(())
    }
}
