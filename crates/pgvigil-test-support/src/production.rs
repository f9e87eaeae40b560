//! A production database of the reference schema as an application leaves it: the first
//! migrations of `migrations/` applied by sqlx's own migrator (its ledger, its checksums), and
//! documents with 3072-dimension embeddings. The backup, rehearsal and window-step tests start
//! from it, so the pending set they see is the real one.

use std::path::{Path, PathBuf};

use pgvigil_cluster::PrivateCluster;

/// The workspace's reference migrations.
pub fn reference_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A new database on `cluster` with the first `applied` reference migrations applied by
/// sqlx's migrator and `documents` rows (their sources too), analysed from a session of its
/// own (an ANALYZE in the inserting session is followed by that session's pending insert
/// counts, and n_live_tup would read twice the rows). Its URL.
pub async fn reference_production(
    cluster: &PrivateCluster,
    prefix: &str,
    applied: usize,
    documents: usize,
) -> String {
    let url = crate::fresh_database(cluster, prefix);
    let first = tempfile::tempdir().expect("a temporary directory");
    let mut files: Vec<PathBuf> = std::fs::read_dir(reference_migrations())
        .expect("migrations/")
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    for f in files.iter().take(applied) {
        std::fs::copy(f, first.path().join(f.file_name().expect("a name"))).expect("copy");
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(first.path())
        .await
        .expect("read the migrations")
        .run(&mut conn)
        .await
        .expect("apply the first reference migrations");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO document_sources (doc_type, source_name)
            SELECT t, 'source-' || s FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s;
         INSERT INTO documents (doc_type, source_name, doc_path, content, embedding, token_count)
            SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'source-' || (i % 8), 'docs/' || i || '.md',
                   'Document ' || i,
                   (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072),
                   100 + (i * 7) % 900
              FROM generate_series(1, {documents}) i"
    )))
    .execute(&mut conn)
    .await
    .expect("documents");
    let _ = sqlx::Connection::close(conn).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("ANALYZE");
    let _ = sqlx::Connection::close(conn).await;
    url
}
