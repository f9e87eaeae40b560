//! How far a long step has come. The dry-run reports it now; the backup, its verification, the
//! rehearsal and the apply will. A step reports through a [`ProgressSink`] it is given and never
//! waits on it: the dashboard turns each report into a message on its one channel, a command
//! prints it, a library user may ignore it ([`ProgressSink::none`]).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// What [`Progress::done`] and [`Progress::total`] count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unit {
    /// Items of the phase: migrations, tables, files, ranges.
    Items,
    /// Bytes (a dump written, a restore read).
    Bytes,
}

/// One report: the phase a step is in and, within it, how much is done of how much (when the
/// total is known; a phase whose size cannot be known in advance reports `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// What the step is doing now, in a few words ("starting the dev database", "applying
    /// migrations"). Written by pgvigil, never by a server.
    pub phase: String,
    /// How much of the phase is done.
    pub done: u64,
    /// How much the phase has in all, when known.
    pub total: Option<u64>,
    /// What `done` and `total` count.
    pub unit: Unit,
}

impl Progress {
    /// A phase that starts (nothing done yet) with `total` items, when known.
    pub fn phase(phase: impl Into<String>, total: Option<u64>) -> Self {
        Self {
            phase: phase.into(),
            done: 0,
            total,
            unit: Unit::Items,
        }
    }

    /// The same phase with `done` items (or bytes) done.
    pub fn at(mut self, done: u64) -> Self {
        self.done = done;
        self
    }

    /// Counting bytes rather than items.
    pub fn in_bytes(mut self) -> Self {
        self.unit = Unit::Bytes;
        self
    }

    /// Done as a fraction of the total, in 0..=1; `None` when the total is unknown (or zero).
    pub fn fraction(&self) -> Option<f64> {
        match self.total {
            Some(t) if t > 0 => Some((self.done.min(t)) as f64 / t as f64),
            _ => None,
        }
    }
}

impl fmt::Display for Progress {
    /// "applying migrations 2/5", "dumping 1.5 MiB", "starting the dev database".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |n: u64| match self.unit {
            Unit::Items => n.to_string(),
            Unit::Bytes => bytes(n),
        };
        match (self.done, self.total) {
            (0, None) => write!(f, "{}", self.phase),
            (done, None) => write!(f, "{} {}", self.phase, count(done)),
            (done, Some(total)) => write!(f, "{} {}/{}", self.phase, count(done), count(total)),
        }
    }
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Where a step sends its [`Progress`]: a callback that must return at once (it runs on the
/// step's task). Cloning shares the callback.
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<dyn Fn(Progress) + Send + Sync>>);

impl ProgressSink {
    /// Reports go nowhere.
    pub fn none() -> Self {
        Self(None)
    }

    /// Each report is handed to `f`.
    pub fn from_fn(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// Each report is sent on `tx`; a closed receiver drops reports, never the step.
    pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<Progress>) -> Self {
        Self::from_fn(move |p| {
            let _ = tx.send(p);
        })
    }

    /// Sends one report.
    pub fn report(&self, progress: Progress) {
        if let Some(f) = &self.0 {
            f(progress);
        }
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(callback)"
        } else {
            "ProgressSink(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_phase_done_of_total() {
        let p = Progress::phase("applying migrations", Some(5)).at(2);
        assert_eq!(p.to_string(), "applying migrations 2/5");
        assert_eq!(p.fraction(), Some(0.4));
        assert_eq!(
            Progress::phase("starting the dev database", None).to_string(),
            "starting the dev database"
        );
        let b = Progress::phase("dumping", None)
            .in_bytes()
            .at(3 * 1024 * 1024 / 2);
        assert_eq!(b.to_string(), "dumping 1.5 MiB");
        assert_eq!(b.fraction(), None);
    }

    #[test]
    fn a_channel_sink_delivers_in_order_and_survives_a_closed_receiver() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = ProgressSink::channel(tx);
        sink.report(Progress::phase("a", Some(2)).at(1));
        sink.report(Progress::phase("a", Some(2)).at(2));
        assert_eq!(rx.try_recv().unwrap().done, 1);
        assert_eq!(rx.try_recv().unwrap().done, 2);
        drop(rx);
        sink.report(Progress::phase("a", Some(2)).at(2));
        ProgressSink::none().report(Progress::phase("b", None));
    }
}
