//! Reading other processes' pools (cargo feature `scrape`): an application instance's `/metrics`
//! (pgvigil's names or HikariCP's), so the dashboard shows the pools that serve traffic, not
//! only its own. Everything read is bounded in time, bytes, series and buckets, and every figure
//! is checked where it enters ([`bounds`]).

pub mod bounds;
mod exposition;
mod figures;
mod fleet;
mod scrape;
mod selector;

pub use exposition::{Exposition, Sample, parse, parse_where};
pub use figures::{InstanceFigures, InstanceWindow, MetricFamily, PoolReading, quantile};
pub use fleet::{Fleet, FleetFigures, parse_answer};
pub use scrape::{Endpoint, MAX_BODY_BYTES, ScrapeError, redact};
pub use selector::Selector;

/// Fetches and reads one endpoint: its pool figures, or why not, all within `timeout`.
///
/// The body is parsed on tokio's blocking pool, not on the caller's thread: the dashboard runs
/// on one thread, and a body of [`MAX_BODY_BYTES`] must not hold its frames back while it is
/// read (the parse is linear and bounded by [`bounds::MAX_POOL_SERIES`], but 4 MiB still take
/// milliseconds).
pub async fn read_endpoint(
    endpoint: &Endpoint,
    timeout: std::time::Duration,
) -> Result<PoolReading, ScrapeError> {
    let read = async {
        let body = endpoint.fetch(timeout).await?;
        tokio::task::spawn_blocking(move || read_body(&body))
            .await
            .unwrap_or_else(|e| Err(ScrapeError::Http(format!("the body's reader failed: {e}"))))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ScrapeError::Timeout(timeout)))
}

/// The pool figures in a `/metrics` body (only the pool families are parsed).
pub fn read_body(body: &str) -> Result<PoolReading, ScrapeError> {
    let exposition = parse_where(body, |name| {
        name.starts_with("pgvigil_pool_") || name.starts_with("hikaricp_")
    })?;
    PoolReading::from_exposition(&exposition)
}
