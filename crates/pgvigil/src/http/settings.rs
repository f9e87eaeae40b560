//! The health settings and the HTTP server's bounds from flags, the environment and .env, with the same rules and errors as
//! the pool's (each error names the flag, variable or file, the value and what is accepted).

use std::path::PathBuf;
use std::time::Duration;

use super::health::{HealthSettings, MigrationRequirement};
use super::server::ServeLimits;
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

impl ServeLimits {
    /// `HTTP_HEADER_READ_TIMEOUT` (at most 10m), `HTTP_IDLE_TIMEOUT` (at most 1d),
    /// `HTTP_MAX_HEADER_BYTES` (1024 to 1048576), `HTTP_MAX_CONNECTIONS` (1 to 65536) and
    /// `HTTP_SHUTDOWN_TIMEOUT` (at most 10m), each from a flag, the environment or .env; unset
    /// ones keep the defaults (5s, 30s, 16384, 512, 10s).
    pub fn from_sources(sources: &ConfigSources) -> Result<Self, ConfigError> {
        let mut s = Self::default();
        let minutes = format!("a duration greater than zero and at most 10m: {ACCEPTED_DURATION}");
        let day = format!("a duration greater than zero and at most 1d: {ACCEPTED_DURATION}");
        if let Some(d) = sources.parse("HTTP_HEADER_READ_TIMEOUT", ten_minutes, &minutes)? {
            s.header_read_timeout = d;
        }
        if let Some(d) = sources.parse("HTTP_IDLE_TIMEOUT", bounded_duration, &day)? {
            s.idle_timeout = d;
        }
        if let Some(n) = sources.parse(
            "HTTP_MAX_HEADER_BYTES",
            |raw| {
                raw.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1024..=1024 * 1024).contains(n))
            },
            "a whole number of bytes from 1024 to 1048576 (the request line and headers)",
        )? {
            s.max_header_bytes = n;
        }
        if let Some(n) = sources.parse(
            "HTTP_MAX_CONNECTIONS",
            |raw| {
                raw.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=65_536).contains(n))
            },
            "a whole number from 1 to 65536",
        )? {
            s.max_connections = n;
        }
        if let Some(d) = sources.parse("HTTP_SHUTDOWN_TIMEOUT", ten_minutes, &minutes)? {
            s.shutdown_timeout = d;
        }
        Ok(s)
    }
}

fn ten_minutes(raw: &str) -> Option<Duration> {
    crate::config::sources::parse_positive_duration(raw).filter(|d| *d <= Duration::from_secs(600))
}
