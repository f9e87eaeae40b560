//! The dashboard (pgvigil without a command): its pool sources, theme and terminal, then the
//! app loop (crate::tui), which hears its own keys and signals and restores the terminal.

use std::io::IsTerminal;
use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::DevSource;

use super::sources::PoolSources;
use crate::cli::DashboardArgs;
use crate::error::CommandError;
use crate::tui::theme::{Glyphs, Theme};
use crate::tui::{DashboardOptions, run_dashboard};

/// The dashboard on DATABASE_URL with the pool sources the flags or variables name.
pub async fn from_flags(
    config: PoolConfig,
    args: DashboardArgs,
    no_color: bool,
    dev: DevSource,
    sources: &pgvigil::ConfigSources,
) -> Result<Status, CommandError> {
    let pools = PoolSources::read(&args.sources, sources)?;
    run(config, args, no_color, None, dev, pools).await
}

/// `--theme`, or monochrome under `--no-color` / NO_COLOR.
pub fn theme_for(args: &DashboardArgs, no_color: bool) -> Result<Theme, CommandError> {
    // A bad --theme is an error even when NO_COLOR makes the dashboard monochrome.
    let theme = Theme::load(&args.theme)?;
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || no_color_env {
        return Ok(Theme::builtin("monochrome"));
    }
    Ok(theme)
}

/// The dashboard on `config`'s database; `migrations` replaces `--migrations` (the demo's).
pub async fn run(
    config: PoolConfig,
    args: DashboardArgs,
    no_color: bool,
    migrations: Option<PathBuf>,
    dev: DevSource,
    pools: PoolSources,
) -> Result<Status, CommandError> {
    let theme = theme_for(&args, no_color)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CommandError::NotATerminal);
    }
    let options = DashboardOptions {
        refresh: args.refresh,
        theme,
        glyphs: Glyphs::from_env(),
        migrations_dir: migrations.unwrap_or(args.dashboard_migrations),
        expected_file: args.dashboard_expected,
        dev,
        apps: pools.apps,
        bouncer: pools.bouncer,
        fleet: pools.fleet,
    };
    run_dashboard(config, options)
        .await
        .map_err(CommandError::Dashboard)?;
    Ok(Status::Pass)
}
