//! Layering of configuration sources, highest first: command-line flags, the process
//! environment, a .env file. Values are collected without touching the process environment
//! (so tests and embedding applications can build sources side by side) and then parsed, each
//! remembering its origin so an error can say which flag, variable or file to fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ACCEPTED_DURATION, ConfigError, Jitter, PoolConfig, Setting, parse_duration};

/// Every variable pgvigil reads, with its command-line flag.
pub const SETTINGS: &[(&str, &str)] = &[
    ("DATABASE_URL", "--database-url"),
    ("POOL_MIN_CONNECTIONS", "--pool-min-connections"),
    ("POOL_MAX_CONNECTIONS", "--pool-max-connections"),
    ("POOL_ACQUIRE_TIMEOUT", "--pool-acquire-timeout"),
    ("POOL_CONNECT_TIMEOUT", "--pool-connect-timeout"),
    ("POOL_IDLE_TIMEOUT", "--pool-idle-timeout"),
    ("POOL_MAX_LIFETIME", "--pool-max-lifetime"),
    ("POOL_SATURATION_WARN", "--pool-saturation-warn"),
    ("POOL_LEAK_THRESHOLD", "--pool-leak-threshold"),
    (
        "POOL_IDLE_IN_TRANSACTION_TIMEOUT",
        "--pool-idle-in-transaction-timeout",
    ),
    ("POOL_LOG_INTERVAL", "--pool-log-interval"),
    ("RETRY_MAX_RETRIES", "--retry-max-retries"),
    ("RETRY_INITIAL_DELAY", "--retry-initial-delay"),
    ("RETRY_MAX_DELAY", "--retry-max-delay"),
    ("RETRY_MULTIPLIER", "--retry-multiplier"),
    ("RETRY_JITTER", "--retry-jitter"),
    ("APPLICATION_NAME", "--application-name"),
    ("DEV_DATABASE_URL", "--dev-url"),
    ("HEALTH_READY_TIMEOUT", "--health-ready-timeout"),
    ("HEALTH_CACHE_TTL", "--health-cache-ttl"),
    ("READY_REQUIRE_MIGRATIONS", "--ready-require-migrations"),
    ("READY_CHECK_PGVECTOR", "--ready-check-pgvector"),
    ("EMBEDDING_DIMENSIONS", "--embedding-dimensions"),
    ("MIGRATIONS_DIR", "--migrations"),
    ("HTTP_HEADER_READ_TIMEOUT", "--http-header-read-timeout"),
    ("HTTP_IDLE_TIMEOUT", "--http-idle-timeout"),
    ("HTTP_MAX_HEADER_BYTES", "--http-max-header-bytes"),
    ("HTTP_MAX_CONNECTIONS", "--http-max-connections"),
    ("HTTP_SHUTDOWN_TIMEOUT", "--http-shutdown-timeout"),
    ("APP_METRICS_URLS", "--app"),
    ("PGBOUNCER_URL", "--pgbouncer"),
    ("PROMETHEUS_URL", "--prometheus"),
    ("PROMETHEUS_SELECTOR", "--selector"),
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (`--pool-max-connections`).
    Flag,
    /// The process environment.
    Env,
    /// The .env file at this path.
    DotEnv(PathBuf),
    /// Set in code through [`PoolConfigBuilder`](super::PoolConfigBuilder).
    Code,
    /// Set nowhere: the default, or nothing at all for a required setting that is missing.
    Default,
}

impl std::fmt::Debug for ConfigSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "DATABASE_URL" {
                        super::redact_raw(v)
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect()
        };
        f.debug_struct("ConfigSources")
            .field("flags", &shown(&self.flags))
            .field("env", &shown(&self.env))
            .field("dotenv", &shown(&self.dotenv))
            .field("dotenv_path", &self.dotenv_path)
            .finish()
    }
}

/// Raw values from the three sources, before parsing.
#[derive(Clone, Default)]
pub struct ConfigSources {
    flags: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
    dotenv_path: Option<PathBuf>,
    /// Things worth telling the user that are not errors (a key set twice in the .env file).
    pub warnings: Vec<String>,
}

impl ConfigSources {
    /// Empty sources; add values with [`flag`](Self::flag), [`env`](Self::env) and
    /// [`dotenv_file`](Self::dotenv_file).
    pub fn new() -> Self {
        Self::default()
    }

    /// Flags (by variable name, as a command line parsed them), the real process environment
    /// and the .env file (`env_file`, else ./.env, which may be missing).
    pub fn from_process<'a>(
        flags: impl IntoIterator<Item = (&'a str, &'a str)>,
        env_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let mut sources = Self::new();
        for (var, value) in flags {
            sources = sources.flag(var, value);
        }
        for (var, _) in SETTINGS {
            if let Ok(value) = std::env::var(var) {
                sources = sources.env(var, value);
            }
        }
        match env_file {
            Some(path) => sources.dotenv_file(path, true),
            None => sources.dotenv_file(Path::new(".env"), false),
        }
    }

    /// A flag's value, keyed by its variable name (`POOL_MAX_CONNECTIONS`).
    pub fn flag(mut self, var: &str, value: impl Into<String>) -> Self {
        self.flags.insert(var.to_string(), value.into());
        self
    }

    /// A value as if from the process environment, keyed by variable name: below flags, above
    /// the .env file.
    pub fn env(mut self, var: &str, value: impl Into<String>) -> Self {
        self.env.insert(var.to_string(), value.into());
        self
    }

    /// Reads KEY=value lines from `path`. When `explicit` is false a missing file is fine.
    pub fn dotenv_file(mut self, path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        let file_error = |reason: String| ConfigError::EnvFile {
            path: path.display().to_string(),
            reason,
        };
        // A regular file of at most 1 MiB: /dev/zero or a FIFO must not hang or exhaust us.
        let text = match crate::files::read_text(path, 1024 * 1024) {
            Ok(t) => t,
            Err(crate::files::FileError::Io(e))
                if !explicit && e.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(self);
            }
            Err(e) => {
                return Err(file_error(format!(
                    "{}; expected a regular file of KEY=value lines",
                    e.reason()
                )));
            }
        };
        let mut seen = std::collections::HashSet::new();
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            let (key, value) = item.map_err(|e| file_error(describe_dotenv_error(&e)))?;
            if !seen.insert(key.clone()) {
                tracing::warn!(
                    target: "pgvigil::config",
                    "{}: {key} is set more than once; the last one wins",
                    path.display()
                );
                self.warnings.push(format!(
                    "{}: {key} is set more than once; the last one wins",
                    path.display()
                ));
            }
            self.dotenv.insert(key, value);
        }
        self.dotenv_path = Some(path.to_path_buf());
        Ok(self)
    }

    /// The winning raw value of `var` and where it came from. Empty values count as unset.
    pub fn lookup(&self, var: &'static str) -> Option<(String, Setting)> {
        let flag = SETTINGS
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, f)| *f)
            .unwrap_or(var);
        let candidates = [
            (self.flags.get(var), flag.to_string(), Origin::Flag),
            (self.env.get(var), var.to_string(), Origin::Env),
            (
                self.dotenv.get(var),
                var.to_string(),
                Origin::DotEnv(self.dotenv_path.clone().unwrap_or_default()),
            ),
        ];
        candidates.into_iter().find_map(|(value, name, origin)| {
            value
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v.clone(), Setting { name, origin }))
        })
    }

    /// Parses and validates all settings into a [`PoolConfig`].
    pub fn build(&self) -> Result<PoolConfig, ConfigError> {
        let Some((url, url_setting)) = self.lookup("DATABASE_URL") else {
            return Err(ConfigError::Missing {
                setting: Setting {
                    name: "DATABASE_URL".into(),
                    origin: Origin::Default,
                },
            });
        };
        let positive = format!("a duration greater than zero: {ACCEPTED_DURATION}");
        let mut b = PoolConfig::builder(url).origin("DATABASE_URL", url_setting);
        // Record every origin first, so cross-field errors (min > max) name the right source.
        for (var, _) in SETTINGS {
            if let Some((_, setting)) = self.lookup(var) {
                b = b.origin(var, setting);
            }
        }
        if let Some(n) = self.parse("POOL_MIN_CONNECTIONS", parse_count, COUNT)? {
            b = b.min_connections(n);
        }
        if let Some(n) = self.parse("POOL_MAX_CONNECTIONS", parse_count, COUNT)? {
            b = b.max_connections(n);
        }
        if let Some(d) = self.parse("POOL_ACQUIRE_TIMEOUT", parse_positive_duration, &positive)? {
            b = b.acquire_timeout(d);
        }
        if let Some(d) = self.parse("POOL_CONNECT_TIMEOUT", parse_positive_duration, &positive)? {
            b = b.connect_timeout(d);
        }
        let optional = format!("{positive}, or `off`");
        if let Some(d) = self.parse("POOL_IDLE_TIMEOUT", parse_optional_duration, &optional)? {
            b = b.idle_timeout(d);
        }
        if let Some(d) = self.parse("POOL_MAX_LIFETIME", parse_optional_duration, &optional)? {
            b = b.max_lifetime(d);
        }
        if let Some(r) = self.parse("POOL_SATURATION_WARN", parse_ratio, RATIO)? {
            b = b.saturation_warn(r);
        }
        if let Some(d) = self.parse("POOL_LEAK_THRESHOLD", parse_positive_duration, &positive)? {
            b = b.leak_threshold(d);
        }
        if let Some(d) = self.parse(
            "POOL_IDLE_IN_TRANSACTION_TIMEOUT",
            parse_optional_duration,
            &optional,
        )? {
            b = b.idle_in_transaction_timeout(d);
        }
        if let Some(d) = self.parse("POOL_LOG_INTERVAL", parse_optional_duration, &optional)? {
            b = b.log_interval(d);
        }
        if let Some(n) = self.parse("RETRY_MAX_RETRIES", parse_retries, RETRIES)? {
            b = b.max_retries(n);
        }
        if let Some(d) = self.parse("RETRY_INITIAL_DELAY", parse_positive_duration, &positive)? {
            b = b.initial_delay(d);
        }
        if let Some(d) = self.parse("RETRY_MAX_DELAY", parse_positive_duration, &positive)? {
            b = b.max_delay(d);
        }
        if let Some(m) = self.parse("RETRY_MULTIPLIER", parse_multiplier, MULTIPLIER)? {
            b = b.multiplier(m);
        }
        if let Some(j) = self.parse("RETRY_JITTER", parse_jitter, "full or none")? {
            b = b.jitter(j);
        }
        if let Some((name, _)) = self.lookup("APPLICATION_NAME") {
            b = b.application_name(name);
        }
        b.build()
    }

    pub(crate) fn parse<T>(
        &self,
        var: &'static str,
        parse: fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, setting)) = self.lookup(var) else {
            return Ok(None);
        };
        match parse(&raw) {
            Some(v) => Ok(Some(v)),
            None => Err(ConfigError::Invalid {
                setting,
                value: raw,
                expected: expected.to_string(),
            }),
        }
    }
}

impl PoolConfig {
    /// Configuration from flags, the process environment and .env (see [`ConfigSources`]).
    pub fn from_sources(sources: &ConfigSources) -> Result<Self, ConfigError> {
        sources.build()
    }
}

const COUNT: &str = "a whole number from 0 to 100000";
const RATIO: &str = "a fraction above 0 and at most 1 (`0.8`) or a percentage (`80%`)";
const RETRIES: &str = "a whole number from 0 to 1000, or `unlimited`";
const MULTIPLIER: &str = "a number of at least 1.0 (`2` doubles each delay)";

fn parse_count(raw: &str) -> Option<u32> {
    raw.trim().parse().ok().filter(|n| *n <= 100_000)
}

pub(crate) fn parse_positive_duration(raw: &str) -> Option<Duration> {
    parse_duration(raw).filter(|d| !d.is_zero())
}

fn parse_optional_duration(raw: &str) -> Option<Option<Duration>> {
    match raw.trim() {
        "off" | "none" => Some(None),
        other => parse_positive_duration(other).map(Some),
    }
}

fn parse_ratio(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    let value = match raw.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().ok()? / 100.0,
        None => raw.parse::<f64>().ok()?,
    };
    (value > 0.0 && value <= 1.0).then_some(value)
}

fn parse_retries(raw: &str) -> Option<Option<u32>> {
    match raw.trim() {
        "unlimited" | "inf" | "infinite" => Some(None),
        n => n.parse().ok().filter(|n| *n <= 1000).map(Some),
    }
}

fn parse_multiplier(raw: &str) -> Option<f64> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|m| m.is_finite() && *m >= 1.0)
}

fn parse_jitter(raw: &str) -> Option<Jitter> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "full" => Some(Jitter::Full),
        "none" | "off" => Some(Jitter::None),
        _ => None,
    }
}

/// dotenvy's parse errors quote the offending line, which may hold a password: keep only where.
fn describe_dotenv_error(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => {
            format!("a line could not be parsed near character {index}")
        }
        dotenvy::Error::Io(io) => io.to_string(),
        other => {
            let _ = other;
            "it is not a valid .env file".into()
        }
    }
}
