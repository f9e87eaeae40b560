//! `pgvigil schema snapshot`: the schema the migrations produce, built on the dev database
//! (never on DATABASE_URL), written to a file for `pgvigil check --expected FILE`. Production
//! is asked, read-only, only which server it is.

use std::path::PathBuf;
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::{ExpectedSchema, Status};
use pgvigil::dev::{DevServer, DevSource};

use super::{connect_dedicated, print_out};
use crate::error::CommandError;

pub async fn snapshot(
    config: PoolConfig,
    dir: PathBuf,
    output: PathBuf,
    dev: DevSource,
) -> Result<Status, CommandError> {
    let local = pgvigil::migrations::load_local(&dir).await?;
    // Its major version, which the dev database must match, and its identity, which the dev
    // server must not share.
    let mut conn = connect_dedicated(&config).await?;
    let facts = conn
        .read(async |r| {
            let major: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
                .fetch_one(&mut *r)
                .await?;
            let identity = pgvigil::dev::server_identity(r).await?;
            Ok((major.parse::<u32>().unwrap_or(0) / 10000, identity))
        })
        .await;
    let (major, identity) =
        facts.map_err(|e| CommandError::Query(pgvigil::DbError::new(e, &config.database_url)))?;
    conn.close().await;
    let server = DevServer::start(&dev, Some(major))
        .await
        .map_err(CommandError::DevServer)?;
    server
        .ensure_apart_from(&identity)
        .map_err(CommandError::DevServer)?;
    let expected = ExpectedSchema::build(&server, &local, Duration::from_secs(600)).await?;
    expected
        .write(&output)
        .map_err(|source| CommandError::Output {
            path: output.clone(),
            source,
        })?;
    let objects: usize = expected.objects_by_version.values().map(Vec::len).sum();
    print_out(&format!(
        "wrote {}: {} migrations, {} tables, {objects} objects ({})\n",
        output.display(),
        expected.migrations.len(),
        expected.snapshot.tables.len(),
        pgvigil::sanitize::printable(&expected.source)
    ));
    Ok(Status::Pass)
}
