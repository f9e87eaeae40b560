//! A fleet through Prometheus: one instant query per tick to the Prometheus HTTP API for the
//! fleet's sums and the instances nearest their maximum, so hundreds of pods cost one request,
//! not hundreds of scrapes. The query understands pgvigil's names and both HikariCP families.

use std::time::Duration;

use serde::Deserialize;

use super::bounds::{Kind, shown_value};
use super::scrape::{Endpoint, ScrapeError};
use super::selector::Selector;

/// The fleet's figures at one instant, each checked where it entered (see [`super::bounds`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetFigures {
    /// Instances reporting a pool maximum (0 when none does; else 1 to
    /// [`super::bounds::MAX_INSTANCES`]).
    pub instances: u32,
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

/// How many of the fullest instances the query asks for.
const TOP: usize = 5;

/// A Prometheus server and the selector of the fleet's series.
#[derive(Debug, Clone)]
pub struct Fleet {
    prometheus: Endpoint,
    matchers: String,
    selector: Selector,
}

impl Fleet {
    /// `prometheus` is the server's base URL (`http://prometheus:9090`); `selector` an optional
    /// `{job="docs-api"}`. Errors name `--prometheus` and `--selector`.
    pub fn new(prometheus: &str, selector: Option<&str>) -> Result<Self, ScrapeError> {
        Self::from_settings(prometheus, "--prometheus", selector, "--selector")
    }

    /// As [`new`](Self::new), naming the flags or variables the values came from in errors.
    pub fn from_settings(
        prometheus: &str,
        prometheus_from: &str,
        selector: Option<&str>,
        selector_from: &str,
    ) -> Result<Self, ScrapeError> {
        let prometheus = Endpoint::parse(prometheus, prometheus_from)?;
        let selector = Selector::parse(selector.unwrap_or(""), selector_from)?;
        Ok(Self {
            prometheus,
            matchers: selector.promql(),
            selector,
        })
    }

    /// The selector, as parsed.
    pub fn selector(&self) -> &Selector {
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
                format!("topk({TOP}, sum by (instance) ({active}) / sum by (instance) ({max}))"),
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

/// Reads the instant query's JSON answer; each figure is checked (a NaN, an infinity, a
/// negative or absurd sum, a fractional count, a figure answered twice is an error naming the
/// figure and its value).
pub fn parse_answer(body: &str) -> Result<FleetFigures, ScrapeError> {
    let answer: Answer = serde_json::from_str(body)
        .map_err(|e| ScrapeError::BadAnswer(format!("not a Prometheus answer: {e}")))?;
    if answer.status != "success" {
        return Err(ScrapeError::BadAnswer(format!(
            "Prometheus: {}",
            crate::sanitize::printable(answer.error.as_deref().unwrap_or("error"))
        )));
    }
    let mut f = FleetFigures::default();
    let mut seen = std::collections::BTreeSet::new();
    for s in answer.data.map(|d| d.result).unwrap_or_default() {
        let Some(figure) = s.metric.get("figure").map(String::as_str) else {
            continue;
        };
        let instance = s.metric.get("instance").map(String::as_str);
        let series = super::bounds::shown_series(
            "figure",
            [("figure", figure)]
                .into_iter()
                .chain(instance.map(|i| ("instance", i))),
        );
        if !seen.insert((figure.to_string(), instance.map(str::to_string))) {
            return Err(ScrapeError::BadAnswer(format!(
                "Prometheus answered {series} twice"
            )));
        }
        // Prometheus writes NaN and +Inf as such; anything unreadable is kept as written.
        let text = s.value.1.trim();
        let v: f64 = match text {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            t => t.parse().unwrap_or(f64::NAN),
        };
        let checked = |what: &str, kind: Kind| -> Result<f64, ScrapeError> {
            if kind.admits(v) {
                Ok(v)
            } else {
                Err(ScrapeError::Implausible {
                    series: series.clone(),
                    value: if v.is_nan() && text != "NaN" {
                        format!(
                            "`{}`",
                            crate::sanitize::printable(&text.chars().take(64).collect::<String>())
                        )
                    } else {
                        shown_value(v)
                    },
                    expected: format!("{what} is {}", kind.accepted()),
                })
            }
        };
        match figure {
            "active" => {
                f.active = checked("a fleet's sum of connections in use", Kind::Connections)?
            }
            "max" => f.max = checked("a fleet's sum of pool maximums", Kind::Connections)?,
            "instances" => {
                f.instances = checked("a fleet's instance count", Kind::Instances)? as u32;
            }
            "pending" => {
                f.pending = checked("a fleet's sum of waiting acquires", Kind::Connections)?
            }
            "timeouts_per_minute" => {
                f.timeouts_per_minute = checked("a fleet's acquire-timeout rate", Kind::PerMinute)?;
            }
            // No acquires in the last minute: histogram_quantile answers NaN.
            "acquire_p95" if v.is_nan() && text == "NaN" => {}
            "acquire_p95" => {
                f.acquire_p95 = Some(checked("a fleet's acquire-wait p95", Kind::Seconds)?);
            }
            // An instance with a maximum of 0 and nothing in use: 0/0, not a figure.
            "top" if v.is_nan() && text == "NaN" => {}
            "top" => {
                let saturation = checked("an instance's saturation", Kind::Saturation)?;
                if f.top.len() == TOP {
                    return Err(ScrapeError::BadAnswer(format!(
                        "Prometheus answered more than {TOP} series for `top` (topk({TOP}))"
                    )));
                }
                let name: String = instance.unwrap_or_default().chars().take(200).collect();
                f.top.push((name, saturation));
            }
            _ => {}
        }
    }
    f.top.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(series: &[(&str, &str)]) -> String {
        let result: Vec<String> = series
            .iter()
            .map(|(figure, v)| {
                format!(r#"{{"metric":{{"figure":"{figure}"}},"value":[1700000000.0,"{v}"]}}"#)
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            result.join(",")
        )
    }

    #[test]
    fn a_fleet_answer_with_implausible_figures_is_an_error_naming_them() {
        for (figure, value, shown) in [
            (
                "instances",
                "+Inf",
                "figure{figure=\"instances\"} = +Inf: a fleet's instance count is a whole number from 1 to 10000",
            ),
            (
                "instances",
                "2e7",
                "figure{figure=\"instances\"} = 20000000",
            ),
            ("instances", "2.5", "= 2.5"),
            (
                "max",
                "-2",
                "figure{figure=\"max\"} = -2: a fleet's sum of pool maximums is a whole number from 0 to 1000000",
            ),
            ("max", "9223372036854775807", "= 9.223372036854776e18"),
            ("active", "NaN", "= NaN"),
            ("pending", "banana", "= `banana`"),
            ("acquire_p95", "1e300", "= 1e300"),
            ("timeouts_per_minute", "-Inf", "= -Inf"),
        ] {
            let err = parse_answer(&answer(&[("instances", "2"), (figure, value)]))
                .or_else(|_| parse_answer(&answer(&[(figure, value)])))
                .unwrap_err()
                .to_string();
            assert!(err.contains(shown), "{figure} {value}: {err}");
        }
        // NaN where Prometheus means "no data" is no figure, not an error.
        let f = parse_answer(&answer(&[
            ("instances", "3"),
            ("max", "30"),
            ("acquire_p95", "NaN"),
        ]))
        .unwrap();
        assert_eq!((f.instances, f.max, f.acquire_p95), (3, 30.0, None));
        let twice = parse_answer(&answer(&[("max", "3"), ("max", "4")])).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
    }
}
