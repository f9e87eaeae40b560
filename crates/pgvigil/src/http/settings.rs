//! The health settings from flags, the environment and .env, with the same rules and errors as
//! the pool's (each error names the flag, variable or file, the value and what is accepted).

use std::path::PathBuf;
use std::time::Duration;

use super::health::{HealthSettings, MigrationRequirement};
use crate::config::{ACCEPTED_DURATION, ConfigError, ConfigSources};

const DAY: Duration = Duration::from_secs(86_400);

fn bounded_duration(raw: &str) -> Option<Duration> {
    crate::config::sources::parse_positive_duration(raw).filter(|d| *d <= DAY)
}

impl HealthSettings {
    /// `HEALTH_READY_TIMEOUT`, `HEALTH_CACHE_TTL`, `READY_REQUIRE_MIGRATIONS` (`applied` or
    /// `no-failures`), `READY_CHECK_PGVECTOR` (`true`/`false`), `EMBEDDING_DIMENSIONS` and
    /// `MIGRATIONS_DIR`, each from a flag, the environment or .env; unset ones keep the defaults.
    pub fn from_sources(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let mut s = Self::default();
        let duration = format!("a duration greater than zero and at most 1d: {ACCEPTED_DURATION}");
        if let Some(d) = sources.parse("HEALTH_READY_TIMEOUT", bounded_duration, &duration)? {
            s.ready_timeout = d;
        }
        if let Some(d) = sources.parse("HEALTH_CACHE_TTL", bounded_duration, &duration)? {
            s.cache_ttl = d;
        }
        if let Some(r) = sources.parse(
            "READY_REQUIRE_MIGRATIONS",
            |raw| match raw.trim() {
                "applied" => Some(MigrationRequirement::Applied),
                "no-failures" => Some(MigrationRequirement::NoFailures),
                _ => None,
            },
            "`applied` (pending migrations fail readiness) or `no-failures` (they warn; the default)",
        )? {
            s.require_migrations = r;
        }
        if let Some(b) = sources.parse(
            "READY_CHECK_PGVECTOR",
            |raw| match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => Some(true),
                "false" | "off" | "no" | "0" => Some(false),
                _ => None,
            },
            "true or false",
        )? {
            s.check_pgvector = b;
        }
        if let Some(n) = sources.parse(
            "EMBEDDING_DIMENSIONS",
            |raw| {
                raw.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=16_000).contains(n))
            },
            "a whole number from 1 to 16000 (pgvector's limit for vector)",
        )? {
            s.dimensions = n;
        }
        if let Some((dir, setting)) = sources.lookup("MIGRATIONS_DIR") {
            // Checked now: a mistyped directory would otherwise fail every reading for ever.
            if !std::path::Path::new(&dir).is_dir() {
                return Err(ConfigError::Invalid {
                    setting,
                    value: crate::sanitize::printable(&dir).into_owned(),
                    expected: "a directory of sqlx migrations that exists and can be read"
                        .to_string(),
                });
            }
            s.migrations_dir = Some(PathBuf::from(dir));
        }
        Ok(s)
    }
}
