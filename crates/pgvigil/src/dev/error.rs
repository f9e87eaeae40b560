//! Why no dev database could be had.

use crate::db_error::DbError;

/// Why no dev database could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// `--dev-url` / `DEV_DATABASE_URL` is not a usable URL.
    #[error(
        "{origin}: {reason}; expected the URL of an empty scratch PostgreSQL server \
         (postgres://user:password@host:5432/postgres) whose role may create databases"
    )]
    Url {
        /// Which of the two gave it (`--dev-url` or `DEV_DATABASE_URL`).
        origin: &'static str,
        /// What is wrong with it (no password in it).
        reason: String,
    },
    /// The [`DevProvider`](super::DevProvider) could not start a private cluster.
    #[error("no private dev database could be started: {0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Neither a dev URL nor a [`DevProvider`](super::DevProvider) was given.
    #[error(
        "no dev database is configured: pass --dev-url / DEV_DATABASE_URL (an empty scratch \
         server), or give the library a DevProvider"
    )]
    NotConfigured,
    /// The dev server could not be reached (refused, timed out after 30 s, rejected the login).
    #[error("the dev database at {target} did not answer: {source}")]
    Connect {
        /// The dev server as reports name it (a redacted URL, or `private cluster`).
        target: String,
        /// The driver's failure, secrets removed.
        source: DbError,
    },
    /// The dev URL's role lacks CREATEDB, so no scratch database can be made there.
    #[error(
        "role \"{role}\" on the dev database at {target} may not create databases; give it \
         CREATEDB, or leave out --dev-url to use a private cluster"
    )]
    NotAllowed {
        /// The role the dev URL logs in as.
        role: String,
        /// The dev server, URL redacted.
        target: String,
    },
    /// A statement on the dev server failed.
    #[error("the dev database at {target}: {source}")]
    Database {
        /// The dev server as reports name it (a redacted URL, or `private cluster`).
        target: String,
        /// The server's failure, secrets removed.
        source: DbError,
    },
    /// The dev URL reaches production's own server (same [`server_identity`](super::server_identity)): refused.
    #[error(
        "--dev-url / DEV_DATABASE_URL ({target}) names the same PostgreSQL server as \
         DATABASE_URL; the dev database must be a separate, empty scratch server (migration SQL \
         never runs on production's server), or leave it out to use a private cluster"
    )]
    SameServer {
        /// The dev server, URL redacted.
        target: String,
    },
}
