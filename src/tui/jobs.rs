//! Jobs run off the render loop, each on a connection of its own so that Esc can cancel its
//! query on the server (pg_cancel_backend) and dropping it rolls back whatever it had open.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::state::{JobKind, JobOutcome, Msg};
use pgvigil::checks::{CheckOptions, run_checks_on};
use pgvigil::config::PoolConfig;
use pgvigil::pool::connect_options;
use pgvigil::window::{DryRunOptions, dry_run};

#[derive(Debug, Clone)]
pub struct JobSettings {
    pub migrations_dir: PathBuf,
    pub expected_file: Option<PathBuf>,
    /// Where the verify key builds the expected schema and the dry-run key runs migrations.
    pub dev: pgvigil::dev::DevSource,
}

pub struct JobRunner {
    config: Arc<PoolConfig>,
    settings: JobSettings,
    tx: mpsc::Sender<Msg>,
    running: HashMap<u64, (JoinHandle<()>, Arc<AtomicI32>)>,
    /// Server-side cancels still in flight; shutdown waits for them.
    cancelling: Vec<JoinHandle<()>>,
}

impl JobRunner {
    pub fn new(config: Arc<PoolConfig>, settings: JobSettings, tx: mpsc::Sender<Msg>) -> Self {
        Self {
            config,
            settings,
            tx,
            running: HashMap::new(),
            cancelling: Vec::new(),
        }
    }

    pub fn start(&mut self, id: u64, kind: JobKind) {
        self.running.retain(|_, (h, _)| !h.is_finished());
        let pid = Arc::new(AtomicI32::new(0));
        let (config, settings, tx, pid_slot) = (
            self.config.clone(),
            self.settings.clone(),
            self.tx.clone(),
            pid.clone(),
        );
        tracing::info!(target: "pgvigil::jobs", "{} started", kind.label());
        let handle = tokio::spawn(async move {
            let outcome = run(kind, &config, &settings, &pid_slot).await;
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
                JobOutcome::Cancelled => {}
            }
            let _ = tx.send(Msg::JobDone { id, outcome }).await;
        });
        self.running.insert(id, (handle, pid));
    }

    /// Stops the task and cancels its statement on the server. The UI hears "cancelled" at
    /// once; the cancel request to the server follows on a connection of its own.
    pub fn cancel(&mut self, id: u64) {
        let Some((handle, pid)) = self.running.remove(&id) else {
            return;
        };
        handle.abort();
        if self
            .tx
            .try_send(Msg::JobDone {
                id,
                outcome: JobOutcome::Cancelled,
            })
            .is_err()
        {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx
                    .send(Msg::JobDone {
                        id,
                        outcome: JobOutcome::Cancelled,
                    })
                    .await;
            });
        }
        let pid = pid.load(Ordering::Acquire);
        if pid <= 0 {
            return;
        }
        let config = self.config.clone();
        self.cancelling.retain(|h| !h.is_finished());
        self.cancelling.push(tokio::spawn(async move {
            match cancel_backend(&config, pid).await {
                Ok(()) => tracing::info!(
                    target: "pgvigil::jobs",
                    "job cancelled; its statement on backend {pid} was cancelled on the server"
                ),
                Err(e) => tracing::warn!(
                    target: "pgvigil::jobs",
                    "job stopped, but cancelling backend {pid} failed: {}",
                    config.database_url.explain(&e)
                ),
            }
        }));
    }

    /// On the way out (quit, SIGTERM, SIGHUP, error): stop every job and cancel its statement
    /// on the server, waiting a little for the cancels, so that a read holding a lock on
    /// production, or a migration on the dev server, does not outlive the dashboard; and wait
    /// for the jobs' own cleanups (scratch databases dropped, dev statements cancelled).
    pub async fn shutdown(&mut self) {
        let mut cancels = Vec::new();
        let mut handles = Vec::new();
        for (_, (handle, pid)) in self.running.drain() {
            handle.abort();
            let pid = pid.load(Ordering::Acquire);
            if pid > 0 && !handle.is_finished() {
                let config = self.config.clone();
                cancels.push(async move { cancel_backend(&config, pid).await });
            }
            handles.push(handle);
        }
        let pending = std::mem::take(&mut self.cancelling);
        let all = async {
            // Aborted tasks drop their work when they are next polled: wait for that, so
            // their guards have registered their cleanups before waiting for those.
            futures_util::future::join_all(handles).await;
            futures_util::future::join_all(cancels).await;
            futures_util::future::join_all(pending).await;
            pgvigil::cleanup::finish(std::time::Duration::from_secs(3)).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), all).await;
    }
}

/// Cancels the statement running on production backend `pid`, from a connection of its own.
async fn cancel_backend(config: &PoolConfig, pid: i32) -> Result<(), sqlx::Error> {
    pgvigil::cleanup::cancel_backend(&connect_options(config), pid).await
}

async fn run(
    kind: JobKind,
    config: &PoolConfig,
    settings: &JobSettings,
    pid: &AtomicI32,
) -> JobOutcome {
    let scrub = |e: &dyn std::fmt::Display| config.database_url.scrub(&e.to_string());
    let mut conn = match pgvigil::session::ProductionSession::connect(config).await {
        Ok(c) => c,
        Err(e) => return JobOutcome::Failed(scrub(&pgvigil::pool::error_text(&e))),
    };
    pid.store(conn.backend_pid(), Ordering::Release);
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
            JobOutcome::Checked(Box::new(
                run_checks_on(&mut conn, config, None, &options).await,
            ))
        }
        JobKind::DryRun => match dry_run(
            config,
            &mut conn,
            &settings.migrations_dir,
            &DryRunOptions {
                dev: Some(settings.dev.clone()),
                ..DryRunOptions::default()
            },
        )
        .await
        {
            Ok(report) => JobOutcome::DryRun(Box::new(report)),
            Err(e) => JobOutcome::Failed(scrub(&e)),
        },
    };
    conn.close().await;
    outcome
}
