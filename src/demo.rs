//! `pgvigil demo`: the dashboard on a private PostgreSQL with pgvector, the reference schema,
//! a few thousand documents with random 3072-dimension embeddings and a workload that varies
//! over time, sent over HTTP to three instances of the example documents API (`docs-api`, each
//! with its own instrumented pool and its own /metrics on a free port; the third goes through a
//! private PgBouncer with a smaller server pool, so its clients queue there). The dashboard
//! watches them with --app and --pgbouncer. Every two minutes a batch job holds a source's row
//! lock for 40 s: the API's inserts for that source queue behind it holding their connections,
//! so the pools fill, cross their 80 % warning and PgBouncer's clients wait; a report job leaks
//! a connection for a while. Quitting stops the workload, the instances and PgBouncer, and
//! removes the cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use sqlx::{ConnectOptions, Connection};
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

/// What stops the demo from starting, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The private PostgreSQL (initdb, pg_ctl, the `docs` database).
    #[error("the private PostgreSQL: {0}")]
    Cluster(#[source] pgvigil_cluster::ClusterError),
    /// The reference migrations could not be written into the cluster's directory.
    #[error("writing the reference migrations into {}: {source}", dir.display())]
    WriteMigrations {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The demo database could not be reached.
    #[error("connecting to the demo database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The reference migrations did not apply.
    #[error("applying the reference migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A pool configuration the demo builds was refused.
    #[error(transparent)]
    Config(#[from] pgvigil::config::ConfigError),
    /// The private PgBouncer did not start.
    #[error("PgBouncer: {0}")]
    Bouncer(#[source] pgvigil_cluster::ClusterError),
    /// The application role could not be given its tables.
    #[error("granting the application role its tables: {0}")]
    Grant(#[source] pgvigil_cluster::ClusterError),
    /// An instance's pool did not connect.
    #[error("docs-api-{instance}'s pool: {source}")]
    InstancePool {
        /// Its number, from 1.
        instance: usize,
        /// Why.
        source: pgvigil::pool::ConnectError,
    },
    /// An instance could not listen on a local port.
    #[error("docs-api-{instance}'s listener: {source}")]
    Listen {
        /// Its number, from 1.
        instance: usize,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The dashboard could not be pointed at an instance or at PgBouncer.
    #[error(transparent)]
    Scrape(#[from] pgvigil::remote::ScrapeError),
    /// PgBouncer's console URL was refused.
    #[error("PgBouncer's console URL: {0}")]
    BouncerUrl(#[source] pgvigil::config::UrlError),
}

/// Why loading the documents stopped (logged; the workload goes on).
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Acquire(#[from] pgvigil::pool::AcquireError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// Why a request to an instance failed (the client reconnects on the next one).
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
}

/// Writes the embedded migrations into `dir` (for sqlx's migrator and the dashboard's jobs),
/// private to this user (0700, files 0600) like everything else in the cluster's directory.
pub fn write_reference_migrations(dir: &Path) -> std::io::Result<()> {
    pgvigil_cluster::private::create_dir(dir)?;
    for (name, sql) in REFERENCE_MIGRATIONS {
        pgvigil_cluster::private::write_file(&dir.join(name), sql.as_bytes())?;
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
    pub async fn prepare() -> Result<Demo, DemoError> {
        // What an earlier demo killed outright (its watchdogs with it) left running: its
        // cluster and its PgBouncer.
        let _ = tokio::task::spawn_blocking(pgvigil_cluster::sweep_stale).await;
        let cluster = PrivateCluster::start_new().map_err(DemoError::Cluster)?;
        cluster
            .create_database("docs")
            .map_err(DemoError::Cluster)?;
        let migrations_dir = cluster.dir().join("migrations");
        write_reference_migrations(&migrations_dir).map_err(|source| {
            DemoError::WriteMigrations {
                dir: migrations_dir.clone(),
                source,
            }
        })?;
        let url = cluster.url("docs");
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(DemoError::Connect)?;
        sqlx::migrate::Migrator::new(migrations_dir.clone())
            .await
            .map_err(DemoError::Migrate)?
            .run(&mut conn)
            .await
            .map_err(DemoError::Migrate)?;
        let _ = conn.close().await;
        let config = PoolConfig::builder(url)
            .min_connections(2)
            .max_connections(20)
            .leak_threshold(Duration::from_secs(20))
            .application_name("pgvigil-demo")
            .build()?;
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
    /// Each instance's /metrics endpoint, named as on the Server panel (`docs-api-1=URL`).
    pub metrics: Vec<String>,
    /// Each instance's address (its documents API and /metrics).
    pub addrs: Vec<SocketAddr>,
    /// The PgBouncer console's URL, as its stats user (it reads, it cannot PAUSE or SHUTDOWN).
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
    /// Starts PgBouncer (a server pool of 4) and three instances of the documents API with 6
    /// connections each: two straight to the database, one through PgBouncer, as a role that
    /// may read and write the documents and nothing more.
    pub async fn start(demo: &Demo) -> Result<Instances, DemoError> {
        let bouncer = pgvigil_cluster::PrivateBouncer::try_start(&demo.cluster, "docs", 4)
            .map_err(DemoError::Bouncer)?;
        let role = bouncer.app_user();
        demo.cluster
            .psql(
                "docs",
                &format!(
                    "GRANT USAGE ON SCHEMA public TO {role}; \
                     GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}; \
                     GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"
                ),
            )
            .map_err(DemoError::Grant)?;
        let direct = demo.cluster.url("docs");
        let pooled = bouncer.app_url();
        let (mut pools, mut metrics, mut addrs, mut servers) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, url) in [&direct, &direct, &pooled].into_iter().enumerate() {
            let instance = i + 1;
            let config = PoolConfig::builder(url.as_str())
                .min_connections(2)
                .max_connections(6)
                .leak_threshold(Duration::from_secs(20))
                .application_name(format!("docs-api-{instance}"))
                .build()?;
            let pool = pgvigil::Connector::new(config)
                .connect()
                .await
                .map_err(|source| DemoError::InstancePool { instance, source })?;
            let listen = |source| DemoError::Listen { instance, source };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(listen)?;
            let addr = listener.local_addr().map_err(listen)?;
            let app = docs_api::router(pool.clone(), pgvigil::http::HealthSettings::default());
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
            metrics.push(format!("docs-api-{}=http://{addr}/metrics", i + 1));
            addrs.push(addr);
            pools.push(pool);
        }
        Ok(Instances {
            pools,
            metrics,
            addrs,
            bouncer_admin: bouncer.stats_url(),
            servers,
            _bouncer: bouncer,
        })
    }
}

/// Runs the workload until aborted: documents are loaded through the first instance's pool,
/// then 18 clients send searches and inserts to the instances' documents API, each client
/// sticking to one instance as requests stick to a pod.
pub async fn workload(config: PoolConfig, pools: Vec<InstrumentedPool>, apis: Vec<SocketAddr>) {
    if let Err(e) = load_documents(&pools[0]).await {
        tracing::warn!(target: "pgvigil::demo", "loading documents failed: {e}");
    }
    let mut tasks = JoinSet::new();
    tasks.spawn(lock_scenes(config.clone()));
    tasks.spawn(leaky_report(pools[0].clone()));
    let wanted = Arc::new(AtomicUsize::new(0));
    for client in 0..18 {
        tasks.spawn(client_loop(
            client,
            wanted.clone(),
            apis[client % apis.len()],
        ));
    }
    // The load follows a slow wave with noise: 3 to 18 busy clients.
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

async fn load_documents(pool: &InstrumentedPool) -> Result<(), LoadError> {
    let mut conn = pool.acquire_labeled("demo-loader").await?;
    sqlx::raw_sql(
        "INSERT INTO document_sources (doc_type, source_name, version, config)
         SELECT t, 'source-' || s, '1.' || s, jsonb_build_object('crawl', 'daily')
         FROM unnest(enum_range(NULL::doc_type)) t, generate_series(0, 7) s
         ON CONFLICT DO NOTHING",
    )
    .execute(&mut *conn)
    .await?;
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM documents")
        .fetch_one(&mut *conn)
        .await?;
    drop(conn);
    tracing::info!(target: "pgvigil::demo", "loading {DEMO_DOCUMENTS} documents with random 3072-dimension embeddings");
    let started = Instant::now();
    let batch = 100;
    let mut next = have;
    while next < DEMO_DOCUMENTS {
        let mut conn = pool.acquire_labeled("demo-loader").await?;
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
        .await?;
        next += batch;
    }
    tracing::info!(
        target: "pgvigil::demo",
        "{DEMO_DOCUMENTS} documents loaded in {:.1}s; synthetic workload starting",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One client of the documents API: busy while `id < wanted`, idle otherwise. Four requests
/// in five are searches for a random embedding; the fifth inserts a guide into one of four
/// sources, and the first of them is the one the batch job locks now and then.
async fn client_loop(id: usize, wanted: Arc<AtomicUsize>, api: SocketAddr) {
    let mut client: Option<ApiClient> = None;
    let mut n = 0u64;
    loop {
        if id >= wanted.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        n += 1;
        let embedding: Vec<f32> = {
            let mut rng = rand::rng();
            (0..docs_api::DIMENSIONS)
                .map(|_| rng.random_range(0.0..1.0))
                .collect()
        };
        let (path, body) = if n.is_multiple_of(5) {
            let source = rand::rng().random_range(0..4);
            (
                "/documents",
                serde_json::json!({
                    "doc_type": "guide",
                    "source_name": format!("source-{source}"),
                    "doc_path": format!("client-{id}/{n}.md"),
                    "content": format!("Written by demo client {id}"),
                    "embedding": embedding,
                }),
            )
        } else {
            (
                "/documents/search",
                serde_json::json!({ "embedding": embedding, "k": 5 }),
            )
        };
        if client.is_none() {
            client = ApiClient::connect(api).await.ok();
        }
        if let Some(c) = &mut client
            && c.post(path, body.to_string()).await.is_err()
        {
            // Reconnect on the next request (the instance restarted, or the connection broke).
            client = None;
        }
        let pause = rand::rng().random_range(150..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// One kept-alive HTTP/1.1 connection to an instance (hyper's client connection: the demo
/// needs nothing of a full client's pooling).
struct ApiClient {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    host: String,
    _conn: tokio::task::JoinHandle<()>,
}

impl ApiClient {
    async fn connect(addr: SocketAddr) -> Result<ApiClient, ClientError> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        Ok(ApiClient {
            sender,
            host: addr.to_string(),
            _conn: tokio::spawn(async move {
                let _ = conn.await;
            }),
        })
    }

    /// Posts JSON and reads the whole answer; the status is the API's business, not the demo's.
    async fn post(&mut self, path: &str, body: String) -> Result<u16, ClientError> {
        use http_body_util::BodyExt;
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        self.sender.ready().await?;
        let answer = self.sender.send_request(request).await?;
        let status = answer.status().as_u16();
        answer.into_body().collect().await?;
        Ok(status)
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

/// Now and then a report export inside the first instance keeps its connection past the leak
/// threshold.
async fn leaky_report(pool: InstrumentedPool) {
    tokio::time::sleep(Duration::from_secs(45)).await;
    loop {
        if let Ok(conn) = pool.acquire_labeled("report-export").await {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        }
        tokio::time::sleep(Duration::from_secs(150)).await;
    }
}
