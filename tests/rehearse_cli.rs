//! `pgvigil migrate rehearse` as a user runs it: the real binary, a production database with
//! the reference migrations 1-3 applied (the shared cluster), its backup taken and verified by
//! the binary. On the private dev cluster pgvigil starts itself (migrations there run as an
//! ordinary role, so the restored objects must be handed to it) the HNSW migration rehearses
//! and passes, the human report naming the lock, the build and the record, the JSON report
//! its format; SIGINT during a migration on a DEV_DATABASE_URL server exits 130 and leaves no
//! scratch database and nothing running there; the password is in no output.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgvigil_cluster::PrivateCluster;
use pgvigil_test_support::reference_migrations;
use support::cluster;

fn dev() -> &'static PrivateCluster {
    static DEV: LazyLock<PrivateCluster> =
        LazyLock::new(|| PrivateCluster::start_new().expect("a second private PostgreSQL"));
    &DEV
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Production: the reference migrations 1-3 applied by sqlx's migrator, 300 documents.
fn production() -> String {
    static URL: LazyLock<String> = LazyLock::new(|| {
        tokio::runtime::Runtime::new().unwrap().block_on(
            pgvigil_test_support::reference_production(cluster(), "rehearse_cli", 3, 300),
        )
    });
    URL.clone()
}

/// The binary with production's URL; `dev_url`: DEV_DATABASE_URL (else a private cluster).
fn pgvigil(state: &Path, dev_url: bool, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgvigil"));
    cmd.args(args)
        .env("DATABASE_URL", production())
        .env("PGVIGIL_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .env_remove("DEV_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dev_url {
        cmd.env("DEV_DATABASE_URL", dev().url("postgres"));
    }
    cmd
}

fn run(state: &Path, dev_url: bool, args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = pgvigil(state, dev_url, args).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert_no_password(&out);
    assert_no_password(&err);
    (status.code().expect("an exit code, not a signal"), out, err)
}

fn assert_no_password(text: &str) {
    for password in [cluster().password(), dev().password()] {
        assert!(!text.contains(password), "a password in:\n{text}");
    }
}

fn on_dev(sql: &str) -> u64 {
    dev().psql("postgres", sql).unwrap().trim().parse().unwrap()
}

/// A verified backup of production, recorded in `state`; its manifest.
fn verified_backup(state: &Path, dir: &Path, dev_url: bool) -> PathBuf {
    let (code, out, err) = run(
        state,
        dev_url,
        &["backup", "create", "--output", dir.to_str().unwrap()],
    );
    assert_eq!(code, 0, "create:\n{out}\n{err}");
    let manifest = PathBuf::from(out.lines().last().unwrap());
    let (code, out, err) = run(
        state,
        dev_url,
        &["backup", "verify", manifest.to_str().unwrap()],
    );
    assert_eq!(code, 0, "verify:\n{out}\n{err}");
    manifest
}

#[test]
fn the_hnsw_migration_rehearses_on_a_private_cluster_and_is_recorded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = verified_backup(state.path(), &out.path().join("b"), false);
    let migrations = reference_migrations();
    let args = [
        "migrate",
        "rehearse",
        "--migrations",
        migrations.to_str().unwrap(),
        "--busy-interval",
        "1s",
    ];
    let (code, text, err) = run(state.path(), false, &args);
    assert_eq!(code, 0, "rehearse:\n{text}\n{err}");
    assert!(
        text.starts_with("rehearsal PASSED: 1 pending migration(s) rehearsed: passed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("ran on a restored copy of {}", manifest.display())),
        "{text}"
    );
    assert!(
        text.contains("20261101000004 documents embedding hnsw (no-transaction): ok in"),
        "{text}"
    );
    assert!(
        text.contains("SHARE UPDATE EXCLUSIVE on documents held")
            && text.contains("(blocks neither reads nor writes)"),
        "{text}"
    );
    assert!(
        text.contains("built index documents_embedding_hnsw_idx (hnsw on documents): valid"),
        "{text}"
    );
    assert!(text.contains("check PASS rehearsal.ledger"), "{text}");
    let record = state.path().join("rehearsal.json");
    assert!(
        text.contains(&format!(
            "recorded for the apply gate in {}",
            record.display()
        )),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&record).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["format"], "pgvigil.rehearsal-record/1");
    assert_eq!(rec["pending"][0]["version"], 20261101000004_i64);
    assert_eq!(rec["verdict"], "passed");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let (code, text, err) = run(state.path(), false, &json_args);
    assert_eq!(code, 0, "{text}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["format"], "pgvigil.rehearsal/1");
    assert_eq!(report["migrations"][0]["outcome"], "succeeded");
    assert_eq!(
        report["migrations"][0]["indexes_built"][0]["valid"],
        serde_json::Value::Bool(true)
    );
}

#[test]
fn sigint_during_a_migration_leaves_nothing_on_the_dev_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = verified_backup(state.path(), &out.path().join("b"), true);
    let dir = out.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(reference_migrations()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    std::fs::write(
        dir.join("20261201000001_slow.sql"),
        "LOCK TABLE documents IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(60);\n",
    )
    .unwrap();
    let mut child = pgvigil(
        state.path(),
        true,
        &[
            "migrate",
            "rehearse",
            "--from",
            manifest.to_str().unwrap(),
            "--migrations",
            dir.to_str().unwrap(),
            "--busy-interval",
            "1s",
        ],
    )
    .spawn()
    .unwrap();
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()";
    let started = Instant::now();
    while on_dev(running) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the slow migration never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "rehearse ended before the slow migration"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_no_password(&err);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "it took {:?} to stop",
        signalled.elapsed()
    );
    assert_eq!(
        on_dev(running),
        0,
        "the migration's statement was cancelled"
    );
    assert_eq!(
        on_dev("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_%'"),
        0,
        "the restored copy was dropped"
    );
    assert!(
        !state.path().join("rehearsal.json").exists(),
        "an interrupted rehearsal records nothing"
    );
}

#[test]
fn sigint_during_a_migration_on_a_staging_server_cancels_its_statement() {
    // On a staging server nothing is dropped afterwards, so only the cancel can end the
    // migration's statement: this shows the cancel itself.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let staging = tokio::runtime::Runtime::new().unwrap().block_on(
        pgvigil_test_support::reference_production(dev(), "staging", 3, 20),
    );
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(reference_migrations()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    std::fs::write(
        dir.path().join("20261201000001_slow.sql"),
        "SELECT pg_sleep(61);\n",
    )
    .unwrap();
    let mut child = pgvigil(
        state.path(),
        false,
        &[
            "migrate",
            "rehearse",
            "--migrations",
            dir.path().to_str().unwrap(),
            "--busy-interval",
            "1s",
        ],
    )
    .env("STAGING_DATABASE_URL", &staging)
    .spawn()
    .unwrap();
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(61)%' AND pid <> pg_backend_pid()";
    let started = Instant::now();
    while on_dev(running) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the slow migration never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "rehearse ended before the slow migration"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_no_password(&err);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert_eq!(
        on_dev(running),
        0,
        "the migration's statement was cancelled"
    );
}

#[test]
fn a_staging_url_equal_to_production_is_refused_with_exit_3() {
    let state = tempfile::tempdir().unwrap();
    let url = production();
    let (code, out, err) = run(
        state.path(),
        false,
        &["migrate", "rehearse", "--staging-url", &url],
    );
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains("warning: the URL given with --staging-url carries a password")
            && err.contains("STAGING_DATABASE_URL"),
        "{err}"
    );
    assert!(err.contains("--staging-url"), "{err}");
    assert!(err.contains("never runs on production"), "{err}");
}
