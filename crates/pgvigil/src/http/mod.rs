//! The HTTP face an application mounts (cargo feature `http`): Kubernetes health probes and
//! Prometheus metrics for one or more named pools, as an axum 0.8 [`Router`] to merge into the
//! application's own.
//!
//! - `GET /health/live`: 200 while the process can answer; never touches the database.
//! - `GET /health/ready`: the pools answer `SELECT 1` within `HEALTH_READY_TIMEOUT`, the
//!   migration ledger has nothing failed, changed or missing, pgvector and the embedding column
//!   are right when asked, and saturation is below its warning level (else `warn`). One
//!   reading per `HEALTH_CACHE_TTL`, single flight. 200 for pass and warn, 503 for fail.
//! - `GET /metrics`: `pgvigil_pool_*` in the Prometheus text format, or OpenMetrics when the
//!   scraper's Accept header asks for it, plus whatever the application registered itself.
//!
//!
//! [`serve_bounded`] serves it (or the application's router) with the bounds `axum::serve`
//! lacks: header read time, keep-alive idle time, header size, connections and shutdown time
//! ([`ServeLimits`], from `HTTP_*` settings).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use pgvigil::http::{HealthSettings, HttpFace, ServeLimits, serve_bounded};
//! use pgvigil::{ConfigSources, Connector, PoolConfig};
//!
//! let sources = ConfigSources::from_process([], None)?;
//! let pool = Connector::new(PoolConfig::from_sources(&sources)?).connect().await?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "documents" }))
//!     .merge(HttpFace::new(HealthSettings::from_sources(&sources)?).pool("main", pool).router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = ServeLimits::from_sources(&sources)?;
//! serve_bounded(listener, app, limits, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(())
//! # }
//! ```

mod connection;
mod health;
mod metrics;
mod probe;
mod server;
mod settings;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

pub use health::{
    CheckReading, HEALTH_JSON, HealthSettings, HealthStatus, MigrationRequirement, Readiness,
};
pub use metrics::{ACQUIRE_BUCKETS, USAGE_BUCKETS};
pub use server::{RESERVED_FDS, ServeLimits, Stopped, serve_bounded};

use crate::pool::InstrumentedPool;
use health::{Liveness, ReadinessCache};
use metrics::PoolCollector;

/// The content type of OpenMetrics text, for scrapers that ask for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Builds the router: the pools it reports on, the health settings and, optionally, the
/// application's own metrics registry (served by the same `/metrics`).
#[derive(Debug)]
pub struct HttpFace {
    settings: HealthSettings,
    pools: Vec<(String, InstrumentedPool)>,
    registry: Registry,
}

impl HttpFace {
    /// A face with no pools yet.
    pub fn new(settings: HealthSettings) -> Self {
        Self {
            settings,
            pools: Vec::new(),
            registry: Registry::default(),
        }
    }

    /// Adds a pool under `name` (the `pool` label and the readings' `componentId`).
    pub fn pool(mut self, name: impl Into<String>, pool: InstrumentedPool) -> Self {
        self.pools.push((name.into(), pool));
        self
    }

    /// Serves the application's own metrics from this registry too. Register them before
    /// building the router; their handles keep updating the values afterwards.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The router with `/health/live`, `/health/ready` and `/metrics`, for any application
    /// state (merge it into the application's router).
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let pools = Arc::new(self.pools);
        let readiness = Arc::new(ReadinessCache::new(pools.clone(), self.settings));
        let mut registry = self.registry;
        registry.register_collector(Box::new(PoolCollector {
            pools,
            readiness: readiness.clone(),
        }));
        let shared = Arc::new(Shared {
            started: Instant::now(),
            readiness,
            registry,
        });
        Router::new()
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(shared)
    }
}

/// The router for one pool named `main`, with the given settings.
pub fn router<S>(pool: InstrumentedPool, settings: HealthSettings) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    HttpFace::new(settings).pool("main", pool).router()
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    readiness: Arc<ReadinessCache>,
    registry: Registry,
}

fn health_json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn live(State(shared): State<Arc<Shared>>) -> Response {
    let body = Liveness {
        status: health::HealthStatus::Pass,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: shared.started.elapsed().as_secs(),
    };
    health_json(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let reading = shared.readiness.get().await;
    let status = match reading.status {
        HealthStatus::Pass | HealthStatus::Warn => StatusCode::OK,
        HealthStatus::Fail => StatusCode::SERVICE_UNAVAILABLE,
    };
    health_json(status, reading.body.clone())
}

/// True when the Accept header prefers OpenMetrics text.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut body = String::with_capacity(8 * 1024);
    let (encoded, content_type) = if wants_openmetrics(&headers) {
        (
            prometheus_client::encoding::text::encode(&mut body, &shared.registry),
            OPENMETRICS,
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut body, &shared.registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    if encoded.is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed",
        )
            .into_response();
    }
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
