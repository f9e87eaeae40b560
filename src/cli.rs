//! The command line: every flag, variable, default and help text of `pgvigil`, as clap's derive
//! reads them. One definition feeds the parser, the shell completions and the man page.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgvigil::checks::Group;
use pgvigil::config::parse_duration;

use crate::args::{ConfigArgs, InvalidValue};

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "pgvigil",
    version,
    about = "Live PostgreSQL pool and schema status for on-call engineers",
    long_about = "Live PostgreSQL pool and schema status for on-call engineers.\n\n\
                  Without a command, opens the dashboard on DATABASE_URL."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// No colour (NO_COLOR in the environment does the same).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Dev database for dry-runs and the expected schema: an EMPTY scratch server whose role
    /// may create databases (default: a private PostgreSQL started on this machine). Also
    /// DEV_DATABASE_URL. Migration SQL never runs on DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub dev_url: Option<String>,
    /// Lets the dev database create this extension although it opens connections to other
    /// servers (dblink, postgres_fdw, other *_fdw, http, pg_net); refused by default. Repeatable.
    #[arg(long = "allow-extension", global = true, value_name = "NAME")]
    pub allow_extension: Vec<String>,
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Dashboard refresh interval, 0.5s to 10s (+ and - change it while running).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = refresh_arg)]
    pub refresh: Duration,
    /// Colour theme: default, light, high-contrast, monochrome, or a path to a theme .toml.
    #[arg(long, value_name = "NAME|PATH", default_value = "default")]
    pub theme: String,
    /// Migrations the dashboard's verify and dry-run keys use.
    #[arg(long = "migrations", value_name = "DIR", default_value = "migrations")]
    pub dashboard_migrations: PathBuf,
    /// Expected schema file for the verify key (instead of a scratch database).
    #[arg(long = "expected", value_name = "FILE")]
    pub dashboard_expected: Option<PathBuf>,
    #[command(flatten)]
    pub sources: PoolSourceArgs,
}

/// Where the production pools are read from: application instances, PgBouncer, a fleet.
#[derive(Debug, Args)]
pub struct PoolSourceArgs {
    /// An application instance's /metrics (pgvigil's or HikariCP's names) whose pool the Pool
    /// panel shows, as URL or NAME=URL (the name shown beside its address); repeat for each
    /// instance (or APP_METRICS_URLS, comma separated).
    #[arg(long = "app", value_name = "[NAME=]URL")]
    pub apps: Vec<String>,
    /// The PgBouncer admin console in front of the database (postgres://USER@HOST:PORT/pgbouncer;
    /// or PGBOUNCER_URL): its pools show in the Pool panel.
    #[arg(long = "pgbouncer", value_name = "URL")]
    pub pgbouncer: Option<String>,
    /// A Prometheus that scrapes the fleet (http://HOST:9090; or PROMETHEUS_URL): one query per
    /// tick gives the fleet's sums and its fullest instances.
    #[arg(long = "prometheus", value_name = "URL")]
    pub prometheus: Option<String>,
    /// The fleet's series in that Prometheus, e.g. '{job="docs-api"}' (or PROMETHEUS_SELECTOR).
    #[arg(long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// `--refresh`: 0.5s to 10s.
fn refresh_arg(raw: &str) -> Result<Duration, InvalidValue> {
    parse_duration(raw)
        .filter(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(10))
        .ok_or_else(|| InvalidValue::new(raw, "a duration from 0.5s to 10s (`500ms`, `1s`, `5s`)"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify pgvector, the schema, the migrations and the pool; exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN.
    Check(CheckArgs),
    /// Schema snapshots for servers where a scratch database cannot be created.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Migration tools that never change the database behind DATABASE_URL.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// A verified backup: `create` dumps one snapshot with a manifest of its figures,
    /// `verify` restores it on a dev server and compares every figure.
    #[command(subcommand)]
    Backup(BackupCommand),
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
    /// Print a completion script for a shell, e.g. `pgvigil completions bash >
    /// /etc/bash_completion.d/pgvigil` (zsh: a file named _pgvigil in $fpath; fish:
    /// ~/.config/fish/completions/pgvigil.fish).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print pgvigil's man page (roff) on standard output, e.g. `pgvigil man | man -l -`; with
    /// --dir, write it and one page per command (pgvigil-check.1, ...) into a directory.
    Man {
        /// Directory for pgvigil.1 and every command's page (it must exist).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9187")]
    pub listen: String,
    /// HEALTH_READY_TIMEOUT, bound on one readiness reading (default 2s).
    #[arg(long, value_name = "DURATION")]
    pub health_ready_timeout: Option<String>,
    /// HEALTH_CACHE_TTL, how long one readiness reading answers (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub health_cache_ttl: Option<String>,
    /// READY_REQUIRE_MIGRATIONS: `applied` (pending migrations fail readiness) or `no-failures`.
    #[arg(long, value_name = "applied|no-failures")]
    pub ready_require_migrations: Option<String>,
    /// READY_CHECK_PGVECTOR: check pgvector and documents.embedding's dimensions (true/false).
    #[arg(long, value_name = "BOOL")]
    pub ready_check_pgvector: Option<String>,
    /// EMBEDDING_DIMENSIONS the embedding column must have (default 3072).
    #[arg(long, value_name = "N")]
    pub embedding_dimensions: Option<String>,
    /// MIGRATIONS_DIR compared with the ledger (checksums, missing files, pending).
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<String>,
    /// HTTP_HEADER_READ_TIMEOUT, time to send a complete request head (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub http_header_read_timeout: Option<String>,
    /// HTTP_IDLE_TIMEOUT, keep-alive connections idle longer are closed (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub http_idle_timeout: Option<String>,
    /// HTTP_MAX_HEADER_BYTES, largest request head; larger gets 431 (default 16384).
    #[arg(long, value_name = "BYTES")]
    pub http_max_header_bytes: Option<String>,
    /// HTTP_MAX_CONNECTIONS open at once; at the limit the longest idle one is closed (default 512).
    #[arg(long, value_name = "N")]
    pub http_max_connections: Option<String>,
    /// HTTP_SHUTDOWN_TIMEOUT, bound on a graceful stop (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub http_shutdown_timeout: Option<String>,
}

impl ServeArgs {
    /// The flags given, by the variable each one overrides.
    pub fn flags(&self) -> Vec<(&'static str, &str)> {
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
pub struct MigrationsDir {
    /// Directory of sqlx migrations.
    #[arg(long, value_name = "DIR", default_value = "migrations")]
    pub migrations: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the report as JSON (format pgvigil.check/1, see docs/check-json.md).
    #[arg(long)]
    pub json: bool,
    /// Run one group of checks only: pgvector, schema, migrations or pool.
    #[arg(long, value_name = "GROUP", value_parser = group_arg)]
    pub only: Option<Group>,
    #[command(flatten)]
    pub dir: MigrationsDir,
    /// Expected schema from `pgvigil schema snapshot` instead of a scratch database.
    #[arg(long, value_name = "FILE")]
    pub expected: Option<PathBuf>,
    /// Also report tables, enums and extensions the migrations do not create.
    #[arg(long)]
    pub strict: bool,
    /// Number of KNN queries timed by the pgvector smoke test.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub knn_samples: usize,
    /// With any of these, `pool.sizing` says whether the pools can oversubscribe the server.
    #[command(flatten)]
    pub sources: PoolSourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
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
pub enum MigrateCommand {
    /// Lint the pending migrations (or --all, or FILES) with squawk's rules and pgvector's,
    /// each finding's severity following the live table it touches (read-only reads of
    /// DATABASE_URL when it answers); exit 0 clean or notes, 1 warnings, 2 errors, 3 could not
    /// lint. See docs/lint.md.
    Lint {
        /// Files to lint, in order (instead of the pending set).
        #[arg(value_name = "FILES")]
        files: Vec<PathBuf>,
        /// Every local migration, applied or not.
        #[arg(long, conflicts_with = "files")]
        all: bool,
        #[command(flatten)]
        dir: MigrationsDir,
        /// Print the report as JSON (format pgvigil.lint/1, see docs/lint.md).
        #[arg(long)]
        json: bool,
        /// Time between the two readings of pg_stat_user_tables that give writes/s.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
        busy_interval: Duration,
        /// Do not read DATABASE_URL: lint every local file (or FILES) with assumed sizes.
        #[arg(long)]
        no_database: bool,
    },
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
        #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = crate::args::size_arg)]
        max_dev_size: u64,
    },
    /// Restore the newest verified backup (or --from MANIFEST) on the dev database, or use
    /// --staging-url, then apply every pending migration for real as sqlx would, measuring
    /// each lock's wait and hold; production is only read (for the projection). Exit 0
    /// passed, 1 flagged (a hold past its threshold), 2 failed, 3 could not rehearse. See
    /// docs/rehearsal.md.
    Rehearse {
        #[command(flatten)]
        dir: MigrationsDir,
        /// Print the report as JSON (format pgvigil.rehearsal/1, see docs/rehearsal.md).
        #[arg(long)]
        json: bool,
        /// The manifest.json of the backup to restore (default: the newest verified backup
        /// recorded in the state directory).
        #[arg(long, value_name = "MANIFEST", conflicts_with = "staging_url")]
        from: Option<PathBuf>,
        /// A staging server already restored from a snapshot (never production's): the
        /// migrations are applied to its database for real and left applied. Prefer the
        /// variable: a password on the command line shows in `ps`.
        #[arg(
            long,
            value_name = "URL",
            env = "STAGING_DATABASE_URL",
            hide_env_values = true
        )]
        staging_url: Option<String>,
        /// lock_timeout on the copy.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
        lock_timeout: Duration,
        /// pgvigil's bound on each migration statement, enforced from outside its session.
        #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = duration_arg)]
        statement_timeout: Duration,
        /// Wall-clock bound of the whole rehearsal.
        #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = duration_arg)]
        max_duration: Duration,
        /// Time between two readings of the migration's backend (locks, index build phases,
        /// wait events); 0 turns the readings off (only to measure what they cost).
        #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = interval_arg)]
        sample_every: Duration,
        /// Flag an ACCESS EXCLUSIVE lock held longer than this (at production's size).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
        max_exclusive_hold: Duration,
        /// Flag another write-blocking lock (SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE) held longer.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration_arg)]
        max_write_block: Duration,
        /// pg_restore's parallel jobs (default: the cores available).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
        /// Time between the two readings of production's pg_stat_user_tables that give writes/s.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
        busy_interval: Duration,
    },
}

/// `--only`: one group of checks.
fn group_arg(raw: &str) -> Result<Group, pgvigil::checks::UnknownGroup> {
    raw.parse()
}

/// `--sample-every`: a duration, 0 for none.
fn interval_arg(raw: &str) -> Result<Duration, InvalidValue> {
    if raw.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(raw)
        .ok_or_else(|| InvalidValue::new(raw, "a duration such as 100ms, 1s (or 0: no readings)"))
}

/// The dry-run's bounds: a positive duration.
fn duration_arg(raw: &str) -> Result<Duration, InvalidValue> {
    parse_duration(raw)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| InvalidValue::new(raw, pgvigil::config::ACCEPTED_DURATION))
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Dump DATABASE_URL (pg_dump -Fd -j, one exported snapshot) with a manifest of its
    /// figures (row counts, per-key-range hashes, ledger, extensions, indexes); production is
    /// only read. The manifest's path is the last line printed.
    Create {
        /// The backup's directory (new or empty; default: a new directory under the state
        /// directory's backups/).
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// pg_dump's parallel jobs (default: the cores available).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
        /// Tables with more rows than this have 8 random key ranges hashed instead of every row
        /// (their row count stays exact).
        #[arg(long, value_name = "ROWS", default_value_t = pgvigil::window::backup::DEFAULT_FULL_HASH_LIMIT)]
        full_hash_limit: u64,
        /// pg_dump's gzip level, 0 (none) to 9; pg_dump's own default, 6, is several times
        /// slower on embeddings for a few percent of size.
        #[arg(long, value_name = "LEVEL", default_value_t = pgvigil::window::backup::DEFAULT_COMPRESS,
              value_parser = clap::value_parser!(u8).range(0..=9))]
        compress: u8,
        #[arg(long)]
        json: bool,
    },
    /// Check a backup's files, restore it into a scratch database (a private cluster by
    /// default) and compare every figure of its manifest; exit 0 only when all match.
    Verify {
        /// The manifest.json `backup create` wrote.
        #[arg(value_name = "MANIFEST")]
        manifest: PathBuf,
        /// Restore on this server instead (never production's: refused when it is). Prefer
        /// the variable: a password on the command line shows in `ps`.
        #[arg(
            long,
            value_name = "URL",
            env = "RESTORE_DATABASE_URL",
            hide_env_values = true
        )]
        restore_url: Option<String>,
        /// pg_restore's parallel jobs (default: the cores available).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
        #[arg(long)]
        json: bool,
    },
}
