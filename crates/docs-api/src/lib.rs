//! The example documents API: a small service on the reference schema (migrations/ at the
//! workspace root). It stores documents with 3072-dimension embeddings and searches them by
//! cosine distance through the halfvec HNSW index, builds its pool from the environment, and
//! mounts pgvigil's router for Kubernetes probes and Prometheus (with one metric of its own in
//! the same registry). `pgvigil demo` runs three instances of it in front of its database.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@db/docs LISTEN=127.0.0.1:8080 READY_CHECK_PGVECTOR=true \
//!   cargo run -p docs-api
//! curl -s localhost:8080/health/ready; curl -s localhost:8080/metrics
//! ```
//!
//! - `POST /documents` `{"doc_type":"guide","source_name":"handbook","doc_path":"a.md",
//!   "content":"...","embedding":[3072 numbers]}` answers 201 `{"id":"..."}`. The source's
//!   `total_docs` counts it in the same transaction (so a long lock on the source's row holds
//!   every insert for that source, and the pool shows it).
//! - `POST /documents/search` `{"embedding":[3072 numbers],"k":5}` answers the k nearest as
//!   `[{"id","doc_path","distance"}]`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use pgvigil::http::{HealthSettings, HttpFace, ServeLimits, serve_bounded};
use pgvigil::{ConfigSources, Connector, InstrumentedPool, PoolConfig};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

/// The embedding size of the reference schema.
pub const DIMENSIONS: usize = 3072;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
    outcome: &'static str,
}

#[derive(Clone)]
struct App {
    pool: InstrumentedPool,
    requests: Family<Route, Counter>,
}

#[derive(Deserialize)]
struct NewDocument {
    doc_type: String,
    source_name: String,
    doc_path: String,
    content: String,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Search {
    embedding: Vec<f32>,
    #[serde(default = "five")]
    k: i64,
}

fn five() -> i64 {
    5
}

type Answer = (StatusCode, Json<Value>);

/// An error answer: `message` is pgvigil's words (a [`pgvigil::DbError`] is already scrubbed
/// of the password).
fn refuse(status: StatusCode, message: impl std::fmt::Display) -> Answer {
    (status, Json(json!({ "error": message.to_string() })))
}

/// A statement's failure as the client sees it.
fn statement_failed(app: &App, e: sqlx::Error) -> Answer {
    refuse(
        StatusCode::BAD_REQUEST,
        pgvigil::DbError::new(e, &app.pool.config().database_url),
    )
}

fn check_embedding(embedding: &[f32]) -> Result<String, Answer> {
    if embedding.len() != DIMENSIONS || embedding.iter().any(|x| !x.is_finite()) {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "embedding: {} numbers given; expected {DIMENSIONS} finite numbers",
                embedding.len()
            ),
        ));
    }
    Ok(pgvigil::checks::pgvector::vector_literal(embedding))
}

async fn insert(State(app): State<App>, Json(doc): Json<NewDocument>) -> Answer {
    let answer = insert_document(&app, doc).await.unwrap_or_else(|e| e);
    let outcome = if answer.0.is_success() { "ok" } else { "error" };
    app.requests
        .get_or_create(&Route {
            route: "insert",
            outcome,
        })
        .inc();
    answer
}

async fn insert_document(app: &App, doc: NewDocument) -> Result<Answer, Answer> {
    let vector = check_embedding(&doc.embedding)?;
    let mut conn = app
        .pool
        .acquire_labeled("insert")
        .await
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let explain = |e| statement_failed(app, e);
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(explain)?;
    sqlx::query(
        "INSERT INTO document_sources (doc_type, source_name) VALUES ($1::doc_type, $2) \
         ON CONFLICT (doc_type, source_name) DO NOTHING",
    )
    .bind(&doc.doc_type)
    .bind(&doc.source_name)
    .execute(&mut *tx)
    .await
    .map_err(explain)?;
    let id: String = sqlx::query_scalar(
        "INSERT INTO documents (doc_type, source_name, doc_path, content, embedding) \
         VALUES ($1::doc_type, $2, $3, $4, $5::text::vector(3072)) RETURNING id::text",
    )
    .bind(&doc.doc_type)
    .bind(&doc.source_name)
    .bind(&doc.doc_path)
    .bind(&doc.content)
    .bind(&vector)
    .fetch_one(&mut *tx)
    .await
    .map_err(explain)?;
    sqlx::query(
        "UPDATE document_sources SET total_docs = total_docs + 1, last_updated = now() \
         WHERE doc_type = $1::doc_type AND source_name = $2",
    )
    .bind(&doc.doc_type)
    .bind(&doc.source_name)
    .execute(&mut *tx)
    .await
    .map_err(explain)?;
    tx.commit().await.map_err(explain)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn search(State(app): State<App>, Json(q): Json<Search>) -> Answer {
    let answer = search_documents(&app, q).await.unwrap_or_else(|e| e);
    let outcome = if answer.0.is_success() { "ok" } else { "error" };
    app.requests
        .get_or_create(&Route {
            route: "search",
            outcome,
        })
        .inc();
    answer
}

async fn search_documents(app: &App, q: Search) -> Result<Answer, Answer> {
    let vector = check_embedding(&q.embedding)?;
    if !(1..=100).contains(&q.k) {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("k: {} given; expected 1 to 100", q.k),
        ));
    }
    let mut conn = app
        .pool
        .acquire_labeled("search")
        .await
        .map_err(|e| refuse(StatusCode::SERVICE_UNAVAILABLE, e))?;
    // The ORDER BY expression is the index's (embedding::halfvec(3072) with cosine distance),
    // so the planner walks the HNSW graph instead of scanning every row.
    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT id::text, doc_path, (embedding::halfvec(3072) <=> $1::text::halfvec(3072))::float8 \
         FROM documents ORDER BY embedding::halfvec(3072) <=> $1::text::halfvec(3072) LIMIT $2",
    )
    .bind(&vector)
    .bind(q.k)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| statement_failed(app, e))?;
    let hits: Vec<Value> = rows
        .into_iter()
        .map(|(id, path, distance)| json!({ "id": id, "doc_path": path, "distance": distance }))
        .collect();
    Ok((StatusCode::OK, Json(Value::Array(hits))))
}

/// The service's routes on `pool`, with pgvigil's probes and /metrics (its own request counter
/// in the same registry).
pub fn router(pool: InstrumentedPool, health: HealthSettings) -> Router {
    let mut registry = Registry::default();
    let requests = Family::<Route, Counter>::default();
    registry.register(
        "docs_api_requests",
        "Requests by route and outcome",
        requests.clone(),
    );
    let face = HttpFace::new(health)
        .pool("main", pool.clone())
        .registry(registry)
        .router();
    Router::new()
        .route("/documents", post(insert))
        .route("/documents/search", post(search))
        .with_state(App { pool, requests })
        .merge(face)
}

/// The binary: the pool and health settings from the environment (and `.env`), `LISTEN`
/// (default 127.0.0.1:8080), until SIGTERM or Ctrl-C.
pub async fn run_from_env() -> Result<(), Box<dyn std::error::Error>> {
    let sources = ConfigSources::from_process([], None)?;
    let pool = Connector::new(PoolConfig::from_sources(&sources)?)
        .connect()
        .await?;
    let listen: std::net::SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| format!("LISTEN: {e}; expected IP:PORT such as 127.0.0.1:8080"))?;
    let app = router(pool.clone(), HealthSettings::from_sources(&sources)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("LISTEN {listen}: {e}"))?;
    println!("documents api on http://{}", listener.local_addr()?);
    // Bounded (header read time, keep-alive idle, header size, connections, shutdown), from
    // the HTTP_* settings; axum::serve would hold a slow client for ever.
    let mut limits = ServeLimits::from_sources(&sources)?;
    limits.max_connections = limits.fit_open_files().0;
    serve_bounded(listener, app, limits, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
    .await;
    pool.close().await;
    Ok(())
}
