//! The pgvigil command. Library errors are typed; this edge turns them into messages and exit
//! codes with color-eyre.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgvigil::PoolConfig;
use pgvigil::config::{ConfigArgs, ConfigSources};
use pgvigil::pool::Connector;

#[derive(Debug, Parser)]
#[command(
    name = "pgvigil",
    version,
    about = "Live PostgreSQL pool and schema status for on-call engineers"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the configuration pgvigil would use (password redacted) as JSON.
    Config,
    /// Connect with the configured retries, run one query, print the pool's figures as JSON.
    Ping,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config =
        match ConfigSources::from_process(&cli.config).and_then(|s| PoolConfig::from_sources(&s)) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("pgvigil: {e}");
                return ExitCode::from(3);
            }
        };
    match cli.command {
        Command::Config => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config).expect("config serialises")
            );
            ExitCode::SUCCESS
        }
        Command::Ping => ping(config),
    }
}

fn ping(config: PoolConfig) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let pool = match Connector::new(config).connect().await {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("pgvigil: {e}");
                return ExitCode::from(2);
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
            eprintln!("pgvigil: {e}");
            return ExitCode::from(2);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&pool.stats()).expect("stats serialise")
        );
        pool.close().await;
        ExitCode::SUCCESS
    })
}
