//! `pgvigil demo`: the dashboard on a private PostgreSQL with pgvector, the reference schema,
//! a few thousand documents with random 3072-dimension embeddings and a synthetic workload that
//! varies over time, run by three application instances (each with its own instrumented pool
//! and its own /metrics on a free port; the third goes through a private PgBouncer with a
//! smaller server pool, so its clients queue there at the crests). The dashboard watches them
//! with --app and --pgbouncer: a pool crosses its 80 % warning now and then, a long
//! transaction holds a row lock that another session waits on, and a report job leaks a
//! connection for a while. Quitting stops the workload, the instances and PgBouncer, and
//! removes the cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::watch;
use tokio::task::JoinSet;

use pgvigil::config::PoolConfig;
use pgvigil::pool::{InstrumentedPool, connect_options};
use pgvigil_cluster::PrivateCluster;

/// The reference migrations, embedded so the demo runs from any directory.
pub const REFERENCE_MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261101000001_pgvector_and_doc_type.sql",
        include_str!("../migrations/20261101000001_pgvector_and_doc_type.sql"),
    ),
    (
        "20261101000002_document_sources.sql",
        include_str!("../migrations/20261101000002_document_sources.sql"),
    ),
    (
        "20261101000003_documents.sql",
        include_str!("../migrations/20261101000003_documents.sql"),
    ),
    (
        "20261101000004_documents_embedding_hnsw.sql",
        include_str!("../migrations/20261101000004_documents_embedding_hnsw.sql"),
    ),
];

pub const DEMO_DOCUMENTS: i64 = 2000;

/// Writes the embedded migrations into `dir` (for sqlx's migrator and the dashboard's jobs).
pub fn write_reference_migrations(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, sql) in REFERENCE_MIGRATIONS {
        std::fs::write(dir.join(name), sql)?;
    }
    Ok(())
}

/// A prepared demo: the cluster, the configuration to watch it with, the migrations directory.
pub struct Demo {
    pub cluster: PrivateCluster,
    pub config: PoolConfig,
    pub migrations_dir: PathBuf,
}

impl Demo {
    /// Starts the cluster and applies the migrations (documents are loaded by the workload,
    /// with the dashboard already on screen).
    pub async fn prepare() -> Result<Demo, String> {
        let cluster = PrivateCluster::start_new().map_err(|e| e.to_string())?;
        cluster.create_database("docs").map_err(|e| e.to_string())?;
        let migrations_dir = cluster.dir().join("migrations");
        write_reference_migrations(&migrations_dir).map_err(|e| e.to_string())?;
        let url = cluster.url("docs");
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::migrate::Migrator::new(migrations_dir.clone())
            .await
            .map_err(|e| e.to_string())?
            .run(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        let config = PoolConfig::builder(url)
            .min_connections(2)
            .max_connections(20)
            .leak_threshold(Duration::from_secs(20))
            .application_name("pgvigil-demo")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Demo {
            cluster,
            config,
            migrations_dir,
        })
    }
}

/// The demo's application instances: their pools, their /metrics servers and the PgBouncer
/// the third one goes through. Dropping it stops them all.
pub struct Instances {
    /// Each instance's pool.
    pub pools: Vec<InstrumentedPool>,
    /// Each instance's /metrics URL.
    pub metrics: Vec<String>,
    /// The PgBouncer admin console's URL.
    pub bouncer_admin: String,
    servers: Vec<tokio::task::JoinHandle<()>>,
    _bouncer: pgvigil_cluster::PrivateBouncer,
}

impl Drop for Instances {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

impl Instances {
    /// Starts PgBouncer (a server pool of 4) and three instances of 8 connections each: two
    /// straight to the database, one through PgBouncer.
    pub async fn start(demo: &Demo) -> Result<Instances, String> {
        let bouncer = pgvigil_cluster::PrivateBouncer::start(&demo.cluster, "docs", 4);
        let direct = demo.cluster.url("docs");
        let pooled = format!("postgres://postgres@127.0.0.1:{}/app", bouncer.port);
        let (mut pools, mut metrics, mut servers) = (Vec::new(), Vec::new(), Vec::new());
        for (i, url) in [&direct, &direct, &pooled].into_iter().enumerate() {
            let config = PoolConfig::builder(url.as_str())
                .min_connections(2)
                .max_connections(8)
                .leak_threshold(Duration::from_secs(20))
                .application_name(format!("docs-api-{}", i + 1))
                .build()
                .map_err(|e| e.to_string())?;
            let pool = pgvigil::Connector::new(config)
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let app = pgvigil::http::HttpFace::new(pgvigil::http::HealthSettings::default())
                .pool("main", pool.clone())
                .router::<()>();
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
            metrics.push(format!("http://{addr}/metrics"));
            pools.push(pool);
        }
        Ok(Instances {
            pools,
            metrics,
            bouncer_admin: format!("postgres://postgres@127.0.0.1:{}/pgbouncer", bouncer.port),
            servers,
            _bouncer: bouncer,
        })
    }
}

/// Runs the workload through the instances' pools until aborted.
pub async fn workload(config: PoolConfig, pools: Vec<InstrumentedPool>) {
    // Each worker keeps to one instance, as requests stick to a pod.
    let receivers: Vec<watch::Receiver<Option<InstrumentedPool>>> = pools
        .iter()
        // The pools never change: a receiver keeps its value after the sender goes.
        .map(|p| watch::channel(Some(p.clone())).1)
        .collect();
    if let Err(e) = load_documents(&pools[0]).await {
        tracing::warn!(target: "pgvigil::demo", "loading documents failed: {e}");
    }
    let mut tasks = JoinSet::new();
    tasks.spawn(lock_scenes(config.clone()));
    tasks.spawn(leaky_report(receivers[0].clone()));
    let wanted = Arc::new(AtomicUsize::new(0));
    for worker in 0..18 {
        tasks.spawn(worker_loop(
            worker,
            wanted.clone(),
            receivers[worker % receivers.len()].clone(),
        ));
    }
    // The load follows a slow wave with noise: 3 to 18 busy workers on a 20-connection pool,
    // so the pool crosses its 80 % warning near each crest.
    let started = Instant::now();
    loop {
        let t = started.elapsed().as_secs_f64();
        let wave = 0.5 + 0.5 * (t * std::f64::consts::TAU / 75.0).sin();
        let noise: f64 = rand::rng().random_range(-1.5..1.5);
        let target = (3.0 + 15.0 * wave + noise).clamp(0.0, 18.0) as usize;
        wanted.store(target, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn load_documents(pool: &InstrumentedPool) -> Result<(), String> {
    let mut conn = pool
        .acquire_labeled("demo-loader")
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(
        "INSERT INTO document_sources (doc_type, source_name, version, config)
         SELECT t, 'source-' || s, '1.' || s, jsonb_build_object('crawl', 'daily')
         FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    tracing::info!(target: "pgvigil::demo", "loading {DEMO_DOCUMENTS} documents with random 3072-dimension embeddings");
    let started = Instant::now();
    let batch = 100;
    let mut next = have;
    while next < DEMO_DOCUMENTS {
        let mut conn = pool
            .acquire_labeled("demo-loader")
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query(
            "INSERT INTO documents (doc_type, source_name, doc_path, content, metadata, embedding, token_count)
             SELECT (enum_range(NULL::doc_type))[1 + i % 5], 'source-' || (i % 8), 'docs/' || i || '.md',
                    'Document ' || i, jsonb_build_object('lang', 'en'),
                    (SELECT array_agg(random()::real) FROM generate_series(1, 3072) WHERE i >= 0)::vector(3072),
                    100 + i % 900
             FROM generate_series($1::int8, $2::int8) i",
        )
        .bind(next)
        .bind((next + batch - 1).min(DEMO_DOCUMENTS - 1))
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
        next += batch;
    }
    tracing::info!(
        target: "pgvigil::demo",
        "{DEMO_DOCUMENTS} documents loaded in {:.1}s; synthetic workload starting",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One simulated request handler: busy while `id < wanted`, idle otherwise.
async fn worker_loop(
    id: usize,
    wanted: Arc<AtomicUsize>,
    pool: watch::Receiver<Option<InstrumentedPool>>,
) {
    loop {
        let current = pool.borrow().clone();
        let (Some(p), true) = (current, id < wanted.load(Ordering::Relaxed)) else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let hold: f64 = rand::rng().random_range(0.15..0.6);
        let offset: i64 = rand::rng().random_range(0..DEMO_DOCUMENTS);
        if let Ok(mut conn) = p.acquire_labeled("docs-search").await {
            // A KNN search for the neighbours of an existing document, then the app's think time
            // inside the checkout (a slow serializer, a remote call): that is what fills pools.
            let _ = sqlx::query(
                "SELECT d.id FROM documents d
                  ORDER BY d.embedding::halfvec(3072) <=> (SELECT q.embedding::halfvec(3072) FROM documents q OFFSET $1 LIMIT 1)
                  LIMIT 5",
            )
            .bind(offset)
            .execute(&mut *conn)
            .await;
            let _ = sqlx::query("SELECT pg_sleep($1)")
                .bind(hold)
                .execute(&mut *conn)
                .await;
        }
        let pause = rand::rng().random_range(20..120);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Every two minutes: a batch job opens a long transaction holding a row lock for 40 s, and an
/// API writer queues behind it: the server panel shows the long transaction and a lock waiter.
async fn lock_scenes(config: PoolConfig) {
    tokio::time::sleep(Duration::from_secs(20)).await;
    loop {
        let batch = async {
            let mut c = connect_options(&config)
                .application_name("docs-batch")
                .connect()
                .await?;
            sqlx::raw_sql(
                "BEGIN; UPDATE document_sources SET last_updated = now() WHERE doc_type = 'guide' AND source_name = 'source-0';",
            )
            .execute(&mut c)
            .await?;
            sqlx::query("SELECT pg_sleep(40)").execute(&mut c).await?;
            sqlx::raw_sql("COMMIT").execute(&mut c).await?;
            c.close().await
        };
        let writer = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let mut c = connect_options(&config)
                .application_name("docs-api-writer")
                .connect()
                .await?;
            sqlx::query("UPDATE document_sources SET total_docs = total_docs + 1 WHERE doc_type = 'guide' AND source_name = 'source-0'")
                .execute(&mut c)
                .await?;
            c.close().await
        };
        let (a, b) = tokio::join!(batch, writer);
        if let Err(e) = a.and(b) {
            tracing::debug!(target: "pgvigil::demo", "lock scene: {e}");
        }
        tokio::time::sleep(Duration::from_secs(80)).await;
    }
}

/// Now and then a report export keeps its connection past the leak threshold.
async fn leaky_report(pool: watch::Receiver<Option<InstrumentedPool>>) {
    tokio::time::sleep(Duration::from_secs(45)).await;
    loop {
        let current = pool.borrow().clone();
        if let Some(p) = current
            && let Ok(conn) = p.acquire_labeled("report-export").await
        {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        }
        tokio::time::sleep(Duration::from_secs(150)).await;
    }
}
