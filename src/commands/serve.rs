//! `pgvigil serve`: reads its settings and runs the HTTP face (crate::serve) until SIGTERM or
//! SIGINT.

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use super::{UNKNOWN, say};

/// `pgvigil serve`: 0 after a graceful stop (SIGTERM, SIGINT), 3 when it cannot start.
pub async fn run(sources: &pgvigil::ConfigSources, listen: &str) -> Status {
    let started = (|| {
        let addr = crate::serve::parse_listen(listen).map_err(|e| e.to_string())?;
        let config = PoolConfig::from_sources(sources).map_err(|e| e.to_string())?;
        let health =
            pgvigil::http::HealthSettings::from_sources(sources).map_err(|e| e.to_string())?;
        let limits =
            pgvigil::http::ServeLimits::from_sources(sources).map_err(|e| e.to_string())?;
        Ok::<_, String>((addr, config.read_only(), health, limits))
    })();
    let (addr, config, health, limits) = match started {
        Ok(v) => v,
        Err(e) => {
            say(&e);
            return UNKNOWN;
        }
    };
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                tracing::info!(target: "pgvigil::serve", "{name}: finishing requests in flight and stopping");
            }
            _ => std::future::pending::<()>().await,
        }
    };
    match crate::serve::serve(config, health, limits, addr, shutdown).await {
        Ok(()) => Status::Pass,
        Err(e) => {
            say(&e.to_string());
            UNKNOWN
        }
    }
}
