//! Why a readiness reading of a pool failed, in two forms: a fixed class for the
//! unauthenticated body (`database: connection refused`: no user, no host, no server text) and
//! the full, password-scrubbed detail for the log. And the connect probe that tells a refused
//! connection at once: sqlx's pool retries a refused connect inside an acquire until its
//! deadline, so without it a stopped database reads as "no answer" after HEALTH_READY_TIMEOUT.

use std::io;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::db_error::{DbError, FailureKind};

/// A failed reading: what the body says and what the log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadinessFailure {
    /// A fixed phrase for the body.
    pub(crate) class: String,
    /// The scrubbed detail for the log.
    pub(crate) detail: String,
}

impl ReadinessFailure {
    /// A failure of the pool or of a query, classified and scrubbed where it happened.
    pub(crate) fn failed(err: &DbError) -> Self {
        Self {
            class: format!("database: {}", class_words(err.kind())),
            detail: err.to_string(),
        }
    }

    /// No answer before the reading's deadline.
    pub(crate) fn timeout(timeout: Duration) -> Self {
        let class = format!(
            "database: no answer within HEALTH_READY_TIMEOUT ({})",
            crate::config::format_duration(timeout)
        );
        Self {
            detail: class.clone(),
            class,
        }
    }

    /// The connect probe failed.
    pub(crate) fn connect(error: &io::Error, target: &str) -> Self {
        let class = match error.kind() {
            io::ErrorKind::ConnectionRefused => "database: connection refused",
            // A unix socket that is not there: the server is not running.
            io::ErrorKind::NotFound => "database: connection refused (no socket)",
            _ => "database: unreachable",
        };
        Self {
            class: class.to_string(),
            detail: format!("connecting to {target}: {error}"),
        }
    }
}

/// The body's words for each kind: a class, never the server's text.
fn class_words(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Authentication => "authentication failed",
        FailureKind::DatabaseMissing => "the database does not exist",
        FailureKind::Configuration => "the connection settings were refused",
        FailureKind::Tls => "TLS failed",
        FailureKind::Io => "connection failed",
        FailureKind::Timeout => "no connection in time",
        FailureKind::ConnectionException => "connection lost",
        FailureKind::AdminShutdown => "the server is shutting down",
        FailureKind::CrashShutdown => "the server is recovering from a crash",
        FailureKind::CannotConnectNow => "the server is starting up",
        FailureKind::TooManyConnections => "too many connections",
        FailureKind::Protocol => "the connection broke",
        FailureKind::PoolClosed => "the pool is closed",
        FailureKind::Query => "the readiness query failed",
        FailureKind::Other => "the readiness reading failed",
    }
}

/// Opens (and closes) a bare TCP or unix-socket connection to the pool's server: no startup
/// message, so no authentication and nothing in the server's log unless it logs connections.
pub(crate) async fn probe_connect(options: &PgConnectOptions) -> io::Result<()> {
    let host = options.get_host();
    let port = options.get_port();
    let socket = match options.get_socket() {
        Some(dir) => Some(format!("{}/.s.PGSQL.{port}", dir.display())),
        None if host.starts_with('/') => Some(format!("{host}/.s.PGSQL.{port}")),
        None => None,
    };
    match socket {
        Some(path) => tokio::net::UnixStream::connect(path).await.map(drop),
        None => tokio::net::TcpStream::connect((host, port)).await.map(drop),
    }
}
