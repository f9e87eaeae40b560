//! `pgvigil serve`: the library's HTTP face as a sidecar. It runs the instrumented pool against
//! DATABASE_URL (read-only sessions, like every pgvigil command) and serves `/health/live`,
//! `/health/ready` and `/metrics` for services that do not embed the library. It starts and
//! keeps serving while the database is down (liveness 200, readiness 503, the metrics show the
//! outage) and recovers by itself: the pool connects lazily and heals after a restart.
//! SIGTERM and SIGINT stop it gracefully (requests in flight finish).

use std::net::SocketAddr;

use pgvigil::PoolConfig;
use pgvigil::http::{HealthSettings, HttpFace};
use pgvigil::pool::InstrumentedPool;

/// What can stop `serve` from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--listen` is not HOST:PORT.
    #[error(
        "--listen: `{value}` is not an address to listen on; expected IP:PORT such as \
         127.0.0.1:9187, 0.0.0.0:9187 or [::1]:9187"
    )]
    BadAddress {
        /// What was given.
        value: String,
    },
    /// The address could not be bound (in use, not local, a privileged port).
    #[error("--listen {addr}: cannot listen there: {reason}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's words.
        reason: String,
        /// What to do about it.
        hint: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("serving on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `--listen`.
pub fn parse_listen(value: &str) -> Result<SocketAddr, ServeError> {
    value.trim().parse().map_err(|_| ServeError::BadAddress {
        value: pgvigil::sanitize::printable(value).into_owned(),
    })
}

/// Binds first (so a bad address fails at once, before any database work), then serves until
/// `shutdown` resolves.
pub async fn serve(
    config: PoolConfig,
    health: HealthSettings,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process listens on that port: stop it or choose another port)"
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    " (that IP is not an address of this machine: use 127.0.0.1 or 0.0.0.0)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need privileges: choose a port above 1023)"
                }
                _ => "",
            };
            ServeError::Bind {
                addr,
                reason: source.to_string(),
                hint,
                source,
            }
        })?;
    let target = config.database_url.to_string();
    // Lazy: no acquire at start (one that waited out POOL_ACQUIRE_TIMEOUT on a database that
    // is down would count as a timeout and fire the alert with no user affected); the first
    // readiness reading opens the pool.
    let pool = InstrumentedPool::lazy(config);
    let app = HttpFace::new(health)
        .pool("main", pool.clone())
        .router::<()>();
    tracing::info!(target: "pgvigil::serve", "serving /health/live, /health/ready and /metrics on http://{addr} for {target}");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    pool.close().await;
    served.map_err(|source| ServeError::Serve { addr, source })
}
