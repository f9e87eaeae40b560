//! An application embedding pgvigil: the pool from the environment (DATABASE_URL, POOL_*,
//! RETRY_*, a .env file), connected with retries, one query, and the pool's figures as JSON.
//!
//! ```sh
//! DATABASE_URL=postgres://app:secret@db:5432/prod cargo run -p pgvigil --example embed
//! ```

use pgvigil::PoolConfig;
use pgvigil::config::ConfigSources;
use pgvigil::pool::Connector;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sources = ConfigSources::from_process([], None)?;
    let config = PoolConfig::from_sources(&sources)?;
    let pool = Connector::new(config).connect().await?;
    {
        let mut conn = pool.acquire_labeled("embed-example").await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
    }
    println!("{}", serde_json::to_string_pretty(&pool.stats())?);
    pool.close().await;
    Ok(())
}
