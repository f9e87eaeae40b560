//! `pgvigil demo` in a real terminal: three instances of the documents API and PgBouncer on
//! screen, the lock scene, the source key, and nothing left after quitting. A binary of its
//! own: the demo loads 3072-dimension vectors and drives 18 clients, which would crowd the
//! timing of the other terminal tests.

mod support;

use std::time::{Duration, Instant};

use support::pane::{Pane, processes_mentioning};

#[test]
fn the_demo_serves_through_three_documents_api_instances_and_pgbouncer_then_quits_clean() {
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
    pane.wait_for("pgbouncer app/pooled_", Duration::from_secs(10));
    pane.wait_for("Pool: all sources (s cycles)", Duration::from_secs(10));
    // The instances are the documents API: their own application names on the server side.
    pane.wait_for("docs-api-3", Duration::from_secs(30));
    // The batch job's lock holds the API's inserts for its source: lock waiters appear.
    let (screen, _) = pane.wait_for("blocked by", Duration::from_secs(150));
    assert!(screen.contains("docs-batch"), "{screen}");
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
