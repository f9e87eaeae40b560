//! The dev database pgvigil starts on this machine by default: a private PostgreSQL of
//! production's major version (from `pgvigil-cluster`), removed when the job ends. The library
//! takes it through its [`DevProvider`] seam and does not know who started it.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use pgvigil::dev::{DevError, DevProvider, DevServer, DevSource};
use pgvigil_cluster::{ClusterOptions, PrivateCluster};
use sqlx::postgres::PgConnectOptions;

/// Starts a private cluster per use.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateDev;

impl DevProvider for PrivateDev {
    fn start(&self, major: Option<u32>) -> BoxFuture<'_, Result<DevServer, DevError>> {
        Box::pin(async move {
            let options = ClusterOptions {
                major,
                ..ClusterOptions::default()
            }
            // Keep it small and quick: this server lives for one job.
            .setting("shared_buffers", "32MB")
            .setting("max_connections", "20");
            // initdb and pg_ctl block; keep them off the async threads. If the caller is
            // cancelled meanwhile, the finished cluster is dropped (and removed) with the
            // task's output.
            let cluster = tokio::task::spawn_blocking(move || {
                pgvigil_cluster::sweep_stale();
                PrivateCluster::start_with(options)
            })
            .await
            .map_err(|e| DevError::Start(Box::new(e)))?
            .map_err(|e| DevError::Start(Box::new(e)))?;
            let admin = PgConnectOptions::new()
                .host("127.0.0.1")
                .port(cluster.port())
                .username("postgres")
                .password(cluster.password())
                .database("postgres");
            let secret = cluster.password().to_string();
            DevServer::owned(admin, secret, Box::new(cluster)).await
        })
    }
}

/// The default dev source: a private cluster.
pub fn private() -> DevSource {
    DevSource::Owned(Arc::new(PrivateDev))
}
