//! `pgvigil ping`: connect with the configured retries, run one query, print the pool's figures.
//! Cannot reach the database: UNKNOWN (3), as `check` says in the same case.

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use super::{connect_one_shot, print_json};
use crate::error::CommandError;

pub async fn run(config: PoolConfig) -> Result<Status, CommandError> {
    let pool = connect_one_shot(config).await?;
    let mut conn = pool.acquire_labeled("ping").await?;
    sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .map_err(|e| CommandError::Query(pgvigil::DbError::new(e, &pool.config().database_url)))?;
    drop(conn);
    print_json(&pool.stats());
    pool.close().await;
    Ok(Status::Pass)
}
