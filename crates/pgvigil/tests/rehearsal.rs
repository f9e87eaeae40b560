//! The rehearsal on real clusters: production (the shared cluster) has the reference migrations
//! 1-3 applied by their real files and checksums and holds documents with 3072-dimension
//! embeddings; its backup is taken and verified, then restored on a second private cluster (a
//! dev URL) where every pending migration is applied for real. The HNSW migration is reported
//! with its build, its non-blocking lock and a valid index; a fixture that holds ACCESS
//! EXCLUSIVE on documents for 2 s is measured within 200 ms and projected onto production's
//! writes; a migration existing rows violate fails with its line, and the one after it is not
//! run; production is identical before and after (relations and their file nodes, indexes,
//! ledger, roles, row counts); no scratch database is left; the record voids on an edit.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use pgvigil::catalog::LockMode;
use pgvigil::config::DatabaseUrl;
use pgvigil::dev::DevSource;
use pgvigil::migrations::load_local;
use pgvigil::window::backup::{self, CreateOptions, VerifyOptions, VerifyOutcome};
use pgvigil::window::rehearsal::{
    self, RehearsalOptions, RehearsalSource, RehearsalVerdict, record,
};
use pgvigil::window::{Outcome, ProgressSink};
use pgvigil_cluster::PrivateCluster;
use pgvigil_test_support::reference_migrations;
use support::{cluster, prod_config, prod_connection};

fn dev_cluster() -> &'static PrivateCluster {
    static DEV: OnceLock<PrivateCluster> = OnceLock::new();
    DEV.get_or_init(|| PrivateCluster::start_new().expect("a second private PostgreSQL"))
}

/// One test at a time: each counts the scratch databases left on the shared dev cluster.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DOCUMENTS: usize = 400;

/// A production database with the reference migrations 1-3 applied by sqlx's migrator and
/// DOCUMENTS rows; its URL.
async fn production(name: &str) -> String {
    pgvigil_test_support::reference_production(cluster(), name, 3, DOCUMENTS).await
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// Everything of production a rehearsal must leave alone: relations with their file nodes
/// (a rewrite changes one), index validity, the ledger, roles, row counts.
fn production_state(db: &str) -> String {
    cluster()
        .psql(
            db,
            "SELECT (SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || pg_relation_filenode(c.oid), ',' ORDER BY c.relname)
                       FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
                    (SELECT string_agg(indexrelid::regclass::text || ':' || indisvalid, ',' ORDER BY 1) FROM pg_index
                      WHERE indrelid = 'documents'::regclass),
                    (SELECT string_agg(version || encode(checksum, 'hex'), ',' ORDER BY version) FROM _sqlx_migrations),
                    (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles),
                    (SELECT count(*) FROM documents), (SELECT count(*) FROM document_sources)",
        )
        .unwrap()
}

fn scratch_databases() -> String {
    dev_cluster()
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgvigil_scratch%'",
        )
        .unwrap()
        .trim()
        .to_string()
}

/// Takes and verifies a backup of `url`, recorded in `state`.
async fn verified_backup(url: &str, out: &Path, state: &Path) -> PathBuf {
    let config = prod_config(url);
    let mut session = prod_connection(url).await;
    let options = CreateOptions {
        output: Some(out.to_path_buf()),
        jobs: Some(2),
        ..CreateOptions::default()
    };
    let created = backup::create(&config, &mut session, &options, &ProgressSink::none())
        .await
        .expect("backup create");
    session.close().await;
    let dev = pgvigil::DevServer::start(&dev_source(), Some(15))
        .await
        .unwrap();
    let verified = backup::verify(
        &created.manifest_path,
        &dev,
        &VerifyOptions::default(),
        &ProgressSink::none(),
    )
    .await
    .unwrap();
    assert_eq!(verified.outcome, VerifyOutcome::Match, "{verified:#?}");
    backup::record::record(state, &created.manifest, &verified).unwrap();
    created.manifest_path
}

fn dev_source() -> DevSource {
    DevSource::url(DatabaseUrl::parse(&dev_cluster().url("postgres")).unwrap())
}

fn options(state: &Path, manifest: Option<PathBuf>) -> RehearsalOptions {
    let mut o = RehearsalOptions::new(RehearsalSource::Backup {
        manifest,
        dev: dev_source(),
    });
    o.state_dir = Some(state.to_path_buf());
    o.busy_interval = Duration::from_secs(1);
    o.jobs = Some(2);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hnsw_migration_is_rehearsed_on_the_newest_verified_backup() {
    let _serial = SERIAL.lock().await;
    let url = production("rehearse_hnsw").await;
    let db = db_name(&url);
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let manifest = verified_backup(&url, &out.path().join("b"), state.path()).await;
    let before = production_state(&db);

    let local = load_local(&reference_migrations()).await.unwrap();
    let mut session = prod_connection(&url).await;
    // No --from: the newest verified backup recorded in the state directory.
    let (report, rec) = rehearsal::rehearse(
        &prod_config(&url),
        Some(&mut session),
        &local,
        &options(state.path(), None),
    )
    .await
    .expect("rehearse");
    session.close().await;

    assert_eq!(report.verdict, RehearsalVerdict::Passed, "{report:#?}");
    assert_eq!(report.manifest.as_deref(), Some(manifest.as_path()));
    assert_eq!(
        report.migrations.len(),
        1,
        "only the HNSW migration is pending"
    );
    let m = &report.migrations[0];
    assert_eq!(m.version, 20261101000004);
    assert!(m.no_transaction);
    assert_eq!(m.outcome, Outcome::Succeeded);
    assert!(m.duration_ms > 0.0);
    let lock = m
        .locks
        .iter()
        .find(|l| l.relation == "documents")
        .expect("a lock on documents");
    assert_eq!(lock.mode, LockMode::ShareUpdateExclusive, "{:#?}", m.locks);
    assert!(!lock.blocks_reads && !lock.blocks_writes);
    assert_eq!(lock.blocking, "blocks neither reads nor writes");
    assert!(lock.over_threshold.is_none());
    let built = m
        .indexes_built
        .iter()
        .find(|i| i.name == "documents_embedding_hnsw_idx")
        .expect("the HNSW index built");
    assert_eq!(built.method, "hnsw");
    assert!(built.valid, "indisvalid true after the concurrent build");
    assert_eq!(built.table, "documents");
    assert!(
        m.build_phases
            .iter()
            .any(|p| p.command == "CREATE INDEX CONCURRENTLY"),
        "the build's phases were read: {:#?}",
        m.build_phases
    );
    assert!(
        report.size_after > report.size_before,
        "the index takes room"
    );
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.id == "rehearsal.ledger" && c.status == pgvigil::Status::Pass),
        "{:#?}",
        report.checks
    );
    let production = report.production.as_deref().expect("production was read");
    assert!(!production.contains(cluster().password()), "{production}");

    // The record names exactly the pending set; an edited file voids it.
    assert_eq!(rec.pending.len(), 1);
    assert_eq!(rec.pending[0].version, 20261101000004);
    assert_eq!(rec.verdict, RehearsalVerdict::Passed);
    assert_eq!(
        rec.backup_verified,
        Some(true),
        "the newest verified backup"
    );
    let path = record::write(state.path(), &rec).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(cluster().password()));
    let last = record::last(state.path()).unwrap();
    let ledger = production_ledger(&url).await;
    let now = record::pending_now(&local, Some(&ledger));
    assert_eq!(last.still_matches(&now), Ok(()));
    let mut edited = local.clone();
    edited[3].sql.push_str("\n-- edited");
    edited[3].checksum = sha384(&edited[3].sql);
    let voided = last
        .still_matches(&record::pending_now(&edited, Some(&ledger)))
        .unwrap_err();
    assert_eq!(voided, rehearsal::Voided::Edited(20261101000004));

    // Without readings nothing can be measured: never a plain pass.
    let mut unsampled = options(state.path(), None);
    unsampled.sample_every = Duration::ZERO;
    let mut session = prod_connection(&url).await;
    let (report, _) =
        rehearsal::rehearse(&prod_config(&url), Some(&mut session), &local, &unsampled)
            .await
            .expect("rehearse without readings");
    session.close().await;
    assert_eq!(
        report.verdict,
        RehearsalVerdict::Flagged,
        "{:#?}",
        report.notes
    );
    assert!(
        report.notes.iter().any(|n| n.contains("--sample-every 0")),
        "{:#?}",
        report.notes
    );
    // Production not answering: a dev URL cannot be told apart from production's server, so
    // nothing is restored on it.
    let err = rehearsal::rehearse(
        &prod_config(&url),
        None,
        &local,
        &options(state.path(), None),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, rehearsal::RehearsalError::DevUnchecked { .. }),
        "{err}"
    );

    assert_eq!(production_state(&db), before, "production unchanged");
    assert_eq!(scratch_databases(), "0", "the restored copy was dropped");
}

async fn production_ledger(url: &str) -> Vec<pgvigil::migrations::LedgerRow> {
    let mut s = prod_connection(url).await;
    let l = s
        .read(async |r| pgvigil::migrations::read_ledger(r).await)
        .await
        .unwrap()
        .unwrap();
    s.close().await;
    l
}

fn sha384(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha384::digest(text.as_bytes()).to_vec()
}

/// The reference migrations plus three fixtures: a 2 s ACCESS EXCLUSIVE hold on documents, a
/// CHECK constraint existing rows violate (line 3 of its file), and one after it.
fn fixture_migrations(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(reference_migrations()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    std::fs::write(
        dir.join("20261201000001_hold_documents.sql"),
        "-- Holds ACCESS EXCLUSIVE on documents for about 2 s.\nLOCK TABLE documents IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(2);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20261201000002_small_tokens.sql"),
        "-- Existing rows have token counts up to 999.\nSET lock_timeout = '2s';\nALTER TABLE documents\n    ADD CONSTRAINT documents_token_count_small CHECK (token_count < 500);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("20261201000003_after.sql"),
        "CREATE TABLE rehearsal_after (a int);\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_2_s_exclusive_hold_is_measured_and_a_migration_rows_break_fails_with_its_line() {
    let _serial = SERIAL.lock().await;
    let url = production("rehearse_holds").await;
    let db = db_name(&url);
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let manifest = verified_backup(&url, &out.path().join("b"), state.path()).await;
    let dir = out.path().join("migrations");
    fixture_migrations(&dir);
    let local = load_local(&dir).await.unwrap();

    // Production is busy writing documents while the rehearsal reads its statistics.
    let writer = {
        let url = url.clone();
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < until {
                sqlx::query(
                    "UPDATE documents SET metadata = metadata WHERE doc_path = 'docs/1.md'",
                )
                .execute(&mut conn)
                .await
                .unwrap();
            }
        })
    };
    let before = {
        tokio::time::sleep(Duration::from_millis(100)).await;
        production_state(&db)
    };
    let mut session = prod_connection(&url).await;
    let mut opts = options(state.path(), Some(manifest.clone()));
    opts.thresholds.access_exclusive = Duration::from_secs(1);
    let (report, _) = rehearsal::rehearse(&prod_config(&url), Some(&mut session), &local, &opts)
        .await
        .expect("rehearse");
    session.close().await;
    writer.await.unwrap();

    let versions: Vec<i64> = report.migrations.iter().map(|m| m.version).collect();
    assert_eq!(
        versions,
        [
            20261101000004,
            20261201000001,
            20261201000002,
            20261201000003
        ]
    );
    let hold = &report.migrations[1];
    assert_eq!(hold.outcome, Outcome::Succeeded);
    let l = hold
        .locks
        .iter()
        .find(|l| l.relation == "documents")
        .expect("the hold on documents");
    assert_eq!(l.mode, LockMode::AccessExclusive);
    assert!(l.blocks_reads && l.blocks_writes);
    assert!(
        l.held_ms.abs_diff(2000) <= 200,
        "held {} ms, the truth is 2000 ms",
        l.held_ms
    );
    let p = l.production.as_ref().expect("projected onto production");
    assert!(p.writes_per_s > 0.0, "{p:?}");
    assert!(p.would_queue > 0, "{p:?}");
    assert_eq!(
        l.over_threshold.as_deref(),
        Some("held past 1 s, the limit --max-exclusive-hold sets for ACCESS EXCLUSIVE")
    );

    let broken = &report.migrations[2];
    match &broken.outcome {
        Outcome::Failed {
            error,
            sqlstate,
            line,
            ..
        } => {
            assert_eq!(sqlstate.as_deref(), Some("23514"), "{error}");
            assert_eq!(*line, Some(3), "the ALTER TABLE starts on line 3: {error}");
            assert!(error.contains("documents_token_count_small"), "{error}");
            assert!(error.contains("schema-only dry-run"), "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(broken.existing_rows_broke_it);
    assert!(matches!(
        report.migrations[3].outcome,
        Outcome::NotRun { .. }
    ));
    assert_eq!(report.verdict, RehearsalVerdict::Failed);

    assert_eq!(production_state(&db), before, "production unchanged");
    assert_eq!(scratch_databases(), "0", "the restored copy was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staging_url_on_production_s_server_is_refused() {
    let _serial = SERIAL.lock().await;
    let url = production("rehearse_staging").await;
    let before = production_state(&db_name(&url));
    let local = load_local(&reference_migrations()).await.unwrap();
    let mut session = prod_connection(&url).await;
    let mut opts = options(Path::new("/nonexistent"), None);
    opts.source = RehearsalSource::Staging(Box::new(DatabaseUrl::parse(&url).unwrap()));
    let err = rehearsal::rehearse(&prod_config(&url), Some(&mut session), &local, &opts)
        .await
        .unwrap_err();
    session.close().await;
    let text = err.to_string();
    assert!(text.contains("--staging-url"), "{text}");
    assert!(text.contains("production's server"), "{text}");
    assert!(!text.contains(cluster().password()), "{text}");

    // Production not answering: the staging server cannot be told apart from it.
    let err = rehearsal::rehearse(&prod_config(&url), None, &local, &opts)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("production did not answer"),
        "{err}"
    );
    assert_eq!(production_state(&db_name(&url)), before);
}
