//! Reading other processes' pools (cargo feature `scrape`): an application instance's `/metrics`
//! (pgvigil's names or HikariCP's), so the dashboard shows the pools that serve traffic, not
//! only its own.

mod exposition;
mod figures;
mod fleet;
mod scrape;

pub use exposition::{Exposition, Sample, parse, parse_where};
pub use figures::{InstanceFigures, InstanceWindow, MetricFamily, PoolReading, quantile};
pub use fleet::{Fleet, FleetFigures, parse_answer};
pub use scrape::{Endpoint, MAX_BODY_BYTES, ScrapeError, redact};

/// Fetches and reads one endpoint: its pool figures, or why not.
pub async fn read_endpoint(
    endpoint: &Endpoint,
    timeout: std::time::Duration,
) -> Result<PoolReading, ScrapeError> {
    let body = endpoint.fetch(timeout).await?;
    let exposition = parse_where(&body, |name| {
        name.starts_with("pgvigil_pool_") || name.starts_with("hikaricp_")
    });
    PoolReading::from_exposition(&exposition).ok_or_else(|| {
        // What the body did hold, for the message: counted, not parsed (a hostile body of
        // short lines would otherwise allocate for every one of them, every tick).
        let samples = body
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        ScrapeError::NoPoolMetrics(samples)
    })
}
