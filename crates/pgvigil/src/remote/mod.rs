//! The pools of other processes, beside pgvigil's own ([`crate::pool`]): PgBouncer's console
//! ([`pgbouncer`]), an application instance's `/metrics` (pgvigil's names or HikariCP's; cargo
//! feature `scrape`), a fleet through Prometheus (feature `scrape`), and the sizing verdict they
//! all feed ([`sizing`]). The dashboard shows the pools that serve traffic, not only its own.
//! Everything read is bounded in time, bytes, series and buckets, and every figure is checked
//! where it enters ([`bounds`]).

pub mod pgbouncer;
pub mod sizing;

#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
pub mod bounds;
#[cfg(feature = "scrape")]
mod exposition;
#[cfg(feature = "scrape")]
mod figures;
#[cfg(feature = "scrape")]
mod fleet;
#[cfg(feature = "scrape")]
mod scrape;
#[cfg(feature = "scrape")]
mod selector;

#[cfg(feature = "scrape")]
use exposition::parse_where;
#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
pub use figures::{InstanceFigures, InstanceWindow, MetricFamily, PoolReading};
#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
pub use fleet::{Fleet, FleetFigures, parse_answer};
#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
pub use scrape::{Endpoint, MAX_BODY_BYTES, ScrapeError, TransportError};
#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
pub use selector::Selector;

#[cfg(feature = "scrape")]
/// The blocking task that reads a body ended without an answer (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("the body's reader failed: {0}")]
struct ReaderFailed(#[source] tokio::task::JoinError);

#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
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
            .unwrap_or_else(|e| {
                Err(ScrapeError::Http(scrape::TransportError::new(
                    ReaderFailed(e),
                )))
            })
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(ScrapeError::Timeout(timeout)))
}

#[cfg(feature = "scrape")]
#[cfg_attr(docsrs, doc(cfg(feature = "scrape")))]
/// The pool figures in a `/metrics` body (only the pool families are parsed).
pub fn read_body(body: &str) -> Result<PoolReading, ScrapeError> {
    let exposition = parse_where(body, |name| {
        name.starts_with("pgvigil_pool_") || name.starts_with("hikaricp_")
    })?;
    PoolReading::from_exposition(&exposition)
}
