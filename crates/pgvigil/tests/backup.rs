//! The verified backup on real clusters: production (the shared cluster) holds the demo's
//! shape (2,000 documents with 3072-dimension embeddings and the sqlx ledger); the dev server
//! the dumps are restored on is a second private cluster reached as a dev URL. A backup taken
//! while a writer inserts verifies; a flipped byte, a truncated file and a changed row in the
//! restored copy each fail with a finding naming the file, the table and the range; no scratch
//! database is left behind, production is unchanged and its password is nowhere.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use pgvigil::config::DatabaseUrl;
use pgvigil::dev::{DevServer, DevSource};
use pgvigil::window::ProgressSink;
use pgvigil::window::backup::{
    self, BackupManifest, CreateOptions, FindingKind, VerifyOptions, VerifyOutcome,
};
use pgvigil_cluster::PrivateCluster;
use support::{cluster, fresh_database, prod_config, prod_connection};

fn dev_cluster() -> &'static PrivateCluster {
    static DEV: OnceLock<PrivateCluster> = OnceLock::new();
    DEV.get_or_init(|| PrivateCluster::start_new().expect("a second private PostgreSQL"))
}

/// One test at a time: each counts the scratch databases left on the shared dev cluster, and
/// the other's restore would be counted.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn dev_server() -> DevServer {
    let url = DatabaseUrl::parse(&dev_cluster().url("postgres")).unwrap();
    DevServer::start(&DevSource::url(url), Some(15))
        .await
        .unwrap()
}

const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TYPE doc_type AS ENUM ('guide', 'reference', 'tutorial', 'api', 'changelog');
CREATE TABLE document_sources (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_type doc_type NOT NULL,
    source_name text NOT NULL, config jsonb NOT NULL DEFAULT '{}',
    UNIQUE (doc_type, source_name));
CREATE TABLE documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc_type doc_type NOT NULL,
    source_name text NOT NULL, doc_path text NOT NULL, content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}', embedding vector(3072), token_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (doc_type, source_name, doc_path),
    FOREIGN KEY (doc_type, source_name) REFERENCES document_sources (doc_type, source_name));
CREATE INDEX documents_created_at_idx ON documents (created_at);
CREATE INDEX documents_embedding_hnsw_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops);
CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    checksum bytea NOT NULL, execution_time bigint NOT NULL);
INSERT INTO _sqlx_migrations VALUES (20261101000001, 'pgvector and doc type', now(), true, sha384('a'), 1),
    (20261101000003, 'documents', now(), true, sha384('b'), 2);
INSERT INTO document_sources (doc_type, source_name)
    SELECT t, 'source-' || s FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s;
INSERT INTO documents (doc_type, source_name, doc_path, content, metadata, embedding, token_count)
    SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'source-' || (i % 8), 'docs/' || i || '.md',
           'Document ' || i, jsonb_build_object('lang', 'en'),
           (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072),
           100 + i % 900
      FROM generate_series(0, 1999) i;
";

/// A production database of the demo's shape; its URL.
fn production() -> String {
    let url = fresh_database(cluster(), "backup_src");
    let name = url.rsplit('/').next().unwrap().to_string();
    cluster()
        .psql_stdin(&name, SCHEMA)
        .expect("load the demo's shape");
    url
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

async fn take(url: &str, output: &Path) -> backup::CreateReport {
    let config = prod_config(url);
    let mut session = prod_connection(url).await;
    let options = CreateOptions {
        output: Some(output.to_path_buf()),
        jobs: Some(2),
        ..CreateOptions::default()
    };
    let report = backup::create(&config, &mut session, &options, &ProgressSink::none())
        .await
        .expect("backup create");
    session.close().await;
    report
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

/// What must not change on production: schema objects, the ledger, roles.
fn production_state(db: &str) -> String {
    cluster()
        .psql(
            db,
            "SELECT (SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class
                      WHERE relnamespace = 'public'::regnamespace),
                    (SELECT string_agg(version || encode(checksum, 'hex'), ',' ORDER BY version) FROM _sqlx_migrations),
                    (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles),
                    (SELECT count(*) FROM document_sources)",
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_rows_arrive_verifies_and_leaves_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let url = production();
    let db = db_name(&url);
    let before = production_state(&db);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b1");

    // A writer inserts documents for the whole length of the dump.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sqlx::query(
                    "INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
                     SELECT 'guide', 'source-0', 'live/' || $1 || '.md', 'live',
                            (SELECT array_agg(random()::real) FROM generate_series(1, 3072))::vector(3072)",
                )
                .bind(n as i64)
                .execute(&mut conn)
                .await
                .unwrap();
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let report = take(&url, &dir).await;
    stop.store(true, Ordering::Relaxed);
    let inserted = writer.await.unwrap();
    assert!(inserted > 0, "the writer inserted during the dump");

    // The manifest is the last thing written, private, in a private directory.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(report.manifest_path, dir.join("manifest.json"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("dump")), 0o700);
    assert_eq!(mode(&report.manifest_path), 0o600);
    for f in &report.manifest.dump.files {
        assert_eq!(mode(&dir.join("dump").join(&f.name)), 0o600, "{}", f.name);
    }
    let text = std::fs::read_to_string(&report.manifest_path).unwrap();
    assert!(
        !text.contains(cluster().password()),
        "no password in the manifest"
    );
    let manifest = BackupManifest::load(&report.manifest_path).unwrap();
    assert_eq!(manifest.format, "pgvigil.backup/1");
    let docs = manifest.table("public", "documents").unwrap();
    // The snapshot was taken after the writer started: at least the 2,000, fewer than now.
    let now: u64 = cluster()
        .psql(&db, "SELECT count(*) FROM documents")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        docs.rows >= 2000 && docs.rows < now,
        "{} of {now}",
        docs.rows
    );
    assert_eq!(docs.ranges.len() as u64, docs.rows.div_ceil(250));
    assert!(docs.ranges.iter().all(|r| r.sha256.is_some()));
    assert_eq!(manifest.ledger.as_ref().unwrap().len(), 2);
    assert!(manifest.extensions.iter().any(|e| e.name == "vector"));
    assert!(
        manifest
            .vector_columns
            .iter()
            .any(|v| v.table == "public.documents"
                && v.column == "embedding"
                && v.dimensions == Some(3072))
    );
    assert!(
        manifest
            .indexes
            .iter()
            .any(|i| i.name == "public.documents_embedding_hnsw_idx"
                && i.definition.contains("hnsw"))
    );

    let dev = dev_server().await;
    let verified = backup::verify(
        &report.manifest_path,
        &dev,
        &VerifyOptions::default(),
        &ProgressSink::none(),
    )
    .await
    .unwrap();
    assert_eq!(verified.findings, vec![], "{verified:#?}");
    assert_eq!(verified.outcome, VerifyOutcome::Match);
    assert!(verified.restored);
    let checked = verified
        .tables
        .iter()
        .find(|t| t.table == "public.documents")
        .unwrap();
    assert_eq!(checked.rows_found, Some(docs.rows));
    assert_eq!(checked.ranges_checked, docs.ranges.len());
    assert_eq!(scratch_databases(), "0", "no scratch database left");

    // The record the apply gate reads.
    let state = tempfile::tempdir().unwrap();
    let recorded = backup::record::record(state.path(), &manifest, &verified).unwrap();
    assert_eq!(mode(&recorded), 0o600);
    let last = backup::record::last(state.path()).unwrap();
    assert_eq!(last.outcome, VerifyOutcome::Match);
    assert_eq!(
        last.manifest,
        std::fs::canonicalize(&report.manifest_path).unwrap()
    );

    assert_eq!(production_state(&db), before, "production unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_files_and_a_changed_row_fail_naming_what_differs() {
    let _serial = SERIAL.lock().await;
    let url = production();
    let out = tempfile::tempdir().unwrap();
    let dev = dev_server().await;
    let report = take(&url, &out.path().join("b")).await;
    let manifest = report.manifest.clone();
    let dump = out.path().join("b").join("dump");

    // A changed row in the restored copy: the table and the range are named.
    let docs = manifest.table("public", "documents").unwrap();
    let third = &docs.ranges[2];
    let tamper = format!(
        "UPDATE documents SET content = content || '!' WHERE id = (SELECT id FROM documents WHERE id >= '{}' ORDER BY id LIMIT 1)",
        third.from.as_deref().unwrap()
    );
    let verified = backup::verify(
        &report.manifest_path,
        &dev,
        &VerifyOptions {
            tamper_restored_copy: Some(tamper),
            ..VerifyOptions::default()
        },
        &ProgressSink::none(),
    )
    .await
    .unwrap();
    assert_eq!(verified.outcome, VerifyOutcome::Mismatch);
    assert_eq!(verified.findings.len(), 1, "{:#?}", verified.findings);
    let f = &verified.findings[0];
    assert_eq!(f.kind, FindingKind::RangeHash);
    assert_eq!(f.subject, format!("public.documents id {}", third.label()));
    assert!(f.detail.starts_with("same "), "{}", f.detail);
    assert_eq!(scratch_databases(), "0");

    // One flipped byte in the largest data file: that file is named, nothing is restored.
    let largest = manifest.dump.files.iter().max_by_key(|f| f.bytes).unwrap();
    let path = dump.join(&largest.name);
    let original = std::fs::read(&path).unwrap();
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let verified = backup::verify(
        &report.manifest_path,
        &dev,
        &VerifyOptions::default(),
        &ProgressSink::none(),
    )
    .await
    .unwrap();
    assert_eq!(verified.outcome, VerifyOutcome::Mismatch);
    assert!(!verified.restored);
    assert_eq!(verified.findings.len(), 1);
    assert_eq!(verified.findings[0].kind, FindingKind::FileAltered);
    assert_eq!(verified.findings[0].subject, largest.name);

    // Truncated: named with its sizes.
    std::fs::write(&path, &original[..original.len() / 3]).unwrap();
    let verified = backup::verify(
        &report.manifest_path,
        &dev,
        &VerifyOptions::default(),
        &ProgressSink::none(),
    )
    .await
    .unwrap();
    assert_eq!(verified.findings.len(), 1);
    assert_eq!(verified.findings[0].kind, FindingKind::FileSize);
    assert_eq!(verified.findings[0].subject, largest.name);
    assert!(
        verified.findings[0]
            .detail
            .contains(&format!("the manifest says {}", largest.bytes))
    );
    assert_eq!(scratch_databases(), "0");
}
