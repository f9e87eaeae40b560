//! What a figure read from outside (an application's `/metrics`, a Prometheus answer) may be.
//! Every number is checked here where it enters, before anything sums it, sizes anything by it
//! or draws it: finite, within a plausible range, and a whole number where it counts things.
//! A figure outside is an error naming the series and the value, never a NaN on screen, a
//! negative connection count in a PASS or an allocation of one entry per claimed instance.

use std::fmt::Write;

/// The most connections one pool, one instance or a whole fleet can plausibly hold or want:
/// one PostgreSQL serves at most 262,143 backends (`MAX_BACKENDS`), so a million is past any
/// real figure and still far from where sums stop being exact.
pub const MAX_CONNECTIONS: f64 = 1_000_000.0;

/// The longest acquire wait (or histogram bound) that is a figure rather than garbage: a day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// The largest event counter (acquire timeouts, histogram counts): 10^15, below 2^53, where
/// a float still counts every event exactly.
pub const MAX_EVENTS: f64 = 1e15;

/// The largest event rate, per minute (a fleet's acquire timeouts).
pub const MAX_EVENTS_PER_MINUTE: f64 = 1e9;

/// Instances one fleet may report through Prometheus.
pub const MAX_INSTANCES: u32 = 10_000;

/// Pool series (`pgvigil_pool_*`, `hikaricp_*`) read from one target's body; past it the body
/// is refused. pgvigil's own endpoint has a few dozen per pool.
pub const MAX_POOL_SERIES: usize = 10_000;

/// Distinct bucket bounds (`le`) in one histogram; Micrometer's default has 276, pgvigil's 13.
pub const MAX_BUCKETS: usize = 1_000;

/// The kinds of figure, each with its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connections or waiting acquires: a whole number from 0 to [`MAX_CONNECTIONS`].
    Connections,
    /// A counter of events: a whole number from 0 to [`MAX_EVENTS`].
    Events,
    /// Events per minute: a number from 0 to [`MAX_EVENTS_PER_MINUTE`].
    PerMinute,
    /// A duration in seconds: from 0 to [`MAX_SECONDS`].
    Seconds,
    /// A histogram bucket's upper bound in seconds: from 0 to [`MAX_SECONDS`], or +Inf.
    Bound,
    /// Instances of a fleet: a whole number from 1 to [`MAX_INSTANCES`].
    Instances,
    /// In use over the maximum: from 0 to [`MAX_CONNECTIONS`] (a maximum of at least one).
    Saturation,
}

impl Kind {
    /// What the figure may be, for the error.
    pub fn accepted(self) -> String {
        match self {
            Self::Connections => format!("a whole number from 0 to {MAX_CONNECTIONS}"),
            Self::Events => "a whole number from 0 to 1e15".to_string(),
            Self::PerMinute => "a number from 0 to 1e9 per minute".to_string(),
            Self::Seconds => format!("a number of seconds from 0 to {MAX_SECONDS}"),
            Self::Bound => format!("a number of seconds from 0 to {MAX_SECONDS}, or +Inf"),
            Self::Instances => format!("a whole number from 1 to {MAX_INSTANCES}"),
            Self::Saturation => format!("a ratio from 0 to {MAX_CONNECTIONS}"),
        }
    }

    /// Whether `v` is such a figure.
    pub fn admits(self, v: f64) -> bool {
        let whole =
            |v: f64, max: f64| v.is_finite() && v.fract() == 0.0 && (0.0..=max).contains(&v);
        let within = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
        match self {
            Self::Connections => whole(v, MAX_CONNECTIONS),
            Self::Events => whole(v, MAX_EVENTS),
            Self::PerMinute => within(v, MAX_EVENTS_PER_MINUTE),
            Self::Seconds => within(v, MAX_SECONDS),
            Self::Bound => v == f64::INFINITY || within(v, MAX_SECONDS),
            Self::Instances => whole(v, f64::from(MAX_INSTANCES)) && v >= 1.0,
            Self::Saturation => within(v, MAX_CONNECTIONS),
        }
    }
}

/// A value as Prometheus writes it (`NaN`, `+Inf`, `-2`, `1e300`), short enough for one line.
pub fn shown_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v != 0.0 && !(1e-6..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Longest label value quoted in an error; a hostile endpoint's label may be a megabyte.
const SHOWN_LABEL_CHARS: usize = 64;

/// A series as Prometheus writes it, `name{pool="x"}`, its label values escaped for a terminal
/// and shortened.
pub fn shown_series<'a>(
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut out = crate::sanitize::printable(name).into_owned();
    let mut first = true;
    for (k, v) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        let v = crate::sanitize::printable(v);
        let cut: String = v.chars().take(SHOWN_LABEL_CHARS).collect();
        let more = if cut.len() < v.len() { "..." } else { "" };
        let _ = write!(
            out,
            "{}=\"{}{more}\"",
            crate::sanitize::printable(k),
            cut.replace('"', "\\\"")
        );
    }
    if !first {
        out.push('}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_outside_their_range_are_not_admitted() {
        for (kind, good, bad) in [
            (
                Kind::Connections,
                vec![0.0, 20.0, 1e6],
                vec![
                    -2.0,
                    0.5,
                    1e6 + 1.0,
                    f64::NAN,
                    f64::INFINITY,
                    9.223372036854776e18,
                ],
            ),
            (
                Kind::Instances,
                vec![1.0, 10_000.0],
                vec![0.0, 2e7, f64::INFINITY, 1.5],
            ),
            (
                Kind::Seconds,
                vec![0.0, 0.003, 86_400.0],
                vec![-0.1, 1e300, f64::NAN],
            ),
            (
                Kind::Bound,
                vec![0.001, f64::INFINITY],
                vec![f64::NEG_INFINITY, -1.0, 1e9],
            ),
            (Kind::Events, vec![0.0, 4.0], vec![-1.0, 0.5, 1e16]),
            (Kind::PerMinute, vec![0.0, 3.5], vec![-1.0, f64::NAN]),
        ] {
            for v in good {
                assert!(kind.admits(v), "{kind:?} {v}");
            }
            for v in bad {
                assert!(!kind.admits(v), "{kind:?} {v}");
            }
        }
    }

    #[test]
    fn values_and_series_are_shown_as_prometheus_writes_them() {
        assert_eq!(shown_value(-2.0), "-2");
        assert_eq!(shown_value(f64::INFINITY), "+Inf");
        assert_eq!(shown_value(1e300), "1e300");
        assert_eq!(shown_value(9.223372036854776e18), "9.223372036854776e18");
        assert_eq!(shown_value(0.25), "0.25");
        assert_eq!(
            shown_series("hikaricp_connections_max", [("pool", "x")]),
            "hikaricp_connections_max{pool=\"x\"}"
        );
        let long = "a".repeat(1000) + "\x1b[2J";
        let shown = shown_series("x", [("pool", long.as_str())]);
        assert!(shown.len() < 100 && !shown.contains('\x1b'), "{shown}");
        assert_eq!(shown_series("y", []), "y");
    }
}
