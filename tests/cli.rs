//! The `pgvigil check` command as a scheduler runs it: JSON, exit codes, no colour in pipes.

mod support;

use std::process::Command;

use support::{cluster, exec, migrated_database, migrations_dir};

fn pgvigil(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .arg("--migrations")
        .arg(migrations_dir())
        .env("DATABASE_URL", url)
        .env("RETRY_MAX_RETRIES", "0")
        .env("PGVIGIL_STATE_DIR", support::shared_cache())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn json_report_is_stable_and_carries_the_exit_code() {
    let url = migrated_database(cluster(), "clijson").await;
    exec(&url, "ALTER TABLE documents ADD COLUMN language text").await;
    let (code, stdout, stderr) = pgvigil(&url, &["check", "--json", "--knn-samples", "2"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["format"], "pgvigil.check/1");
    assert_eq!(json["status"], "warning");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["counts"]["warn"], 1);
    assert!(json["target"].as_str().unwrap().contains(":***@"));
    let diff = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "schema.diff")
        .unwrap();
    assert_eq!(diff["status"], "warn");
    assert_eq!(
        diff["data"]["entries"][0]["object"],
        "column documents.language"
    );
    assert_eq!(diff["data"]["entries"][0]["kind"], "unexpected");
    assert_eq!(json["migrations"]["entries"][0]["status"], "applied");
    assert!(!stdout.contains(cluster().password()));
}

#[tokio::test]
async fn human_report_has_one_line_per_check_and_no_colour_in_a_pipe() {
    let url = migrated_database(cluster(), "clihuman").await;
    let (code, stdout, _) = pgvigil(&url, &["check", "--knn-samples", "2"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains('\x1b'), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("pgvigil check: postgres://postgres:***@127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 1 + 14 + 1, "{stdout}");
    assert!(
        lines[1..15].iter().all(|l| l.starts_with("PASS ")),
        "{stdout}"
    );
    assert!(
        lines[15].starts_with("OK: 0 failed, 0 warning, 0 unknown, 14 passed in "),
        "{}",
        lines[15]
    );
    let (code, stdout, _) = pgvigil(&url, &["check", "--only", "migrations"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout
            .lines()
            .skip(1)
            .take(5)
            .all(|l| l.contains("migrations.")),
        "{stdout}"
    );
}

#[test]
fn unreachable_database_is_unknown() {
    let (code, stdout, _) = pgvigil("postgres://app:s3cret@127.0.0.1:1/db", &["check", "--json"]);
    assert_eq!(code, Some(3));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["status"], "unknown");
    assert_eq!(json["findings"][0]["id"], "connection");
    assert!(
        json["findings"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("after 1 attempts")
    );
    assert!(!stdout.contains("s3cret"));
}

#[test]
fn bad_configuration_is_unknown_and_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check"])
        .env("DATABASE_URL", "postgres://a@h/db")
        .env("POOL_MAX_CONNECTIONS", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POOL_MAX_CONNECTIONS (environment) = `zero` is not valid"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_are_unknown_and_help_is_ok() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&["check", "--only", "everything"]), Some(3));
    assert_eq!(run(&["--refresh", "20s", "config"]), Some(3));
    assert_eq!(run(&["--help"]), Some(0));
    assert_eq!(run(&["--version"]), Some(0));
}

/// pgvigil without the `--migrations` the check helper adds.
fn plain(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RETRY_MAX_RETRIES", "0")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // `pgvigil check | head`: the reader is gone before pgvigil writes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--json"])
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db")
        .env("RETRY_MAX_RETRIES", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn ping_is_unknown_when_the_database_cannot_be_reached() {
    let (code, _, stderr) = plain("postgres://app:s3cret@127.0.0.1:1/db", &["ping"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("gave up connecting"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_key_set_twice_in_the_env_file_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("pgvigil.env");
    std::fs::write(
        &env,
        "DATABASE_URL=postgres://a:one@h/db\nPOOL_MAX_CONNECTIONS=10\nDATABASE_URL=postgres://a:two@h/db\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["--env-file"])
        .arg(&env)
        .arg("config")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL is set more than once; the last one wins"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("one@") && !stderr.contains("two@"),
        "{stderr}"
    );
}

#[test]
fn an_ipv6_host_in_brackets_connects() {
    let c = pgvigil_cluster::PrivateCluster::start_with(
        pgvigil_cluster::ClusterOptions::default().setting("listen_addresses", "127.0.0.1,::1"),
    )
    .unwrap();
    let url = format!(
        "postgres://postgres:{}@[::1]:{}/postgres",
        c.password(),
        c.port()
    );
    let (code, stdout, stderr) = plain(&url, &["ping"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("\"acquisitions_total\": 1"), "{stdout}");
}

#[tokio::test]
async fn a_standby_is_named_as_such() {
    let c = pgvigil_cluster::PrivateCluster::start_new().unwrap();
    c.create_database("app").unwrap();
    let url = c.url("app");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(migrations_dir())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    drop(conn);
    c.make_standby().unwrap();
    let (code, stdout, stderr) = pgvigil(&url, &["check", "--only", "migrations"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let role = stdout
        .lines()
        .find(|l| l.contains("server.role"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(role.contains("STANDBY"), "{role}");
}

#[test]
fn a_selector_that_is_not_a_label_matcher_list_is_refused_naming_it() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(args)
            .env("DATABASE_URL", "postgres://a@127.0.0.1:1/db")
            .env("RETRY_MAX_RETRIES", "0")
            .envs(env.iter().copied())
            .env_remove("PROMETHEUS_SELECTOR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let injected = r#"{job="a"} or vector(1e300) or {b="c"}"#;
    let accepted = r#"expected {name="v", name=~"re", name!="v", name!~"re", ...}"#;
    // Refused when the flag is read, by `check` and by the dashboard alike, before anything
    // connects; it was pasted into the query.
    for command in [&["check"][..], &[][..]] {
        let mut args = command.to_vec();
        args.extend(["--prometheus", "http://127.0.0.1:9", "--selector", injected]);
        let (code, stderr) = run(&args, &[]);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--selector: `{injected}` is not a label-matcher list (`or vector(1e300) or {{b=\"c\"}}` follows the closing `}}`)"
            )),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(accepted), "{stderr}");
        assert!(!stderr.contains("metrics URL"), "{stderr}");
    }
    // From the environment, the variable is named.
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--prometheus", "http://127.0.0.1:9"])
        .env("DATABASE_URL", "postgres://a@127.0.0.1:1/db")
        .env("PROMETHEUS_SELECTOR", "job=\"a\"")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("PROMETHEUS_SELECTOR (environment): `job=\"a\"` is not a label-matcher list (it does not start with `{`)"),
        "{stderr}"
    );
}

/// A password in `--database-url` is on the command line, which every local user reads in
/// `ps`: pgvigil says so once, without the password, and points at the ways that are not.
#[test]
fn a_password_on_the_command_line_is_warned_about_without_showing_it() {
    let secret = "s3cret-Pa55word";
    let flagged = format!("postgres://app:{secret}@127.0.0.1:5432/app");
    let run = |args: &[&str], env_url: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgvigil"));
        cmd.args(args)
            .env_remove("DATABASE_URL")
            .env_remove("DEV_DATABASE_URL")
            .env("PGVIGIL_STATE_DIR", support::shared_cache())
            .current_dir(std::env::temp_dir());
        if let Some(url) = env_url {
            cmd.env("DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["config", "--database-url", &flagged], None);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("--database-url carries a password"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for way in ["DATABASE_URL", ".env", "PGPASSWORD", ".pgpass", "`ps`"] {
        assert!(warnings[0].contains(way), "{way}: {stderr}");
    }
    assert!(
        !stderr.contains(secret) && !stdout.contains(secret),
        "{stdout}{stderr}"
    );
    // As a password= parameter too.
    let (_, _, stderr) = run(
        &[
            "config",
            "--database-url",
            &format!("postgres://app@127.0.0.1:5432/app?password={secret}"),
        ],
        None,
    );
    assert!(stderr.contains("carries a password"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    // Through the environment, or without a password: nothing to say.
    let (code, _, stderr) = run(&["config"], Some(&flagged));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("carries a password"), "{stderr}");
    let (_, _, stderr) = run(
        &[
            "config",
            "--database-url",
            "postgres://app@127.0.0.1:5432/app",
        ],
        None,
    );
    assert!(!stderr.contains("carries a password"), "{stderr}");
}

#[test]
fn a_bad_flag_value_names_the_flag_the_value_and_what_is_accepted() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--refresh", "20s", "config"],
            "invalid value '20s' for '--refresh <DURATION>': `20s` is not valid: expected a \
             duration from 0.5s to 10s (`500ms`, `1s`, `5s`)",
        ),
        (
            &["migrate", "dry-run", "--max-dev-size", "0"],
            "invalid value '0' for '--max-dev-size <SIZE>': `0` is not valid: expected a size \
             such as 2GiB",
        ),
        (
            &["migrate", "dry-run", "--lock-timeout", "0s"],
            "invalid value '0s' for '--lock-timeout <DURATION>': `0s` is not valid: expected a \
             positive number of seconds",
        ),
        (
            &["check", "--only", "everything"],
            "invalid value 'everything' for '--only <GROUP>': `everything` is not a group of \
             checks; expected pgvector, schema, migrations or pool",
        ),
    ];
    for (args, words) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_pool_source_is_unknown_and_named() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(args)
            .env("DATABASE_URL", "postgres://app@127.0.0.1:1/db")
            .env_remove("PROMETHEUS_URL")
            .env_remove("PGBOUNCER_URL")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["check", "--selector", "{job=\"api\"}"]);
    assert_eq!(code, Some(3));
    assert!(
        stderr.contains("pgvigil: --selector needs --prometheus URL (or PROMETHEUS_URL)"),
        "{stderr}"
    );
    let (code, stderr) = run(&["check", "--pgbouncer", "http://h:6432/pgbouncer"]);
    assert_eq!(code, Some(3));
    assert!(stderr.contains("pgvigil: --pgbouncer: "), "{stderr}");
    assert!(stderr.contains("http"), "the value is named: {stderr}");
}
