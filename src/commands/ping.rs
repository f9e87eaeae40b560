//! `pgvigil ping`: connect with the configured retries, run one query, print the pool's figures.

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use super::{UNKNOWN, connect_one_shot, print_out, say};

pub async fn run(config: PoolConfig) -> Status {
    // Cannot reach the database: UNKNOWN (3), as `check` says in the same case.
    let pool = match connect_one_shot(config).await {
        Ok(pool) => pool,
        Err(e) => {
            say(&e.to_string());
            return UNKNOWN;
        }
    };
    let result = async {
        let mut conn = pool
            .acquire_labeled("ping")
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| pool.config().database_url.scrub(&e.to_string()))?;
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = result {
        say(&e.to_string());
        return UNKNOWN;
    }
    print_out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&pool.stats()).expect("stats serialise")
    ));
    pool.close().await;
    Status::Pass
}
