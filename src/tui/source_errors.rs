//! Which sources are failing and why, so that the log says it once: when a source starts to
//! fail, when its reason changes and when it answers again, never once a tick. The state keeps
//! one of these; `update` asks it with each reading and hands the lines to log out as effects.
//! The reasons stay the sources' own typed errors: "another reason" is a different error, and
//! the words are written only when the line is.

use std::collections::BTreeMap;

use pgvigil::remote::ScrapeError;
use pgvigil::remote::pgbouncer::BouncerError;

/// Why a source failed, as the source said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFailure {
    /// The database link is down: the connector's last error (its words, password removed).
    Database(String),
    /// An application's `/metrics` could not be read or used.
    Scrape(ScrapeError),
    /// The PgBouncer console could not be read.
    Bouncer(BouncerError),
}

impl std::fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceFailure::Database(words) => f.write_str(words),
            SourceFailure::Scrape(e) => write!(f, "{e}"),
            // The reason first, then which console.
            SourceFailure::Bouncer(e) => write!(f, "{} ({})", e.reason, e.target),
        }
    }
}

/// One line for the log about a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLog {
    /// It failed after answering (or at its first reading).
    Failing {
        source: String,
        reason: SourceFailure,
    },
    /// It still fails, for another reason.
    Changed {
        source: String,
        reason: SourceFailure,
    },
    /// It answers again.
    Recovered { source: String },
}

impl SourceLog {
    /// Whether this is a warning (a failure) rather than news of a recovery.
    pub fn is_failure(&self) -> bool {
        !matches!(self, SourceLog::Recovered { .. })
    }
}

impl std::fmt::Display for SourceLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceLog::Failing { source, reason } => write!(f, "{source}: {reason}"),
            SourceLog::Changed { source, reason } => write!(f, "{source}: now {reason}"),
            SourceLog::Recovered { source } => write!(f, "{source}: answering again"),
        }
    }
}

/// The reason each failing source last logged, by source name (`pgbouncer`, `fleet`,
/// `database`, `app HOST:PORT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceErrors(BTreeMap<String, SourceFailure>);

impl SourceErrors {
    /// Notes `source`'s reading: `Some(reason)` when it failed, `None` when it answered.
    /// Returns the line to log, if this reading changes what the log last said.
    pub fn note(&mut self, source: &str, error: Option<SourceFailure>) -> Option<SourceLog> {
        match (self.0.get(source), error) {
            (None, None) => None,
            (Some(_), None) => {
                self.0.remove(source);
                Some(SourceLog::Recovered {
                    source: source.to_string(),
                })
            }
            (Some(last), Some(reason)) if *last == reason => None,
            (last, Some(reason)) => {
                let line = if last.is_some() {
                    SourceLog::Changed {
                        source: source.to_string(),
                        reason: reason.clone(),
                    }
                } else {
                    SourceLog::Failing {
                        source: source.to_string(),
                        reason: reason.clone(),
                    }
                };
                self.0.insert(source.to_string(), reason);
                Some(line)
            }
        }
    }

    /// Whether `source` is failing now.
    pub fn is_failing(&self, source: &str) -> bool {
        self.0.contains_key(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(words: &str) -> Option<SourceFailure> {
        Some(SourceFailure::Database(words.to_string()))
    }

    #[test]
    fn an_error_is_logged_when_it_starts_changes_and_ends_never_each_tick() {
        let mut errors = SourceErrors::default();
        assert_eq!(errors.note("database", None), None);
        let first = errors.note("database", down("no answer within 800ms"));
        assert!(
            matches!(first, Some(SourceLog::Failing { .. })),
            "{first:?}"
        );
        for _ in 0..10 {
            assert_eq!(
                errors.note("database", down("no answer within 800ms")),
                None
            );
        }
        let changed = errors.note("database", down("connection refused"));
        assert_eq!(
            changed.map(|l| l.to_string()).as_deref(),
            Some("database: now connection refused")
        );
        assert!(errors.is_failing("database"));
        assert_eq!(
            errors.note("database", None),
            Some(SourceLog::Recovered {
                source: "database".into()
            })
        );
        assert_eq!(errors.note("database", None), None);
    }
}
