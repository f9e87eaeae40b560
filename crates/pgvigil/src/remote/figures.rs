//! Pool figures read from an application's `/metrics`: pgvigil's own names, HikariCP through
//! Micrometer (Spring Boot) and HikariCP's native Prometheus tracker, summed over the `pool`
//! label. A window of readings turns cumulative counters into "per minute" and histogram buckets
//! into a p95 over the last minute.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::exposition::Exposition;

/// Which metric names an endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricFamily {
    /// `pgvigil_pool_*` (the library's `/metrics`).
    Pgvigil,
    /// `hikaricp_connections_*` (Micrometer, Spring Boot).
    HikariMicrometer,
    /// `hikaricp_active_connections`, ... (HikariCP's own Prometheus tracker).
    HikariNative,
}

impl MetricFamily {
    /// A short word for the screen.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pgvigil => "pgvigil",
            Self::HikariMicrometer => "hikaricp",
            Self::HikariNative => "hikaricp-native",
        }
    }
}

/// One scrape's pool figures, summed over the endpoint's pools.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolReading {
    /// The names it used.
    pub family: MetricFamily,
    /// Connections in use.
    pub active: f64,
    /// Idle connections.
    pub idle: f64,
    /// The pools' maximum size.
    pub max: f64,
    /// Threads or tasks waiting for a connection.
    pub pending: f64,
    /// Acquire timeouts since the application started (a counter).
    pub timeouts_total: f64,
    /// Connections held past the leak threshold now (pgvigil only).
    pub leaked: Option<f64>,
    /// Acquire-wait histogram: (upper bound in seconds, cumulative count), when the endpoint
    /// has one.
    pub acquire_buckets: Vec<(f64, f64)>,
    /// The endpoint's own 95th percentile of the acquire wait in seconds (HikariCP's native
    /// summary), when it has no histogram.
    pub acquire_p95_reported: Option<f64>,
}

impl PoolReading {
    /// Reads the figures; `None` when the body has none of the known names.
    pub fn from_exposition(e: &Exposition) -> Option<Self> {
        if e.sum("pgvigil_pool_connections_max").is_some() {
            let by_state = |state: &str| {
                e.named("pgvigil_pool_connections")
                    .filter(|s| s.label("state") == Some(state))
                    .map(|s| s.value)
                    .sum()
            };
            return Some(Self {
                family: MetricFamily::Pgvigil,
                active: by_state("active"),
                idle: by_state("idle"),
                max: e.sum("pgvigil_pool_connections_max").unwrap_or(0.0),
                pending: e.sum("pgvigil_pool_connections_pending").unwrap_or(0.0),
                timeouts_total: e.sum("pgvigil_pool_acquire_timeouts_total").unwrap_or(0.0),
                leaked: e.sum("pgvigil_pool_leaked_connections"),
                acquire_buckets: buckets(e, "pgvigil_pool_acquire_seconds_bucket", 1.0),
                acquire_p95_reported: None,
            });
        }
        if e.sum("hikaricp_connections_max").is_some() {
            return Some(Self {
                family: MetricFamily::HikariMicrometer,
                active: e.sum("hikaricp_connections_active").unwrap_or(0.0),
                idle: e.sum("hikaricp_connections_idle").unwrap_or(0.0),
                max: e.sum("hikaricp_connections_max").unwrap_or(0.0),
                pending: e.sum("hikaricp_connections_pending").unwrap_or(0.0),
                timeouts_total: e.sum("hikaricp_connections_timeout_total").unwrap_or(0.0),
                leaked: None,
                // Present when the Timer publishes its histogram (percentiles-histogram).
                acquire_buckets: buckets(e, "hikaricp_connections_acquire_seconds_bucket", 1.0),
                acquire_p95_reported: None,
            });
        }
        if e.sum("hikaricp_max_connections").is_some() {
            let p95 = e
                .named("hikaricp_connection_acquired_nanos")
                .filter(|s| s.label("quantile") == Some("0.95") && s.value.is_finite())
                .map(|s| s.value / 1e9)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            return Some(Self {
                family: MetricFamily::HikariNative,
                active: e.sum("hikaricp_active_connections").unwrap_or(0.0),
                idle: e.sum("hikaricp_idle_connections").unwrap_or(0.0),
                max: e.sum("hikaricp_max_connections").unwrap_or(0.0),
                pending: e.sum("hikaricp_pending_threads").unwrap_or(0.0),
                timeouts_total: e.sum("hikaricp_connection_timeout_total").unwrap_or(0.0),
                leaked: None,
                // PrometheusHistogramMetricsTrackerFactory: buckets in nanoseconds.
                acquire_buckets: buckets(e, "hikaricp_connection_acquired_nanos_bucket", 1e-9),
                acquire_p95_reported: p95,
            });
        }
        None
    }

    /// Connections in use over the maximum (0 when the maximum is unknown).
    pub fn saturation(&self) -> f64 {
        if self.max > 0.0 {
            self.active / self.max
        } else {
            0.0
        }
    }
}

/// Cumulative bucket counts by upper bound (seconds), summed over every other label.
fn buckets(e: &Exposition, name: &str, scale: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for s in e.named(name) {
        let Some(le) = s.label("le").and_then(|le| match le {
            "+Inf" | "Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        let le = le * scale;
        match out.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += s.value,
            None => out.push((le, s.value)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The `q` quantile of a cumulative histogram (upper bound, count), interpolated linearly
/// within its bucket as Prometheus' histogram_quantile does.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// The readings of one instance over the last minute, for rates and the p95 over the minute.
#[derive(Debug, Default)]
pub struct InstanceWindow {
    readings: VecDeque<(Instant, PoolReading)>,
}

/// What the screen shows for one instance: the last reading and its minute.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFigures {
    /// The last reading.
    pub reading: PoolReading,
    /// Acquire wait p95 over the last minute, seconds (from histogram deltas; the endpoint's
    /// own figure for HikariCP's native tracker).
    pub acquire_p95: Option<f64>,
    /// Acquire timeouts per minute over the window.
    pub timeouts_per_minute: f64,
    /// Highest `active` seen in the window.
    pub peak_active: f64,
}

impl InstanceWindow {
    /// Adds a reading at `at` and forgets those older than a minute (keeping one older as the
    /// base of the deltas).
    pub fn push(&mut self, at: Instant, reading: PoolReading) -> InstanceFigures {
        self.readings.push_back((at, reading));
        while self.readings.len() > 2
            && at.duration_since(self.readings[1].0) >= Duration::from_secs(60)
        {
            self.readings.pop_front();
        }
        let (first_at, first) = &self.readings[0];
        let (_, last) = self.readings.back().expect("just pushed");
        let span = at.duration_since(*first_at).as_secs_f64();
        // A counter that went down means the application restarted: count from zero.
        let timeouts = if last.timeouts_total >= first.timeouts_total {
            last.timeouts_total - first.timeouts_total
        } else {
            last.timeouts_total
        };
        let timeouts_per_minute = if span > 0.0 {
            timeouts * 60.0 / span
        } else {
            0.0
        };
        let acquire_p95 = if !last.acquire_buckets.is_empty() {
            let delta: Vec<(f64, f64)> = if self.readings.len() > 1 {
                last.acquire_buckets
                    .iter()
                    .map(|(b, c)| {
                        let before = first
                            .acquire_buckets
                            .iter()
                            .find(|(fb, _)| fb == b)
                            .map_or(0.0, |(_, fc)| *fc);
                        (*b, if *c >= before { c - before } else { *c })
                    })
                    .collect()
            } else {
                last.acquire_buckets.clone()
            };
            quantile(0.95, &delta)
        } else {
            last.acquire_p95_reported
        };
        let peak_active = self
            .readings
            .iter()
            .map(|(_, r)| r.active)
            .fold(0.0, f64::max);
        InstanceFigures {
            reading: last.clone(),
            acquire_p95,
            timeouts_per_minute,
            peak_active,
        }
    }
}
