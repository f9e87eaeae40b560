//! Configuration of the pool and its retries: defaults, a builder for applications that configure
//! in code, and the layering of command-line flags over the environment over a .env file.
//! Every error names the setting (variable, flag or file), the value it got and what is accepted.

mod duration;
pub(crate) mod sources;
mod url;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use self::duration::{ACCEPTED_DURATION, format_duration, parse_duration};
pub use self::sources::{ConfigSources, Origin, SETTINGS};
// How pgvigil reads a file a flag or variable names (a .env file, a `*_FILE` secret, an
// expected-schema snapshot), for an application's own such files (the dashboard's theme).
#[cfg(feature = "scrape")]
pub(crate) use self::url::percent_decode;
pub use self::url::{
    ACCEPTED_PARAMETERS, ACCEPTED_SSLMODES, DatabaseUrl, Target, UrlError, redact_raw,
};
pub use crate::files::{FileError, read_text as read_named_file};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// How long saturation must stay clearly below the warning level before the warning clears,
/// unless configured: the same for pgvigil's own pool and every pool the dashboard reads.
pub const DEFAULT_SATURATION_HOLD: Duration = Duration::from_secs(10);

/// Where a value came from, for error messages: `--pool-max-connections`, `POOL_MAX_CONNECTIONS`
/// (environment) or `POOL_MAX_CONNECTIONS in ./.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag or variable as the user set it (`--pool-max-connections`, `POOL_MAX_CONNECTIONS`).
    pub name: String,
    /// Which source the value came from.
    pub origin: Origin,
}

impl Setting {
    fn code(var: &str) -> Self {
        Self {
            name: var.to_string(),
            origin: Origin::Code,
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Flag => write!(f, "{}", self.name),
            Origin::Env => write!(f, "{} (environment)", self.name),
            Origin::DotEnv(path) => write!(f, "{} in {}", self.name, path.display()),
            Origin::Code => write!(f, "{} (set in code)", self.name),
            Origin::Default => write!(f, "{} (default)", self.name),
        }
    }
}

/// A configuration a user can get wrong, named so it can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("{setting} = `{value}` is not valid: expected {expected}")]
    Invalid {
        /// The setting that holds it.
        setting: Setting,
        /// The value as given.
        value: String,
        /// What would be accepted, in words (`a whole number of at least 1`).
        expected: String,
    },
    /// A required setting (DATABASE_URL) is set nowhere.
    #[error("{setting} is required: expected postgres://user:password@host:5432/database")]
    Missing {
        /// The setting that is missing.
        setting: Setting,
    },
    /// DATABASE_URL was refused.
    #[error("{setting} {problem}")]
    Url {
        /// Where the URL came from.
        setting: Setting,
        /// What is wrong with it.
        problem: UrlError,
    },
    /// Two settings in the wrong order (`POOL_MIN_CONNECTIONS` above `POOL_MAX_CONNECTIONS`).
    #[error(
        "{first} = {first_value} is greater than {second} = {second_value}: expected {first} <= {second}"
    )]
    Order {
        /// The setting that must be the smaller.
        first: Box<Setting>,
        /// Its value, as shown to the user.
        first_value: String,
        /// The setting that must be the larger.
        second: Box<Setting>,
        /// Its value, as shown to the user.
        second_value: String,
    },
    /// The .env file named with `--env-file` cannot be read or parsed.
    #[error(
        "--env-file {path}: cannot read it ({reason}); expected a readable file of KEY=value lines"
    )]
    EnvFile {
        /// The file's path.
        path: String,
        /// Why (the offending line is never quoted: it may hold a password).
        reason: String,
    },
}

/// How retry delays are randomised. Full jitter (a delay drawn from 0..=the capped exponential
/// value) spreads a fleet of clients reconnecting at once; `None` gives the plain schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Each delay drawn uniformly from zero to the scheduled delay.
    Full,
    /// The plain exponential schedule, no randomness.
    None,
}

/// Retry schedule for connecting: `initial * multiplier^n`, capped at `max_delay`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt; `None` retries forever (the dashboard's mode).
    pub max_retries: Option<u32>,
    /// Delay before the first retry (`RETRY_INITIAL_DELAY`, default 1 s).
    pub initial_delay: Duration,
    /// Cap on any one delay (`RETRY_MAX_DELAY`, default 30 s).
    pub max_delay: Duration,
    /// Factor from one delay to the next (`RETRY_MULTIPLIER`, at least 1.0, default 2.0).
    pub multiplier: f64,
    /// Randomisation of the delays (`RETRY_JITTER`, default full).
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: Some(5),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl RetryPolicy {
    /// The same schedule, never giving up.
    pub fn unlimited(mut self) -> Self {
        self.max_retries = None;
        self
    }
}

/// Everything the instrumented pool needs. Build it with [`PoolConfig::builder`] or
/// [`PoolConfig::from_sources`].
#[derive(Debug, Clone, Serialize)]
pub struct PoolConfig {
    /// Where to connect; its password never appears in output.
    pub database_url: DatabaseUrl,
    /// Connections the pool keeps open even when idle (`POOL_MIN_CONNECTIONS`, default 5).
    pub min_connections: u32,
    /// Most connections the pool opens (`POOL_MAX_CONNECTIONS`, default 100).
    pub max_connections: u32,
    /// How long a checkout waits for a free connection before failing (`POOL_ACQUIRE_TIMEOUT`,
    /// default 30 s).
    pub acquire_timeout: Duration,
    /// Bound on each connection attempt as a whole (`POOL_CONNECT_TIMEOUT`, default 30 s).
    pub connect_timeout: Duration,
    /// A connection idle this long is closed, the pool reopening up to its minimum
    /// (`POOL_IDLE_TIMEOUT`, default 10 min; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this age (`POOL_MAX_LIFETIME`, default 30 min; `None`:
    /// never).
    pub max_lifetime: Option<Duration>,
    /// Share of `max_connections` in use (0 to 1) at which the saturation warning is raised
    /// (`POOL_SATURATION_WARN`, default 0.80).
    pub saturation_warn: f64,
    /// How long saturation must stay clearly below the warning level before it clears.
    pub saturation_hold: Duration,
    /// A checkout held longer than this is reported as a possible leak (`POOL_LEAK_THRESHOLD`,
    /// default 30 s).
    pub leak_threshold: Duration,
    /// The server ends a session's transaction left idle this long
    /// (`idle_in_transaction_session_timeout`, from `POOL_IDLE_IN_TRANSACTION_TIMEOUT`, default
    /// 60 s; `None`: the server's own setting). A leaked checkout that left a transaction open
    /// would otherwise hold its locks and snapshot (and block VACUUM) until it came back.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// How often the pool logs its status line at INFO (`POOL_LOG_INTERVAL`, default 60 s;
    /// `None`: never).
    pub log_interval: Option<Duration>,
    /// How connecting is retried.
    pub retry: RetryPolicy,
    /// `application_name` the sessions carry, as seen in pg_stat_activity (`APPLICATION_NAME`,
    /// 1 to 63 bytes, default `pgvigil`).
    pub application_name: String,
    /// Ping a connection before handing it out (sqlx's default). The dashboard turns it off so
    /// that a poll costs no extra round trip; a dead connection then fails the poll instead.
    pub test_before_acquire: bool,
    /// Every session starts READ ONLY with short lock and statement timeouts (see
    /// [`ReadOnlySession`]). pgvigil's own commands and dashboard set it: what they run on the
    /// database behind DATABASE_URL must not be able to change it. An application's pool leaves
    /// it off.
    pub read_only: Option<ReadOnlySession>,
}

/// The guards of a monitoring session, sent as startup parameters so they hold from the first
/// statement: `default_transaction_read_only = on`, and a lock_timeout and statement_timeout so
/// that a read queued behind a migration's lock gives up instead of joining the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadOnlySession {
    /// Give up waiting for a lock after this (default 2 s): a queued read would block everyone
    /// behind it.
    pub lock_timeout: Duration,
    /// Cancel any statement running longer than this (default 60 s).
    pub statement_timeout: Duration,
}

impl ReadOnlySession {
    /// `options` with these guards as startup parameters (`default_transaction_read_only`,
    /// `lock_timeout`, `statement_timeout`): the server applies them before the first statement.
    /// A pooler may refuse or drop them; the production session verifies them after connecting.
    pub(crate) fn startup_parameters(
        &self,
        options: sqlx::postgres::PgConnectOptions,
    ) -> sqlx::postgres::PgConnectOptions {
        let millis = |d: Duration| d.as_millis().max(1);
        options.options([
            ("default_transaction_read_only", "on".to_string()),
            ("lock_timeout", format!("{}ms", millis(self.lock_timeout))),
            (
                "statement_timeout",
                format!("{}ms", millis(self.statement_timeout)),
            ),
        ])
    }
}

impl Default for ReadOnlySession {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolConfig {
    /// This configuration with read-only monitoring sessions.
    pub fn read_only(mut self) -> Self {
        self.read_only = Some(ReadOnlySession::default());
        self
    }

    /// A builder for `database_url` with pgvigil's defaults (see [`PoolConfigBuilder`]).
    pub fn builder(database_url: impl Into<String>) -> PoolConfigBuilder {
        PoolConfigBuilder::new(database_url.into())
    }
}

/// Builder with pgvigil's defaults: min 5, max 100, acquire and connect timeouts 30 s, idle
/// timeout 10 min, max lifetime 30 min, saturation warning at 80 %, leak threshold 30 s, and
/// 5 retries from 1 s doubling to a 30 s cap with full jitter.
#[derive(Clone)]
pub struct PoolConfigBuilder {
    database_url: String,
    min_connections: u32,
    max_connections: u32,
    acquire_timeout: Duration,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    saturation_warn: f64,
    saturation_hold: Duration,
    leak_threshold: Duration,
    idle_in_transaction_timeout: Option<Duration>,
    log_interval: Option<Duration>,
    retry: RetryPolicy,
    application_name: String,
    test_before_acquire: bool,
    /// Where each value came from, so validation errors name the right flag, variable or file.
    origins: HashMap<&'static str, Setting>,
}

impl fmt::Debug for PoolConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is still raw here: never print its password.
        f.debug_struct("PoolConfigBuilder")
            .field("database_url", &redact_raw(&self.database_url))
            .field("min_connections", &self.min_connections)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl PoolConfigBuilder {
    fn new(database_url: String) -> Self {
        Self {
            database_url,
            min_connections: 5,
            max_connections: 100,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            saturation_warn: 0.80,
            saturation_hold: DEFAULT_SATURATION_HOLD,
            leak_threshold: Duration::from_secs(30),
            idle_in_transaction_timeout: Some(Duration::from_secs(60)),
            log_interval: Some(Duration::from_secs(60)),
            retry: RetryPolicy::default(),
            application_name: "pgvigil".into(),
            test_before_acquire: true,
            origins: HashMap::new(),
        }
    }

    /// Connections kept open even when idle (default 5; at most `max_connections`).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }
    /// Most connections the pool opens (default 100; at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
    /// How long a checkout waits for a free connection (default 30 s).
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }
    /// Bound on each connection attempt (default 30 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Close a connection idle this long; the pool reopens up to its minimum (default 10 min;
    /// `None`: never).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }
    /// Replace connections after this age (default 30 min; `None`: never).
    pub fn max_lifetime(mut self, d: Option<Duration>) -> Self {
        self.max_lifetime = d;
        self
    }
    /// Share of `max_connections` in use (above 0, at most 1) that raises the saturation warning
    /// (default 0.80).
    pub fn saturation_warn(mut self, ratio: f64) -> Self {
        self.saturation_warn = ratio;
        self
    }
    /// How long saturation must stay clearly below the warning level before it clears (default
    /// 10 s).
    pub fn saturation_hold(mut self, d: Duration) -> Self {
        self.saturation_hold = d;
        self
    }
    /// A checkout held longer than this is reported as a possible leak (default 30 s).
    pub fn leak_threshold(mut self, d: Duration) -> Self {
        self.leak_threshold = d;
        self
    }
    /// The whole retry schedule at once.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// Retries after the first attempt (default 5; `None`: forever).
    pub fn max_retries(mut self, n: Option<u32>) -> Self {
        self.retry.max_retries = n;
        self
    }
    /// Delay before the first retry (default 1 s).
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.retry.initial_delay = d;
        self
    }
    /// Cap on any one retry delay (default 30 s).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.retry.max_delay = d;
        self
    }
    /// Factor from one retry delay to the next (at least 1.0; default 2.0).
    pub fn multiplier(mut self, m: f64) -> Self {
        self.retry.multiplier = m;
        self
    }
    /// Randomisation of the retry delays (default [`Jitter::Full`]).
    pub fn jitter(mut self, j: Jitter) -> Self {
        self.retry.jitter = j;
        self
    }
    /// `application_name` for the sessions, shown in pg_stat_activity (1 to 63 bytes; default
    /// `pgvigil`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// `POOL_IDLE_IN_TRANSACTION_TIMEOUT`: the server ends a transaction idle this long
    /// (`None`: leave the server's setting).
    pub fn idle_in_transaction_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_in_transaction_timeout = d;
        self
    }

    /// `POOL_LOG_INTERVAL`: how often the status line is logged (`None`: never).
    pub fn log_interval(mut self, d: Option<Duration>) -> Self {
        self.log_interval = d;
        self
    }

    /// Ping a connection before handing it out (default on, as in sqlx).
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    pub(crate) fn origin(mut self, var: &'static str, setting: Setting) -> Self {
        self.origins.insert(var, setting);
        self
    }

    fn setting(&self, var: &'static str) -> Setting {
        self.origins
            .get(var)
            .cloned()
            .unwrap_or_else(|| Setting::code(var))
    }

    fn invalid(&self, var: &'static str, value: impl fmt::Display, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            setting: self.setting(var),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// Validates and produces the configuration.
    pub fn build(self) -> Result<PoolConfig, ConfigError> {
        let database_url =
            DatabaseUrl::parse(&self.database_url).map_err(|problem| ConfigError::Url {
                setting: self.setting("DATABASE_URL"),
                problem,
            })?;
        if self.max_connections < 1 {
            return Err(self.invalid(
                "POOL_MAX_CONNECTIONS",
                self.max_connections,
                "a whole number of at least 1",
            ));
        }
        if self.min_connections > self.max_connections {
            return Err(ConfigError::Order {
                first: Box::new(self.setting("POOL_MIN_CONNECTIONS")),
                first_value: self.min_connections.to_string(),
                second: Box::new(self.setting("POOL_MAX_CONNECTIONS")),
                second_value: self.max_connections.to_string(),
            });
        }
        let positive = format!("a duration greater than zero: {ACCEPTED_DURATION}");
        for (var, d) in [
            ("POOL_ACQUIRE_TIMEOUT", Some(self.acquire_timeout)),
            ("POOL_CONNECT_TIMEOUT", Some(self.connect_timeout)),
            ("POOL_IDLE_TIMEOUT", self.idle_timeout),
            ("POOL_MAX_LIFETIME", self.max_lifetime),
            ("POOL_LEAK_THRESHOLD", Some(self.leak_threshold)),
            (
                "POOL_IDLE_IN_TRANSACTION_TIMEOUT",
                self.idle_in_transaction_timeout,
            ),
            ("POOL_LOG_INTERVAL", self.log_interval),
            ("RETRY_INITIAL_DELAY", Some(self.retry.initial_delay)),
            ("RETRY_MAX_DELAY", Some(self.retry.max_delay)),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(self.invalid(var, "0", &positive));
            }
        }
        // Bounds keep every timestamp pgvigil computes from these (next retry at, ...) finite.
        for (var, d, cap) in [
            ("POOL_ACQUIRE_TIMEOUT", Some(self.acquire_timeout), DAY),
            ("POOL_CONNECT_TIMEOUT", Some(self.connect_timeout), DAY),
            ("POOL_IDLE_TIMEOUT", self.idle_timeout, 7 * DAY),
            ("POOL_MAX_LIFETIME", self.max_lifetime, 7 * DAY),
            ("POOL_LEAK_THRESHOLD", Some(self.leak_threshold), DAY),
            (
                "POOL_IDLE_IN_TRANSACTION_TIMEOUT",
                self.idle_in_transaction_timeout,
                DAY,
            ),
            ("POOL_LOG_INTERVAL", self.log_interval, DAY),
            ("RETRY_INITIAL_DELAY", Some(self.retry.initial_delay), HOUR),
            ("RETRY_MAX_DELAY", Some(self.retry.max_delay), HOUR),
        ] {
            if let Some(d) = d.filter(|d| *d > cap) {
                return Err(self.invalid(
                    var,
                    format_duration(d),
                    &format!("a duration of at most {}", format_duration(cap)),
                ));
            }
        }
        if self.retry.max_delay < self.retry.initial_delay {
            return Err(ConfigError::Order {
                first: Box::new(self.setting("RETRY_INITIAL_DELAY")),
                first_value: format_duration(self.retry.initial_delay),
                second: Box::new(self.setting("RETRY_MAX_DELAY")),
                second_value: format_duration(self.retry.max_delay),
            });
        }
        if !(self.retry.multiplier >= 1.0 && self.retry.multiplier.is_finite()) {
            return Err(self.invalid(
                "RETRY_MULTIPLIER",
                self.retry.multiplier,
                "a number of at least 1.0 (2.0 doubles each delay)",
            ));
        }
        if !(self.saturation_warn > 0.0 && self.saturation_warn <= 1.0) {
            return Err(self.invalid(
                "POOL_SATURATION_WARN",
                self.saturation_warn,
                "a fraction above 0 and at most 1 (0.80 warns at 80 % of max)",
            ));
        }
        if self.application_name.is_empty() || self.application_name.len() > 63 {
            return Err(self.invalid(
                "APPLICATION_NAME",
                &self.application_name,
                "1 to 63 bytes (PostgreSQL truncates longer names; a character such as é counts as 2)",
            ));
        }
        Ok(PoolConfig {
            database_url,
            min_connections: self.min_connections,
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
            saturation_warn: self.saturation_warn,
            saturation_hold: self.saturation_hold,
            leak_threshold: self.leak_threshold,
            idle_in_transaction_timeout: self.idle_in_transaction_timeout,
            log_interval: self.log_interval,
            retry: self.retry,
            application_name: self.application_name,
            test_before_acquire: self.test_before_acquire,
            read_only: None,
        })
    }
}
