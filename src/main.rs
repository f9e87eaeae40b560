//! The pgvigil command: parse the command line (src/cli.rs), set up logging and the runtime,
//! dispatch to one of `commands`, and end with the code crate::error gives: 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN, 128 + the signal's number after SIGINT / SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::{DevSource, ExtensionPolicy};
use pgvigil_cli::cli::{Cli, Command, SchemaCommand};
use pgvigil_cli::commands;
use pgvigil_cli::error::{CommandError, Exit, say};
use pgvigil_cli::report::colour_wanted;
use pgvigil_cli::signal::interruptible;

fn main() -> ExitCode {
    // Usage errors exit 3 (UNKNOWN), as schedulers expect from a check; --help and --version 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let status = if e.use_stderr() {
                Status::Unknown
            } else {
                Status::Pass
            };
            return Exit::Verdict(status).finish();
        }
    };
    // Said once, before anything else: the password is already visible in `ps`.
    let mut exposed = pgvigil_cli::args::password_warnings(&cli.config, cli.dev_url.as_deref());
    exposed.extend(pgvigil_cli::args::subcommand_password_warnings(
        &std::env::args().collect::<Vec<_>>(),
    ));
    for warning in &exposed {
        say(warning);
    }
    let dashboard = matches!(cli.command, None | Some(Command::Demo));
    let server = matches!(cli.command, Some(Command::Serve(_)));
    pgvigil_cli::logging::init(dashboard, server, cli.no_color, &exposed);
    // The dashboard alone is I/O-bound: one thread is enough and wakes less; the demo runs its
    // workload beside it on a multi-threaded runtime.
    let runtime = if cli.command.is_none() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .expect("tokio runtime");
    runtime
        .block_on(run(cli))
        .unwrap_or_else(Exit::Failed)
        .finish()
}

/// The settings, in the order their errors are reported, then the command.
async fn run(cli: Cli) -> Result<Exit, CommandError> {
    let colour = colour_wanted(cli.no_color, std::io::stdout().is_terminal());
    match &cli.command {
        Some(Command::Completions { shell }) => {
            return Ok(commands::completions::run(*shell).into());
        }
        Some(Command::Man { dir }) => return Ok(commands::man::run(dir.clone()).into()),
        Some(Command::Demo) => {
            let dev = dev_source(&cli, None)?;
            return Ok(commands::demo::run(cli.dashboard, cli.no_color, dev)
                .await
                .into());
        }
        _ => {}
    }
    let sources = cli.config.sources()?;
    if let Some(Command::Serve(args)) = &cli.command {
        return Ok(commands::serve::run(&sources, args).await.into());
    }
    // Every session pgvigil opens on DATABASE_URL is read-only, with lock and statement
    // timeouts: nothing it does on its own may change that database.
    let config = PoolConfig::from_sources(&sources)?.read_only();
    // Only the commands that run migration SQL need a dev database; a bad DEV_DATABASE_URL
    // must not stop `ping` or `config`.
    let wants_dev = matches!(
        cli.command,
        None | Some(
            Command::Check(_) | Command::Schema(_) | Command::Migrate(_) | Command::Backup(_)
        )
    );
    let dev = if wants_dev {
        dev_source(&cli, sources.lookup("DEV_DATABASE_URL").map(|(v, _)| v))?
    } else {
        pgvigil_cli::dev_private::private()
    };
    // The dashboard hears its own keys and signals (and restores the terminal).
    let Some(command) = cli.command else {
        let dashboard =
            commands::dashboard::from_flags(config, cli.dashboard, cli.no_color, dev, &sources);
        return Ok(dashboard.await.into());
    };
    let command = async move {
        match command {
            Command::Config => commands::config::run(&config),
            Command::Ping => commands::ping::run(config).await,
            Command::Check(args) => commands::check::run(config, args, colour, dev, &sources).await,
            Command::Schema(SchemaCommand::Snapshot { dir, output }) => {
                commands::schema::snapshot(config, dir.migrations, output, dev).await
            }
            Command::Migrate(migrate) => commands::migrate::run(migrate, config, dev, colour).await,
            Command::Backup(backup) => commands::backup::run(backup, config, dev).await,
            Command::Demo
            | Command::Serve(_)
            | Command::Completions { .. }
            | Command::Man { .. } => {
                unreachable!("dispatched above")
            }
        }
    };
    Ok(interruptible(command).await)
}

/// `--dev-url` over DEV_DATABASE_URL (environment, else `from_file`), with the extensions
/// `--allow-extension` lets it create.
fn dev_source(cli: &Cli, from_file: Option<String>) -> Result<DevSource, CommandError> {
    let private = std::sync::Arc::new(pgvigil_cli::dev_private::PrivateDev);
    let dev = DevSource::from_flag_or_env(cli.dev_url.as_deref(), from_file, private)
        .map_err(CommandError::DevSource)?;
    Ok(dev.with_extensions(ExtensionPolicy::allowing(&cli.allow_extension)))
}
