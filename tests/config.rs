//! Configuration: precedence of flags over the environment over .env, and a named error for
//! every invalid value a user can give.

use std::time::Duration;

use clap::Parser;
use pgvigil::PoolConfig;
use pgvigil::config::{ConfigError, ConfigSources, Jitter};
use pgvigil_cli::args::ConfigArgs;

const URL: &str = "postgres://app:s3cr3t-Pa55@db.internal:5432/prod";

fn dotenv(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), contents).unwrap();
    file
}

#[test]
fn defaults_match_the_documented_values() {
    let c = PoolConfig::builder(URL).build().unwrap();
    assert_eq!((c.min_connections, c.max_connections), (5, 100));
    assert_eq!(c.acquire_timeout, Duration::from_secs(30));
    assert_eq!(c.connect_timeout, Duration::from_secs(30));
    assert_eq!(c.saturation_warn, 0.80);
    assert_eq!(c.leak_threshold, Duration::from_secs(30));
    assert_eq!(c.retry.max_retries, Some(5));
    assert_eq!(c.retry.initial_delay, Duration::from_secs(1));
    assert_eq!(c.retry.max_delay, Duration::from_secs(30));
    assert_eq!(c.retry.multiplier, 2.0);
    assert_eq!(c.retry.jitter, Jitter::Full);
    assert_eq!(c.application_name, "pgvigil");
    // The same defaults come out of an empty environment.
    let from_env = ConfigSources::new()
        .env("DATABASE_URL", URL)
        .build()
        .unwrap();
    assert_eq!(from_env.max_connections, 100);
    assert_eq!(from_env.retry, c.retry);
}

#[test]
fn flag_beats_environment_beats_dotenv() {
    let file = dotenv(&format!(
        "DATABASE_URL={URL}\nPOOL_MAX_CONNECTIONS=7\nPOOL_MIN_CONNECTIONS=2\nRETRY_JITTER=none\n"
    ));
    let dotenv_only = ConfigSources::new().dotenv_file(file.path(), true).unwrap();
    let c = dotenv_only.build().unwrap();
    assert_eq!((c.min_connections, c.max_connections), (2, 7));
    assert_eq!(c.retry.jitter, Jitter::None);

    let with_env = dotenv_only.clone().env("POOL_MAX_CONNECTIONS", "8");
    assert_eq!(with_env.build().unwrap().max_connections, 8);

    let with_flag = with_env.clone().flag("POOL_MAX_CONNECTIONS", "9");
    let c = with_flag.build().unwrap();
    assert_eq!(c.max_connections, 9);
    assert_eq!(
        c.min_connections, 2,
        "untouched values still come from .env"
    );
}

#[test]
fn clap_flags_feed_the_same_layering() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }
    let cli = Cli::try_parse_from([
        "pgvigil",
        "--pool-max-connections",
        "40",
        "--retry-initial-delay",
        "250ms",
        "--pool-idle-timeout",
        "off",
    ])
    .unwrap();
    let mut sources = ConfigSources::new()
        .env("DATABASE_URL", URL)
        .env("POOL_MAX_CONNECTIONS", "10");
    for (var, value) in cli.config.flag_values() {
        if let Some(v) = value {
            sources = sources.flag(var, v.clone());
        }
    }
    let c = sources.build().unwrap();
    assert_eq!(c.max_connections, 40);
    assert_eq!(c.retry.initial_delay, Duration::from_millis(250));
    assert_eq!(c.idle_timeout, None);
}

#[test]
fn missing_default_dotenv_is_fine_but_missing_explicit_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join(".env");
    assert!(ConfigSources::new().dotenv_file(&missing, false).is_ok());
    let err = ConfigSources::new()
        .dotenv_file(&missing, true)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--env-file "), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn unparsable_dotenv_line_does_not_echo_secrets() {
    let file = dotenv("DATABASE_URL='postgres://a:leakme@h/db\nPOOL_MAX_CONNECTIONS=3\n");
    let err = ConfigSources::new()
        .dotenv_file(file.path(), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.path().display().to_string()), "{err}");
    assert!(!err.contains("leakme"), "{err}");
}

/// (variable, value, text the error must contain besides the variable and the value)
const INVALID: &[(&str, &str, &str)] = &[
    ("POOL_MIN_CONNECTIONS", "five", "a whole number"),
    ("POOL_MAX_CONNECTIONS", "-3", "a whole number"),
    ("POOL_MAX_CONNECTIONS", "0", "at least 1"),
    ("POOL_ACQUIRE_TIMEOUT", "soon", "500ms"),
    ("POOL_ACQUIRE_TIMEOUT", "0", "greater than zero"),
    ("POOL_CONNECT_TIMEOUT", "10d", "ms, s, m, h"),
    ("POOL_CONNECT_TIMEOUT", "0s", "greater than zero"),
    ("POOL_IDLE_TIMEOUT", "never", "`off`"),
    ("POOL_MAX_LIFETIME", "0", "greater than zero"),
    ("POOL_SATURATION_WARN", "1.5", "at most 1"),
    ("POOL_SATURATION_WARN", "0", "above 0"),
    ("POOL_LEAK_THRESHOLD", "-1", "500ms"),
    ("RETRY_MAX_RETRIES", "many", "unlimited"),
    ("RETRY_INITIAL_DELAY", "0ms", "greater than zero"),
    ("RETRY_MAX_DELAY", "x", "500ms"),
    ("RETRY_MAX_DELAY", "2h", "at most 1h00m"),
    ("POOL_ACQUIRE_TIMEOUT", "100000h", "at most"),
    ("RETRY_MULTIPLIER", "0.5", "at least 1.0"),
    ("RETRY_MULTIPLIER", "fast", "at least 1.0"),
    ("RETRY_JITTER", "half", "full or none"),
    ("APPLICATION_NAME", "(64 characters, filled in below)", ""),
];

#[test]
fn every_invalid_value_names_the_setting_the_value_and_the_accepted_form() {
    let long_name = "n".repeat(64);
    for (var, value, expected) in INVALID {
        let (value, expected) = if *var == "APPLICATION_NAME" {
            (long_name.as_str(), "1 to 63 bytes")
        } else {
            (*value, *expected)
        };
        // From the environment: the message names the variable.
        let err = ConfigSources::new()
            .env("DATABASE_URL", URL)
            .env(var, value)
            .build()
            .expect_err(&format!("{var}={value} must be refused"));
        let msg = err.to_string();
        assert!(msg.starts_with(var), "{var}: {msg}");
        assert!(msg.contains(value), "{var}: {msg}");
        assert!(msg.contains(expected), "{var}: {msg}");
        assert!(!msg.contains("s3cr3t-Pa55"), "{var}: {msg}");

        // From a flag: the message names the flag.
        let flag = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
        let msg = ConfigSources::new()
            .env("DATABASE_URL", URL)
            .flag(var, value)
            .build()
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&flag), "{flag}: {msg}");

        // From .env: the message names the variable and the file.
        let file = dotenv(&format!("{var}={value}\n"));
        let msg = ConfigSources::new()
            .env("DATABASE_URL", URL)
            .dotenv_file(file.path(), true)
            .unwrap()
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("{var} in {}", file.path().display())),
            "{var}: {msg}"
        );
    }
}

#[test]
fn cross_field_errors_name_both_settings() {
    let err = ConfigSources::new()
        .env("DATABASE_URL", URL)
        .env("POOL_MIN_CONNECTIONS", "50")
        .flag("POOL_MAX_CONNECTIONS", "20")
        .build()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "POOL_MIN_CONNECTIONS (environment) = 50 is greater than --pool-max-connections = 20: \
         expected POOL_MIN_CONNECTIONS (environment) <= --pool-max-connections"
    );
    let err = PoolConfig::builder(URL)
        .initial_delay(Duration::from_secs(60))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Order { .. }), "{err}");
}

#[test]
fn database_url_errors_are_named_and_never_show_the_password() {
    let cases = [
        (
            "mysql://app:s3cr3t-Pa55@h/db",
            "expected postgres:// or postgresql://",
        ),
        ("not a url s3cr3t-Pa55", "is not a URL"),
        (
            "postgres://app:s3cr3t-Pa55@h/db?sslmode=maybe",
            "sslmode=`maybe`",
        ),
        (
            "postgres://app:s3cr3t-Pa55@h/db?sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
            "sslrootcert=`/nonexistent/root.crt`",
        ),
    ];
    for (url, expected) in cases {
        let msg = ConfigSources::new()
            .env("DATABASE_URL", url)
            .build()
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("DATABASE_URL (environment)"), "{msg}");
        assert!(msg.contains(expected), "{msg}");
        assert!(!msg.contains("s3cr3t-Pa55"), "{msg}");
    }
    let msg = ConfigSources::new().build().unwrap_err().to_string();
    assert!(msg.starts_with("DATABASE_URL"), "{msg}");
    assert!(msg.contains("required"), "{msg}");
}

#[test]
fn sslmode_and_sslrootcert_are_honoured() {
    let ca = dotenv("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    let url = format!(
        "postgres://app:pw@db:5432/prod?sslmode=verify-full&sslrootcert={}",
        ca.path().display()
    );
    let c = PoolConfig::builder(url).build().unwrap();
    let options = c.database_url.connect_options();
    assert!(matches!(
        options.get_ssl_mode(),
        sqlx::postgres::PgSslMode::VerifyFull
    ));
    assert_eq!(c.database_url.ssl_root_cert().as_deref(), Some(ca.path()));
}

#[test]
fn config_command_prints_redacted_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .arg("config")
        .env("DATABASE_URL", URL)
        .env("POOL_MAX_CONNECTIONS", "12")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["database_url"],
        "postgres://app:***@db.internal:5432/prod"
    );
    assert_eq!(json["max_connections"], 12);
    assert!(!stdout.contains("s3cr3t-Pa55"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["--pool-min-connections", "lots", "config"])
        .env("DATABASE_URL", URL)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--pool-min-connections = `lots` is not valid"),
        "{stderr}"
    );
}

#[test]
fn debug_output_of_every_config_type_hides_the_password() {
    let builder = PoolConfig::builder(URL);
    let sources = ConfigSources::new()
        .env("DATABASE_URL", URL)
        .flag("DATABASE_URL", URL);
    let args = ConfigArgs {
        database_url: Some(URL.into()),
        ..Default::default()
    };
    let config = builder.clone().build().unwrap();
    for text in [
        format!("{builder:?}"),
        format!("{sources:?}"),
        format!("{args:?}"),
        format!("{config:?}"),
        serde_json::to_string(&config).unwrap(),
    ] {
        assert!(!text.contains("s3cr3t-Pa55"), "{text}");
        assert!(text.contains("app:***@db.internal"), "{text}");
    }
}
