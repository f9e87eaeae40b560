//! `pgvigil serve`: reads its settings (flags over variables) and runs the HTTP face
//! (crate::serve) until SIGTERM or SIGINT: 0 after a graceful stop, 3 when it cannot start.

use pgvigil::PoolConfig;
use pgvigil::checks::Status;

use crate::cli::ServeArgs;
use crate::error::CommandError;

pub async fn run(
    sources: &pgvigil::ConfigSources,
    args: &ServeArgs,
) -> Result<Status, CommandError> {
    let mut sources = sources.clone();
    for (var, value) in args.flags() {
        sources = sources.flag(var, value);
    }
    let addr = crate::serve::parse_listen(&args.listen)?;
    let config = PoolConfig::from_sources(&sources)?.read_only();
    let health = pgvigil::http::HealthSettings::from_sources(&sources)?;
    let limits = pgvigil::http::ServeLimits::from_sources(&sources)?;
    crate::serve::serve(config, health, limits, addr, crate::signal::graceful_stop()).await?;
    Ok(Status::Pass)
}
