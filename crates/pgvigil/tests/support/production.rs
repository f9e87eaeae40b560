//! Production as the tests stand it up: a read-only configuration and session on a URL. Shared
//! by the library's tests and the workspace root's (tests/support includes this file).

/// The configuration pgvigil uses on production: read-only, one connection at least.
pub fn prod_config(url: &str) -> pgvigil::PoolConfig {
    pgvigil::PoolConfig::builder(url)
        .min_connections(1)
        .build()
        .expect("config")
        .read_only()
}

/// A read-only session on `url`, as pgvigil opens it on production.
pub async fn prod_connection(url: &str) -> pgvigil::session::ProductionSession {
    pgvigil::session::ProductionSession::connect(&prod_config(url))
        .await
        .expect("connect")
}
