//! A fleet through Prometheus: one instant query per tick to the Prometheus HTTP API for the
//! fleet's sums and the instances nearest their maximum, so hundreds of pods cost one request,
//! not hundreds of scrapes. The query understands pgvigil's names and both HikariCP families.

use std::time::Duration;

use serde::Deserialize;

use super::scrape::{Endpoint, ScrapeError};

/// The fleet's figures at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetFigures {
    /// Instances reporting a pool maximum.
    pub instances: f64,
    /// Connections in use, summed.
    pub active: f64,
    /// Pool maximums, summed.
    pub max: f64,
    /// Waiting acquires, summed.
    pub pending: f64,
    /// Acquire timeouts per minute over the last minute, summed.
    pub timeouts_per_minute: f64,
    /// The fleet's acquire-wait p95 over the last minute, seconds (from the histograms).
    pub acquire_p95: Option<f64>,
    /// The instances nearest their maximum: (instance label, saturation), highest first.
    pub top: Vec<(String, f64)>,
}

/// A Prometheus server and the selector of the fleet's series.
#[derive(Debug, Clone)]
pub struct Fleet {
    prometheus: Endpoint,
    matchers: String,
    selector: String,
}

impl Fleet {
    /// `prometheus` is the server's base URL (`http://prometheus:9090`); `selector` an optional
    /// `{job="docs-api"}`. `what` names the flags for errors.
    pub fn new(prometheus: &str, selector: Option<&str>) -> Result<Self, ScrapeError> {
        let prometheus = Endpoint::parse(prometheus, "--prometheus")?;
        let selector = selector.unwrap_or("").trim().to_string();
        let matchers = match selector.as_str() {
            "" => String::new(),
            s if s.starts_with('{') && s.ends_with('}') && s.len() >= 2 => {
                s[1..s.len() - 1].trim().to_string()
            }
            _ => {
                return Err(ScrapeError::BadUrl {
                    what: "--selector".into(),
                    value: crate::sanitize::printable(&selector).into_owned(),
                    reason: "not a label selector".into(),
                });
            }
        };
        Ok(Self {
            prometheus,
            matchers,
            selector,
        })
    }

    /// The selector as given (for the screen).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The Prometheus URL, password redacted.
    pub fn shown(&self) -> &str {
        self.prometheus.shown()
    }

    fn series(&self, name: &str, extra: &str) -> String {
        let all: Vec<&str> = [extra, self.matchers.as_str()]
            .into_iter()
            .filter(|m| !m.is_empty())
            .collect();
        format!("{name}{{{}}}", all.join(","))
    }

    fn either(&self, names: &[(&str, &str)]) -> String {
        names
            .iter()
            .map(|(n, extra)| self.series(n, extra))
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// The one query: every figure as its own series, told apart by a `figure` label.
    pub fn query(&self) -> String {
        let active = self.either(&[
            ("pgvigil_pool_connections", "state=\"active\""),
            ("hikaricp_connections_active", ""),
            ("hikaricp_active_connections", ""),
        ]);
        let max = self.either(&[
            ("pgvigil_pool_connections_max", ""),
            ("hikaricp_connections_max", ""),
            ("hikaricp_max_connections", ""),
        ]);
        let pending = self.either(&[
            ("pgvigil_pool_connections_pending", ""),
            ("hikaricp_connections_pending", ""),
            ("hikaricp_pending_threads", ""),
        ]);
        let timeouts = [
            "pgvigil_pool_acquire_timeouts_total",
            "hikaricp_connections_timeout_total",
            "hikaricp_connection_timeout_total",
        ]
        .iter()
        .map(|n| format!("rate({}[1m])", self.series(n, "")))
        .collect::<Vec<_>>()
        .join(" or ");
        let buckets = [
            "pgvigil_pool_acquire_seconds_bucket",
            "hikaricp_connections_acquire_seconds_bucket",
        ]
        .iter()
        .map(|n| format!("rate({}[1m])", self.series(n, "")))
        .collect::<Vec<_>>()
        .join(" or ");
        let tag = |expr: String, figure: &str| {
            format!("label_replace({expr}, \"figure\", \"{figure}\", \"\", \"\")")
        };
        [
            tag(format!("sum({active})"), "active"),
            tag(format!("sum({max})"), "max"),
            tag(format!("count(sum by (instance) ({max}))"), "instances"),
            tag(format!("sum({pending})"), "pending"),
            tag(format!("sum({timeouts}) * 60"), "timeouts_per_minute"),
            // HikariCP's native histogram counts nanoseconds: its own quantile, scaled, when
            // no series in seconds exists.
            tag(
                format!(
                    "histogram_quantile(0.95, sum by (le) ({buckets})) or \
                     histogram_quantile(0.95, sum by (le) (rate({}[1m]))) / 1e9",
                    self.series("hikaricp_connection_acquired_nanos_bucket", "")
                ),
                "acquire_p95",
            ),
            tag(
                format!("topk(5, sum by (instance) ({active}) / sum by (instance) ({max}))"),
                "top",
            ),
        ]
        .join(" or ")
    }

    /// Runs the query within `timeout`.
    pub async fn read(&self, timeout: Duration) -> Result<FleetFigures, ScrapeError> {
        let url = self
            .prometheus
            .with_path_and_query("/api/v1/query", &[("query", self.query().as_str())]);
        let body = url.fetch_json(timeout).await?;
        parse_answer(&body)
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// Reads the instant query's JSON answer.
pub fn parse_answer(body: &str) -> Result<FleetFigures, ScrapeError> {
    let answer: Answer = serde_json::from_str(body)
        .map_err(|e| ScrapeError::Http(format!("not a Prometheus answer: {e}")))?;
    if answer.status != "success" {
        return Err(ScrapeError::Http(format!(
            "Prometheus: {}",
            crate::sanitize::printable(answer.error.as_deref().unwrap_or("error"))
        )));
    }
    let mut f = FleetFigures::default();
    for s in answer.data.map(|d| d.result).unwrap_or_default() {
        let v: f64 = s.value.1.parse().unwrap_or(f64::NAN);
        match s.metric.get("figure").map(String::as_str) {
            Some("active") => f.active = v,
            Some("max") => f.max = v,
            Some("instances") => f.instances = v,
            Some("pending") => f.pending = v,
            Some("timeouts_per_minute") => f.timeouts_per_minute = v,
            Some("acquire_p95") if v.is_finite() => f.acquire_p95 = Some(v),
            Some("top") if v.is_finite() => f
                .top
                .push((s.metric.get("instance").cloned().unwrap_or_default(), v)),
            _ => {}
        }
    }
    f.top.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(f)
}
