//! The real binary in a real terminal (tmux) against a real private cluster: what an on-call
//! engineer would see, including the server going away, freezing and coming back.

mod support;

use support::pane::{Pane, pgvigil_pid};

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgvigil_cluster::PrivateCluster;

/// The header's clock (HH:MM:SS before the " / ").
fn clock(screen: &str) -> String {
    let first = screen.lines().next().unwrap_or("");
    first
        .split(" / ")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_survives_a_stopped_and_a_frozen_server() {
    let cluster = PrivateCluster::start_new().expect("private cluster");
    cluster.create_database("app").unwrap();
    let url = cluster.url("app");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(support::migrations_dir())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let migrations = support::migrations_dir();
    let pane = Pane::start(
        "main",
        (120, 40),
        &[
            ("DATABASE_URL", &url),
            ("RETRY_MAX_DELAY", "2s"),
            ("POOL_CONNECT_TIMEOUT", "3s"),
        ],
        &[
            "--refresh",
            "1s",
            "--migrations",
            migrations.to_str().unwrap(),
        ],
    );

    // Connected figures: the pool gauge and the server's clients.
    let (screen, _) = pane.wait_for("clients ", Duration::from_secs(20));
    assert!(screen.contains("connected"), "{screen}");
    assert!(screen.contains("in use"), "{screen}");
    assert!(
        screen.contains("postgres://postgres:***@127.0.0.1"),
        "{screen}"
    );
    assert!(!screen.contains(cluster.password()), "{screen}");
    // The automatic status read fills the migrations panel.
    pane.wait_for("applied 4", Duration::from_secs(15));

    // v: check results appear.
    pane.keys("v");
    let (screen, _) = pane.wait_for("schema.diff", Duration::from_secs(20));
    assert!(screen.contains("extension vector 0.8"), "{screen}");
    pane.wait_for("verify", Duration::from_secs(5));

    // Stop the server: the disconnected state within 2 s, and the clock keeps moving.
    cluster.stop().unwrap();
    let (screen, took) = pane.wait_for("DISCONNECTED", Duration::from_secs(5));
    assert!(
        took <= Duration::from_secs(2),
        "disconnected shown after {took:?}"
    );
    assert!(screen.contains("last error"), "{screen}");
    let before = clock(&screen);
    std::thread::sleep(Duration::from_millis(2100));
    let after = clock(&pane.screen());
    assert_ne!(
        before, after,
        "the clock must keep moving while the database is down"
    );

    // Start it again: the panels refill without a key press.
    cluster.start().unwrap();
    let (screen, took) = pane.wait_for("● connected", Duration::from_secs(15));
    eprintln!("recovered {took:?} after the server accepted connections again");
    assert!(!screen.contains("DISCONNECTED"), "{screen}");
    pane.wait_for("clients ", Duration::from_secs(5));

    // Freeze the server (SIGSTOP): the UI stays responsive and says the server is not answering.
    cluster.pause().unwrap();
    let frozen_at = clock(&pane.screen());
    pane.keys("?");
    let (_, took) = pane.wait_for("Any key closes this help", Duration::from_secs(3));
    assert!(
        took < Duration::from_secs(2),
        "help took {took:?} while the server was frozen"
    );
    pane.keys("x");
    let (screen, _) = pane.wait_for("NOT ANSWERING", Duration::from_secs(10));
    assert_ne!(clock(&screen), frozen_at);
    cluster.resume().unwrap();
    pane.wait_for("● connected", Duration::from_secs(20));

    // q exits 0 and gives the terminal back (alternate screen left).
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
    assert_eq!(
        pane.tmux(&["display-message", "-p", "#{alternate_on}"])
            .trim(),
        "0"
    );
    assert!(!pane.screen().contains("Server connections"));
}

/// The dev server (`--dev-url`) the dry-run tests hand to the dashboard: its own cluster, so
/// that what runs there and what is left there can be counted.
fn dev_cluster() -> &'static PrivateCluster {
    static DEV: std::sync::LazyLock<PrivateCluster> =
        std::sync::LazyLock::new(|| PrivateCluster::start_new().expect("dev cluster"));
    &DEV
}

/// Scratch databases on `dev` made by the pgvigil process `pid` (their names carry it; the
/// dry-run tests share the dev server and run in parallel).
fn scratch_databases(dev: &PrivateCluster, pid: u32) -> String {
    dev.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil\\_scratch\\_{pid}\\_%'"
        ),
    )
    .unwrap()
}

/// Starts a dry-run of a migration that sleeps 60 s, then presses `key`. The migration runs on
/// the dev server, never on production. Returns the screen just after the key and
/// "statements still sleeping on the dev server / scratch databases left there / pgvigil
/// statements on production" a few seconds later ("0/0/0" = nothing left behind).
async fn dry_run_then(key: &str, name: &str) -> (Pane, String, String) {
    let cluster = support::cluster();
    let dev = dev_cluster();
    let url = support::migrated_database(cluster, name).await;
    let dir = support::migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_slow_backfill.sql"),
        "UPDATE documents SET token_count = token_count;\nSELECT pg_sleep(60);\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let pane = Pane::start(
        name,
        (120, 40),
        &[
            ("DATABASE_URL", &url),
            ("PGVIGIL_STATE_DIR", state.path().to_str().unwrap()),
        ],
        &[
            "--migrations",
            dir.path().to_str().unwrap(),
            "--dev-url",
            &dev.url("postgres"),
        ],
    );
    pane.wait_for("pending 1", Duration::from_secs(20));
    let pid = pgvigil_pid(&pane);
    pane.keys("d");
    pane.wait_for("dry-run running", Duration::from_secs(10));
    let db = url.rsplit('/').next().unwrap().to_string();
    let sleeping = || {
        dev.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgvigil\\_scratch\\_{pid}\\_%' \
                 AND query LIKE '%pg_sleep(60)%' AND state = 'active'"
            ),
        )
        .unwrap()
    };
    let started = Instant::now();
    while sleeping() != "1" && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sleeping(),
        "1",
        "the dry-run's statement runs on the dev server"
    );
    let on_production = || {
        cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE '%pg_sleep%' \
                     AND pid <> pg_backend_pid()"
                ),
            )
            .unwrap()
    };
    assert_eq!(on_production(), "0", "migration SQL ran on production");
    pane.keys(key);
    std::thread::sleep(Duration::from_millis(300));
    let screen = pane.screen();
    let started = Instant::now();
    while (sleeping() != "0" || scratch_databases(dev, pid) != "0")
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = dir.keep();
    (
        pane,
        screen,
        format!(
            "{}/{}/{}",
            sleeping(),
            scratch_databases(dev, pid),
            on_production()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_cancels_a_running_dry_run_and_its_query_on_the_server() {
    let (pane, _, server) = dry_run_then("Escape", "e2ecancel").await;
    // The Jobs panel's line for the last dry-run, not the log line.
    let (screen, _) = pane.wait_for("): cancelled", Duration::from_secs(5));
    assert!(!screen.contains("dry-run running"), "{screen}");
    assert_eq!(
        server, "0/0/0",
        "statement cancelled on the dev server, its scratch database dropped, nothing on production"
    );
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quitting_during_a_dry_run_cancels_its_statement_on_the_server() {
    let (pane, _, server) = dry_run_then("q", "e2equit").await;
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
    assert_eq!(
        server, "0/0/0",
        "quitting left the dry-run's statement or scratch database on the dev server"
    );
}

/// The dashboard on a migrated database with the dev server of the dry-run tests, its state
/// directory a fresh one, at 120x40; `pending` is written as a pending migration when given.
async fn dashboard_for_window_steps(
    name: &str,
    pending: Option<&str>,
) -> (Pane, String, tempfile::TempDir, tempfile::TempDir) {
    let cluster = support::cluster();
    let dev = dev_cluster();
    let url = support::migrated_database(cluster, name).await;
    let dir = support::migrations_copy();
    if let Some(sql) = pending {
        std::fs::write(dir.path().join("20261201000000_window_step.sql"), sql).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let pane = Pane::start(
        name,
        (120, 40),
        &[
            ("DATABASE_URL", &url),
            ("PGVIGIL_STATE_DIR", state.path().to_str().unwrap()),
        ],
        &[
            "--migrations",
            dir.path().to_str().unwrap(),
            "--dev-url",
            &dev.url("postgres"),
        ],
    );
    pane.wait_for("connected", Duration::from_secs(20));
    (pane, url, dir, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lint_key_shows_the_findings_in_the_jobs_panel() {
    let (pane, _url, _dir, _state) = dashboard_for_window_steps(
        "e2elint",
        Some("CREATE INDEX documents_doc_path_idx ON documents (doc_path);\n"),
    )
    .await;
    pane.wait_for("pending 1", Duration::from_secs(20));
    pane.wait_for("lint: not linted this session", Duration::from_secs(5));
    pane.keys("m");
    pane.wait_for("lint running", Duration::from_secs(5));
    // The lint reads pg_stat_user_tables twice, 5 s apart.
    let (screen, _) = pane.wait_for("lint details", Duration::from_secs(20));
    // The finding's file:line:col and its rule (wrapped in the 48 columns of the panel).
    assert!(
        screen.contains("20261201000000_window_step.sql:1:1"),
        "{screen}"
    );
    assert!(
        screen.contains("require-concurrent-index-creation"),
        "{screen}"
    );
    assert!(screen.contains("lint: linted just now"), "{screen}");
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_during_a_backup_verification_leaves_no_scratch_database() {
    let (pane, url, _dir, state) = dashboard_for_window_steps("e2ebackup", None).await;
    // Rows to restore and an HNSW index to rebuild: the restore takes long enough to be caught.
    support::exec(
        &url,
        "INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'handbook');
         INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
         SELECT 'guide', 'handbook', 'p' || i, 'text',
                (SELECT array_agg(random())::vector(3072) FROM generate_series(1, 3072) WHERE i > 0)
           FROM generate_series(1, 600) i;",
    )
    .await;
    let dev = dev_cluster();
    let pid = pgvigil_pid(&pane);
    pane.wait_for(
        "backup: no verified backup recorded",
        Duration::from_secs(5),
    );
    pane.keys("b");
    pane.wait_for("backup running", Duration::from_secs(5));
    let started = Instant::now();
    while scratch_databases(dev, pid) == "0" && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        scratch_databases(dev, pid),
        "1",
        "the verification restores into a scratch database on the dev server: {}",
        pane.screen()
    );
    pane.keys("Escape");
    let (screen, _) = pane.wait_for("): cancelled", Duration::from_secs(5));
    assert!(!screen.contains("backup running"), "{screen}");
    let started = Instant::now();
    while scratch_databases(dev, pid) != "0" && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        scratch_databases(dev, pid),
        "0",
        "the cancelled verification's scratch database was dropped"
    );
    // Nothing was recorded as verified.
    assert!(
        !state.path().join("backup-verified.json").exists(),
        "a cancelled verification recorded"
    );
    assert!(
        pane.screen()
            .contains("backup: no verified backup recorded")
    );
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_rehearse_fills_the_window_checklist_and_production_stays_unmigrated() {
    let (pane, url, _dir, _state) = dashboard_for_window_steps(
        "e2erehearse",
        Some("ALTER TABLE documents ADD COLUMN rehearsal_note text;\n"),
    )
    .await;
    let dev = dev_cluster();
    let pid = pgvigil_pid(&pane);
    pane.wait_for("pending 1", Duration::from_secs(20));
    pane.wait_for("rehearsal: no rehearsal recorded", Duration::from_secs(5));
    pane.keys("b");
    pane.wait_for("every figure matches", Duration::from_secs(60));
    pane.keys("R");
    pane.wait_for("rehearse running", Duration::from_secs(5));
    // Production's statistics are read twice, 5 s apart, then the restore and the migration.
    let (screen, _) = pane.wait_for("still matches the pending set", Duration::from_secs(60));
    assert!(
        screen.contains("rehearsal: rehearsed just now: passed"),
        "{screen}"
    );
    // Its details: the migration and its ACCESS EXCLUSIVE lock on documents.
    assert!(screen.contains("rehearse details"), "{screen}");
    assert!(screen.contains("ACCESS EXCLUSIVE on documents"), "{screen}");
    assert_eq!(
        scratch_databases(dev, pid),
        "0",
        "the restored copy was dropped"
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let migrated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE column_name = 'rehearsal_note'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(migrated, 0, "the rehearsal never migrates production");
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esc_during_a_rehearsal_cancels_its_migration_on_the_dev_server() {
    let (pane, _url, _dir, state) = dashboard_for_window_steps(
        "e2erehesc",
        Some("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(60);\n"),
    )
    .await;
    let dev = dev_cluster();
    let pid = pgvigil_pid(&pane);
    pane.wait_for("pending 1", Duration::from_secs(20));
    pane.keys("b");
    pane.wait_for("every figure matches", Duration::from_secs(60));
    pane.keys("R");
    let sleeping = || {
        dev.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
        )
        .unwrap()
    };
    let started = Instant::now();
    while sleeping() == "0" && started.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sleeping(),
        "1",
        "the migration runs on the dev server: {}",
        pane.screen()
    );
    pane.keys("Escape");
    pane.wait_for("rehearse just now", Duration::from_secs(5));
    let started = Instant::now();
    while (sleeping() != "0" || scratch_databases(dev, pid) != "0")
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sleeping(), "0", "the migration's statement was cancelled");
    assert_eq!(
        scratch_databases(dev, pid),
        "0",
        "the restored copy was dropped"
    );
    assert!(pane.screen().contains("cancelled"), "{}", pane.screen());
    assert!(
        !state.path().join("rehearsal.json").exists(),
        "a cancelled rehearsal records nothing"
    );
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[test]
fn a_60x20_window_shows_the_too_small_screen() {
    let pane = Pane::start(
        "small",
        (60, 20),
        &[("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db")],
        &[],
    );
    pane.wait_for(
        "terminal too small (need 80x24, have 60x20)",
        Duration::from_secs(10),
    );
    // Growing the window brings the dashboard, disconnected but explained.
    pane.tmux(&["resize-window", "-x", "100", "-y", "30"]);
    pane.wait_for("DISCONNECTED", Duration::from_secs(10));
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[test]
fn no_color_means_no_colour_escapes() {
    let pane = Pane::start(
        "mono",
        (100, 30),
        &[
            ("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db"),
            ("NO_COLOR", "1"),
        ],
        &[],
    );
    pane.wait_for("last error", Duration::from_secs(10));
    let raw = pane.screen_with_escapes();
    let colour = regex_lite_colour(&raw);
    assert!(colour.is_none(), "colour escape {colour:?} in:\n{raw}");
    assert!(
        raw.contains("\x1b["),
        "attributes (bold, reverse) still carry meaning"
    );
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    for signal in ["TERM", "HUP"] {
        let pane = Pane::start(
            &format!("sig{signal}"),
            (100, 30),
            &[("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db")],
            &[],
        );
        pane.wait_for("DISCONNECTED", Duration::from_secs(10));
        let shell: i32 = pane
            .tmux(&["display-message", "-p", "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap();
        // The pane runs a shell; pgvigil is its child.
        let child = child_named(shell, "pgvigil").expect("pgvigil process under the pane's shell");
        let sig = if signal == "TERM" {
            Signal::SIGTERM
        } else {
            Signal::SIGHUP
        };
        kill(Pid::from_raw(child), sig).unwrap();
        assert!(
            pane.exit_code(Duration::from_secs(10)).is_some(),
            "exited on SIG{signal}"
        );
        assert_eq!(
            pane.tmux(&["display-message", "-p", "#{alternate_on}"])
                .trim(),
            "0",
            "SIG{signal}"
        );
    }
}

/// A child process of `parent` whose command name is `name`, from /proc.
fn child_named(parent: i32, name: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid: Option<i32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) && comm == name {
            return Some(pid);
        }
    }
    None
}

/// The first SGR sequence that sets a colour (30-38, 40-48, 90-107), if any. 39 and 49 are
/// "the terminal's default colour", which ratatui writes after an attribute reset: no colour.
fn regex_lite_colour(raw: &str) -> Option<String> {
    let mut rest = raw;
    while let Some(i) = rest.find("\x1b[") {
        let after = &rest[i + 2..];
        let end = after.find('m')?;
        let params = &after[..end];
        for p in params.split(';') {
            if let Ok(n) = p.parse::<u32>()
                && ((30..=38).contains(&n) || (40..=48).contains(&n) || (90..=107).contains(&n))
            {
                return Some(params.to_string());
            }
        }
        rest = &after[end..];
    }
    None
}

/// d / Esc / v / Esc pressed at every moment of a job's life (connecting, starting the dev
/// database, copying the schema, mid-migration), then q: nothing may be left anywhere.
async fn key_storm(name: &str, dev_url: Option<String>) -> (u32, String) {
    let cluster = support::cluster();
    let url = support::migrated_database(cluster, name).await;
    let dir = support::migrations_copy();
    std::fs::write(
        dir.path().join("20261201000000_slow.sql"),
        "SELECT pg_sleep(60);\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut args = vec!["--migrations".to_string(), dir.path().display().to_string()];
    if let Some(dev) = &dev_url {
        args.push("--dev-url".into());
        args.push(dev.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pane = Pane::start(
        name,
        (120, 40),
        &[
            ("DATABASE_URL", &url),
            ("PGVIGIL_STATE_DIR", state.path().to_str().unwrap()),
        ],
        &args,
    );
    pane.wait_for("pending 1", Duration::from_secs(20));
    let pid = pgvigil_pid(&pane);
    let mut clusters_seen = 0;
    for i in 0..16u64 {
        pane.keys(if i % 5 == 4 { "v" } else { "d" });
        std::thread::sleep(Duration::from_millis((i * 157) % 1300));
        clusters_seen = clusters_seen.max(support::clusters_of(pid).len());
        pane.keys("Escape");
        std::thread::sleep(Duration::from_millis(30));
    }
    // And one left running at the end, so that quitting must clean it up.
    pane.keys("d");
    std::thread::sleep(Duration::from_secs(4));
    clusters_seen = clusters_seen.max(support::clusters_of(pid).len());
    if dev_url.is_none() {
        assert!(clusters_seen > 0, "no private dev cluster ever started");
    }
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(20)).as_deref(),
        Some("0"),
        "{}",
        pane.screen()
    );
    let db = url.rsplit('/').next().unwrap().to_string();
    let on_production = cluster
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name LIKE 'pgvigil%'"
            ),
        )
        .unwrap();
    (pid, on_production)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_storm_with_private_dev_clusters_leaves_nothing_behind() {
    let (pid, on_production) = key_storm("stormprivate", None).await;
    assert_eq!(on_production, "0", "pgvigil sessions left on production");
    let started = Instant::now();
    while !support::clusters_of(pid).is_empty() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(support::clusters_of(pid), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_storm_on_a_dev_server_leaves_nothing_behind() {
    let dev = dev_cluster();
    let (pid, on_production) = key_storm("stormdev", Some(dev.url("postgres"))).await;
    assert_eq!(on_production, "0", "pgvigil sessions left on production");
    let started = Instant::now();
    while scratch_databases(dev, pid) != "0" && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        scratch_databases(dev, pid),
        "0",
        "scratch databases left on the dev server"
    );
    let sleeping = dev
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgvigil\\_scratch\\_{pid}\\_%'"
            ),
        )
        .unwrap();
    assert_eq!(sleeping, "0");
}

#[test]
fn an_authentication_failure_waits_for_r_instead_of_counting_down() {
    let cluster = support::cluster();
    let url = format!(
        "postgres://postgres:wrong-password@127.0.0.1:{}/postgres",
        cluster.port()
    );
    let pane = Pane::start("authfail", (120, 40), &[("DATABASE_URL", &url)], &[]);
    let (screen, _) = pane.wait_for("not retried automatically", Duration::from_secs(15));
    assert!(screen.contains("r: retry now"), "{screen}");
    assert!(!screen.contains("next retry in"), "{screen}");
    assert!(!screen.contains("wrong-password"), "{screen}");
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
}

#[test]
fn the_dashboard_without_a_terminal_says_so_and_points_at_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .env("DATABASE_URL", "postgres://app:pw@127.0.0.1:1/db")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the dashboard needs a terminal"),
        "{stderr}"
    );
    assert!(stderr.contains("pgvigil check"), "{stderr}");
}

/// An HTTP peer on plain threads: every connection gets `answer` once, or (`None`) is
/// accepted and never answered.
fn http_peer(answer: Option<Vec<u8>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                match answer.as_ref() {
                    Some(bytes) => {
                        let _ = std::io::Write::write_all(&mut stream, bytes);
                    }
                    None => std::thread::sleep(Duration::from_secs(300)),
                }
            });
        }
    });
    format!("http://{addr}/metrics")
}

fn http_answer(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Runs the dashboard on `apps` for 12 s in a pane and returns its screen and peak RSS (kB).
fn peak_memory_watching(name: &str, apps: &[String]) -> (String, u64) {
    let url = support::cluster().url("postgres");
    let mut args = vec!["--migrations", "/nonexistent"];
    for a in apps {
        args.push("--app");
        args.push(a);
    }
    let pane = Pane::start(name, (120, 40), &[("DATABASE_URL", &url)], &args);
    pane.wait_for("answering", Duration::from_secs(20));
    let pid = pgvigil_pid(&pane);
    std::thread::sleep(Duration::from_secs(12));
    // Still answering keys while the silent peer holds a scrape open.
    pane.keys("?");
    let (_, took) = pane.wait_for("Any key closes this help", Duration::from_secs(5));
    assert!(took < Duration::from_secs(3), "help took {took:?}");
    pane.keys("Escape");
    std::thread::sleep(Duration::from_millis(300));
    let screen = pane.screen();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    pane.keys("q");
    assert_eq!(
        pane.exit_code(Duration::from_secs(10)).as_deref(),
        Some("0")
    );
    (screen, peak)
}

#[test]
fn hostile_application_endpoints_show_their_own_error_and_memory_stays_bounded() {
    let good = http_answer(
        "text/plain; version=0.0.4",
        b"pgvigil_pool_connections{pool=\"main\",state=\"active\"} 3\n\
          pgvigil_pool_connections{pool=\"main\",state=\"idle\"} 2\n\
          pgvigil_pool_connections_max{pool=\"main\"} 10\n",
    );
    let good = http_peer(Some(good));
    let (_, baseline) = peak_memory_watching("mem-base", std::slice::from_ref(&good));

    let html = http_peer(Some(http_answer(
        "text/html; charset=utf-8",
        b"<html><body>login</body></html>",
    )));
    // 10 MB each time it is asked, every tick of the run.
    let huge = http_peer(Some(http_answer(
        "text/plain",
        &vec![b'#'; 10 * 1024 * 1024],
    )));
    let silent = http_peer(None);
    let (screen, hostile) = peak_memory_watching(
        "mem-hostile",
        &[good.clone(), html.clone(), huge.clone(), silent.clone()],
    );
    // What answered but cannot be used says so (BAD ANSWER); UNREACHABLE is for silence.
    for (peer, verdict, reason) in [
        (
            &html,
            "BAD ANSWER",
            "answered text/html, not Prometheus text",
        ),
        (&huge, "BAD ANSWER", "body larger than 4 MiB"),
        (&silent, "UNREACHABLE", "no answer within"),
    ] {
        let port = peer
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/metrics");
        let lines: Vec<&str> = screen.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(port))
            .unwrap_or_else(|| panic!("no row for {peer}:\n{screen}"));
        let row = lines[at];
        assert!(row.contains(verdict), "{row}");
        // The reason on the instance's row, or on the row below it where there is room.
        let reason_start: String = reason.chars().take(12).collect();
        let with_next = format!("{row}{}", lines.get(at + 1).unwrap_or(&""));
        assert!(
            with_next.contains(&reason_start),
            "{reason}: {row}\n{screen}"
        );
    }
    assert!(screen.contains("1/4 answering"), "{screen}");
    // Twelve ticks of 10 MB offers cost at most the 4 MiB body limit and its parse, not the
    // bodies: the peak stays within 16 MiB of watching the good endpoint alone.
    eprintln!(
        "peak RSS: {baseline} kB watching one good endpoint, {hostile} kB with three hostile ones"
    );
    assert!(
        hostile < baseline + 16 * 1024,
        "peak RSS {hostile} kB against {baseline} kB"
    );
}
