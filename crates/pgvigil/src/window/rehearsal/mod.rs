//! `pgvigil migrate rehearse`: the staging dry-run on a fresh snapshot of production's schema
//! AND data. The newest verified backup (or `--from MANIFEST`) is restored into a scratch
//! database on the dev server (never production's: the restore refuses the source's system
//! identifier and the dev server is compared with production's identity), or `--staging-url`
//! names a staging server already restored from a snapshot. Then every pending migration is
//! applied for real, exactly as sqlx would (the ledger with SHA-384 checksums, sqlx's advisory
//! lock, `-- no-transaction` files outside a transaction, `CREATE INDEX CONCURRENTLY`
//! included), through the shared [`MigrationRunner`], whose observer reads the migration's
//! backend about every 100 ms: its locks granted and awaited, `pg_stat_progress_create_index`
//! and its wait events, so concurrent builds are traced too.
//!
//! Per migration the report gives the duration; per relation the strongest lock with the time
//! it waited for it and the time it held it, and whether it blocks reads or writes; the
//! relations rewritten (a changed relfilenode); the indexes built with `indisvalid`; the build
//! phases; then the checks on the result and the database's size before and after. Production
//! is only read (its catalog and statistics, through a read-only session, as the lint reads
//! them): each blocking hold is set against how busy its table is there now, holds past a
//! threshold are flagged, and when the copy is smaller than production the durations are
//! scaled, naming the assumption. A migration that existing rows break fails here with its
//! line and column. The restored copy is dropped on every way out (a dropped future drops it
//! from a task of its own; the cleanup waits for that on Ctrl-C and SIGTERM). The record the
//! apply gate needs goes to the state directory (`record.rs`).

mod copy;
pub mod projection;
pub mod record;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub use projection::{ScaleModel, Thresholds};
pub use record::{RehearsalRecord, Voided};
pub use report::{
    FORMAT, IndexBuilt, LockHold, Projection, RehearsalReport, RehearsalVerdict,
    RehearsedMigration, TableScale,
};

use crate::catalog::LockMode;
use crate::checks::{Finding, Group};
use crate::config::{DatabaseUrl, PoolConfig};
use crate::db_error::DbError;
use crate::dev::{DevError, DevServer, DevSource};
use crate::migrations::local::hex;
use crate::migrations::{LocalMigration, MigrationState};
use crate::session::{ProductionSession, Reader};
use crate::window::backup::{self, BackupManifest, RestoreError, RestoredCopy};
use crate::window::lint::{CatalogReading, read_catalog};
use crate::window::runner::{MigrationRunner, RunOutcome, RunnerOptions, Stop};
use crate::window::{Outcome, Progress, ProgressSink};

/// Where the rehearsal runs.
#[derive(Debug, Clone)]
pub enum RehearsalSource {
    /// Restore a backup into a scratch database on the dev server. `manifest: None`: the
    /// newest verified backup recorded in the state directory.
    Backup {
        /// `--from MANIFEST`.
        manifest: Option<PathBuf>,
        /// The dev server.
        dev: DevSource,
    },
    /// `--staging-url`: a staging server already restored from a snapshot; the migrations are
    /// applied to its database for real and it is left as they leave it.
    Staging(Box<DatabaseUrl>),
}

/// How to rehearse.
#[derive(Debug, Clone)]
pub struct RehearsalOptions {
    /// Where.
    pub source: RehearsalSource,
    /// lock_timeout on the copy (nobody else works there, so a wait means a migration waits
    /// on itself or on a leftover session).
    pub lock_timeout: Duration,
    /// pgvigil's bound on each migration statement, enforced from outside its session.
    pub statement_timeout: Duration,
    /// The whole run's bound.
    pub max_duration: Duration,
    /// Time between two readings of the migration's backend (zero: none, for the benchmark).
    pub sample_every: Duration,
    /// Hold thresholds.
    pub thresholds: Thresholds,
    /// pg_restore's parallel jobs (`None`: the cores available).
    pub jobs: Option<usize>,
    /// Time between the two readings of production's statistics that give writes/s.
    pub busy_interval: Duration,
    /// Where the state directory is (for the newest verified backup); `None`: the default.
    pub state_dir: Option<PathBuf>,
    /// Phases and percentages.
    pub progress: ProgressSink,
}

impl RehearsalOptions {
    /// Defaults for `source`: lock_timeout 5 s, 2 h per statement (a production-size HNSW
    /// build takes long), 6 h in all, a reading every 100 ms, 10 s / 60 s thresholds.
    pub fn new(source: RehearsalSource) -> Self {
        Self {
            source,
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(2 * 3600),
            max_duration: Duration::from_secs(6 * 3600),
            sample_every: Duration::from_millis(100),
            thresholds: Thresholds::default(),
            jobs: None,
            busy_interval: Duration::from_secs(5),
            state_dir: None,
            progress: ProgressSink::none(),
        }
    }
}

/// Why a rehearsal could not run at all (a failing migration is in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RehearsalError {
    /// No `--from` and no verified backup recorded.
    #[error(
        "no verified backup is recorded in {state_dir}: take and verify one first (`pgvigil \
         backup create`, then `pgvigil backup verify MANIFEST`), or pass --from MANIFEST or \
         --staging-url URL"
    )]
    NoVerifiedBackup {
        /// The state directory looked in.
        state_dir: String,
    },
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] backup::ManifestError),
    /// The dev server could not be had, or it is production's.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// The backup could not be restored.
    #[error("restoring the backup for the rehearsal: {0}")]
    Restore(#[from] RestoreError),
    /// `--staging-url` could not be reached.
    #[error("--staging-url {target}: {source}")]
    Staging {
        /// The staging server, redacted.
        target: String,
        /// The failure, secrets removed.
        source: DbError,
    },
    /// `--staging-url` is production's own server (or a physical copy of it), or production did
    /// not answer so that could not be ruled out.
    #[error(
        "--staging-url {target}: {reason}; the rehearsal applies migrations for real and never \
         runs on production: pass the URL of a staging server restored from a snapshot, or \
         leave it out to restore the newest verified backup on the dev database"
    )]
    StagingIsProduction {
        /// The staging server, redacted.
        target: String,
        /// What was found.
        reason: String,
    },
    /// A read on the copy (outside the migrations) failed.
    #[error("reading the rehearsal's copy: {0}")]
    Copy(#[source] DbError),
    /// The migrations' session could not be opened.
    #[error("opening the migrations' session on the copy: {0}")]
    Runner(#[source] DbError),
    /// The dev server is not pgvigil's private cluster and production did not answer: it
    /// cannot be told apart from production's server.
    #[error(
        "the dev database ({target}) cannot be checked apart from production's server: \
         production (DATABASE_URL) did not answer; make it answer, or leave --dev-url / \
         DEV_DATABASE_URL out to restore on a private cluster"
    )]
    DevUnchecked {
        /// The dev server, redacted.
        target: String,
    },
    /// The restore did not finish within --max-duration.
    #[error(
        "the rehearsal passed its bound of {bound} (--max-duration) before the migrations could run; raise --max-duration"
    )]
    TooSlow {
        /// The bound, in words.
        bound: String,
    },
}

/// What production told the rehearsal (nothing when it did not answer).
struct ProductionRead {
    identity: String,
    /// `pg_control_system()`'s identifier, when this role may read it, and
    /// `pg_is_in_recovery()`: a standby's primary shares its identifier.
    system: Option<(String, bool)>,
    catalog: CatalogReading,
    ledger: Option<Vec<crate::migrations::LedgerRow>>,
}

/// A server's system identifier (when readable) and whether it is in recovery.
async fn system_of(r: &mut Reader<'_>) -> Result<Option<(String, bool)>, sqlx::Error> {
    let row: (Option<String>, bool) = sqlx::query_as(
        "SELECT CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                     THEN (SELECT system_identifier::text FROM pg_control_system()) END,
                pg_is_in_recovery()",
    )
    .fetch_one(&mut *r)
    .await?;
    Ok(row.0.map(|id| (id, row.1)))
}

/// Rehearses the pending migrations among `local` (pending on the copy: the files its ledger
/// has not applied). `production` is read only (its identity, catalog and statistics), for the
/// projection and to keep the copy off production's server; `config` names it in the report.
pub async fn rehearse(
    config: &PoolConfig,
    production: Option<&mut ProductionSession>,
    local: &[LocalMigration],
    options: &RehearsalOptions,
) -> Result<(RehearsalReport, RehearsalRecord), RehearsalError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let progress = &options.progress;
    let mut notes = Vec::new();
    progress.report(Progress::phase("reading production", None));
    let prod = match production {
        Some(session) => {
            let tracked = session.cancel_on_drop();
            let read = async {
                let (identity, system, ledger) = session
                    .read(async |r| {
                        let identity = crate::dev::server_identity(r).await?;
                        let system = system_of(r).await?;
                        let ledger = crate::migrations::read_ledger(r).await?;
                        Ok((identity, system, ledger))
                    })
                    .await?;
                let catalog = read_catalog(session, options.busy_interval).await?;
                Ok::<_, sqlx::Error>(ProductionRead {
                    identity,
                    system,
                    catalog,
                    ledger,
                })
            }
            .await;
            if let Some(t) = tracked {
                t.done();
            }
            match read {
                Ok(r) => Some(r),
                Err(e) => {
                    notes.push(format!(
                        "production did not answer ({}): no projection of the holds onto its traffic, no scaling to its size",
                        DbError::new(e, &config.database_url)
                    ));
                    None
                }
            }
        }
        None => {
            notes.push(
                "production was not read: no projection of the holds onto its traffic, no scaling to its size"
                    .into(),
            );
            None
        }
    };

    // --max-duration bounds the whole rehearsal: the restore too, not only the migrations.
    let deadline = tokio::time::Instant::now() + options.max_duration;
    let mut target = tokio::time::timeout_at(
        deadline,
        Target::open(options, prod.as_ref(), progress, &mut notes),
    )
    .await
    .map_err(|_| RehearsalError::TooSlow {
        bound: projection::seconds(options.max_duration),
    })??;
    // Whatever happens from here, the restored copy is dropped; run() never returns early
    // past this point without going through here.
    let result = run(
        config,
        &mut target,
        prod.as_ref(),
        local,
        options,
        notes,
        deadline,
    )
    .await;
    progress.report(Progress::phase("dropping the restored copy", None));
    target.close().await;
    let (mut report, record) = result?;
    report.started_at = started_at;
    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let record = RehearsalRecord {
        rehearsed_at: report.started_at.clone(),
        ..record
    };
    Ok((report, record))
}

/// The copy being migrated: a restored scratch database, or the staging server's database.
struct Target {
    options: PgConnectOptions,
    ran_on: String,
    manifest: Option<(PathBuf, BackupManifest)>,
    restored: Option<RestoredCopy>,
    /// Kept alive while the copy is in use (a private cluster stops when dropped).
    dev: Option<DevServer>,
    /// What an error on the staging server may echo (its URL's password); a restored copy's
    /// errors are scrubbed with the dev server's secrets ([`Target::secrets`]).
    staging: Option<DatabaseUrl>,
    /// The backup restored has a successful verification recorded (`None`: staging).
    verified: Option<bool>,
}

impl Target {
    async fn open(
        options: &RehearsalOptions,
        prod: Option<&ProductionRead>,
        progress: &ProgressSink,
        notes: &mut Vec<String>,
    ) -> Result<Self, RehearsalError> {
        match &options.source {
            RehearsalSource::Staging(url) => {
                let target = url.to_string();
                let connect_options = url.connect_options().application_name("pgvigil-rehearse");
                let staging_err = |e| RehearsalError::Staging {
                    target: target.clone(),
                    source: DbError::new(e, url.as_ref()),
                };
                let mut conn = connect_options.connect().await.map_err(staging_err)?;
                let identity = crate::dev::server_identity(&mut Reader::dev(&mut conn))
                    .await
                    .map_err(staging_err)?;
                let system = system_of(&mut Reader::dev(&mut conn))
                    .await
                    .map_err(staging_err)?;
                let _ = conn.close().await;
                match prod {
                    None => {
                        return Err(RehearsalError::StagingIsProduction {
                            target,
                            reason: "production did not answer, so it cannot be ruled out that this is production's server".into(),
                        });
                    }
                    Some(p) if p.identity == identity => {
                        return Err(RehearsalError::StagingIsProduction {
                            target,
                            reason: "it is production's server (the same postmaster, started at the same moment, on the same port)".into(),
                        });
                    }
                    Some(p) => match (&p.system, &system) {
                        // One of a physical pair: a standby of production, or production's
                        // primary when DATABASE_URL names a standby. A promoted clone (a
                        // snapshot, a thin clone) shares the identifier but neither side is
                        // in recovery then.
                        (Some((a, prod_recovering)), Some((b, staging_recovering)))
                            if a == b && (*prod_recovering || *staging_recovering) =>
                        {
                            return Err(RehearsalError::StagingIsProduction {
                                target,
                                reason: format!(
                                    "it shares production's system identifier {a} and {} is in recovery: it is production's primary or one of its standbys, not a clone",
                                    if *prod_recovering { "DATABASE_URL" } else { "it" }
                                ),
                            });
                        }
                        (Some((a, _)), Some((b, _))) if a == b => notes.push(format!(
                            "the staging server shares production's system identifier {a}: a clone of it (a snapshot or thin clone), promoted"
                        )),
                        (None, _) | (_, None) => notes.push(
                            "production's or the staging server's system identifier is not readable by these roles (pg_control_system): the staging server was told apart from production by its postmaster only".into(),
                        ),
                        _ => {}
                    },
                }
                Ok(Self {
                    options: connect_options,
                    ran_on: format!("the staging server {target}"),
                    manifest: None,
                    restored: None,
                    dev: None,
                    staging: Some((**url).clone()),
                    verified: None,
                })
            }
            RehearsalSource::Backup { manifest, dev } => {
                let state_dir = options.state_dir.clone().or_else(crate::checks::state_dir);
                let (path, verified) = match manifest {
                    Some(m) => {
                        let verified =
                            state_dir
                                .as_deref()
                                .and_then(backup::record::last)
                                .filter(|r| {
                                    r.outcome == backup::VerifyOutcome::Match
                                        && std::fs::canonicalize(m).ok().as_ref()
                                            == Some(&r.manifest)
                                });
                        if verified.is_none() {
                            notes.push(format!(
                                "{} has no successful verification recorded: the rehearsal restores it anyway; verify it (`pgvigil backup verify`) before relying on it in the window",
                                m.display()
                            ));
                        }
                        (m.clone(), verified.is_some())
                    }
                    None => {
                        let rec = state_dir
                            .as_deref()
                            .and_then(backup::record::last)
                            .filter(|r| r.outcome == backup::VerifyOutcome::Match)
                            .ok_or_else(|| RehearsalError::NoVerifiedBackup {
                                state_dir: state_dir.as_ref().map_or_else(
                                    || "(no state directory: set PGVIGIL_STATE_DIR)".into(),
                                    |d| d.display().to_string(),
                                ),
                            })?;
                        (rec.manifest, true)
                    }
                };
                let manifest = BackupManifest::load(&path)?;
                let major = (manifest.source.server_version_num / 10000) as u32;
                progress.report(Progress::phase("starting the dev database", None));
                let server = DevServer::start(dev, Some(major)).await?;
                match prod {
                    Some(p) => server.ensure_apart_from(&p.identity)?,
                    // A private cluster pgvigil just started cannot be production's.
                    None if !server.is_private() => {
                        return Err(RehearsalError::DevUnchecked {
                            target: server.describe(),
                        });
                    }
                    None => {}
                }
                let dump_dir = manifest.dump_dir(&path);
                let jobs = options.jobs.unwrap_or_else(backup::default_jobs);
                let copy =
                    backup::restore_into_scratch(&server, &manifest, &dump_dir, jobs, progress)
                        .await?;
                for (name, source, restored) in &copy.extension_versions {
                    notes.push(format!(
                        "extension {name}: {source} on the source, {restored} on the copy (the dev server lacks {source})"
                    ));
                }
                let options = copy.scratch.connect_options();
                let ran_on = format!(
                    "a restored copy of {} on {}",
                    path.display(),
                    server.describe()
                );
                let mut target = Self {
                    options,
                    ran_on,
                    manifest: Some((path, manifest)),
                    restored: Some(copy),
                    staging: None,
                    verified: Some(verified),
                    dev: None,
                };
                // The restore ran as the dev server's administrator; migrations do not.
                let copy = target.restored.as_ref().expect("just restored");
                let role = copy.scratch.connect_options().get_username().to_string();
                // pg_restore leaves the planner without statistics; production has them, and
                // a migration's plans (a backfill's UPDATE) follow them.
                progress.report(Progress::phase("analysing the restored copy", None));
                let handed = async {
                    let mut admin = copy.scratch.connect_admin().await?;
                    let mut r = copy::hand_over(&mut admin, &role).await;
                    if r.is_ok() {
                        r = sqlx::raw_sql("ANALYZE")
                            .execute(&mut admin)
                            .await
                            .map(|_| ());
                    }
                    let _ = admin.close().await;
                    r
                }
                .await;
                target.dev = Some(server);
                if let Err(e) = handed {
                    let e = RehearsalError::Copy(DbError::new(e, target.secrets()));
                    target.close().await;
                    return Err(e);
                }
                Ok(target)
            }
        }
    }

    /// The secrets an error on the copy may echo: the staging URL's, or the dev server's.
    fn secrets(&self) -> &dyn crate::db_error::Secrets {
        match (&self.staging, &self.dev) {
            (Some(url), _) => url,
            (None, Some(dev)) => dev,
            (None, None) => &crate::db_error::NoSecrets,
        }
    }

    async fn close(&mut self) {
        if let Some(copy) = self.restored.take()
            && let Err(e) = copy.scratch.drop_now().await
        {
            let dev: &dyn crate::db_error::Secrets = match &self.dev {
                Some(d) => d,
                None => &crate::db_error::NoSecrets,
            };
            tracing::warn!(target: "pgvigil::rehearsal", "the restored copy could not be dropped now: {}", DbError::new(e, dev));
        }
        self.dev = None;
    }
}

async fn run(
    config: &PoolConfig,
    target: &mut Target,
    prod: Option<&ProductionRead>,
    local: &[LocalMigration],
    options: &RehearsalOptions,
    mut notes: Vec<String>,
    deadline: tokio::time::Instant,
) -> Result<(RehearsalReport, RehearsalRecord), RehearsalError> {
    let copy_err = |e| RehearsalError::Copy(DbError::new(e, target.secrets()));
    let mut inspect = target.options.connect().await.map_err(copy_err)?;
    let (server_version, extensions) = copy::versions(&mut inspect).await.map_err(copy_err)?;
    let ledger = crate::migrations::read_ledger(&mut Reader::dev(&mut inspect))
        .await
        .map_err(copy_err)?;
    let state = MigrationState::of(local, ledger.as_deref());
    // sqlx validates the ledger before it applies anything; so does the rehearsal.
    let refusal = sqlx_refusal(&state);
    let unapplied = state.unapplied_versions();
    let mut flagged_by: Vec<String> = Vec::new();
    if let Some(p) = prod
        && let Some(prod_ledger) = &p.ledger
    {
        let on_production = MigrationState::of(local, Some(prod_ledger)).unapplied_versions();
        if on_production != unapplied {
            let list = record::versions;
            flagged_by.push(format!(
                "the copy's pending set ({}) is not production's ({}): production's ledger changed since the backup, or the staging server was migrated before; rehearse on a fresh backup",
                list(&unapplied),
                list(&on_production)
            ));
        }
    }
    let pending: Vec<&LocalMigration> = local
        .iter()
        .filter(|m| unapplied.contains(&m.version))
        .collect();
    let size_before = copy::database_size(&mut inspect).await.map_err(copy_err)?;
    let mut relations = copy::relations(&mut inspect).await.map_err(copy_err)?;
    let existing: BTreeSet<String> = relations.keys().cloned().collect();

    // Sizes: the manifest's exact counts on a restored copy, the catalog's estimate on staging.
    let mut scale: Vec<TableScale> = Vec::new();
    for (name, r) in relations.iter().filter(|(_, r)| r.kind == "r") {
        let qualified = qualified(name);
        let exact = target.manifest.as_ref().and_then(|(_, m)| {
            let (schema, table) = qualified.split_once('.')?;
            m.table(schema, table).map(|t| t.rows)
        });
        scale.push(TableScale {
            table: qualified.clone(),
            copy_rows: exact.unwrap_or(r.rows.max(0) as u64),
            production_rows: prod.and_then(|p| p.catalog.tables.get(&qualified).map(|t| t.rows)),
        });
    }
    if let Some((_, m)) = &target.manifest
        && let Ok(taken) = chrono::DateTime::parse_from_rfc3339(&m.taken_at)
    {
        let age = chrono::Utc::now().signed_duration_since(taken.with_timezone(&chrono::Utc));
        if age > chrono::TimeDelta::hours(1) {
            notes.push(format!(
                "the backup is {} old (its snapshot was taken {}): production has changed since; the scaling below uses production's current size",
                human_age(age),
                m.taken_at
            ));
        }
    }
    for s in &scale {
        if let Some(p) = s.production_rows
            && projection::scales(s.copy_rows, p)
        {
            notes.push(format!(
                "{}: {} rows on the copy, about {} on production (pg_class estimate): durations and holds on it are scaled, linearly for rewrites and B-tree builds, by n log n for HNSW builds",
                s.table, s.copy_rows, p
            ));
        }
    }

    let mut runner_options = RunnerOptions::bounded(
        options.lock_timeout,
        options.statement_timeout,
        deadline,
        options.max_duration,
    );
    runner_options.sample_every = options.sample_every;
    runner_options.progress = options.progress.clone();
    runner_options.ledger = true;
    runner_options.trace_activity = true;
    let mut runner = MigrationRunner::connect(&target.options, runner_options, pending.len())
        .await
        .map_err(|e| RehearsalError::Runner(DbError::new(e, target.secrets())))?;
    let mut migrations = Vec::new();
    for m in &pending {
        if let Some(reason) = &refusal {
            migrations.push(RehearsedMigration {
                version: m.version,
                description: m.description.clone(),
                checksum: hex(&m.checksum),
                no_transaction: m.no_tx,
                outcome: Outcome::NotRun {
                    reason: reason.clone(),
                },
                existing_rows_broke_it: false,
                duration_ms: 0.0,
                production_duration_ms: None,
                scale_model: None,
                locks: Vec::new(),
                rewrites: Vec::new(),
                indexes_built: Vec::new(),
                build_phases: Vec::new(),
                waits: Vec::new(),
            });
            continue;
        }
        let run = runner.run(m).await;
        let mut entry = RehearsedMigration {
            version: m.version,
            description: m.description.clone(),
            checksum: hex(&m.checksum),
            no_transaction: m.no_tx,
            outcome: Outcome::Succeeded,
            existing_rows_broke_it: false,
            duration_ms: run.duration.as_secs_f64() * 1000.0,
            production_duration_ms: None,
            scale_model: None,
            locks: Vec::new(),
            rewrites: Vec::new(),
            indexes_built: Vec::new(),
            build_phases: run.activity.phases().to_vec(),
            waits: run
                .activity
                .waits(options.sample_every)
                .into_iter()
                .map(|(w, d)| (w, d.as_millis() as u64))
                .collect(),
        };
        match &run.outcome {
            RunOutcome::Succeeded => {}
            RunOutcome::Failed(e) => {
                entry.outcome = crate::window::dry_run::failure(e, &m.sql, run.statements_done);
                if let Outcome::Failed {
                    error,
                    sqlstate: Some(code),
                    ..
                } = &mut entry.outcome
                {
                    *error = config.database_url.scrub(error);
                    // The ledger's own INSERT (after every statement of the file) is not a row
                    // of production's data.
                    let in_ledger =
                        run.statements_done >= crate::sql_scan::statement_starts(&m.sql).len();
                    entry.existing_rows_broke_it =
                        !in_ledger && (code.starts_with("22") || code.starts_with("23"));
                    if entry.existing_rows_broke_it {
                        error.push_str(" (existing rows break it: the schema-only dry-run, which has no rows, cannot see this)");
                    }
                }
            }
            RunOutcome::Cancelled(c) => {
                entry.outcome = Outcome::Failed {
                    error: match &c.stop {
                        Stop::Deadline(_) => format!(
                            "stopped by pgvigil: the rehearsal's bound of {} (--max-duration) was reached",
                            projection::seconds(options.max_duration)
                        ),
                        _ => c.to_string(),
                    },
                    sqlstate: None,
                    line: None,
                    column: None,
                };
            }
            RunOutcome::NotRun(reason) => {
                entry.outcome = Outcome::NotRun {
                    reason: reason.clone(),
                };
            }
        }
        if !matches!(run.outcome, RunOutcome::NotRun(_)) {
            let after = copy::relations(&mut inspect).await.map_err(copy_err)?;
            entry.rewrites = after
                .iter()
                .filter(|(name, r)| {
                    relations
                        .get(*name)
                        .is_some_and(|b| b.filenode.is_some() && b.filenode != r.filenode)
                })
                .map(|(name, _)| name.clone())
                .collect();
            entry.indexes_built = after
                .iter()
                .filter(|(name, r)| r.kind == "i" && !relations.contains_key(*name))
                .map(|(name, r)| IndexBuilt {
                    name: name.clone(),
                    table: r.table.clone().unwrap_or_default(),
                    method: r.method.clone().unwrap_or_default(),
                    valid: r.valid.unwrap_or(false),
                })
                .collect();
            entry.locks = holds(&run, &existing, m.no_tx, options.sample_every);
            relations = after;
        }
        scale_and_project(&mut entry, &relations, &scale, prod, &options.thresholds);
        migrations.push(entry);
    }
    runner.close().await;

    progress_phase(options, "checking the result");
    // In a transaction of its own: the KNN check switches planner settings locally.
    let mut checks = {
        let mut tx = inspect.begin().await.map_err(copy_err)?;
        let checks = crate::checks::pgvector::check(&mut Reader::dev(&mut tx), 5).await;
        let _ = tx.rollback().await;
        checks
    };
    let ledger_after = crate::migrations::read_ledger(&mut Reader::dev(&mut inspect))
        .await
        .map_err(copy_err)?;
    checks.push(ledger_check(&pending, ledger_after.as_deref(), &migrations));
    let size_after = copy::database_size(&mut inspect).await.map_err(copy_err)?;
    let _ = inspect.close().await;

    let failed = migrations
        .iter()
        .any(|m| !matches!(m.outcome, Outcome::Succeeded))
        || checks
            .iter()
            .any(|f| f.id == "rehearsal.ledger" && f.status == crate::checks::Status::Fail);
    if let Some(reason) = &refusal {
        notes.push(format!("nothing was applied: {reason}"));
    }
    if options.sample_every.is_zero() {
        flagged_by.push("the migration's backend was not sampled (--sample-every 0): holds and no-transaction locks were not measured".into());
    }
    notes.extend(flagged_by.iter().cloned());
    let flagged = migrations.iter().any(|m| {
        m.locks.iter().any(|l| l.over_threshold.is_some())
            || m.indexes_built.iter().any(|i| !i.valid)
    }) || checks
        .iter()
        .any(|f| !matches!(f.status, crate::checks::Status::Pass))
        || !flagged_by.is_empty();
    let verdict = if failed {
        RehearsalVerdict::Failed
    } else if flagged {
        RehearsalVerdict::Flagged
    } else {
        RehearsalVerdict::Passed
    };
    let report = RehearsalReport {
        format: FORMAT,
        ran_on: target.ran_on.clone(),
        manifest: target.manifest.as_ref().map(|(p, _)| p.clone()),
        backup_verified: target.verified,
        backup_taken_at: target.manifest.as_ref().map(|(_, m)| m.taken_at.clone()),
        production: prod.map(|_| config.database_url.to_string()),
        started_at: String::new(),
        duration_ms: 0.0,
        server_version,
        extensions,
        size_before,
        size_after,
        sample_interval_ms: options.sample_every.as_millis() as u64,
        max_exclusive_hold_ms: options.thresholds.access_exclusive.as_millis() as u64,
        max_write_block_ms: options.thresholds.write_block.as_millis() as u64,
        migrations,
        checks,
        scale,
        notes,
        verdict,
    };
    let record = RehearsalRecord::of(&report, &pending);
    Ok((report, record))
}

fn progress_phase(options: &RehearsalOptions, phase: &str) {
    options.progress.report(Progress::phase(phase, None));
}

/// `public.documents` for `documents`: the lint's catalog reading names tables so.
pub(crate) fn qualified(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("public.{name}")
    }
}

fn human_age(age: chrono::TimeDelta) -> String {
    let h = age.num_hours();
    if h >= 48 {
        format!("{} days", h / 24)
    } else {
        format!("{h} h")
    }
}

/// Per relation, the strongest lock the migration was seen holding, its wait and its hold. A
/// lock granted at first sight began between that reading and the one before (the midpoint
/// is taken); a transactional file holds its locks until COMMIT, so a lock seen at the last
/// reading is held until the migration returned; a no-transaction file's locks are timed to the last reading
/// that showed them. Locks of a transactional file too short for any reading (read exactly
/// before COMMIT) are listed with a hold of 0.
fn holds(
    run: &crate::window::MigrationRun,
    existing: &BTreeSet<String>,
    no_tx: bool,
    interval: Duration,
) -> Vec<LockHold> {
    let mut strongest: BTreeMap<String, (LockMode, Duration, Duration)> = BTreeMap::new();
    let last_reading = run.trace.spans().map(|s| s.last_seen).max();
    for span in run.trace.taken() {
        if span.relation == "_sqlx_migrations" {
            continue;
        }
        // Granted at first sight: it began between the reading before (or the start) and
        // this one; the midpoint halves the error of one interval.
        let granted = match span.granted_at {
            Some(g) if g == span.first_seen => {
                let before = span.unseen_at.unwrap_or(Duration::ZERO).min(g);
                before + (g - before) / 2
            }
            Some(g) => g,
            None => span.first_seen,
        };
        // Still held at the last reading: until the migration returned (a transactional
        // file's COMMIT, a no-transaction file's last statement). Gone before: it ended
        // between its last reading and the next, the midpoint is taken.
        let until = if Some(span.last_seen) == last_reading {
            run.ended.max(span.last_seen)
        } else if no_tx {
            span.last_seen + interval / 2
        } else {
            span.last_seen
        };
        let held = until.saturating_sub(granted);
        let entry =
            strongest
                .entry(span.relation.clone())
                .or_insert((span.mode, span.waited(), held));
        if span.mode > entry.0 {
            *entry = (span.mode, span.waited(), held);
        }
    }
    for l in &run.locks {
        if l.relation == "_sqlx_migrations" {
            continue;
        }
        let e =
            strongest
                .entry(l.relation.clone())
                .or_insert((l.mode, Duration::ZERO, Duration::ZERO));
        if l.mode > e.0 {
            *e = (l.mode, Duration::ZERO, Duration::ZERO);
        }
    }
    strongest
        .into_iter()
        .map(|(relation, (mode, waited, held))| LockHold {
            created_here: !existing.contains(&relation),
            relation,
            mode,
            blocks_reads: mode.blocks_reads(),
            blocks_writes: mode.blocks_writes(),
            blocking: mode.blocking_words(),
            waited_ms: waited.as_millis() as u64,
            held_ms: held.as_millis() as u64,
            production_held_ms: None,
            production: None,
            over_threshold: None,
        })
        .collect()
}

/// Scales the migration's duration and holds to production's size, projects each blocking
/// hold onto production's traffic and flags those past their threshold.
fn scale_and_project(
    entry: &mut RehearsedMigration,
    relations: &BTreeMap<String, copy::Relation>,
    scale: &[TableScale],
    prod: Option<&ProductionRead>,
    thresholds: &Thresholds,
) {
    let table_of = |relation: &str| -> String {
        relations
            .get(relation)
            .and_then(|r| r.table.clone())
            .unwrap_or_else(|| relation.to_string())
    };
    let sizes = |table: &str| {
        scale
            .iter()
            .find(|s| s.table == qualified(table))
            .and_then(|s| s.production_rows.map(|p| (s.copy_rows, p)))
    };
    let model = if entry.indexes_built.iter().any(|i| i.method == "hnsw") {
        ScaleModel::NLogN
    } else {
        ScaleModel::Linear
    };
    // The migration's own table: the one an index was built on, else the existing table it
    // locked most strongly.
    let main = entry
        .indexes_built
        .first()
        .map(|i| i.table.clone())
        .or_else(|| {
            entry
                .locks
                .iter()
                .filter(|l| !l.created_here)
                .max_by_key(|l| l.mode)
                .map(|l| table_of(&l.relation))
        });
    if let Some(table) = &main
        && let Some((copy_rows, prod_rows)) = sizes(table)
        && projection::scales(copy_rows, prod_rows)
    {
        let f = model.factor(copy_rows, prod_rows);
        entry.production_duration_ms = Some(entry.duration_ms * f);
        entry.scale_model = Some(model.words(table));
    }
    // Only what grows with the rows is scaled: a hold on a table the migration rewrote or
    // built an index on. A metadata-only change (ADD COLUMN, a NOT VALID constraint) holds its
    // lock for as long on a big table as on a small one.
    let grows: BTreeSet<String> = entry
        .rewrites
        .iter()
        .map(|r| table_of(r))
        .chain(entry.indexes_built.iter().map(|i| i.table.clone()))
        .collect();
    if grows.is_empty() {
        entry.production_duration_ms = None;
        entry.scale_model = None;
    }
    for hold in &mut entry.locks {
        let table = table_of(&hold.relation);
        if !hold.created_here
            && grows.contains(&table)
            && let Some((copy_rows, prod_rows)) = sizes(&table)
            && projection::scales(copy_rows, prod_rows)
        {
            let f = model.factor(copy_rows, prod_rows);
            hold.production_held_ms = Some((hold.held_ms as f64 * f).round() as u64);
        }
        if !hold.created_here
            && let Some(p) = prod
        {
            let index_table = relations
                .get(&hold.relation)
                .and_then(|r| r.table.as_deref());
            if let Some((_, reading)) =
                projection::production_table(&p.catalog, &hold.relation, index_table)
            {
                hold.production = projection::project(hold, reading);
            }
        }
        if !hold.created_here {
            let held = Duration::from_millis(hold.production_held_ms.unwrap_or(hold.held_ms));
            hold.over_threshold = thresholds.passed(hold.mode, held);
        }
    }
}

/// Why sqlx would refuse to migrate this ledger at all (its `validate_applied_migrations` and
/// dirty check, with `ignore_missing` off as `sqlx migrate run` has it), if it would.
fn sqlx_refusal(state: &MigrationState) -> Option<String> {
    use crate::migrations::MigrationStatus as S;
    let first = |status: S| state.entries.iter().find(|e| e.status == status);
    if let Some(e) = first(S::Failed) {
        return Some(format!(
            "migration {} is recorded as failed (success = false): sqlx refuses to run (dirty) until the ledger is repaired",
            e.version
        ));
    }
    if let Some(e) = first(S::ChecksumMismatch) {
        return Some(format!(
            "migration {} was edited after it was applied (its checksum differs from the ledger's): sqlx refuses to run",
            e.version
        ));
    }
    if let Some(e) = first(S::MissingLocally) {
        return Some(format!(
            "migration {} is applied but has no file in the migrations directory: sqlx refuses to run",
            e.version
        ));
    }
    None
}

/// The ledger after the rehearsal: a row per migration that succeeded, with the file's SHA-384.
fn ledger_check(
    pending: &[&LocalMigration],
    ledger: Option<&[crate::migrations::LedgerRow]>,
    migrations: &[RehearsedMigration],
) -> Finding {
    let succeeded: Vec<&&LocalMigration> = pending
        .iter()
        .zip(migrations)
        .filter(|(_, r)| matches!(r.outcome, Outcome::Succeeded))
        .map(|(m, _)| m)
        .collect();
    let rows = ledger.unwrap_or_default();
    let missing: Vec<String> = succeeded
        .iter()
        .filter(|m| {
            !rows
                .iter()
                .any(|r| r.version == m.version && r.success && r.checksum == m.checksum)
        })
        .map(|m| m.version.to_string())
        .collect();
    if missing.is_empty() {
        Finding::pass(
            Group::Migrations,
            "rehearsal.ledger",
            format!(
                "the ledger has a row for each of the {} migration(s) applied, with the files' SHA-384 checksums, as sqlx writes it",
                succeeded.len()
            ),
        )
    } else {
        Finding::fail(
            Group::Migrations,
            "rehearsal.ledger",
            format!(
                "the ledger lacks a row (or its checksum differs) for migration(s) {}",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::LedgerRow;

    fn file(version: i64, checksum: u8) -> LocalMigration {
        LocalMigration {
            version,
            description: "m".into(),
            sql: "SELECT 1".into(),
            checksum: vec![checksum; 48],
            no_tx: false,
        }
    }

    fn row(version: i64, checksum: u8, success: bool) -> LedgerRow {
        LedgerRow {
            version,
            description: "m".into(),
            installed_on: chrono::Utc::now(),
            success,
            checksum: vec![checksum; 48],
            execution_time_ns: 1,
        }
    }

    #[test]
    fn sqlx_s_refusals_stop_the_rehearsal_before_anything_runs() {
        let local = [file(1, 1), file(2, 2)];
        let clean = MigrationState::of(&local, Some(&[row(1, 1, true)]));
        assert_eq!(sqlx_refusal(&clean), None);
        let dirty = MigrationState::of(&local, Some(&[row(1, 1, false)]));
        assert!(sqlx_refusal(&dirty).unwrap().contains("recorded as failed"));
        let edited = MigrationState::of(&local, Some(&[row(1, 9, true)]));
        assert!(
            sqlx_refusal(&edited)
                .unwrap()
                .contains("was edited after it was applied")
        );
        let missing = MigrationState::of(&local[1..], Some(&[row(1, 1, true)]));
        assert!(sqlx_refusal(&missing).unwrap().contains("has no file"));
    }
}
