//! The connection flags every pgvigil command takes, as clap parses them. The library
//! knows settings by variable name; these flags feed [`pgvigil::config::ConfigSources`].

use std::path::PathBuf;

use pgvigil::config::{ConfigError, ConfigSources};

/// The connection flags shared by every pgvigil command. Each overrides its variable.
#[derive(Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Read variables from this file instead of ./.env (a missing ./.env is fine; a missing
    /// --env-file is an error).
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,
    /// PostgreSQL URL (DATABASE_URL): postgres://user:password@host:5432/db?sslmode=require
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
    /// POOL_MIN_CONNECTIONS (default 5)
    #[arg(long, value_name = "N", global = true)]
    pub pool_min_connections: Option<String>,
    /// POOL_MAX_CONNECTIONS (default 100)
    #[arg(long, value_name = "N", global = true)]
    pub pool_max_connections: Option<String>,
    /// POOL_ACQUIRE_TIMEOUT (default 30s)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_acquire_timeout: Option<String>,
    /// POOL_CONNECT_TIMEOUT, bound on each connect attempt (default 30s)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_connect_timeout: Option<String>,
    /// POOL_IDLE_TIMEOUT (default 10m; `off` keeps idle connections)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_idle_timeout: Option<String>,
    /// POOL_MAX_LIFETIME (default 30m; `off` for no limit)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_max_lifetime: Option<String>,
    /// POOL_SATURATION_WARN, fraction of max in use that raises a warning (default 0.80)
    #[arg(long, value_name = "RATIO", global = true)]
    pub pool_saturation_warn: Option<String>,
    /// POOL_LEAK_THRESHOLD, checkout age reported as a possible leak (default 30s)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_leak_threshold: Option<String>,
    /// POOL_IDLE_IN_TRANSACTION_TIMEOUT, the server ends a transaction idle this long (default 60s; off)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_idle_in_transaction_timeout: Option<String>,
    /// POOL_LOG_INTERVAL, how often the pool's status line is logged (default 60s; off)
    #[arg(long, value_name = "DURATION", global = true)]
    pub pool_log_interval: Option<String>,
    /// RETRY_MAX_RETRIES after the first connect attempt (default 5; `unlimited`)
    #[arg(long, value_name = "N", global = true)]
    pub retry_max_retries: Option<String>,
    /// RETRY_INITIAL_DELAY (default 1s)
    #[arg(long, value_name = "DURATION", global = true)]
    pub retry_initial_delay: Option<String>,
    /// RETRY_MAX_DELAY, cap of the exponential delay (default 30s)
    #[arg(long, value_name = "DURATION", global = true)]
    pub retry_max_delay: Option<String>,
    /// RETRY_MULTIPLIER (default 2.0)
    #[arg(long, value_name = "X", global = true)]
    pub retry_multiplier: Option<String>,
    /// RETRY_JITTER: full or none (default full)
    #[arg(long, value_name = "full|none", global = true)]
    pub retry_jitter: Option<String>,
    /// APPLICATION_NAME shown in pg_stat_activity (default pgvigil)
    #[arg(long, value_name = "NAME", global = true)]
    pub application_name: Option<String>,
}

impl std::fmt::Debug for ConfigArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ConfigArgs");
        d.field("env_file", &self.env_file);
        for (var, value) in self.flag_values() {
            if let Some(v) = value {
                let shown = if var == "DATABASE_URL" {
                    pgvigil::config::redact_raw(v)
                } else {
                    v.clone()
                };
                d.field(var, &shown);
            }
        }
        d.finish()
    }
}

impl ConfigArgs {
    pub fn flag_values(&self) -> [(&'static str, &Option<String>); 17] {
        [
            ("DATABASE_URL", &self.database_url),
            ("POOL_MIN_CONNECTIONS", &self.pool_min_connections),
            ("POOL_MAX_CONNECTIONS", &self.pool_max_connections),
            ("POOL_ACQUIRE_TIMEOUT", &self.pool_acquire_timeout),
            ("POOL_CONNECT_TIMEOUT", &self.pool_connect_timeout),
            ("POOL_IDLE_TIMEOUT", &self.pool_idle_timeout),
            ("POOL_MAX_LIFETIME", &self.pool_max_lifetime),
            ("POOL_SATURATION_WARN", &self.pool_saturation_warn),
            ("POOL_LEAK_THRESHOLD", &self.pool_leak_threshold),
            (
                "POOL_IDLE_IN_TRANSACTION_TIMEOUT",
                &self.pool_idle_in_transaction_timeout,
            ),
            ("POOL_LOG_INTERVAL", &self.pool_log_interval),
            ("RETRY_MAX_RETRIES", &self.retry_max_retries),
            ("RETRY_INITIAL_DELAY", &self.retry_initial_delay),
            ("RETRY_MAX_DELAY", &self.retry_max_delay),
            ("RETRY_MULTIPLIER", &self.retry_multiplier),
            ("RETRY_JITTER", &self.retry_jitter),
            ("APPLICATION_NAME", &self.application_name),
        ]
    }
}

/// The warnings for `--database-url` and `--dev-url` given with a password.
pub fn password_warnings(config: &ConfigArgs, dev_url: Option<&str>) -> Vec<String> {
    [
        ("--database-url", config.database_url.as_deref()),
        ("--dev-url", dev_url),
    ]
    .into_iter()
    .filter_map(|(flag, url)| password_flag_warning(flag, url))
    .collect()
}

/// The same warning for the subcommands' URL flags (`--staging-url`, `--restore-url`), read
/// from the command line itself: their variables (`STAGING_DATABASE_URL`,
/// `RESTORE_DATABASE_URL`) are where a password belongs, and do not warn.
pub fn subcommand_password_warnings(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for flag in ["--staging-url", "--restore-url"] {
        let value = args.iter().enumerate().find_map(|(i, a)| {
            if a == flag {
                args.get(i + 1).map(String::as_str)
            } else {
                a.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
            }
        });
        if let Some(w) = password_flag_warning(flag, value) {
            out.push(w);
        }
    }
    out
}

/// The warning for a connection URL with a password given on the command line, where every
/// local user reads it (`ps`, /proc/PID/cmdline) while pgvigil runs; `None` without one. It
/// names the flag, never the password.
pub fn password_flag_warning(flag: &str, url: Option<&str>) -> Option<String> {
    let raw = url?;
    let has_password = match pgvigil::config::DatabaseUrl::parse(raw) {
        Ok(u) => u.password().is_some(),
        // Unparsable (its own error follows): judge by its shape.
        Err(_) => {
            let userinfo = raw
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(raw)
                .split(['/', '?'])
                .next()
                .unwrap_or("");
            (userinfo.contains('@') && userinfo.split('@').next().is_some_and(|u| u.contains(':')))
                || raw.contains("password=")
        }
    };
    has_password.then(|| {
        let var = match flag {
            "--dev-url" => "DEV_DATABASE_URL",
            "--staging-url" => "STAGING_DATABASE_URL",
            "--restore-url" => "RESTORE_DATABASE_URL",
            _ => "DATABASE_URL",
        };
        format!(
            "warning: the URL given with {flag} carries a password, which every user of this \
             machine can read in `ps` while pgvigil runs; set {var} in the environment or in a \
             .env file (--env-file) instead, or leave the password out of the URL and put it in \
             PGPASSWORD or ~/.pgpass (PGPASSFILE)"
        )
    })
}

/// A flag's value that is not one it accepts; clap names the flag in front of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not valid: expected {accepted}")]
pub struct InvalidValue {
    /// What was given (control characters escaped).
    pub value: String,
    /// What the flag accepts.
    pub accepted: &'static str,
}

impl InvalidValue {
    /// `value` refused; `accepted` says what would do.
    pub fn new(value: &str, accepted: &'static str) -> InvalidValue {
        InvalidValue {
            value: pgvigil::sanitize::printable(value).into_owned(),
            accepted,
        }
    }
}

/// `--max-dev-size`: a size such as 2GiB.
pub fn size_arg(raw: &str) -> Result<u64, InvalidValue> {
    pgvigil::dev::parse_size(raw)
        .filter(|n| *n > 0)
        .ok_or_else(|| InvalidValue::new(raw, pgvigil::dev::ACCEPTED_SIZE))
}

impl ConfigArgs {
    /// The flags given, the process environment and the .env file, as one set of sources.
    pub fn sources(&self) -> Result<ConfigSources, ConfigError> {
        let flags: Vec<(&str, &str)> = self
            .flag_values()
            .into_iter()
            .filter_map(|(var, value)| value.as_deref().map(|v| (var, v)))
            .collect();
        ConfigSources::from_process(flags, self.env_file.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_subcommand_s_url_flag_is_warned_of_naming_its_variable() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let w = subcommand_password_warnings(&args(&[
            "pgvigil",
            "migrate",
            "rehearse",
            "--staging-url",
            "postgres://u:secret@stage/db",
        ]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("--staging-url") && w[0].contains("STAGING_DATABASE_URL"));
        assert!(!w[0].contains("secret"));
        let w = subcommand_password_warnings(&args(&[
            "pgvigil",
            "backup",
            "verify",
            "m.json",
            "--restore-url=postgres://u:secret@scratch/postgres",
        ]));
        assert!(w[0].contains("RESTORE_DATABASE_URL"), "{w:?}");
        assert!(
            subcommand_password_warnings(&args(&[
                "pgvigil",
                "--staging-url",
                "postgres://u@stage/db"
            ]))
            .is_empty()
        );
    }
}
