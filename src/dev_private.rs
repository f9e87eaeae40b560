//! The dev database pgvigil starts on this machine by default: a private PostgreSQL of
//! production's major version (from `pgvigil-cluster`), removed when the job ends. The library
//! takes it through its [`DevProvider`] seam and does not know who started it.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use pgvigil::dev::{DevError, DevNetwork, DevProvider, DevServer, DevSource};
use pgvigil_cluster::{ClusterOptions, Isolation, PrivateCluster};
use sqlx::postgres::PgConnectOptions;

/// Starts a private cluster per use.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateDev;

impl DevProvider for PrivateDev {
    fn start(&self, major: Option<u32>) -> BoxFuture<'_, Result<DevServer, DevError>> {
        Box::pin(async move {
            // Migration SQL runs here: it must reach no other server (production included,
            // with credentials a migration carries). Its only door is its unix socket.
            let options = ClusterOptions {
                major,
                isolate_network: true,
                ..ClusterOptions::default()
            }
            // Keep it small and quick: this server lives for one job.
            .setting("shared_buffers", "32MB")
            .setting("max_connections", "20")
            // WAL is not part of the dev database's size bound (--max-dev-size): keep it small.
            .setting("max_wal_size", "256MB");
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
            let network = match cluster.network_isolation() {
                Isolation::Isolated => DevNetwork::Isolated,
                Isolation::Unavailable(why) => DevNetwork::Open(why),
                Isolation::NotRequested => DevNetwork::Open("isolation was not asked for".into()),
            };
            let admin = PgConnectOptions::new()
                .socket(cluster.dir())
                .port(cluster.port())
                .username("postgres")
                .password(cluster.password())
                .database("postgres");
            let secret = cluster.password().to_string();
            Ok(DevServer::owned(admin, secret, Box::new(cluster))
                .await?
                .with_network(network))
        })
    }
}

/// The default dev source: a private cluster.
pub fn private() -> DevSource {
    DevSource::owned(Arc::new(PrivateDev))
}
