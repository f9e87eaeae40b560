//! Every way out leaves nothing behind. SIGINT and SIGTERM during a command cancel its running
//! statement on the server, drop what it created and exit 130 / 143; what a process killed with
//! SIGKILL left (a scratch database on a dev server, a private cluster) is found and removed by
//! the next run, and nothing that is not pgvigil's is touched.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgvigil_cluster::PrivateCluster;
use support::{cluster, migrated_database, migrations_copy};

/// The `--dev-url` server of this binary.
fn dev() -> &'static PrivateCluster {
    static DEV: LazyLock<PrivateCluster> =
        LazyLock::new(|| PrivateCluster::start_new().expect("dev cluster"));
    &DEV
}

/// One test at a time: they count what is left on the shared dev server.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn spawn(url: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("PGVIGIL_STATE_DIR", support::shared_cache())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

fn sleeping_on_dev() -> String {
    dev()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgvigil\\_scratch\\_%' \
         AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
        )
        .unwrap()
}

fn scratch_on_dev() -> Vec<String> {
    let list = dev()
        .psql(
            "postgres",
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_%'",
        )
        .unwrap();
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A production database with one pending migration that sleeps a minute.
async fn with_sleeping_migration(prefix: &str) -> (String, tempfile::TempDir) {
    let url = migrated_database(cluster(), prefix).await;
    let dir = migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_slow.sql"),
        "SELECT pg_sleep(60);\n",
    )
    .unwrap();
    (url, dir)
}

/// A session of its own holding ACCESS EXCLUSIVE on `documents` of `url` until dropped:
/// pgvigil's reads of the table wait on it.
fn lock_documents(url: &str) -> pgvigil_cluster::LockHolder {
    let db = url.rsplit('/').next().unwrap();
    cluster()
        .hold_lock(db, "documents", "ACCESS EXCLUSIVE")
        .unwrap()
}

/// How many of pgvigil's sessions on the database of `url` wait on a lock.
fn waiting_on_lock(url: &str) -> String {
    let db = url.rsplit('/').next().unwrap();
    cluster()
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND application_name = 'pgvigil' AND wait_event_type = 'Lock'"
            ),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_check_cancels_its_read_on_the_server() {
    let _serial = SERIAL.lock().await;
    let url = migrated_database(cluster(), "sigcheck").await;
    // A session holds ACCESS EXCLUSIVE on documents: the check's reads of it wait.
    let holder = lock_documents(&url);
    let waiting = || waiting_on_lock(&url);
    let mut child = spawn(
        &url,
        &[
            "check",
            "--migrations",
            support::migrations_dir().to_str().unwrap(),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(30), || waiting() == "1"),
        "the check never waited on the lock"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let signalled = Instant::now();
    let code = wait_exit(&mut child, Duration::from_secs(10));
    let took = signalled.elapsed();
    // Checked at once: left alone, the read would wait until its lock_timeout (2 s).
    let left = waiting();
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    assert_eq!(code, Some(143), "{stderr}");
    // Well inside the read's own 2 s lock_timeout: gone because it was cancelled.
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?}: {stderr}"
    );
    assert_eq!(left, "0", "the read still waits on the server: {stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    drop(holder);
}

/// The dashboard's jobs keep no backend of their own to cancel: Esc (`JobRunner::cancel`) and
/// every way out of the dashboard (`JobRunner::shutdown`) drop the job's work, and the
/// library's cleanup cancels the read it had waiting on production.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_dashboard_job_and_leaving_the_dashboard_cancel_its_read_on_production() {
    use pgvigil_cli::tui::jobs::{JobRunner, JobSettings};
    use pgvigil_cli::tui::message::{JobMessage, Message, bus};
    use pgvigil_cli::tui::state::{JobKind, JobOutcome};

    let _serial = SERIAL.lock().await;
    let url = migrated_database(cluster(), "sigjob").await;
    // A session holds ACCESS EXCLUSIVE on documents: the job's reads of it wait.
    let holder = lock_documents(&url);
    let waiting = || waiting_on_lock(&url);
    let gone_within = |limit: Duration| {
        let from = Instant::now();
        wait_until(limit, || waiting() == "0").then(|| from.elapsed())
    };
    let (tx, mut messages) = bus();
    let mut jobs = JobRunner::new(
        std::sync::Arc::new(support::prod_config(&url)),
        JobSettings {
            migrations_dir: support::migrations_dir(),
            expected_file: None,
            dev: support::dev().unwrap(),
        },
        tx,
    );

    // Esc: the UI hears "cancelled", after the job's progress reports.
    jobs.start(1, JobKind::Status);
    assert!(
        wait_until(Duration::from_secs(30), || waiting() == "1"),
        "the job never waited on the lock"
    );
    jobs.cancel(1);
    // Well inside the read's own 2 s lock_timeout: gone because it was cancelled.
    let took = gone_within(Duration::from_millis(1500));
    assert!(
        took.is_some(),
        "the cancelled job's read still waits on the server"
    );
    let mut seen = Vec::new();
    while let Ok(msg) = messages.try_recv() {
        seen.push(match msg {
            Message::Job(JobMessage::Progress { id: 1, progress }) => progress.phase,
            Message::Job(JobMessage::Done {
                id: 1,
                outcome: JobOutcome::Cancelled,
            }) => "cancelled".to_string(),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("cancelled"),
        "{seen:?}"
    );
    assert!(seen.len() >= 2, "progress before the end: {seen:?}");

    // Leaving the dashboard (q, SIGTERM, SIGHUP): shutdown returns with the read cancelled.
    jobs.start(2, JobKind::Status);
    assert!(
        wait_until(Duration::from_secs(30), || waiting() == "1"),
        "the second job never waited on the lock"
    );
    let left = Instant::now();
    jobs.shutdown().await;
    let took = left.elapsed();
    assert_eq!(waiting(), "0", "the job's read outlived the dashboard");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_dry_run_stops_it_on_the_dev_server_and_drops_its_database() {
    let _serial = SERIAL.lock().await;
    let (url, dir) = with_sleeping_migration("sigdry").await;
    let before = scratch_on_dev();
    let mut child = spawn(
        &url,
        &[
            "migrate",
            "dry-run",
            "--dev-url",
            &dev().url("postgres"),
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(
        wait_until(Duration::from_secs(30), || sleeping_on_dev() == "1"),
        "the migration never ran on the dev server"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), Some(130));
    assert_eq!(
        sleeping_on_dev(),
        "0",
        "the migration still runs on the dev server"
    );
    assert_eq!(
        scratch_on_dev(),
        before,
        "its scratch database was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_database_left_by_sigkill_is_dropped_by_the_next_run_and_nothing_else() {
    let _serial = SERIAL.lock().await;
    // Not ours to touch: the right prefix without our comment, and another host's.
    for sql in [
        "DROP DATABASE IF EXISTS pgvigil_scratch_1_2_deadbeef",
        "CREATE DATABASE pgvigil_scratch_1_2_deadbeef",
        "DROP DATABASE IF EXISTS pgvigil_scratch_99999999_1_0",
        "CREATE DATABASE pgvigil_scratch_99999999_1_0",
        "COMMENT ON DATABASE pgvigil_scratch_99999999_1_0 IS 'pgvigil scratch: host=another-host pid=99999999'",
    ] {
        dev().psql("postgres", sql).unwrap();
    }
    let (url, dir) = with_sleeping_migration("sigkill").await;
    let mut child = spawn(
        &url,
        &[
            "migrate",
            "dry-run",
            "--dev-url",
            &dev().url("postgres"),
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(wait_until(Duration::from_secs(30), || sleeping_on_dev() == "1"));
    let killed = format!("pgvigil_scratch_{}_", child.id());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    assert!(
        scratch_on_dev().iter().any(|d| d.starts_with(&killed)),
        "SIGKILL left nothing to find: {:?}",
        scratch_on_dev()
    );
    // The next run (here a dry-run with a quick migration) sweeps it.
    let quick = migrations_copy();
    std::fs::write(
        quick.path().join("20261201000000_quick.sql"),
        "ALTER TABLE documents ADD COLUMN language text;\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["migrate", "dry-run", "--dev-url", &dev().url("postgres")])
        .arg("--migrations")
        .arg(quick.path())
        .env("DATABASE_URL", &url)
        .env("PGVIGIL_STATE_DIR", support::shared_cache())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = scratch_on_dev();
    assert!(
        !left.iter().any(|d| d.starts_with(&killed)),
        "the stale scratch database is still there: {left:?}"
    );
    assert!(
        left.contains(&"pgvigil_scratch_1_2_deadbeef".to_string()),
        "{left:?}"
    );
    assert!(
        left.contains(&"pgvigil_scratch_99999999_1_0".to_string()),
        "{left:?}"
    );
    assert_eq!(sleeping_on_dev(), "0");
    for db in [
        "pgvigil_scratch_1_2_deadbeef",
        "pgvigil_scratch_99999999_1_0",
    ] {
        dev()
            .psql("postgres", &format!("DROP DATABASE {db}"))
            .unwrap();
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_dev_cluster_of_a_killed_run_does_not_outlive_it() {
    let _serial = SERIAL.lock().await;
    let (url, dir) = with_sleeping_migration("sigkillprivate").await;
    let mut child = spawn(
        &url,
        &[
            "migrate",
            "dry-run",
            "--migrations",
            dir.path().to_str().unwrap(),
        ],
    );
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(30), || support::clusters_of(pid)
            .iter()
            .any(|d| d.join("data/postmaster.pid").exists())),
        "no private dev cluster started"
    );
    // Let the migration start on it.
    std::thread::sleep(Duration::from_secs(2));
    let cluster_dirs = support::clusters_of(pid);
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(15), || cluster_dirs
            .iter()
            .all(|d| !d.exists())),
        "the killed run's cluster is still there: {cluster_dirs:?}"
    );
}

#[test]
fn the_sweep_removes_only_clusters_whose_maker_is_gone() {
    let _serial = SERIAL.blocking_lock();
    let tmp = std::env::temp_dir();
    let stale = tmp.join(format!("pgvigil-pg-sweeptest-stale-{}", std::process::id()));
    let live = tmp.join(format!("pgvigil-pg-sweeptest-live-{}", std::process::id()));
    let foreign = tmp.join(format!(
        "pgvigil-pg-sweeptest-foreign-{}",
        std::process::id()
    ));
    for d in [&stale, &live, &foreign] {
        std::fs::create_dir_all(d.join("data")).unwrap();
    }
    // A pid above pid_max cannot be running.
    std::fs::write(stale.join("pgvigil-owner"), "99999999 12345").unwrap();
    let me = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start = me
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    std::fs::write(
        live.join("pgvigil-owner"),
        format!("{} {start}", std::process::id()),
    )
    .unwrap();
    // No owner file: not provably ours.
    let removed = pgvigil_cluster::sweep_stale();
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!stale.exists());
    assert!(live.exists() && foreign.exists());
    let _ = std::fs::remove_dir_all(&live);
    let _ = std::fs::remove_dir_all(&foreign);
}
