//! Cost of `pgvigil migrate lint` on the reference migrations: the median of N runs without the
//! catalog (read the files, squawk + pgvector rules) and with it (a read-only session on a
//! private cluster holding the reference schema with 2,000 documents, the catalog read, then
//! the same lint). The catalog's two statistics readings are taken back to back here
//! (`busy_interval` 0) so the figure is the reads' own cost; the command waits its
//! `--busy-interval` (default 5 s) between them on top.
//!
//! Run with `scripts/bench-lint.sh` (release build). Argument: [runs].

use std::time::{Duration, Instant};

use pgvigil::window::lint::{LintOptions, Selection, lint_migrations};
use pgvigil_cluster::PrivateCluster;
use sqlx::{AssertSqlSafe, Connection};

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
        .unwrap_or(21);
    let cluster = PrivateCluster::start_with(pgvigil_cluster::ClusterOptions::default())
        .expect("private cluster (run scripts/setup-postgres.sh)");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        cluster.create_database("bench_lint").unwrap();
        let url = cluster.url("bench_lint");
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(dir.clone()).await.unwrap().run(&mut conn).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(
            "INSERT INTO document_sources (doc_type, source_name) VALUES ('guide', 'g');
             INSERT INTO documents (doc_type, source_name, doc_path, content)
             SELECT 'guide', 'g', 'p' || i, 'x' FROM generate_series(1, 2000) i; ANALYZE;",
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let config = pgvigil::PoolConfig::builder(&url)
            .min_connections(1)
            .build()
            .unwrap()
            .read_only();
        let options = LintOptions {
            busy_interval: Duration::ZERO,
            ..LintOptions::default()
        };
        let mut without = Vec::new();
        let mut with = Vec::new();
        let mut findings = (0, 0);
        // The session is opened once, as the command opens it once; each run reads the
        // catalog afresh.
        let mut session = pgvigil::session::ProductionSession::connect(&config).await.unwrap();
        for _ in 0..runs {
            let t = Instant::now();
            let r = lint_migrations(&config, None, &dir, &Selection::All, Some("benchmark"), &options)
                .await
                .unwrap();
            without.push(t.elapsed().as_secs_f64() * 1e3);
            findings.0 = r.files.iter().map(|f| f.findings.len()).sum();
            let t = Instant::now();
            let r = lint_migrations(&config, Some(&mut session), &dir, &Selection::All, None, &options)
                .await
                .unwrap();
            with.push(t.elapsed().as_secs_f64() * 1e3);
            findings.1 = r.files.iter().map(|f| f.findings.len()).sum();
        }
        session.close().await;
        let (a, b) = (median(without), median(with));
        println!("pgvigil migrate lint benchmark: the 4 reference migrations, {runs} runs each, release build, local private cluster (2,000 documents)");
        println!("| catalog | median ms | findings |");
        println!("|---|---|---|");
        println!("| without (files + rules) | {a:.2} | {} |", findings.0);
        println!("| with (read-only session: ledger-free --all, catalog reads, rules) | {b:.2} | {} |", findings.1);
        println!("catalog reads cost {:.2} ms ({:.1}x the lint without them); `migrate lint` adds its --busy-interval (default 5 s) between the two statistics readings", b - a, b / a.max(1e-9));
    });
}
