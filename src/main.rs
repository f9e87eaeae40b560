//! The pgvigil command. Library errors are typed; this edge turns them into messages and
//! monitoring-style exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgvigil::PoolConfig;
use pgvigil::checks::ExpectedSchema;
use pgvigil::checks::{CheckOptions, CheckReport, Group, Status, run_checks};
use pgvigil::config::parse_duration;
use pgvigil::dev::{DevServer, DevSource, ExtensionPolicy};
use pgvigil::pool::{Connector, InstrumentedPool, connect_options};
use pgvigil::window::{DryRunOptions, dry_run};
use pgvigil_cli::args::ConfigArgs;
use pgvigil_cli::demo::Demo;
use pgvigil_cli::report::{colour_wanted, render_check, render_dry_run};
use pgvigil_cli::tui::theme::{Glyphs, Theme};
use pgvigil_cli::tui::{DashboardOptions, run_dashboard};
use sqlx::ConnectOptions;

/// What every way of not deciding exits with (usage errors, no connection, bad configuration).
const UNKNOWN: Status = Status::Unknown;

#[derive(Debug, Parser)]
#[command(
    name = "pgvigil",
    version,
    about = "Live PostgreSQL pool and schema status for on-call engineers",
    long_about = "Live PostgreSQL pool and schema status for on-call engineers.\n\n\
                  Without a command, opens the dashboard on DATABASE_URL."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// No colour (NO_COLOR in the environment does the same).
    #[arg(long, global = true)]
    no_color: bool,
    /// Dev database for dry-runs and the expected schema: an EMPTY scratch server whose role
    /// may create databases (default: a private PostgreSQL started on this machine). Also
    /// DEV_DATABASE_URL. Migration SQL never runs on DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    dev_url: Option<String>,
    /// Lets the dev database create this extension although it opens connections to other
    /// servers (dblink, postgres_fdw, other *_fdw, http, pg_net); refused by default. Repeatable.
    #[arg(long = "allow-extension", global = true, value_name = "NAME")]
    allow_extension: Vec<String>,
    #[command(flatten)]
    dashboard: DashboardArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct DashboardArgs {
    /// Dashboard refresh interval, 0.5s to 10s (+ and - change it while running).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = refresh_arg)]
    refresh: Duration,
    /// Colour theme: default, light, high-contrast, monochrome, or a path to a theme .toml.
    #[arg(long, value_name = "NAME|PATH", default_value = "default")]
    theme: String,
    /// Migrations the dashboard's verify and dry-run keys use.
    #[arg(long = "migrations", value_name = "DIR", default_value = "migrations")]
    dashboard_migrations: PathBuf,
    /// Expected schema file for the verify key (instead of a scratch database).
    #[arg(long = "expected", value_name = "FILE")]
    dashboard_expected: Option<PathBuf>,
    #[command(flatten)]
    sources: PoolSourceArgs,
}

/// Where the production pools are read from: application instances, PgBouncer, a fleet.
#[derive(Debug, Args)]
struct PoolSourceArgs {
    /// An application instance's /metrics (pgvigil's or HikariCP's names) whose pool the Pool
    /// panel shows, as URL or NAME=URL (the name shown beside its address); repeat for each
    /// instance (or APP_METRICS_URLS, comma separated).
    #[arg(long = "app", value_name = "[NAME=]URL")]
    apps: Vec<String>,
    /// The PgBouncer admin console in front of the database (postgres://USER@HOST:PORT/pgbouncer;
    /// or PGBOUNCER_URL): its pools show in the Pool panel.
    #[arg(long = "pgbouncer", value_name = "URL")]
    pgbouncer: Option<String>,
    /// A Prometheus that scrapes the fleet (http://HOST:9090; or PROMETHEUS_URL): one query per
    /// tick gives the fleet's sums and its fullest instances.
    #[arg(long = "prometheus", value_name = "URL")]
    prometheus: Option<String>,
    /// The fleet's series in that Prometheus, e.g. '{job="docs-api"}' (or PROMETHEUS_SELECTOR).
    #[arg(long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,
}

/// `--prometheus` / `--selector`, else PROMETHEUS_URL / PROMETHEUS_SELECTOR.
fn fleet_source(
    args: &PoolSourceArgs,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::remote::Fleet>, String> {
    let url = args
        .prometheus
        .clone()
        .or_else(|| sources.lookup("PROMETHEUS_URL").map(|(v, _)| v));
    let url_from = match args.prometheus {
        Some(_) => "--prometheus".to_string(),
        None => sources
            .lookup("PROMETHEUS_URL")
            .map_or(String::new(), |(_, s)| s.to_string()),
    };
    let (selector, selector_from) = match &args.selector {
        Some(s) => (Some(s.clone()), "--selector".to_string()),
        None => match sources.lookup("PROMETHEUS_SELECTOR") {
            Some((v, setting)) => (Some(v), setting.to_string()),
            None => (None, "--selector".to_string()),
        },
    };
    match url {
        None if selector.is_some() => {
            Err("--selector needs --prometheus URL (or PROMETHEUS_URL)".to_string())
        }
        None => Ok(None),
        Some(url) => pgvigil::remote::Fleet::from_settings(
            &url,
            &url_from,
            selector.as_deref(),
            &selector_from,
        )
        .map(Some)
        .map_err(|e| e.to_string()),
    }
}

/// `--pgbouncer`, else PGBOUNCER_URL.
fn bouncer_url(
    flag: Option<&str>,
    sources: &pgvigil::ConfigSources,
) -> Result<Option<pgvigil::DatabaseUrl>, String> {
    let (raw, what) = match (flag, sources.lookup("PGBOUNCER_URL")) {
        (Some(v), _) => (v.to_string(), "--pgbouncer".to_string()),
        (None, Some((v, setting))) => (v, setting.to_string()),
        (None, None) => return Ok(None),
    };
    pgvigil::DatabaseUrl::parse(&raw)
        .map(Some)
        .map_err(|e| format!("{what}: {e}"))
}

/// The `--app` endpoints, else APP_METRICS_URLS (flag, environment or .env).
fn app_endpoints(
    flags: &[String],
    sources: &pgvigil::ConfigSources,
) -> Result<Vec<pgvigil::remote::Endpoint>, pgvigil::remote::ScrapeError> {
    if !flags.is_empty() {
        return flags
            .iter()
            .map(|v| pgvigil::remote::Endpoint::parse_app(v, "--app"))
            .collect();
    }
    let Some((list, setting)) = sources.lookup("APP_METRICS_URLS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| pgvigil::remote::Endpoint::parse_app(v, &setting.to_string()))
        .collect()
}

fn refresh_arg(raw: &str) -> Result<Duration, String> {
    parse_duration(raw)
        .filter(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(10))
        .ok_or_else(|| {
            format!(
                "`{raw}` is not valid: expected a duration from 0.5s to 10s (`500ms`, `1s`, `5s`)"
            )
        })
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify pgvector, the schema, the migrations and the pool; exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN.
    Check(CheckArgs),
    /// Schema snapshots for servers where a scratch database cannot be created.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Migration tools that never change the database behind DATABASE_URL.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The dashboard on a private PostgreSQL with pgvector, the reference schema, a few
    /// thousand documents and a synthetic workload. Quitting removes everything.
    Demo,
    /// Print the configuration pgvigil would use (password redacted) as JSON.
    Config,
    /// Connect with the configured retries, run one query, print the pool's figures as JSON.
    Ping,
    /// Serve /health/live, /health/ready and /metrics for DATABASE_URL's pool (a sidecar and a
    /// probe target); keeps serving while the database is down. SIGTERM stops it gracefully.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9187")]
    listen: String,
    /// HEALTH_READY_TIMEOUT, bound on one readiness reading (default 2s).
    #[arg(long, value_name = "DURATION")]
    health_ready_timeout: Option<String>,
    /// HEALTH_CACHE_TTL, how long one readiness reading answers (default 5s).
    #[arg(long, value_name = "DURATION")]
    health_cache_ttl: Option<String>,
    /// READY_REQUIRE_MIGRATIONS: `applied` (pending migrations fail readiness) or `no-failures`.
    #[arg(long, value_name = "applied|no-failures")]
    ready_require_migrations: Option<String>,
    /// READY_CHECK_PGVECTOR: check pgvector and documents.embedding's dimensions (true/false).
    #[arg(long, value_name = "BOOL")]
    ready_check_pgvector: Option<String>,
    /// EMBEDDING_DIMENSIONS the embedding column must have (default 3072).
    #[arg(long, value_name = "N")]
    embedding_dimensions: Option<String>,
    /// MIGRATIONS_DIR compared with the ledger (checksums, missing files, pending).
    #[arg(long, value_name = "DIR")]
    migrations: Option<String>,
    /// HTTP_HEADER_READ_TIMEOUT, time to send a complete request head (default 5s).
    #[arg(long, value_name = "DURATION")]
    http_header_read_timeout: Option<String>,
    /// HTTP_IDLE_TIMEOUT, keep-alive connections idle longer are closed (default 30s).
    #[arg(long, value_name = "DURATION")]
    http_idle_timeout: Option<String>,
    /// HTTP_MAX_HEADER_BYTES, largest request head; larger gets 431 (default 16384).
    #[arg(long, value_name = "BYTES")]
    http_max_header_bytes: Option<String>,
    /// HTTP_MAX_CONNECTIONS open at once; at the limit the longest idle one is closed (default 512).
    #[arg(long, value_name = "N")]
    http_max_connections: Option<String>,
    /// HTTP_SHUTDOWN_TIMEOUT, bound on a graceful stop (default 10s).
    #[arg(long, value_name = "DURATION")]
    http_shutdown_timeout: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, &str)> {
        [
            ("HEALTH_READY_TIMEOUT", &self.health_ready_timeout),
            ("HEALTH_CACHE_TTL", &self.health_cache_ttl),
            ("READY_REQUIRE_MIGRATIONS", &self.ready_require_migrations),
            ("READY_CHECK_PGVECTOR", &self.ready_check_pgvector),
            ("EMBEDDING_DIMENSIONS", &self.embedding_dimensions),
            ("MIGRATIONS_DIR", &self.migrations),
            ("HTTP_HEADER_READ_TIMEOUT", &self.http_header_read_timeout),
            ("HTTP_IDLE_TIMEOUT", &self.http_idle_timeout),
            ("HTTP_MAX_HEADER_BYTES", &self.http_max_header_bytes),
            ("HTTP_MAX_CONNECTIONS", &self.http_max_connections),
            ("HTTP_SHUTDOWN_TIMEOUT", &self.http_shutdown_timeout),
        ]
        .into_iter()
        .filter_map(|(var, v)| v.as_deref().map(|v| (var, v)))
        .collect()
    }
}

#[derive(Debug, Args)]
struct MigrationsDir {
    /// Directory of sqlx migrations.
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    migrations: PathBuf,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Print the report as JSON (format pgvigil.check/1, see docs/check-json.md).
    #[arg(long)]
    json: bool,
    /// Run one group of checks only: pgvector, schema, migrations or pool.
    #[arg(long, value_name = "GROUP", value_parser = group_arg)]
    only: Option<Group>,
    #[command(flatten)]
    dir: MigrationsDir,
    /// Expected schema from `pgvigil schema snapshot` instead of a scratch database.
    #[arg(long, value_name = "FILE")]
    expected: Option<PathBuf>,
    /// Also report tables, enums and extensions the migrations do not create.
    #[arg(long)]
    strict: bool,
    /// Number of KNN queries timed by the pgvector smoke test.
    #[arg(long, value_name = "N", default_value_t = 10)]
    knn_samples: usize,
    /// With any of these, `pool.sizing` says whether the pools can oversubscribe the server.
    #[command(flatten)]
    sources: PoolSourceArgs,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Write the schema the migrations produce (built on the dev database, never on
    /// DATABASE_URL) to a file for `pgvigil check --expected FILE`.
    Snapshot {
        #[command(flatten)]
        dir: MigrationsDir,
        /// Output file.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Run the pending migrations on a dev copy of production's schema (production is only
    /// read); report locks, timings, errors and schema changes.
    DryRun {
        #[command(flatten)]
        dir: MigrationsDir,
        #[arg(long)]
        json: bool,
        /// lock_timeout for the dry-run's statements.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
        lock_timeout: Duration,
        /// statement_timeout for the dry-run's statements.
        #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration_arg)]
        statement_timeout: Duration,
        /// Wall-clock bound of the whole dry-run, enforced by pgvigil (the running statement
        /// is cancelled when it passes, whatever timeouts a migration sets).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration_arg)]
        max_duration: Duration,
        /// Disk bound of the dev database (its files plus temporary files): past it the
        /// running migration is stopped.
        #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = pgvigil_cli::args::size_arg)]
        max_dev_size: u64,
    },
}

fn group_arg(raw: &str) -> Result<Group, String> {
    raw.parse()
        .map_err(|e: pgvigil::checks::UnknownGroup| e.to_string())
}

fn duration_arg(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).filter(|d| !d.is_zero()).ok_or_else(|| {
        format!(
            "`{raw}` is not valid: expected {}",
            pgvigil::config::ACCEPTED_DURATION
        )
    })
}

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
        init_tui_logging();
        // The dashboard's log panel shows it too: stderr is hidden behind the screen.
        for warning in &exposed {
            tracing::warn!(target: "pgvigil", "{warning}");
        }
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG").unwrap_or_else(|_| {
                    // A server's log is its status lines; a one-shot command says only problems.
                    if matches!(cli.command, Some(Command::Serve(_))) {
                        "info,sqlx=warn".into()
                    } else {
                        "warn,sqlx=error".into()
                    }
                }),
            )
            .with_writer(std::io::stderr)
            .with_ansi(colour_wanted(cli.no_color, std::io::stderr().is_terminal()))
            .init();
        // A panic inside a source's reading is that source's error (pgvigil::contain), not a
        // report on stderr. The dashboard's own hook does the same (tui::panic).
        pgvigil::contain::quiet_contained_panics();
    }
    let colour = colour_wanted(cli.no_color, std::io::stdout().is_terminal());
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
        let dev = match DevSource::from_flag_or_env(
            cli.dev_url.as_deref(),
            None,
            std::sync::Arc::new(pgvigil_cli::dev_private::PrivateDev),
        ) {
            Ok(d) => d.with_extensions(ExtensionPolicy::allowing(&cli.allow_extension)),
            Err(e) => {
                say(&e.to_string());
                return exit(UNKNOWN);
            }
        };
        return exit(runtime.block_on(demo(cli.dashboard, cli.no_color, dev)));
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
        return exit(runtime.block_on(serve(&sources, &args.listen)));
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
        match DevSource::from_flag_or_env(
            cli.dev_url.as_deref(),
            from_file,
            std::sync::Arc::new(pgvigil_cli::dev_private::PrivateDev),
        ) {
            Ok(d) => d.with_extensions(ExtensionPolicy::allowing(&cli.allow_extension)),
            Err(e) => {
                say(&e.to_string());
                return exit(UNKNOWN);
            }
        }
    } else {
        pgvigil_cli::dev_private::private()
    };
    runtime.block_on(async move {
        // The dashboard handles its own keys and signals (and restores the terminal).
        let Some(command) = cli.command else {
            let apps = match app_endpoints(&cli.dashboard.sources.apps, &sources) {
                Ok(apps) => apps,
                Err(e) => {
                    say(&e.to_string());
                    return exit(UNKNOWN);
                }
            };
            let bouncer = match bouncer_url(cli.dashboard.sources.pgbouncer.as_deref(), &sources) {
                Ok(b) => b,
                Err(e) => {
                    say(&e);
                    return exit(UNKNOWN);
                }
            };
            let fleet = match fleet_source(&cli.dashboard.sources, &sources) {
                Ok(f) => f,
                Err(e) => {
                    say(&e);
                    return exit(UNKNOWN);
                }
            };
            return exit(
                dashboard(
                    config,
                    cli.dashboard,
                    cli.no_color,
                    None,
                    None,
                    dev,
                    (apps, bouncer, fleet),
                )
                .await,
            );
        };
        let command = async move {
            match command {
                Command::Demo | Command::Serve(_) => unreachable!("handled above"),
                Command::Config => {
                    print_out(&format!(
                        "{}\n",
                        serde_json::to_string_pretty(&config).expect("config serialises")
                    ));
                    Status::Pass
                }
                Command::Ping => ping(config).await,
                Command::Check(args) => check(config, args, colour, dev, &sources).await,
                Command::Schema(SchemaCommand::Snapshot { dir, output }) => {
                    snapshot(config, dir.migrations, output, dev).await
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
                    migrate_dry_run(config, dir.migrations, json, options, colour).await
                }
            }
        };
        interruptible(command).await
    })
}

/// `pgvigil serve`: 0 after a graceful stop (SIGTERM, SIGINT), 3 when it cannot start.
async fn serve(sources: &pgvigil::ConfigSources, listen: &str) -> Status {
    let started = (|| {
        let addr = pgvigil_cli::serve::parse_listen(listen).map_err(|e| e.to_string())?;
        let config = PoolConfig::from_sources(sources).map_err(|e| e.to_string())?;
        let health =
            pgvigil::http::HealthSettings::from_sources(sources).map_err(|e| e.to_string())?;
        let limits =
            pgvigil::http::ServeLimits::from_sources(sources).map_err(|e| e.to_string())?;
        Ok::<_, String>((addr, config.read_only(), health, limits))
    })();
    let (addr, config, health, limits) = match started {
        Ok(v) => v,
        Err(e) => {
            say(&e);
            return UNKNOWN;
        }
    };
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                tracing::info!(target: "pgvigil::serve", "{name}: finishing requests in flight and stopping");
            }
            _ => std::future::pending::<()>().await,
        }
    };
    match pgvigil_cli::serve::serve(config, health, limits, addr, shutdown).await {
        Ok(()) => Status::Pass,
        Err(e) => {
            say(&e.to_string());
            UNKNOWN
        }
    }
}

/// The process exit code of a verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
fn exit(status: Status) -> ExitCode {
    ExitCode::from(status.exit_code())
}

/// Runs a command until it ends or SIGINT / SIGTERM arrives. On a signal the command is
/// dropped (its dev database and scratch databases with it), the statements it had running
/// on any server are cancelled there, and the exit code is 130 (SIGINT) or 143 (SIGTERM).
async fn interruptible(command: impl Future<Output = Status>) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return exit(command.await);
    };
    let (name, code) = tokio::select! {
        status = command => {
            // Cleanups the command started from guards (a scratch database dropped after an
            // error) must finish before the runtime goes.
            pgvigil::cleanup::finish(Duration::from_secs(5)).await;
            return exit(status);
        }
        // A signal's exit code is the shell's: 128 + the signal's number.
        _ = int.recv() => ("SIGINT", 128 + libc_signal::SIGINT),
        _ = term.recv() => ("SIGTERM", 128 + libc_signal::SIGTERM),
    };
    // The command's future is gone: its guards have run. Cancel what still runs on servers
    // and wait for the cleanup they started.
    let cancelled = pgvigil::cleanup::finish(Duration::from_secs(5)).await;
    eprintln!(
        "pgvigil: interrupted by {name}; cancelled {cancelled} running statement(s) on the server \
         and removed what this run created"
    );
    ExitCode::from(code)
}

/// The numbers of the signals a command exits on.
mod libc_signal {
    pub const SIGINT: u8 = 2;
    pub const SIGTERM: u8 = 15;
}

/// An error for the user on stderr, with control characters from the server or a file shown
/// as escapes (a message can quote a server's text).
fn say(message: &str) {
    eprintln!("pgvigil: {}", pgvigil::sanitize::printable_lines(message));
}

/// Writes to standard output; a reader that went away (`pgvigil check | head`) ends the
/// output quietly instead of a panic.
fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The dashboard logs into tui-logger's buffer (shown in its Log panel), never onto the screen.
fn init_tui_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGVIGIL_LOG")
        .unwrap_or_else(|_| "trace,sqlx=error".into());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tui_logger::TuiTracingSubscriberLayer)
        .try_init();
    // Not tui_logger::init_logger: it starts a thread that wakes every 10 ms to move events
    // into the widget's buffer. The app loop moves them itself before each frame.
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
}

fn theme_for(args: &DashboardArgs, no_color: bool) -> Result<Theme, String> {
    // A bad --theme is an error even when NO_COLOR makes the dashboard monochrome.
    let theme = Theme::load(&args.theme).map_err(|e| e.to_string())?;
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if no_color || no_color_env {
        return Ok(Theme::builtin("monochrome"));
    }
    Ok(theme)
}

async fn dashboard(
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

async fn demo(args: DashboardArgs, no_color: bool, dev: DevSource) -> Status {
    eprintln!(
        "pgvigil demo: starting a private PostgreSQL with pgvector and applying the reference migrations..."
    );
    let demo = match Demo::prepare().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    eprintln!("pgvigil demo: starting PgBouncer and three application instances...");
    let instances = match pgvigil_cli::demo::Instances::start(&demo).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    let sources = (
        instances
            .metrics
            .iter()
            .map(|m| pgvigil::remote::Endpoint::parse_app(m, "--app"))
            .collect::<Result<Vec<_>, _>>(),
        pgvigil::DatabaseUrl::parse(&instances.bouncer_admin),
    );
    let (apps, bouncer) = match sources {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
        (_, Err(e)) => {
            eprintln!("pgvigil demo: {e}");
            return UNKNOWN;
        }
    };
    let workload = tokio::spawn(pgvigil_cli::demo::workload(
        demo.config.clone(),
        instances.pools.clone(),
        instances.addrs.clone(),
    ));
    let code = dashboard(
        demo.config.clone(),
        args,
        no_color,
        Some(demo.migrations_dir.clone()),
        None,
        dev,
        (apps, Some(bouncer), None),
    )
    .await;
    workload.abort();
    let _ = workload.await;
    // Requests still waiting on a lock hold their connections: closing a pool waits for them,
    // so the closes get two seconds together (dropping the pools closes what is left).
    let closes = futures_util::future::join_all(instances.pools.iter().map(|p| p.close()));
    let _ = tokio::time::timeout(Duration::from_secs(2), closes).await;
    drop(instances);
    drop(demo);
    eprintln!("pgvigil demo: workload, instances and PgBouncer stopped, private cluster removed");
    code
}

/// A single connection outside any pool; says why on stderr when it cannot.
async fn connect_dedicated(config: &PoolConfig) -> Option<sqlx::PgConnection> {
    let connected = async {
        let mut conn = connect_options(config).connect().await?;
        if let Some(guard) = config.read_only {
            pgvigil::pool::ensure_read_only(&mut conn, guard).await?;
        }
        Ok::<_, sqlx::Error>(conn)
    };
    match connected.await {
        Ok(c) => Some(c),
        Err(e) => {
            say(&format!(
                "cannot connect to {}: {}",
                config.database_url,
                config.database_url.explain(&e)
            ));
            None
        }
    }
}

/// One-shot commands need one connection, not the dashboard's minimum of five.
async fn connect_one_shot(mut config: PoolConfig) -> Result<InstrumentedPool, String> {
    config.min_connections = config.min_connections.min(1);
    Connector::new(config)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

async fn ping(config: PoolConfig) -> Status {
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

async fn check(
    config: PoolConfig,
    args: CheckArgs,
    colour: bool,
    dev: DevSource,
    sources: &pgvigil::ConfigSources,
) -> Status {
    let target = config.database_url.to_string();
    // The pool sources are read before connecting: a bad URL is a usage error (exit 3).
    let pool_sources = match (
        app_endpoints(&args.sources.apps, sources).map_err(|e| e.to_string()),
        bouncer_url(args.sources.pgbouncer.as_deref(), sources),
        fleet_source(&args.sources, sources),
    ) {
        (Ok(a), Ok(b), Ok(f)) => (a, b, f),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            say(&e);
            return UNKNOWN;
        }
    };
    let report = match connect_one_shot(config).await {
        Ok(pool) => {
            let options = CheckOptions {
                only: args.only,
                migrations_dir: args.dir.migrations,
                expected_file: args.expected,
                strict: args.strict,
                knn_samples: args.knn_samples,
                dev: Some(dev),
                ..CheckOptions::default()
            };
            let mut report = run_checks(&pool, &options).await;
            let (apps, bouncer, fleet) = &pool_sources;
            let wants_pool = matches!(options.only, None | Some(Group::Pool));
            if wants_pool && (!apps.is_empty() || bouncer.is_some() || fleet.is_some()) {
                let mut holds = Vec::new();
                let sizing =
                    sizing_finding(&pool, apps, bouncer.as_ref(), fleet.as_ref(), &mut holds).await;
                report.push(sizing);
                for held in holds {
                    report.push(held);
                }
            }
            pool.close().await;
            report
        }
        Err(e) => CheckReport::unknown(target, e),
    };
    if args.json {
        print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("report serialises")
        ));
    } else {
        print_out(&render_check(&report, colour));
    }
    report.overall()
}

/// `pool.sizing`: one reading of every pool source and the server's view; what holds
/// PgBouncer's clients (a PAUSE, a SUSPEND) goes to `holds`.
async fn sizing_finding(
    pool: &InstrumentedPool,
    apps: &[pgvigil::remote::Endpoint],
    bouncer: Option<&pgvigil::DatabaseUrl>,
    fleet: Option<&pgvigil::remote::Fleet>,
    holds: &mut Vec<pgvigil::Finding>,
) -> pgvigil::Finding {
    use pgvigil::checks::Group;
    let unknown = |why: String| pgvigil::Finding::unknown(Group::Pool, "pool.sizing", why);
    let timeout = Duration::from_secs(5);
    let server = match pool.acquire_labeled("sizing").await {
        Ok(mut conn) => pgvigil::catalog::server_view(&mut conn)
            .await
            .map_err(|e| pool.config().database_url.explain(&e)),
        Err(e) => Err(e.to_string()),
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => return unknown(format!("the server view could not be read: {e}")),
    };
    let readings = futures_util::future::join_all(
        apps.iter()
            .map(|e| pgvigil::remote::read_endpoint(e, timeout)),
    )
    .await;
    let now = std::time::Instant::now();
    let mut instances = Vec::new();
    for (endpoint, reading) in apps.iter().zip(readings) {
        match reading {
            Ok(r) => instances.push(pgvigil_cli::tui::apps::AppInstance {
                name: endpoint.authority(),
                app: endpoint.name().map(str::to_string),
                figures: Ok(pgvigil::remote::InstanceWindow::default().push(now, r)),
                last_ok: None,
            }),
            Err(e) => {
                return unknown(format!(
                    "{}: {e}",
                    pgvigil::sanitize::printable(endpoint.shown())
                ));
            }
        }
    }
    let snapshot = pgvigil_cli::tui::apps::AppsSnapshot {
        taken_at: chrono::Utc::now(),
        instances,
    };
    let bouncer = match bouncer {
        Some(url) => match pgvigil::remote::pgbouncer::read(url, timeout).await {
            Ok(v) => {
                holds.extend(v.finding());
                Some(v)
            }
            Err(e) => return unknown(e.to_string()),
        },
        None => None,
    };
    let fleet = match fleet {
        Some(f) => match f.read(timeout).await {
            Ok(v) => Some(v),
            Err(e) => return unknown(format!("Prometheus {}: {e}", f.shown())),
        },
        None => None,
    };
    match pgvigil_cli::tui::apps::sizing_input(
        &server,
        (!apps.is_empty()).then_some(&snapshot),
        bouncer.as_ref(),
        fleet.as_ref(),
    ) {
        Some(input) => pgvigil::remote::sizing::sizing(&input).finding(),
        None => unknown("no pool figures were read".to_string()),
    }
}

async fn snapshot(config: PoolConfig, dir: PathBuf, output: PathBuf, dev: DevSource) -> Status {
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

async fn migrate_dry_run(
    config: PoolConfig,
    dir: PathBuf,
    json: bool,
    options: DryRunOptions,
    colour: bool,
) -> Status {
    // A read-only session on production: only reads (catalog, ledger, pg_dump) happen there.
    let Some(mut conn) = connect_dedicated(&config).await else {
        return UNKNOWN;
    };
    match dry_run(&config, &mut conn, &dir, &options).await {
        Ok(report) => {
            if json {
                print_out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&report).expect("report serialises")
                ));
            } else {
                print_out(&render_dry_run(&report, colour));
            }
            report.status().verdict()
        }
        Err(e) => {
            say(&config.database_url.scrub(&e.to_string()));
            UNKNOWN
        }
    }
}
