//! One file per command; `main.rs` dispatches to them. Each returns its verdict or a
//! [`CommandError`] (crate::error turns both into words and the exit code). What they share:
//! standard output that tolerates a closed pipe, and the two ways a command connects to
//! DATABASE_URL.

pub mod backup;
pub mod check;
pub mod completions;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod lint;
pub mod man;
pub mod migrate;
pub mod ping;
pub mod rehearse;
pub mod schema;
pub mod serve;
pub mod sources;

use pgvigil::PoolConfig;
use pgvigil::pool::{ConnectError, Connector, InstrumentedPool};

use crate::error::CommandError;

/// Writes to standard output; a reader that went away (`pgvigil check | head`) ends the
/// output quietly instead of a panic.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A value as pretty JSON on standard output.
pub fn print_json(value: &impl serde::Serialize) {
    print_out(&format!(
        "{}\n",
        serde_json::to_string_pretty(value).expect("pgvigil's reports serialise")
    ));
}

/// A read-only session on production outside any pool.
pub async fn connect_dedicated(
    config: &PoolConfig,
) -> Result<pgvigil::session::ProductionSession, CommandError> {
    pgvigil::session::ProductionSession::connect(config)
        .await
        .map_err(|e| CommandError::Dedicated {
            url: Box::new(config.database_url.clone()),
            source: pgvigil::DbError::new(e, &config.database_url),
        })
}

/// One-shot commands need one connection, not the dashboard's minimum of five.
pub async fn connect_one_shot(mut config: PoolConfig) -> Result<InstrumentedPool, ConnectError> {
    config.min_connections = config.min_connections.min(1);
    Connector::new(config).connect().await
}
