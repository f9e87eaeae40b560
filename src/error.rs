//! How a command ends, at the binary's edge: its verdict, why it could not give one
//! ([`CommandError`], each variant with its Nagios code), or the signal that stopped it. The
//! words reach stderr here and nowhere else; the exit code is decided here and nowhere else:
//! 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage, configuration, no connection), 128 + the
//! signal's number after SIGINT / SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use pgvigil::DatabaseUrl;
use pgvigil::checks::Status;

use crate::signal::Stop;

/// Why a command ended without its verdict. Every variant keeps its source.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A setting (flag, variable, .env line) is not valid.
    #[error(transparent)]
    Config(#[from] pgvigil::config::ConfigError),
    /// `--dev-url` / DEV_DATABASE_URL is not valid.
    #[error(transparent)]
    DevSource(pgvigil::dev::DevError),
    /// `--app`, `--pgbouncer`, `--prometheus` / `--selector` (or their variables).
    #[error(transparent)]
    PoolSource(#[from] crate::commands::sources::SourceError),
    /// `serve` could not start.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// `--theme` is not a theme.
    #[error(transparent)]
    Theme(#[from] crate::tui::theme::ThemeError),
    /// The dashboard was asked for on a pipe.
    #[error(
        "the dashboard needs a terminal (standard input or output is not one); for a report on \
         a pipe or in a script use `pgvigil check` (or `pgvigil check --json`)"
    )]
    NotATerminal,
    /// The dashboard stopped on a terminal error.
    #[error("the dashboard ended: {0}")]
    Dashboard(#[source] std::io::Error),
    /// The demo's cluster, PgBouncer or instances could not be set up.
    #[error(transparent)]
    Demo(Box<crate::demo::DemoError>),
    /// The pool could not connect (after the configured retries).
    #[error(transparent)]
    Connect(Box<pgvigil::pool::ConnectError>),
    /// No connection from the pool.
    #[error(transparent)]
    Acquire(#[from] pgvigil::pool::AcquireError),
    /// A single connection to DATABASE_URL could not be opened (or made read-only).
    #[error("cannot connect to {url}: {source}")]
    Dedicated {
        /// Where (the password redacted when shown).
        url: Box<DatabaseUrl>,
        /// The driver's failure, worded and scrubbed where it entered.
        source: pgvigil::DbError,
    },
    /// A query on DATABASE_URL failed.
    #[error(transparent)]
    Query(pgvigil::DbError),
    /// The migrations directory could not be read.
    #[error(transparent)]
    Migrations(#[from] pgvigil::checks::MigrationError),
    /// The dev server for the expected schema could not be started or is production's.
    #[error(transparent)]
    DevServer(pgvigil::dev::DevError),
    /// The expected schema could not be built on the dev server.
    #[error(transparent)]
    Expected(#[from] pgvigil::checks::ExpectedError),
    /// `--output` could not be written.
    #[error("--output {}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `pgvigil man --dir` could not write its pages.
    #[error("--dir {}: cannot write the man pages there: {source}", dir.display())]
    ManDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `migrate lint` could not lint (a file or the migrations directory unreadable, a read
    /// on DATABASE_URL failed).
    #[error("migrate lint: {0}")]
    Lint(Box<pgvigil::window::lint::LintError>),
    /// The dry-run could not run.
    #[error(transparent)]
    DryRun(pgvigil::window::DryRunError),
    /// `backup create` could not take the backup.
    #[error(transparent)]
    BackupCreate(Box<pgvigil::window::backup::CreateError>),
    /// `backup verify` could not run (a finding is not this: it is the report's).
    #[error(transparent)]
    BackupVerify(Box<pgvigil::window::backup::VerifyError>),
    /// `--restore-url` is not valid.
    #[error(
        "--restore-url {0}; it names a scratch server (not production's) whose role may create databases"
    )]
    RestoreUrl(#[source] pgvigil::config::UrlError),
    /// `backup verify`'s restore target could not be started or reached, or is production's
    /// server: the verification could not run (UNKNOWN), unlike the schema snapshot's dev
    /// server ([`CommandError::DevServer`], CRITICAL).
    #[error(transparent)]
    RestoreTarget(pgvigil::dev::DevError),
    /// `backup verify`'s restore target is production's own server: refused.
    #[error(
        "{flag} ({target}) names the same PostgreSQL server as DATABASE_URL; a backup is never \
         restored on production's server: pass --restore-url of a separate scratch server whose \
         role may create databases, or leave it out to restore on a private cluster"
    )]
    RestoreOnProduction {
        /// The flag that named it.
        flag: &'static str,
        /// The server, URL redacted.
        target: String,
    },
    /// The verification could not be recorded.
    #[error(transparent)]
    Record(Box<pgvigil::window::backup::RecordError>),
    /// `--staging-url` is not valid.
    #[error(
        "--staging-url {0}; it names a staging server restored from a snapshot (never production's)"
    )]
    StagingUrl(#[source] pgvigil::config::UrlError),
    /// `migrate rehearse` could not rehearse (a failing migration is the report's, not this).
    #[error("migrate rehearse: {0}")]
    Rehearse(Box<pgvigil::window::rehearsal::RehearsalError>),
    /// The rehearsal could not be recorded.
    #[error(transparent)]
    RehearsalRecord(Box<pgvigil::window::rehearsal::record::RecordError>),
}

// Boxed: the pool's connect error carries its last driver failure and the attempts, and would
// make every command's Result as large as it.
impl From<pgvigil::pool::ConnectError> for CommandError {
    fn from(e: pgvigil::pool::ConnectError) -> Self {
        CommandError::Connect(Box::new(e))
    }
}

impl CommandError {
    /// The verdict this error stands for. Not deciding is UNKNOWN; a schema snapshot that
    /// cannot be built is CRITICAL (the migrations do not build).
    pub fn status(&self) -> Status {
        match self {
            CommandError::DevServer(_) | CommandError::Expected(_) => Status::Fail,
            _ => Status::Unknown,
        }
    }

    /// Who speaks: the demo's setup says `pgvigil demo:`, as its progress lines do.
    fn speaker(&self) -> &'static str {
        match self {
            CommandError::Demo(_) => "pgvigil demo",
            _ => "pgvigil",
        }
    }
}

/// How a command ended.
#[derive(Debug)]
pub enum Exit {
    /// It gave its verdict (its report is printed).
    Verdict(Status),
    /// It could not.
    Failed(CommandError),
    /// A signal stopped it; `cancelled` statements were cancelled on their servers.
    Interrupted {
        /// The signal.
        by: Stop,
        /// Statements cancelled on the server.
        cancelled: usize,
    },
}

impl From<Result<Status, CommandError>> for Exit {
    fn from(outcome: Result<Status, CommandError>) -> Exit {
        match outcome {
            Ok(status) => Exit::Verdict(status),
            Err(e) => Exit::Failed(e),
        }
    }
}

impl From<crate::demo::DemoError> for CommandError {
    fn from(e: crate::demo::DemoError) -> CommandError {
        CommandError::Demo(Box::new(e))
    }
}

impl From<CommandError> for Exit {
    fn from(e: CommandError) -> Exit {
        Exit::Failed(e)
    }
}

impl Exit {
    /// Says why on stderr (when it failed or was stopped) and gives the process's exit code.
    pub fn finish(self) -> ExitCode {
        match self {
            Exit::Verdict(status) => ExitCode::from(status.exit_code()),
            Exit::Failed(e) => {
                say_as(e.speaker(), &e.to_string());
                ExitCode::from(e.status().exit_code())
            }
            Exit::Interrupted { by, cancelled } => {
                eprintln!(
                    "pgvigil: interrupted by {}; cancelled {cancelled} running statement(s) on the \
                     server and removed what this run created",
                    by.name()
                );
                ExitCode::from(by.exit_code())
            }
        }
    }
}

/// A message for the user on stderr, with control characters from the server or a file shown
/// as escapes (a message can quote a server's text).
pub fn say(message: &str) {
    say_as("pgvigil", message);
}

fn say_as(speaker: &str, message: &str) {
    eprintln!("{speaker}: {}", pgvigil::sanitize::printable_lines(message));
}
