//! `pgvigil demo` in a real terminal: three instances of the documents API and PgBouncer on
//! screen, the lock scene, the source key, and nothing left after quitting. A binary of its
//! own: the demo loads 3072-dimension vectors and drives 18 clients, which would crowd the
//! timing of the other terminal tests.

mod support;

use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::exposure::{count_entries, open_to_others};
use support::pane::{Pane, pgvigil_pid, processes_mentioning};

/// One demo at a time: each loads 3072-dimension vectors and drives 18 clients, and the
/// first test's timings assume it has the machine to itself.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn the_demo_serves_through_three_documents_api_instances_and_pgbouncer_then_quits_clean() {
    let _serial = one_at_a_time();
    // Everything the demo creates (its cluster, PgBouncer's files) goes under this TMPDIR, so
    // what is left after quitting is visible and nothing of other tests is mistaken for it.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tmpdir = tmp.path().to_str().unwrap().to_string();
    let pane = Pane::start("demo", (120, 40), &[("TMPDIR", &tmpdir)], &["demo"]);
    pane.wait_for("3/3 answering", Duration::from_secs(120));
    // The database line (its rates), then the pool of its one (pooled, non-superuser) user.
    pane.wait_for("pgbouncer app:", Duration::from_secs(10));
    pane.wait_for("app/pooled_", Duration::from_secs(10));
    pane.wait_for("Pool: all sources (s cycles)", Duration::from_secs(10));
    // The instances are the documents API: their own application names on the server side.
    pane.wait_for("docs-api-3", Duration::from_secs(30));
    // The batch job's lock holds the API's inserts for its source: lock waiters appear while
    // docs-batch is connected. (A short row-lock wait between two API instances also reads
    // "blocked by"; the screen that counts shows both.)
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut screen = pane.screen();
    while !(screen.contains("blocked by") && screen.contains("docs-batch")) {
        assert!(
            Instant::now() < deadline,
            "no lock waiter behind docs-batch within 150 s: {screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
        screen = pane.screen();
    }
    pane.keys("s");
    pane.wait_for("Pool: applications (s cycles)", Duration::from_secs(5));
    pane.keys("s");
    let (screen, _) = pane.wait_for("Pool: pgbouncer (s cycles)", Duration::from_secs(5));
    assert!(screen.contains("lists: clients"), "{screen}");
    assert!(
        !processes_mentioning(&tmpdir).is_empty(),
        "the demo's PostgreSQL and PgBouncer run under TMPDIR"
    );
    let quit_at = Instant::now();
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(30)).as_deref(),
        Some("0")
    );
    let quit_took = quit_at.elapsed();
    // Every process and every file of the demo is gone.
    let started = Instant::now();
    while !processes_mentioning(&tmpdir).is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_mentioning(&tmpdir), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!("demo quit in {quit_took:?}");
}

/// A TMPDIR of the test's own for the demos it starts (0755: the postgres account must reach
/// the directories the demo makes in it).
fn demo_tmpdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    tmp
}

/// The directories in `tmp` whose names start with `prefix`.
fn dirs_named(tmp: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// The PgBouncer processes running from `dir`.
fn bouncers_in(dir: &Path) -> Vec<String> {
    processes_mentioning(&dir.join("pgbouncer.ini").display().to_string())
        .into_iter()
        .filter(|p| p.contains("/usr/sbin/pgbouncer"))
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// A demo in a pane, up to the point where its PgBouncer serves the third instance; its pid,
/// its cluster's and its PgBouncer's directories.
fn running_demo(name: &str, tmpdir: &str) -> (Pane, u32, PathBuf, PathBuf) {
    let pane = Pane::start(name, (120, 40), &[("TMPDIR", tmpdir)], &["demo"]);
    pane.wait_for("app/pooled_", Duration::from_secs(120));
    let pid = pgvigil_pid(&pane);
    let mine = |prefix: &str| -> PathBuf {
        let found: Vec<PathBuf> = dirs_named(Path::new(tmpdir), prefix)
            .into_iter()
            .filter(|d| {
                std::fs::read_to_string(d.join("pgvigil-owner"))
                    .is_ok_and(|s| s.split_whitespace().next() == Some(&pid.to_string()))
            })
            .collect();
        assert_eq!(found.len(), 1, "{prefix} of {pid}: {found:?}");
        found[0].clone()
    };
    let (cluster, bouncer) = (mine("pgvigil-pg-"), mine("pgvigil-bouncer-"));
    assert_eq!(
        bouncers_in(&bouncer).len(),
        1,
        "{:?}",
        bouncers_in(&bouncer)
    );
    (pane, pid, cluster, bouncer)
}

#[test]
fn a_killed_demo_leaves_no_pgbouncer_behind_and_what_its_watchdogs_could_not_end_the_next_demo_sweeps()
 {
    let _serial = one_at_a_time();
    let tmp = demo_tmpdir();
    let tmpdir = tmp.path().to_str().unwrap().to_string();

    // A running demo: everything it wrote, the server's files and PgBouncer's, is private.
    let (pane, pid, cluster, bouncer) = running_demo("killed", &tmpdir);
    for dir in [&cluster, &bouncer] {
        assert!(count_entries(dir) >= 5, "{}", dir.display());
        assert_eq!(open_to_others(dir), Vec::<String>::new());
    }
    assert!(cluster.join("migrations").is_dir());

    // kill -9: the watchdogs end PgBouncer and the server and remove their directories.
    let killed_at = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let gone = wait_until(Duration::from_secs(10), || {
        bouncers_in(&bouncer).is_empty() && !bouncer.exists() && !cluster.exists()
    });
    assert!(
        gone,
        "10 s after kill -9: PgBouncer {:?}, its directory there: {}, the cluster's: {}",
        bouncers_in(&bouncer),
        bouncer.exists(),
        cluster.exists()
    );
    eprintln!(
        "PgBouncer and cluster of a killed demo gone in {:?}",
        killed_at.elapsed()
    );
    drop(pane);

    // kill -9 of the demo and its watchdogs together (an OOM kill of the group): PgBouncer
    // and the server are left running, with their directories.
    let (pane, pid, cluster, bouncer) = running_demo("leftover", &tmpdir);
    let watchdogs: Vec<i32> = processes_mentioning(&format!("while kill -0 {pid} "))
        .iter()
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(
        watchdogs.len(),
        2,
        "a cluster's and PgBouncer's: {watchdogs:?}"
    );
    for p in watchdogs.iter().copied().chain([pid as i32]) {
        kill(Pid::from_raw(p), Signal::SIGKILL).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bouncers_in(&bouncer).len(), 1, "the leftover runs on");
    assert!(bouncer.exists() && cluster.exists());
    drop(pane);

    // The next demo ends them and removes their directories before it starts its own.
    let (pane, _, next_cluster, next_bouncer) = running_demo("next", &tmpdir);
    assert_eq!(bouncers_in(&bouncer), Vec::<String>::new());
    assert!(!bouncer.exists(), "{}", bouncer.display());
    assert!(!cluster.exists(), "{}", cluster.display());
    assert_eq!(
        processes_mentioning(&cluster.display().to_string()),
        Vec::<String>::new()
    );
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(30)).as_deref(),
        Some("0")
    );
    assert!(wait_until(Duration::from_secs(10), || {
        processes_mentioning(&tmpdir).is_empty()
    }));
    assert!(!next_cluster.exists() && !next_bouncer.exists());
}
