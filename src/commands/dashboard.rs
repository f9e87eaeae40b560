//! The dashboard (pgvigil without a command): theme, terminal check, and the app loop.

use std::io::IsTerminal;
use std::path::PathBuf;

use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::DevSource;

use super::sources::{app_endpoints, bouncer_url, fleet_source};
use super::{UNKNOWN, say};
use crate::cli::DashboardArgs;
use crate::tui::theme::{Glyphs, Theme};
use crate::tui::{DashboardOptions, run_dashboard};

pub fn theme_for(args: &DashboardArgs, no_color: bool) -> Result<Theme, String> {
    // A bad --theme is an error even when NO_COLOR makes the dashboard monochrome.
    let theme = Theme::load(&args.theme).map_err(|e| e.to_string())?;
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || no_color_env {
        return Ok(Theme::builtin("monochrome"));
    }
    Ok(theme)
}

pub async fn run(
    config: PoolConfig,
    args: DashboardArgs,
    no_color: bool,
    migrations: Option<PathBuf>,
    pool_out: Option<tokio::sync::watch::Sender<Option<pgvigil::InstrumentedPool>>>,
    dev: DevSource,
    (apps, bouncer, fleet): (
        Vec<pgvigil::remote::Endpoint>,
        Option<pgvigil::DatabaseUrl>,
        Option<pgvigil::remote::Fleet>,
    ),
) -> Status {
    let theme = match theme_for(&args, no_color) {
        Ok(t) => t,
        Err(e) => {
            say(&e.to_string());
            return UNKNOWN;
        }
    };
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!(
            "pgvigil: the dashboard needs a terminal (standard input or output is not one); for \
             a report on a pipe or in a script use `pgvigil check` (or `pgvigil check --json`)"
        );
        return UNKNOWN;
    }
    let options = DashboardOptions {
        refresh: args.refresh,
        theme,
        glyphs: Glyphs::from_env(),
        migrations_dir: migrations.unwrap_or(args.dashboard_migrations),
        expected_file: args.dashboard_expected,
        dev,
        pool_out,
        apps,
        bouncer,
        fleet,
    };
    match run_dashboard(config, options).await {
        Ok(()) => Status::Pass,
        Err(e) => {
            eprintln!("pgvigil: the dashboard ended: {e}");
            UNKNOWN
        }
    }
}

/// The dashboard on DATABASE_URL with the pool sources the flags or variables name.
pub async fn from_flags(
    config: PoolConfig,
    args: DashboardArgs,
    no_color: bool,
    dev: DevSource,
    sources: &pgvigil::ConfigSources,
) -> Status {
    let apps = match app_endpoints(&args.sources.apps, sources) {
        Ok(apps) => apps,
        Err(e) => {
            say(&e.to_string());
            return UNKNOWN;
        }
    };
    let bouncer = match bouncer_url(args.sources.pgbouncer.as_deref(), sources) {
        Ok(b) => b,
        Err(e) => {
            say(&e);
            return UNKNOWN;
        }
    };
    let fleet = match fleet_source(&args.sources, sources) {
        Ok(f) => f,
        Err(e) => {
            say(&e);
            return UNKNOWN;
        }
    };
    run(
        config,
        args,
        no_color,
        None,
        None,
        dev,
        (apps, bouncer, fleet),
    )
    .await
}
