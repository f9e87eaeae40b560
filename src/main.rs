//! The pgvigil command: parse, set up logging and the runtime, dispatch to `commands`. Library
//! errors are typed; the commands turn them into messages and monitoring-style exit codes
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pgvigil::PoolConfig;
use pgvigil::checks::Status;
use pgvigil::dev::{DevSource, ExtensionPolicy};
use pgvigil::window::DryRunOptions;
use pgvigil_cli::cli::{Cli, Command, MigrateCommand, SchemaCommand};
use pgvigil_cli::commands::{self, UNKNOWN, exit, say};
use pgvigil_cli::report::colour_wanted;
use pgvigil_cli::signal::interruptible;

fn main() -> ExitCode {
    // Usage errors exit 3 (UNKNOWN), as schedulers expect from a check; --help and --version 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let status = if e.use_stderr() {
                UNKNOWN
            } else {
                Status::Pass
            };
            let _ = e.print();
            return exit(status);
        }
    };
    // Said once, before anything else: the password is already visible in `ps`.
    let exposed: Vec<String> = [
        ("--database-url", cli.config.database_url.as_deref()),
        ("--dev-url", cli.dev_url.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, url)| pgvigil_cli::args::password_flag_warning(flag, url))
    .collect();
    for warning in &exposed {
        say(warning);
    }
    let interactive = matches!(cli.command, None | Some(Command::Demo));
    if interactive {
        if let Err(e) = color_eyre::install() {
            say(&e.to_string());
        }
        pgvigil_cli::logging::init_tui_logging();
        // The dashboard's log panel shows it too: stderr is hidden behind the screen.
        for warning in &exposed {
            tracing::warn!(target: "pgvigil", "{warning}");
        }
    } else {
        let server = matches!(cli.command, Some(Command::Serve(_)));
        pgvigil_cli::logging::init_command_logging(server, cli.no_color);
    }
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
    if matches!(cli.command, Some(Command::Demo)) {
        let Some(dev) = dev_source(&cli, None) else {
            return exit(UNKNOWN);
        };
        return exit(runtime.block_on(commands::demo::run(cli.dashboard, cli.no_color, dev)));
    }
    let sources = match cli.config.sources() {
        Ok(s) => s,
        Err(e) => {
            say(&e.to_string());
            return exit(UNKNOWN);
        }
    };
    if let Some(Command::Serve(args)) = &cli.command {
        let mut sources = sources.clone();
        for (var, value) in args.flags() {
            sources = sources.flag(var, value);
        }
        return exit(runtime.block_on(commands::serve::run(&sources, &args.listen)));
    }
    let config = match PoolConfig::from_sources(&sources) {
        // Every session pgvigil opens on DATABASE_URL is read-only, with lock and statement
        // timeouts: nothing it does on its own may change that database.
        Ok(config) => config.read_only(),
        Err(e) => {
            say(&e.to_string());
            return exit(UNKNOWN);
        }
    };
    // Only the commands that run migration SQL need a dev database; a bad DEV_DATABASE_URL
    // must not stop `ping` or `config`.
    let wants_dev = matches!(
        cli.command,
        None | Some(Command::Check(_) | Command::Schema(_) | Command::Migrate(_))
    );
    let dev = if wants_dev {
        let from_file = sources.lookup("DEV_DATABASE_URL").map(|(v, _)| v);
        let Some(dev) = dev_source(&cli, from_file) else {
            return exit(UNKNOWN);
        };
        dev
    } else {
        pgvigil_cli::dev_private::private()
    };
    let colour = colour_wanted(cli.no_color, std::io::stdout().is_terminal());
    runtime.block_on(async move {
        // The dashboard handles its own keys and signals (and restores the terminal).
        let Some(command) = cli.command else {
            let status =
                commands::dashboard::from_flags(config, cli.dashboard, cli.no_color, dev, &sources);
            return exit(status.await);
        };
        interruptible(async move {
            match command {
                Command::Demo | Command::Serve(_) => unreachable!("handled above"),
                Command::Config => commands::config::run(&config),
                Command::Ping => commands::ping::run(config).await,
                Command::Check(args) => {
                    commands::check::run(config, args, colour, dev, &sources).await
                }
                Command::Schema(SchemaCommand::Snapshot { dir, output }) => {
                    commands::schema::snapshot(config, dir.migrations, output, dev).await
                }
                Command::Migrate(MigrateCommand::DryRun {
                    dir,
                    json,
                    lock_timeout,
                    statement_timeout,
                    max_duration,
                    max_dev_size,
                }) => {
                    let options = DryRunOptions {
                        lock_timeout,
                        statement_timeout,
                        max_duration,
                        max_dev_size,
                        dev: Some(dev),
                    };
                    commands::migrate::dry_run_command(
                        config,
                        dir.migrations,
                        json,
                        options,
                        colour,
                    )
                    .await
                }
            }
        })
        .await
    })
}

/// `--dev-url` over DEV_DATABASE_URL (environment, else `from_file`), with the extensions
/// `--allow-extension` lets it create; `None` after saying why it is not valid.
fn dev_source(cli: &Cli, from_file: Option<String>) -> Option<DevSource> {
    let private = std::sync::Arc::new(pgvigil_cli::dev_private::PrivateDev);
    match DevSource::from_flag_or_env(cli.dev_url.as_deref(), from_file, private) {
        Ok(d) => Some(d.with_extensions(ExtensionPolicy::allowing(&cli.allow_extension))),
        Err(e) => {
            say(&e.to_string());
            None
        }
    }
}
