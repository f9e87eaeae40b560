//! Where a backup is restored to be verified: the dev server (a private cluster by default),
//! made sure not to be production's own server. `pgvigil backup verify` and the dashboard's
//! backup job both start their target here, so the refusal is written once.

use crate::config::PoolConfig;
use crate::db_error::DbError;
use crate::dev::{DevError, DevServer, DevSource};
use crate::session::ProductionSession;

use super::manifest::BackupManifest;

/// Why no restore target could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The dev server could not be started or reached, or it is production's own server
    /// ([`DevError::SameServer`]).
    #[error(transparent)]
    Dev(#[from] DevError),
    /// Production's identity could not be read to compare the target with it.
    #[error("reading production's identity to keep the restore off its server: {0}")]
    Production(#[source] DbError),
}

/// Starts (or reaches) the dev server `source` for a restore of `manifest`'s backup: a
/// private cluster of the backup's major version, or a dev URL. A URL's server is compared
/// with production's identity, read through `production` when given; without it, only the
/// restore's own check against the backup's system identifier stands (see
/// [`super::restore_into_scratch`]).
pub async fn restore_target(
    source: &DevSource,
    manifest: &BackupManifest,
    config: &PoolConfig,
    production: Option<&mut ProductionSession>,
) -> Result<DevServer, TargetError> {
    let major = (manifest.source.server_version_num / 10000) as u32;
    let server = DevServer::start(source, Some(major)).await?;
    if !server.is_private()
        && let Some(session) = production
    {
        let identity = session
            .read(async |r| crate::dev::server_identity(r).await)
            .await
            .map_err(|e| TargetError::Production(DbError::new(e, &config.database_url)))?;
        server.ensure_apart_from(&identity)?;
    }
    Ok(server)
}
