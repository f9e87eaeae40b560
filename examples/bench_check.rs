//! Cost of `pgvigil check` on the reference schema: wall time (median of N runs) and the number
//! of statements it sends to the target database (from pg_stat_statements), with 0, 50 and 200
//! unrelated extra tables to show the count does not grow with the schema. Three ways to get
//! the expected schema: built on a private dev database every time (no cache), from the cache
//! a first run filled (what a repeated `pgvigil check` does; goal under 150 ms), and from a
//! snapshot file.
//!
//! Run with `scripts/bench-check.sh` (release build). Argument: [runs].

use std::time::Instant;

use pgvigil::PoolConfig;
use pgvigil::checks::ExpectedSchema;
use pgvigil::checks::{CheckOptions, run_checks};
use pgvigil::dev::DevServer;
use pgvigil::pool::{Connector, connect_options};
use pgvigil_cluster::{ClusterOptions, PrivateCluster};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(11);
    let knn_samples: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    // 2000 documents, as `pgvigil demo` loads: enough that the planner serves KNN through the
    // HNSW index, as it does on a real documents table.
    let documents: usize = std::env::var("BENCH_DOCUMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let cluster = PrivateCluster::start_with(
        ClusterOptions::default()
            .setting("shared_preload_libraries", "pg_stat_statements")
            .setting("pg_stat_statements.track_utility", "on"),
    )
    .expect("private cluster (run scripts/setup-postgres.sh)");
    cluster
        .psql("postgres", "CREATE EXTENSION pg_stat_statements")
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let local = pgvigil::checks::load_local(&dir).await.unwrap();
        println!("pgvigil check benchmark: reference schema, {runs} runs per row, local private cluster, KNN samples {knn_samples} on {documents} rows");
        println!("| expected schema from | extra tables | median wall ms | min | max | statements per check | exit |");
        println!("|---|---|---|---|---|---|---|");
        for extra in std::env::var("BENCH_EXTRA_TABLES").ok().map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect()).unwrap_or_else(|| vec![0usize, 50, 200]) {
            let db = format!("bench_{extra}");
            cluster.create_database(&db).unwrap();
            let url = cluster.url(&db);
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::migrate::Migrator::new(dir.clone()).await.unwrap().run(&mut conn).await.unwrap();
            sqlx::raw_sql(AssertSqlSafe("INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'g');
                INSERT INTO documents (doc_type, source_name, doc_path, content, embedding)
                SELECT 'guide', 'g', 'p' || i, 'x', (SELECT array_agg(random())::vector(3072) FROM generate_series(1, 3072) WHERE i > 0)
                FROM generate_series(1, 200) i; ANALYZE;".replace("200", &documents.to_string())))
                .execute(&mut conn)
                .await
                .unwrap();
            for t in 0..extra {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE TABLE extra_{t} (id bigint PRIMARY KEY, name text NOT NULL DEFAULT '', created timestamptz);
                     CREATE INDEX extra_{t}_name_idx ON extra_{t} (name);"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            let dbid: i64 = sqlx::query_scalar("SELECT oid::int8 FROM pg_database WHERE datname = current_database()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let expected_file = std::env::temp_dir().join(format!("pgvigil-bench-expected-{}.json", std::process::id()));
            let mut admin = connect_options(&PoolConfig::builder(cluster.url("postgres")).build().unwrap())
                .connect()
                .await
                .unwrap();
            let dev = DevServer::start(&pgvigil_cli::dev_private::private(), Some(15)).await.unwrap();
            ExpectedSchema::build(&dev, &local, std::time::Duration::from_secs(300))
                .await
                .unwrap()
                .write(&expected_file)
                .unwrap();
            drop(dev);
            let cache = tempfile::tempdir().unwrap();
            let rows: [(&str, Option<std::path::PathBuf>, Option<std::path::PathBuf>, usize); 3] = [
                ("dev database, no cache", None, None, runs.min(3)),
                ("cache (after a first run)", None, Some(cache.path().to_path_buf()), runs),
                ("snapshot file", Some(expected_file.clone()), None, runs),
            ];
            for (label, file, cache_dir, runs) in rows {
                let pool = Connector::new(PoolConfig::builder(&url).min_connections(1).build().unwrap().read_only())
                    .connect()
                    .await
                    .unwrap();
                let options = CheckOptions {
                    migrations_dir: dir.clone(),
                    expected_file: file,
                    knn_samples,
                    cache_dir: cache_dir.clone(),
                    dev: Some(pgvigil_cli::dev_private::private()),
                    ..CheckOptions::default()
                };
                if cache_dir.is_some() {
                    // The first run fills the cache; the figures are for the runs after it.
                    run_checks(&pool, &options).await;
                }
                let mut times = Vec::new();
                let mut statements = Vec::new();
                let mut exit = 0;
                for _ in 0..runs {
                    sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut admin).await.unwrap();
                    let t0 = Instant::now();
                    let report = run_checks(&pool, &options).await;
                    times.push(t0.elapsed().as_secs_f64() * 1000.0);
                    exit = report.exit_code;
                    let calls: i64 = sqlx::query_scalar(
                        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements WHERE dbid = $1 AND query NOT LIKE '%pg_stat_statements%'",
                    )
                    .bind(dbid)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
                    statements.push(calls);
                    if std::env::var_os("BENCH_SHOW_STATEMENTS").is_some() {
                        let rows: Vec<(i64, String)> = sqlx::query_as(
                            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements WHERE dbid = $1 ORDER BY query",
                        )
                        .bind(dbid)
                        .fetch_all(&mut admin)
                        .await
                        .unwrap();
                        for (calls, q) in rows {
                            eprintln!("  {calls:>3} {q}");
                        }
                        eprintln!("  ---");
                    }
                }
                // pg_stat_statements misses utility statements (BEGIN, SET, EXPLAIN) when sqlx
                // re-executes them from its statement cache, so later runs under-count; the first
                // run on a connection sees every statement. Report that complete count.
                let complete = statements.iter().copied().max().unwrap_or(0);
                let (min, max) = (
                    times.iter().cloned().fold(f64::MAX, f64::min),
                    times.iter().cloned().fold(0.0, f64::max),
                );
                println!(
                    "| {label} | {extra} | {:.0} | {min:.0} | {max:.0} | {} | {exit} |",
                    median(times),
                    complete,
                );
                pool.close().await;
            }
            let _ = std::fs::remove_file(&expected_file);
        }
        println!("goal: under 150 ms with the cache (a repeated check); statements fixed, independent of the number of tables");
    });
}
