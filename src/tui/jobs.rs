//! Jobs run off the render loop, each on a connection of its own, and report on the bus: their
//! progress as it comes, then how they ended. Cancelling a job (Esc, a quit, a signal) drops
//! its future; the library's cleanup (`pgvigil::cleanup`) cancels on the server the statement
//! the dropped work had running there, on production and on the dev server alike, and the way
//! out waits for those cancels.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::message::{Bus, JobMessage};
use super::state::{BackupVerified, JobKind, JobOutcome, Rehearsed};
use pgvigil::checks::{CheckOptions, run_checks_on};
use pgvigil::config::PoolConfig;
use pgvigil::session::ProductionSession;
use pgvigil::window::backup::{self, CreateOptions, VerifyOptions};
use pgvigil::window::lint::{LintError, LintOptions, Selection, lint_migrations};
use pgvigil::window::{DryRunError, DryRunOptions, Progress, ProgressSink, dry_run};

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub migrations_dir: PathBuf,
    pub expected_file: Option<PathBuf>,
    /// Where the verify key builds the expected schema, the dry-run key runs migrations and
    /// the backup key restores its backup.
    pub dev: pgvigil::dev::DevSource,
}

/// Why a job ended without a report. Each keeps its source; the Jobs panel writes the words.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job's own read-only session on production could not be opened.
    #[error(transparent)]
    Session(pgvigil::DbError),
    /// The dry-run ended early.
    #[error(transparent)]
    DryRun(#[from] DryRunError),
    /// The lint could not read the migrations directory or a file.
    #[error(transparent)]
    Lint(#[from] LintError),
    /// The backup could not be taken (pg_dump, the snapshot, the state directory).
    #[error(transparent)]
    BackupCreate(#[from] backup::CreateError),
    /// The dev database to restore on could not be had, or is production's own server.
    #[error(transparent)]
    RestoreTarget(#[from] backup::TargetError),
    /// The verification could not run at all (a disagreement is a finding, not this).
    #[error(transparent)]
    BackupVerify(#[from] backup::VerifyError),
    /// The verification could not be recorded in the state directory.
    #[error(transparent)]
    Record(#[from] backup::RecordError),
    /// The migrations directory could not be read.
    #[error(transparent)]
    Migrations(#[from] pgvigil::migrations::MigrationError),
    /// The rehearsal could not run (a failing migration is in its report, not this).
    #[error(transparent)]
    Rehearse(#[from] pgvigil::window::rehearsal::RehearsalError),
    /// The rehearsal could not be recorded in the state directory.
    #[error(transparent)]
    RehearsalRecord(#[from] pgvigil::window::rehearsal::record::RecordError),
}

pub struct JobRunner {
    config: Arc<PoolConfig>,
    settings: JobSettings,
    bus: Bus,
    running: HashMap<u64, JoinHandle<()>>,
}

impl JobRunner {
    pub fn new(config: Arc<PoolConfig>, settings: JobSettings, bus: Bus) -> Self {
        Self {
            config,
            settings,
            bus,
            running: HashMap::new(),
        }
    }

    pub fn start(&mut self, id: u64, kind: JobKind) {
        self.running.retain(|_, h| !h.is_finished());
        let (config, settings, bus) =
            (self.config.clone(), self.settings.clone(), self.bus.clone());
        tracing::info!(target: "pgvigil::jobs", "{} started", kind.label());
        let handle = tokio::spawn(async move {
            let outcome = run(kind, &config, &settings, progress_to(&bus, id)).await;
            match &outcome {
                JobOutcome::Failed(e) => {
                    tracing::warn!(target: "pgvigil::jobs", "{} failed: {e}", kind.label())
                }
                JobOutcome::Checked(r) => tracing::info!(
                    target: "pgvigil::jobs",
                    "{} finished: {}",
                    kind.label(), r.summary()
                ),
                JobOutcome::DryRun(r) => tracing::info!(
                    target: "pgvigil::jobs",
                    "dry-run finished: {}",
                    r.summary()
                ),
                JobOutcome::Linted(r) => tracing::info!(
                    target: "pgvigil::jobs",
                    "lint finished: {}",
                    r.summary()
                ),
                JobOutcome::BackedUp(b) => tracing::info!(
                    target: "pgvigil::jobs",
                    "backup {} verified: {}",
                    b.created.manifest_path.display(),
                    b.verified.summary()
                ),
                JobOutcome::Rehearsed(r) => tracing::info!(
                    target: "pgvigil::jobs",
                    "rehearsal finished: {}",
                    r.report.summary()
                ),
                JobOutcome::Cancelled => {}
            }
            // After every progress report this task sent: the bus keeps their order.
            let _ = bus.send(JobMessage::Done { id, outcome }.into()).await;
        });
        self.running.insert(id, handle);
    }

    /// Stops the job. The UI hears "cancelled" at once; dropping the job's future cancels its
    /// statement on the server (see the module doc).
    pub fn cancel(&mut self, id: u64) {
        let Some(handle) = self.running.remove(&id) else {
            return;
        };
        handle.abort();
        tracing::info!(target: "pgvigil::jobs", "job cancelled");
        let done = move || {
            JobMessage::Done {
                id,
                outcome: JobOutcome::Cancelled,
            }
            .into()
        };
        if self.bus.try_send(done()).is_err() {
            let bus = self.bus.clone();
            tokio::spawn(async move {
                let _ = bus.send(done()).await;
            });
        }
    }

    /// On the way out (quit, SIGTERM, SIGHUP, error): stop every job and wait, a little, for
    /// what their dropped work left to the library's cleanup (statements cancelled on the
    /// server, scratch databases dropped), so that a read holding a lock on production, or a
    /// migration on the dev server, does not outlive the dashboard.
    pub async fn shutdown(&mut self) {
        let handles: Vec<JoinHandle<()>> = self
            .running
            .drain()
            .map(|(_, handle)| {
                handle.abort();
                handle
            })
            .collect();
        let all = async {
            // Aborted tasks drop their work when they are next polled: wait for that, so
            // their guards have registered their cleanups before waiting for those.
            futures_util::future::join_all(handles).await;
            pgvigil::cleanup::finish(std::time::Duration::from_secs(3)).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), all).await;
    }
}

/// Job `id`'s progress as messages on the bus. A step's progress callback must return at once,
/// so a report that finds the bus full is dropped (the next one replaces it).
fn progress_to(bus: &Bus, id: u64) -> ProgressSink {
    let bus = bus.clone();
    ProgressSink::from_fn(move |progress| {
        let _ = bus.try_send(JobMessage::Progress { id, progress }.into());
    })
}

/// The job's own session on production: read-only, as every session of pgvigil's there.
async fn open_session(config: &PoolConfig) -> Result<ProductionSession, JobError> {
    ProductionSession::connect(config)
        .await
        .map_err(|e| JobError::Session(pgvigil::DbError::new(e, &config.database_url)))
}

async fn run(
    kind: JobKind,
    config: &PoolConfig,
    settings: &JobSettings,
    progress: ProgressSink,
) -> JobOutcome {
    // The job's own phases; a library step's reports follow with its own.
    progress.report(Progress::phase(
        "opening a read-only session on production",
        None,
    ));
    let session = open_session(config).await;
    if kind == JobKind::Lint {
        // A lint without production's catalog still reads the files, and says so.
        return lint(config, settings, session, progress).await;
    }
    let mut conn = match session {
        Ok(c) => c,
        Err(e) => return JobOutcome::Failed(Arc::new(e)),
    };
    let outcome = match kind {
        JobKind::Status | JobKind::Verify => {
            let options = CheckOptions {
                migrations_dir: settings.migrations_dir.clone(),
                expected_file: settings.expected_file.clone(),
                // The automatic status read starts nothing and times no queries; the schema
                // needs a dev database (unless cached), so it waits for `v`.
                build_expected: kind == JobKind::Verify,
                dev: Some(settings.dev.clone()),
                skip: if kind == JobKind::Status {
                    vec![pgvigil::checks::Group::Schema]
                } else {
                    Vec::new()
                },
                knn_samples: if kind == JobKind::Verify { 10 } else { 0 },
                ..CheckOptions::default()
            };
            progress.report(Progress::phase("reading production", None));
            JobOutcome::Checked(Box::new(
                run_checks_on(&mut conn, config, None, &options).await,
            ))
        }
        JobKind::DryRun => {
            progress.report(Progress::phase("starting the dry-run", None));
            // The dry-run's own phases ("applying migrations 2/5") come through the same sink.
            let options = DryRunOptions {
                dev: Some(settings.dev.clone()),
                progress: progress.clone(),
                ..DryRunOptions::default()
            };
            match dry_run(config, &mut conn, &settings.migrations_dir, &options).await {
                Ok(report) => JobOutcome::DryRun(Box::new(report)),
                Err(e) => JobOutcome::Failed(Arc::new(e.into())),
            }
        }
        JobKind::Backup => match backup_and_verify(config, settings, &mut conn, &progress).await {
            Ok(b) => JobOutcome::BackedUp(Box::new(b)),
            Err(e) => JobOutcome::Failed(Arc::new(e)),
        },
        JobKind::Rehearse => match rehearse(config, settings, &mut conn, &progress).await {
            Ok(r) => JobOutcome::Rehearsed(Box::new(r)),
            Err(e) => JobOutcome::Failed(Arc::new(e)),
        },
        JobKind::Lint => unreachable!("the lint returned above"),
    };
    conn.close().await;
    outcome
}

/// The lint of the pending migrations, with production's catalog when its session opened.
async fn lint(
    config: &PoolConfig,
    settings: &JobSettings,
    session: Result<ProductionSession, JobError>,
    progress: ProgressSink,
) -> JobOutcome {
    let (mut session, without) = match session {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(format!("DATABASE_URL did not answer ({e})"))),
    };
    let options = LintOptions {
        progress,
        ..LintOptions::default()
    };
    let report = lint_migrations(
        config,
        session.as_mut(),
        &settings.migrations_dir,
        &Selection::Pending,
        without.as_deref(),
        &options,
    )
    .await;
    if let Some(s) = session {
        s.close().await;
    }
    match report {
        Ok(r) => JobOutcome::Linted(Box::new(r)),
        Err(e) => JobOutcome::Failed(Arc::new(e.into())),
    }
}

/// `pgvigil migrate rehearse` on the newest verified backup, restored on the dev database, and
/// its record written to the state directory as the CLI writes it. Dropping this future (Esc)
/// cancels the migration's statement on the dev server and drops the restored copy (the
/// library's guards); nothing is recorded then.
async fn rehearse(
    config: &PoolConfig,
    settings: &JobSettings,
    conn: &mut ProductionSession,
    progress: &ProgressSink,
) -> Result<Rehearsed, JobError> {
    use pgvigil::window::rehearsal::{self, RehearsalOptions, RehearsalSource};
    let local = pgvigil::migrations::load_local(&settings.migrations_dir).await?;
    let mut options = RehearsalOptions::new(RehearsalSource::Backup {
        manifest: None,
        dev: settings.dev.clone(),
    });
    options.progress = progress.clone();
    let (report, record) = rehearsal::rehearse(config, Some(conn), &local, &options).await?;
    let record = match pgvigil::checks::state_dir() {
        Some(dir) => {
            rehearsal::record::write(&dir, &record)?;
            rehearsal::record::last(&dir)
        }
        None => None,
    };
    Ok(Rehearsed { report, record })
}

/// `pgvigil backup create` then `backup verify` on the dev database, recorded in the state
/// directory as the CLI records it. The library's progress ("dumping tables 3/12", "restoring
/// items", "comparing tables") comes through `progress`; dropping this future (Esc) kills
/// pg_dump or pg_restore and drops the scratch database (the library's guards).
async fn backup_and_verify(
    config: &PoolConfig,
    settings: &JobSettings,
    conn: &mut ProductionSession,
    progress: &ProgressSink,
) -> Result<BackupVerified, JobError> {
    let created = backup::create(config, conn, &CreateOptions::default(), progress).await?;
    progress.report(Progress::phase("starting the dev database", None));
    let server =
        backup::restore_target(&settings.dev, &created.manifest, config, Some(conn)).await?;
    let verified = backup::verify(
        &created.manifest_path,
        &server,
        &VerifyOptions::default(),
        progress,
    )
    .await;
    drop(server);
    let verified = verified?;
    let record = match pgvigil::checks::state_dir() {
        Some(dir) => {
            backup::record::record(&dir, &created.manifest, &verified)?;
            // Read back as the gate will read it: what the Window panel shows.
            backup::record::last(&dir)
        }
        None => None,
    };
    Ok(BackupVerified {
        created,
        verified,
        record,
    })
}
