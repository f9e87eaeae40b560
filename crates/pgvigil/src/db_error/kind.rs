//! Which failures are worth retrying: the classification table, SQLSTATE and driver error to
//! [`FailureKind`]. A database that is restarting, overloaded or briefly unreachable comes back;
//! a wrong password or a missing database does not, and retrying them only delays the message
//! that says what to fix.

use serde::Serialize;

/// What went wrong, in the terms an on-call engineer acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// 28P01 invalid_password, 28000 invalid_authorization_specification.
    Authentication,
    /// 3D000 invalid_catalog_name: the database does not exist.
    DatabaseMissing,
    /// A URL or option the driver refused.
    Configuration,
    /// TLS negotiation or certificate verification failed.
    Tls,
    /// Refused, reset, unreachable: the network or the server process is not there.
    Io,
    /// No answer in time (connect timeout, acquire timeout).
    Timeout,
    /// SQLSTATE class 08: connection exception.
    ConnectionException,
    /// 57P01 admin_shutdown: the server is shutting down or the backend was terminated.
    AdminShutdown,
    /// 57P02 crash_shutdown: another backend crashed and the server is resetting.
    CrashShutdown,
    /// 57P03 cannot_connect_now: the server is starting up or in recovery.
    CannotConnectNow,
    /// 53300 too_many_connections.
    TooManyConnections,
    /// The driver lost the protocol thread (usually the server went away mid-message).
    Protocol,
    /// The pool was closed by the application.
    PoolClosed,
    /// Any other error the server returned for a statement.
    Query,
    /// Anything else (a driver error that fits none of the kinds above).
    Other,
}

impl FailureKind {
    /// Transient failures that a later attempt can overcome.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Io
                | Self::Timeout
                | Self::ConnectionException
                | Self::AdminShutdown
                | Self::CrashShutdown
                | Self::CannotConnectNow
                | Self::TooManyConnections
                | Self::Protocol
        )
    }

    /// The kind as a stable snake_case word, for logs, metrics and JSON (`too_many_connections`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::DatabaseMissing => "database_missing",
            Self::Configuration => "configuration",
            Self::Tls => "tls",
            Self::Io => "io",
            Self::Timeout => "timeout",
            Self::ConnectionException => "connection_exception",
            Self::AdminShutdown => "admin_shutdown",
            Self::CrashShutdown => "crash_shutdown",
            Self::CannotConnectNow => "cannot_connect_now",
            Self::TooManyConnections => "too_many_connections",
            Self::Protocol => "protocol",
            Self::PoolClosed => "pool_closed",
            Self::Query => "query",
            Self::Other => "other",
        }
    }

    /// What to fix, for failures that retrying will not cure.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Authentication => {
                "check the user and password in DATABASE_URL and the server's pg_hba.conf"
            }
            Self::DatabaseMissing => {
                "check the database name in DATABASE_URL (psql's \\l lists the databases)"
            }
            Self::Configuration => "check DATABASE_URL and the POOL_* settings",
            Self::Tls => {
                "check sslmode and sslrootcert in DATABASE_URL against the server's certificate"
            }
            Self::TooManyConnections => {
                "the server is at max_connections; lower POOL_MAX_CONNECTIONS or free connections"
            }
            Self::PoolClosed => "the pool was closed by the application",
            _ => "the server or the network is unavailable; pgvigil keeps retrying",
        }
    }
}

/// Classifies a SQLSTATE code returned by the server.
pub fn classify_sqlstate(code: &str) -> FailureKind {
    match code {
        "28P01" | "28000" => FailureKind::Authentication,
        "3D000" => FailureKind::DatabaseMissing,
        "57P01" => FailureKind::AdminShutdown,
        "57P02" => FailureKind::CrashShutdown,
        "57P03" => FailureKind::CannotConnectNow,
        "53300" => FailureKind::TooManyConnections,
        c if c.starts_with("08") => FailureKind::ConnectionException,
        _ => FailureKind::Query,
    }
}

fn tls_failure(text: &str) -> bool {
    text.contains("invalid peer certificate")
        || text.contains("peer is incompatible")
        || text.contains("received fatal alert")
        || text.contains("InvalidCertificate")
}

impl FailureKind {
    /// What to fix, in the words of this particular failure where they say more than the kind
    /// (which certificate check failed; a server that accepts only TLS).
    pub fn hint_for(self, cause: &str) -> String {
        let specific = match self {
            Self::Tls if cause.contains("UnknownIssuer") => Some(
                "the server's certificate is not signed by a CA in sslrootcert: point sslrootcert \
                 at the CA that signed it (ask the database's owners for their CA bundle), or check \
                 that the host is the server you meant",
            ),
            Self::Tls if cause.contains("not valid for name") => Some(
                "the server's certificate does not name the host in DATABASE_URL: connect by a \
                 name the certificate lists (shown above) or have it reissued; sslmode=verify-ca \
                 checks the CA but not the name",
            ),
            Self::Tls if cause.contains("CaUsedAsEndEntity") => Some(
                "the server presents a CA certificate as its own: its ssl_cert_file must be a \
                 server certificate signed by that CA",
            ),
            Self::Tls if cause.contains("Expired") => {
                Some("the server's certificate has expired: it must be renewed")
            }
            Self::Authentication if cause.contains("no encryption") => Some(
                "the server accepts only TLS connections (hostssl in pg_hba.conf): use \
                 sslmode=require, or sslmode=verify-full with sslrootcert=CA-FILE to check its \
                 certificate as well",
            ),
            _ => None,
        };
        specific.map_or_else(|| self.hint().to_string(), str::to_string)
    }
}

/// Classifies an error from sqlx. sqlx's SQLSTATE constants are private, so the codes are
/// matched as strings.
pub fn classify(err: &sqlx::Error) -> FailureKind {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .map(|c| classify_sqlstate(&c))
            .unwrap_or(FailureKind::Query),
        // rustls reports certificate verification failures through the I/O stream: they
        // are configuration problems that no retry cures, not network trouble.
        sqlx::Error::Io(io) if tls_failure(&io.to_string()) => FailureKind::Tls,
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => FailureKind::Timeout,
            _ => FailureKind::Io,
        },
        sqlx::Error::Tls(_) => FailureKind::Tls,
        sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => {
            FailureKind::Configuration
        }
        sqlx::Error::PoolTimedOut => FailureKind::Timeout,
        sqlx::Error::PoolClosed => FailureKind::PoolClosed,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => FailureKind::Protocol,
        _ => FailureKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn sqlstates_are_classified() {
        let table = [
            ("28P01", FailureKind::Authentication, false),
            ("28000", FailureKind::Authentication, false),
            ("3D000", FailureKind::DatabaseMissing, false),
            ("08000", FailureKind::ConnectionException, true),
            ("08001", FailureKind::ConnectionException, true),
            ("08003", FailureKind::ConnectionException, true),
            ("08006", FailureKind::ConnectionException, true),
            ("08P01", FailureKind::ConnectionException, true),
            ("57P01", FailureKind::AdminShutdown, true),
            ("57P02", FailureKind::CrashShutdown, true),
            ("57P03", FailureKind::CannotConnectNow, true),
            ("53300", FailureKind::TooManyConnections, true),
            ("42P01", FailureKind::Query, false),
            ("57014", FailureKind::Query, false),
        ];
        for (code, kind, retryable) in table {
            assert_eq!(classify_sqlstate(code), kind, "{code}");
            assert_eq!(kind.is_retryable(), retryable, "{code}");
        }
    }

    #[test]
    fn driver_errors_are_classified() {
        let table: Vec<(sqlx::Error, FailureKind, bool)> = vec![
            (
                sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused)),
                FailureKind::Io,
                true,
            ),
            (
                sqlx::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
                FailureKind::Io,
                true,
            ),
            (
                sqlx::Error::Io(io::Error::from(io::ErrorKind::TimedOut)),
                FailureKind::Timeout,
                true,
            ),
            (sqlx::Error::PoolTimedOut, FailureKind::Timeout, true),
            (sqlx::Error::PoolClosed, FailureKind::PoolClosed, false),
            (
                sqlx::Error::Configuration("bad".into()),
                FailureKind::Configuration,
                false,
            ),
            (
                sqlx::Error::Tls("unknown issuer".into()),
                FailureKind::Tls,
                false,
            ),
            (
                sqlx::Error::Protocol("unexpected eof".into()),
                FailureKind::Protocol,
                true,
            ),
            (sqlx::Error::RowNotFound, FailureKind::Other, false),
        ];
        for (err, kind, retryable) in table {
            let got = classify(&err);
            assert_eq!(got, kind, "{err}");
            assert_eq!(got.is_retryable(), retryable, "{err}");
        }
    }
}
