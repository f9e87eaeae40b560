//! Pool figures read from an application's `/metrics`: pgvigil's own names, HikariCP through
//! Micrometer (Spring Boot) and HikariCP's native Prometheus tracker, summed over the `pool`
//! label. A window of readings turns cumulative counters into "per minute" and histogram buckets
//! into a p95 over the last minute.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bounds::{Kind, MAX_BUCKETS, shown_series, shown_value};
use super::exposition::{Exposition, Sample};
use super::scrape::ScrapeError;

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
    /// The values of the `pool` label on its maximum (the pool's, or the application's,
    /// name: pgvigil labels its pool with the application_name), sorted, at most
    /// [`MAX_POOL_NAMES`]. Text from the endpoint: escape it before showing it.
    pub pools: Vec<String>,
}

/// How many pool names a reading keeps (an instance with more is named by its first ones).
pub const MAX_POOL_NAMES: usize = 4;

/// The distinct `pool` labels of the samples called `name`.
fn pool_names(e: &Exposition, name: &str) -> Vec<String> {
    let mut names: Vec<String> = e
        .named(name)
        .filter_map(|s| s.label("pool"))
        .filter(|p| !p.is_empty())
        .map(|p| p.chars().take(64).collect())
        .collect();
    names.sort();
    names.dedup();
    names.truncate(MAX_POOL_NAMES);
    names
}

impl PoolReading {
    /// Reads the figures, each checked where it enters (see [`super::bounds`]): an
    /// implausible one is an error naming the series and its value;
    /// [`ScrapeError::NoPoolMetrics`] when the body has none of the known names.
    pub(crate) fn from_exposition(e: &Exposition) -> Result<Self, ScrapeError> {
        use Kind::{Connections, Events};
        if e.has("pgvigil_pool_connections_max") {
            let by_state = |state: &str| {
                total_where(
                    e,
                    "pgvigil_pool_connections",
                    |s| s.label("state") == Some(state),
                    "a connection count",
                    Connections,
                )
            };
            return Ok(Self {
                family: MetricFamily::Pgvigil,
                active: by_state("active")?.unwrap_or(0.0),
                idle: by_state("idle")?.unwrap_or(0.0),
                max: total(e, "pgvigil_pool_connections_max", MAXIMUM, Connections)?.unwrap_or(0.0),
                pending: total(e, "pgvigil_pool_connections_pending", PENDING, Connections)?
                    .unwrap_or(0.0),
                timeouts_total: total(e, "pgvigil_pool_acquire_timeouts_total", TIMEOUTS, Events)?
                    .unwrap_or(0.0),
                leaked: total(
                    e,
                    "pgvigil_pool_leaked_connections",
                    "a count of leaked connections",
                    Connections,
                )?,
                acquire_buckets: buckets(e, "pgvigil_pool_acquire_seconds_bucket", 1.0)?,
                acquire_p95_reported: None,
                pools: pool_names(e, "pgvigil_pool_connections_max"),
            });
        }
        if e.has("hikaricp_connections_max") {
            return Ok(Self {
                family: MetricFamily::HikariMicrometer,
                active: total(e, "hikaricp_connections_active", ACTIVE, Connections)?
                    .unwrap_or(0.0),
                idle: total(e, "hikaricp_connections_idle", IDLE, Connections)?.unwrap_or(0.0),
                max: total(e, "hikaricp_connections_max", MAXIMUM, Connections)?.unwrap_or(0.0),
                pending: total(e, "hikaricp_connections_pending", PENDING, Connections)?
                    .unwrap_or(0.0),
                timeouts_total: total(e, "hikaricp_connections_timeout_total", TIMEOUTS, Events)?
                    .unwrap_or(0.0),
                leaked: None,
                // Present when the Timer publishes its histogram (percentiles-histogram).
                acquire_buckets: buckets(e, "hikaricp_connections_acquire_seconds_bucket", 1.0)?,
                acquire_p95_reported: None,
                pools: pool_names(e, "hikaricp_connections_max"),
            });
        }
        if e.has("hikaricp_max_connections") {
            // A summary with no observations yet reports NaN quantiles: no figure, not an error.
            let mut p95: Option<f64> = None;
            for s in e
                .named("hikaricp_connection_acquired_nanos")
                .filter(|s| s.label("quantile") == Some("0.95") && !s.value.is_nan())
            {
                let seconds = s.value / 1e9;
                check(
                    s,
                    seconds,
                    "an acquire-wait quantile (in seconds)",
                    Kind::Seconds,
                )?;
                p95 = Some(p95.map_or(seconds, |m| m.max(seconds)));
            }
            return Ok(Self {
                family: MetricFamily::HikariNative,
                active: total(e, "hikaricp_active_connections", ACTIVE, Connections)?
                    .unwrap_or(0.0),
                idle: total(e, "hikaricp_idle_connections", IDLE, Connections)?.unwrap_or(0.0),
                max: total(e, "hikaricp_max_connections", MAXIMUM, Connections)?.unwrap_or(0.0),
                pending: total(e, "hikaricp_pending_threads", PENDING, Connections)?.unwrap_or(0.0),
                timeouts_total: total(e, "hikaricp_connection_timeout_total", TIMEOUTS, Events)?
                    .unwrap_or(0.0),
                leaked: None,
                // PrometheusHistogramMetricsTrackerFactory: buckets in nanoseconds.
                acquire_buckets: buckets(e, "hikaricp_connection_acquired_nanos_bucket", 1e-9)?,
                acquire_p95_reported: p95,
                pools: pool_names(e, "hikaricp_max_connections"),
            });
        }
        Err(ScrapeError::NoPoolMetrics(e.sample_lines()))
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

const ACTIVE: &str = "a count of connections in use";
const IDLE: &str = "a count of idle connections";
const MAXIMUM: &str = "a pool maximum";
const PENDING: &str = "a count of waiting acquires";
const TIMEOUTS: &str = "an acquire-timeout counter";

fn implausible(series: String, value: f64, what: &str, kind: Kind) -> ScrapeError {
    ScrapeError::Implausible {
        series,
        value: shown_value(value),
        expected: format!("{what} is {}", kind.accepted()),
    }
}

/// `value` (read from `s`, perhaps scaled) as a `kind`, or the error naming `s`.
fn check(s: &Sample, value: f64, what: &str, kind: Kind) -> Result<f64, ScrapeError> {
    if kind.admits(value) {
        return Ok(value);
    }
    Err(implausible(
        shown_series(
            &s.name,
            s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
        s.value,
        what,
        kind,
    ))
}

fn total(e: &Exposition, name: &str, what: &str, kind: Kind) -> Result<Option<f64>, ScrapeError> {
    total_where(e, name, |_| true, what, kind)
}

/// The sum of the samples called `name` that `keep` accepts, over their pools: each sample and
/// the sum checked as `kind`. `None` when there is none.
fn total_where(
    e: &Exposition,
    name: &str,
    keep: impl Fn(&Sample) -> bool,
    what: &str,
    kind: Kind,
) -> Result<Option<f64>, ScrapeError> {
    let mut sum = None;
    let mut series = 0;
    for s in e.named(name).filter(|s| keep(s)) {
        let v = check(s, s.value, what, kind)?;
        sum = Some(sum.unwrap_or(0.0) + v);
        series += 1;
    }
    match sum {
        Some(v) if !kind.admits(v) => Err(implausible(
            format!("{name} (summed over {series} series)"),
            v,
            what,
            kind,
        )),
        other => Ok(other),
    }
}

/// Cumulative bucket counts by upper bound (seconds), summed over every other label, in
/// ascending order of bound: sorted once, then merged, so n log n in the body's buckets, and
/// refused past [`MAX_BUCKETS`] distinct bounds.
fn buckets(e: &Exposition, name: &str, scale: f64) -> Result<Vec<(f64, f64)>, ScrapeError> {
    let mut all: Vec<(f64, f64)> = Vec::new();
    for s in e.named(name) {
        let le = s.label("le").unwrap_or("");
        let bound = match le {
            "+Inf" | "Inf" => f64::INFINITY,
            v => v.trim().parse::<f64>().unwrap_or(f64::NAN) * scale,
        };
        if !Kind::Bound.admits(bound) {
            return Err(ScrapeError::Implausible {
                series: shown_series(
                    &s.name,
                    s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                value: format!(
                    "le=\"{}\"",
                    crate::sanitize::printable(&le.chars().take(64).collect::<String>())
                ),
                expected: format!("a bucket bound is {}", Kind::Bound.accepted()),
            });
        }
        let count = check(s, s.value, "a bucket count", Kind::Events)?;
        all.push((bound, count));
    }
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (bound, count) in all {
        if let Some((b, c)) = out.last_mut()
            && *b == bound
        {
            *c += count;
        } else if out.len() == MAX_BUCKETS {
            return Err(ScrapeError::TooManyBuckets(name.to_string()));
        } else {
            out.push((bound, count));
        }
    }
    if let Some(&(bound, count)) = out.iter().find(|(_, c)| !Kind::Events.admits(*c)) {
        return Err(implausible(
            format!(
                "{name}{{le=\"{}\"}} (summed over pools)",
                shown_value(bound / scale)
            ),
            count,
            "a bucket count",
            Kind::Events,
        ));
    }
    Ok(out)
}

/// The `q` quantile of a cumulative histogram (upper bound, count), interpolated linearly
/// within its bucket as Prometheus' histogram_quantile does.
pub(crate) fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
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

/// The counts `after` added to `before`, per bound: both ascending by bound (as [`buckets`]
/// leaves them), walked together once. A bound new in `after` counts from zero; a count that
/// went down means the application restarted, so it counts from zero too.
fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut earlier = before.iter().peekable();
    after
        .iter()
        .map(|&(bound, count)| {
            while earlier.next_if(|(b, _)| *b < bound).is_some() {}
            let base = earlier
                .next_if(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (bound, if count >= base { count - base } else { count })
        })
        .collect()
}

/// What the screen shows for one instance: the last reading (its gauges; the histogram stays
/// in the window) and its minute.
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
            if self.readings.len() > 1 {
                quantile(
                    0.95,
                    &bucket_delta(&first.acquire_buckets, &last.acquire_buckets),
                )
            } else {
                quantile(0.95, &last.acquire_buckets)
            }
        } else {
            last.acquire_p95_reported
        };
        let peak_active = self
            .readings
            .iter()
            .map(|(_, r)| r.active)
            .fold(0.0, f64::max);
        // The histogram stays here: the screen needs its p95, not a thousand buckets per
        // instance copied into every snapshot.
        let reading = PoolReading {
            acquire_buckets: Vec::new(),
            ..last.clone()
        };
        InstanceFigures {
            reading,
            acquire_p95,
            timeouts_per_minute,
            peak_active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_keeps_the_names_of_its_pools() {
        let e = crate::remote::exposition::parse(
            "hikaricp_connections_max{pool=\"orders\"} 10\n\
             hikaricp_connections_max{pool=\"billing\"} 5\n",
        )
        .unwrap();
        let r = PoolReading::from_exposition(&e).unwrap();
        assert_eq!(r.pools, ["billing", "orders"]);
        assert_eq!(r.max, 15.0);
    }
}
