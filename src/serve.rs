//! `pgvigil serve`: the library's HTTP face as a sidecar. It runs the instrumented pool against
//! DATABASE_URL (read-only sessions, like every pgvigil command) and serves `/health/live`,
//! `/health/ready` and `/metrics` for services that do not embed the library. It starts and
//! keeps serving while the database is down (liveness 200, readiness 503, the metrics show the
//! outage) and recovers by itself: the pool connects lazily and heals after a restart.
//! SIGTERM and SIGINT stop it gracefully: idle and half-sent connections close at once,
//! requests in flight get `HTTP_SHUTDOWN_TIMEOUT` (10 s), and the process ends within that bound
//! (below Kubernetes' default 30 s grace period). The server's bounds are
//! [`pgvigil::http::ServeLimits`]: header read time, keep-alive idle time, header size and
//! connections.

use std::net::SocketAddr;

use pgvigil::PoolConfig;
use pgvigil::config::format_duration;
use pgvigil::http::{HealthSettings, HttpFace, ServeLimits};
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
    #[error("--listen {addr}: cannot listen there: {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What to do about it.
        hint: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The bound address could not be read back from the socket.
    #[error("--listen {addr}: the address the socket got cannot be read: {source}")]
    LocalAddr {
        /// The address asked for.
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
    limits: ServeLimits,
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
            ServeError::Bind { addr, hint, source }
        })?;
    // The address the socket got: `--listen 127.0.0.1:0` asks the kernel for a port.
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::LocalAddr { addr, source })?;
    let mut limits = limits;
    let (max_connections, lowered) = limits.fit_open_files();
    if let Some(why) = lowered {
        tracing::warn!(target: "pgvigil::serve", "{why}");
    }
    limits.max_connections = max_connections;
    let target = config.database_url.to_string();
    // Lazy: no acquire at start (one that waited out POOL_ACQUIRE_TIMEOUT on a database that
    // is down would count as a timeout and fire the alert with no user affected); the first
    // readiness reading opens the pool.
    let pool = InstrumentedPool::lazy(config);
    let app = HttpFace::new(health)
        .pool("main", pool.clone())
        .router::<()>();
    tracing::info!(
        target: "pgvigil::serve",
        "serving /health/live, /health/ready and /metrics on http://{bound} for {target} \
         (header read {}, idle {}, header bytes {}, connections {}, shutdown {})",
        format_duration(limits.header_read_timeout),
        format_duration(limits.idle_timeout),
        limits.max_header_bytes,
        limits.max_connections,
        format_duration(limits.shutdown_timeout),
    );
    let started = tokio::time::Instant::now();
    let shutdown_timeout = limits.shutdown_timeout;
    let stopped_at = std::sync::Arc::new(std::sync::OnceLock::new());
    let mark = stopped_at.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = mark.set(tokio::time::Instant::now());
    };
    pgvigil::http::serve_bounded(listener, app, limits, shutdown).await;
    // The pool closes within what is left of the shutdown bound: a checkout still out (a
    // readiness reading on a frozen database) must not hold the process past it.
    let deadline = stopped_at.get().copied().unwrap_or(started) + shutdown_timeout;
    if tokio::time::timeout_at(deadline, pool.close())
        .await
        .is_err()
    {
        tracing::warn!(target: "pgvigil::serve", "the pool did not close within HTTP_SHUTDOWN_TIMEOUT: leaving it");
    }
    tracing::info!(target: "pgvigil::serve", "stopped");
    Ok(())
}
