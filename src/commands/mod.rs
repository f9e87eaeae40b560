//! One file per command; `main.rs` dispatches to them. What they share: the verdict codes,
//! the words on stderr, standard output that tolerates a closed pipe, and the two ways a
//! command connects to DATABASE_URL.

pub mod check;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod migrate;
pub mod ping;
pub mod schema;
pub mod serve;
pub mod sources;

use std::process::ExitCode;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::pool::{Connector, InstrumentedPool, connect_options};
use sqlx::ConnectOptions;

/// What every way of not deciding exits with (usage errors, no connection, bad configuration).
pub const UNKNOWN: Status = Status::Unknown;

/// The process exit code of a verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
pub fn exit(status: Status) -> ExitCode {
    ExitCode::from(status.exit_code())
}

/// An error for the user on stderr, with control characters from the server or a file shown
/// as escapes (a message can quote a server's text).
pub fn say(message: &str) {
    eprintln!("pgvigil: {}", pgvigil::sanitize::printable_lines(message));
}

/// Writes to standard output; a reader that went away (`pgvigil check | head`) ends the
/// output quietly instead of a panic.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// A single connection outside any pool; says why on stderr when it cannot.
pub async fn connect_dedicated(config: &PoolConfig) -> Option<sqlx::PgConnection> {
    let connected = async {
        let mut conn = connect_options(config).connect().await?;
        if let Some(guard) = config.read_only {
            pgvigil::pool::ensure_read_only(&mut conn, guard).await?;
        }
        Ok::<_, sqlx::Error>(conn)
    };
    match connected.await {
        Ok(c) => Some(c),
        Err(e) => {
            say(&format!(
                "cannot connect to {}: {}",
                config.database_url,
                config.database_url.explain(&e)
            ));
            None
        }
    }
}

/// One-shot commands need one connection, not the dashboard's minimum of five.
pub async fn connect_one_shot(mut config: PoolConfig) -> Result<InstrumentedPool, String> {
    config.min_connections = config.min_connections.min(1);
    Connector::new(config)
        .connect()
        .await
        .map_err(|e| e.to_string())
}
