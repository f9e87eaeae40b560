//! `pgvigil schema snapshot`: the schema the migrations produce, built on the dev database
//! (never on DATABASE_URL), written to a file for `pgvigil check --expected FILE`.

use std::path::PathBuf;
use std::time::Duration;

use pgvigil::PoolConfig;
use pgvigil::checks::{ExpectedSchema, Status};
use pgvigil::dev::{DevServer, DevSource};

use super::{UNKNOWN, connect_dedicated, print_out, say};

pub async fn snapshot(config: PoolConfig, dir: PathBuf, output: PathBuf, dev: DevSource) -> Status {
    let local = match pgvigil::checks::load_local(&dir).await {
        Ok(l) => l,
        Err(e) => {
            say(&e.to_string());
            return UNKNOWN;
        }
    };
    // Production is asked, read-only, which server it is: its major version, which the dev
    // database must match, and its identity, which the dev server must not share.
    let Some(mut conn) = connect_dedicated(&config).await else {
        return UNKNOWN;
    };
    let facts = async {
        let major: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
            .fetch_one(&mut conn)
            .await?;
        let identity = pgvigil::dev::server_identity(&mut conn).await?;
        Ok::<_, sqlx::Error>((major.parse::<u32>().unwrap_or(0) / 10000, identity))
    }
    .await;
    let (major, identity) = match facts {
        Ok(f) => f,
        Err(e) => {
            say(&config.database_url.explain(&e));
            return UNKNOWN;
        }
    };
    let _ = sqlx::Connection::close(conn).await;
    let built = async {
        let server = DevServer::start(&dev, Some(major))
            .await
            .map_err(|e| e.to_string())?;
        server
            .ensure_apart_from(&identity)
            .map_err(|e| e.to_string())?;
        ExpectedSchema::build(&server, &local, Duration::from_secs(600))
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match built {
        Ok(expected) => {
            if let Err(e) = expected.write(&output) {
                eprintln!("pgvigil: --output {}: {e}", output.display());
                return UNKNOWN;
            }
            let objects: usize = expected.objects_by_version.values().map(Vec::len).sum();
            print_out(&format!(
                "wrote {}: {} migrations, {} tables, {objects} objects ({})\n",
                output.display(),
                expected.migrations.len(),
                expected.snapshot.tables.len(),
                pgvigil::sanitize::printable(&expected.source)
            ));
            Status::Pass
        }
        Err(e) => {
            say(&e);
            Status::Fail
        }
    }
}
