//! `/health/live` and `/health/ready` in the health+json shape (draft-inadarei-api-health-check):
//! `status` pass/warn/fail, `checks` keyed `component:measurement`, each a list of readings
//! (one per pool) with `componentId`, `observedValue`, `observedUnit`, `status`, `time` and
//! `output`. pass and warn answer 200, fail 503.
//!
//! Liveness never touches the database: an outage must not make Kubernetes restart every pod.
//! Readiness is one reading per `HEALTH_CACHE_TTL`, shared by every request inside it; requests
//! that arrive during a refresh wait for that one refresh (single flight), and a refresh is
//! bounded by `HEALTH_READY_TIMEOUT`, so a hung database makes readiness fail, never hang.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;

use super::probe::{ReadinessFailure, probe_connect};
use crate::migrations::{LocalMigration, MigrationError, MigrationState, load_local};
use crate::pool::InstrumentedPool;
use crate::session::ProductionSession;

/// The health+json content type.
pub const HEALTH_JSON: &str = "application/health+json";

/// What readiness asks of the migration ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationRequirement {
    /// Failed, mismatched or missing migrations fail readiness; pending ones only warn (the
    /// default: an instance of the new release may start before the migration has run).
    NoFailures,
    /// Every local migration must be applied: pending ones fail readiness too
    /// (`READY_REQUIRE_MIGRATIONS=applied`).
    Applied,
}

/// How readiness reads and judges. From `HEALTH_READY_TIMEOUT`, `HEALTH_CACHE_TTL`,
/// `READY_REQUIRE_MIGRATIONS`, `READY_CHECK_PGVECTOR`, `EMBEDDING_DIMENSIONS` and
/// `MIGRATIONS_DIR` (see [`HealthSettings::from_sources`](crate::ConfigSources)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSettings {
    /// Bound on one readiness reading: acquire, `SELECT 1` and the ledger (default 2 s).
    pub ready_timeout: Duration,
    /// How long one reading answers every request (default 5 s).
    pub cache_ttl: Duration,
    /// What the ledger must show.
    pub require_migrations: MigrationRequirement,
    /// Check that pgvector is installed and `documents.embedding` has [`Self::dimensions`]
    /// (default off: not every database behind a pool stores embeddings).
    pub check_pgvector: bool,
    /// The embedding column's expected dimensions (default 3072).
    pub dimensions: u32,
    /// The application's migrations, to compare with the ledger (checksums, missing files).
    /// Without it, readiness fails only on a ledger row that failed.
    pub migrations_dir: Option<PathBuf>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(5),
            require_migrations: MigrationRequirement::NoFailures,
            check_pgvector: false,
            dimensions: crate::checks::pgvector::DIMENSIONS,
            migrations_dir: None,
        }
    }
}

/// pass, warn or fail, in the health+json words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Healthy.
    Pass,
    /// Healthy, with a concern (pending migrations, a saturated pool).
    Warn,
    /// Not healthy: take the instance out of service.
    Fail,
}

/// One reading of one component, as health+json writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReading {
    /// The pool this reading is about.
    pub component_id: String,
    /// `datastore` or `system`, as the draft suggests.
    pub component_type: &'static str,
    /// The measured value (milliseconds, a count, a ratio, dimensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<serde_json::Value>,
    /// The unit of `observed_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_unit: Option<&'static str>,
    /// This reading's verdict.
    pub status: HealthStatus,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Why, in words, when not a plain pass.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
}

/// A readiness answer: the overall status and every reading, keyed `component:measurement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// The worst reading's status.
    pub status: HealthStatus,
    /// pgvigil's version.
    pub version: &'static str,
    /// When the readings were taken: the answer is cached until `HEALTH_CACHE_TTL` after this.
    pub time: String,
    /// The readings.
    pub checks: BTreeMap<String, Vec<CheckReading>>,
}

/// A reading with its rendered body, shared by every request within the TTL.
#[derive(Debug)]
pub(crate) struct Reading {
    pub(crate) taken: Instant,
    pub(crate) body: axum::body::Bytes,
    pub(crate) status: HealthStatus,
    pub(crate) pool_ready: BTreeMap<String, bool>,
}

impl Reading {
    fn failed(output: String) -> Self {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut checks = BTreeMap::new();
        checks.insert(
            "pgvigil:readiness".to_string(),
            vec![reading(
                "all",
                "system",
                HealthStatus::Fail,
                None,
                None,
                &time,
                output,
            )],
        );
        let body = Readiness {
            status: HealthStatus::Fail,
            version: env!("CARGO_PKG_VERSION"),
            time,
            checks,
        };
        Self {
            taken: Instant::now(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
            status: HealthStatus::Fail,
            pool_ready: BTreeMap::new(),
        }
    }
}

/// Holds the last reading; refreshes it once per TTL, single flight.
#[derive(Debug)]
pub(crate) struct ReadinessCache {
    pools: Arc<Vec<(String, InstrumentedPool)>>,
    settings: HealthSettings,
    current: RwLock<Option<Arc<Reading>>>,
    refresh: tokio::sync::Mutex<()>,
    /// Each pool's last failure detail, to log changes only.
    last_failure: Mutex<BTreeMap<String, Option<String>>>,
}

impl ReadinessCache {
    pub(crate) fn new(
        pools: Arc<Vec<(String, InstrumentedPool)>>,
        settings: HealthSettings,
    ) -> Self {
        Self {
            pools,
            settings,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(BTreeMap::new()),
        }
    }

    fn fresh(&self) -> Option<Arc<Reading>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|r| r.taken.elapsed() < self.settings.cache_ttl)
            .cloned()
    }

    /// The current reading, refreshed when older than the TTL. Concurrent callers during a
    /// refresh wait for it and share its result. The refresh runs as its own task and stores
    /// its reading itself: a caller that gives up (a probe's own timeout) does not throw the
    /// refresh away for the next one.
    pub(crate) async fn get(self: &Arc<Self>) -> Arc<Reading> {
        if let Some(r) = self.fresh() {
            return r;
        }
        let _flight = self.refresh.lock().await;
        if let Some(r) = self.fresh() {
            return r;
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            let reading = Arc::new(me.read().await);
            *me.current.write().unwrap_or_else(|p| p.into_inner()) = Some(reading.clone());
            reading
        });
        match task.await {
            Ok(reading) => reading,
            // Only a panic in the reading gets here; say so rather than hang or pass.
            Err(e) => {
                tracing::error!(target: "pgvigil::http", "the readiness reading failed: {e}");
                Arc::new(Reading::failed(
                    "the readiness reading failed (see the log)".to_string(),
                ))
            }
        }
    }

    /// Readiness of one pool as last read, without waiting; a stale reading starts a refresh
    /// in the background (for /metrics, which must not wait on the database).
    pub(crate) fn pool_ready(self: &Arc<Self>, pool: &str) -> Option<bool> {
        let last = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let stale = last
            .as_ref()
            .is_none_or(|r| r.taken.elapsed() >= self.settings.cache_ttl);
        if stale && let Ok(handle) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            handle.spawn(async move {
                me.get().await;
            });
        }
        last.and_then(|r| r.pool_ready.get(pool).copied())
    }

    /// The body says only a failure's class; the log gets its detail, once when it starts
    /// or changes and once when the pool answers again (not every reading of an outage).
    fn log_change(&self, pool: &str, failure: Option<ReadinessFailure>) {
        let mut last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        let before = last.get(pool).cloned().flatten();
        let now = failure.map(|f| f.detail);
        if before == now {
            return;
        }
        match &now {
            Some(detail) => tracing::warn!(
                target: "pgvigil::http",
                "readiness of pool {pool} fails: {}",
                crate::sanitize::printable(detail)
            ),
            None if before.is_some() => {
                tracing::info!(target: "pgvigil::http", "readiness of pool {pool}: the database answers again")
            }
            None => {}
        }
        last.insert(pool.to_string(), now);
    }

    async fn read(&self) -> Reading {
        let now: DateTime<Utc> = Utc::now();
        let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let timeout = self.settings.ready_timeout;
        // One deadline for the whole reading: the migrations directory and every pool at once.
        let deadline = tokio::time::Instant::now() + timeout;
        let local = match &self.settings.migrations_dir {
            Some(dir) => Some(
                match tokio::time::timeout_at(deadline, load_local(dir)).await {
                    Ok(r) => r.map_err(LocalUnread::Invalid),
                    Err(_) => Err(LocalUnread::TooSlow(timeout)),
                },
            ),
            None => None,
        };
        let all = futures_util::future::join_all(self.pools.iter().map(|(name, pool)| {
            read_pool(name, pool, &self.settings, local.as_ref(), &time, deadline)
        }))
        .await;
        let mut checks: BTreeMap<String, Vec<CheckReading>> = BTreeMap::new();
        let mut pool_ready = BTreeMap::new();
        for ((name, _), (readings, failure)) in self.pools.iter().zip(all) {
            self.log_change(name, failure);
            let worst = readings.iter().map(|(_, r)| r.status).max();
            pool_ready.insert(name.clone(), worst != Some(HealthStatus::Fail));
            for (key, r) in readings {
                checks.entry(key.to_string()).or_default().push(r);
            }
        }
        let status = checks
            .values()
            .flatten()
            .map(|r| r.status)
            .max()
            .unwrap_or(HealthStatus::Pass);
        let body = Readiness {
            status,
            version: env!("CARGO_PKG_VERSION"),
            time,
            checks,
        };
        Reading {
            taken: Instant::now(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
            status,
            pool_ready,
        }
    }
}

fn reading(
    name: &str,
    component_type: &'static str,
    status: HealthStatus,
    value: Option<serde_json::Value>,
    unit: Option<&'static str>,
    time: &str,
    output: impl Into<String>,
) -> CheckReading {
    CheckReading {
        component_id: name.to_string(),
        component_type,
        observed_value: value,
        observed_unit: unit,
        status,
        time: time.to_string(),
        output: output.into(),
    }
}

/// How long an acquire from a pool with idle connections goes before the connect probe runs:
/// longer than a healthy checkout takes, short next to HEALTH_READY_TIMEOUT.
const PROBE_AFTER: Duration = Duration::from_millis(100);

/// What one statement learns about a pool's database: it answers, the ledger's state and the
/// embedding column, in one round trip.
const READY_SQL: &str = "SELECT 1 AS ready, \
     to_regclass('_sqlx_migrations') IS NOT NULL AS has_ledger, \
     (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector_version, \
     (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
       WHERE a.attrelid = to_regclass('documents') AND a.attname = 'embedding' \
         AND NOT a.attisdropped) AS embedding_type";

/// Why MIGRATIONS_DIR gave no migrations to a reading.
#[derive(Debug, thiserror::Error)]
enum LocalUnread {
    /// The directory or a file in it was refused.
    #[error(transparent)]
    Invalid(MigrationError),
    /// The reading's deadline came first.
    #[error(
        "not read within HEALTH_READY_TIMEOUT ({})",
        crate::config::format_duration(*.0)
    )]
    TooSlow(Duration),
}

async fn read_pool(
    name: &str,
    pool: &InstrumentedPool,
    settings: &HealthSettings,
    local: Option<&Result<Vec<LocalMigration>, LocalUnread>>,
    time: &str,
    deadline: tokio::time::Instant,
) -> (Vec<(&'static str, CheckReading)>, Option<ReadinessFailure>) {
    let mut out = Vec::new();
    let started = Instant::now();
    let url = &pool.config().database_url;
    let failed = |e: sqlx::Error| ReadinessFailure::failed(&crate::db_error::DbError::new(e, url));
    let answer = tokio::time::timeout_at(deadline, async {
        let acquire = pool.acquire_labeled("health");
        // A pool with a connection at hand rarely needs the probe; give it a moment first so a
        // healthy reading opens no extra connection. Without one, probe at once.
        let probe_after = if pool.raw().num_idle() == 0 {
            Duration::ZERO
        } else {
            PROBE_AFTER
        };
        let probe = async {
            tokio::time::sleep(probe_after).await;
            probe_connect(&url.connect_options()).await
        };
        let conn = tokio::select! {
            acquired = acquire => acquired
                .map_err(|e| ReadinessFailure::failed(&e.source))?,
            Err(e) = probe => {
                // The pool would retry this refusal until its deadline and count nothing.
                pool.connect_failed();
                return Err(ReadinessFailure::connect(&e, &url.to_string()));
            }
        };
        let mut session = ProductionSession::from_checkout(conn, pool.config())
            .await
            .map_err(failed)?;
        let read = async |r: &mut crate::session::Reader<'_>| {
            let row = sqlx::query(READY_SQL).fetch_one(&mut *r).await?;
            let has_ledger: bool = row.try_get("has_ledger").unwrap_or(false);
            let ledger = if has_ledger {
                Some(crate::migrations::read_ledger(r).await?)
            } else {
                None
            };
            Ok((row, ledger))
        };
        let read = session.read(read).await.map_err(failed);
        session.close().await;
        read
    })
    .await;
    let elapsed_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let failure = match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ReadinessFailure::timeout(settings.ready_timeout)),
    };
    let (row, ledger) = match failure {
        Ok(v) => v,
        Err(failure) => {
            out.push((
                "postgres:responseTime",
                reading(
                    name,
                    "datastore",
                    HealthStatus::Fail,
                    Some(elapsed_ms.into()),
                    Some("ms"),
                    time,
                    failure.class.clone(),
                ),
            ));
            return (out, Some(failure));
        }
    };
    out.push((
        "postgres:responseTime",
        reading(
            name,
            "datastore",
            HealthStatus::Pass,
            Some(elapsed_ms.into()),
            Some("ms"),
            time,
            "",
        ),
    ));

    // The ledger: failed, mismatched or missing fail; pending warns or fails.
    let (status, value, output) =
        ledger_verdict(ledger.flatten(), local, settings.require_migrations);
    out.push((
        "migrations:ledger",
        reading(name, "datastore", status, value, None, time, output),
    ));

    if settings.check_pgvector {
        let version: Option<String> = row.try_get("vector_version").ok().flatten();
        let column: Option<String> = row.try_get("embedding_type").ok().flatten();
        let expected = format!("vector({})", settings.dimensions);
        let expected_half = format!("halfvec({})", settings.dimensions);
        let (status, output) = match (&version, &column) {
            (None, _) => (
                HealthStatus::Fail,
                "the vector extension is not installed in this database".to_string(),
            ),
            (Some(_), None) => (
                HealthStatus::Fail,
                "documents.embedding does not exist".to_string(),
            ),
            (Some(_), Some(t)) if *t == expected || *t == expected_half => {
                (HealthStatus::Pass, String::new())
            }
            (Some(_), Some(t)) => (
                HealthStatus::Fail,
                format!("documents.embedding is {t}, expected {expected}"),
            ),
        };
        let dims = column
            .as_deref()
            .and_then(|t| t.split_once('(')?.1.strip_suffix(')')?.parse::<u32>().ok());
        out.push((
            "pgvector:dimensions",
            reading(
                name,
                "datastore",
                status,
                dims.map(Into::into),
                None,
                time,
                output,
            ),
        ));
    }

    let stats = pool.stats();
    let status = if stats.saturation_warning {
        HealthStatus::Warn
    } else {
        HealthStatus::Pass
    };
    let output = if stats.saturation_warning {
        format!(
            "{} of {} connections in use (warning at {:.0}%)",
            stats.in_use,
            stats.max,
            stats.saturation_warn_at * 100.0
        )
    } else {
        String::new()
    };
    let ratio = (stats.saturation * 1000.0).round() / 1000.0;
    out.push((
        "pool:saturation",
        reading(
            name,
            "system",
            status,
            Some(ratio.into()),
            Some("ratio"),
            time,
            output,
        ),
    ));
    (out, None)
}

/// Readiness's words for where the migrations stand ([`MigrationState`] decides it): a failed
/// migration, an edited or locally missing one fail; pending ones warn or fail as required.
fn ledger_verdict(
    ledger: Option<Vec<crate::migrations::LedgerRow>>,
    local: Option<&Result<Vec<LocalMigration>, LocalUnread>>,
    require: MigrationRequirement,
) -> (HealthStatus, Option<serde_json::Value>, String) {
    use crate::migrations::MigrationStatus::{ChecksumMismatch, Failed, MissingLocally};
    let files = match local {
        Some(Ok(local)) => local.as_slice(),
        _ => &[],
    };
    let state = MigrationState::of(files, ledger.as_deref());
    // The ledger's successful rows, whatever the local files say.
    let applied = state.counts().succeeded_in_ledger();
    let oldest_first = || state.entries.iter().rev();
    if let Some(e) = oldest_first().find(|e| e.status == Failed) {
        return (
            HealthStatus::Fail,
            Some(applied.into()),
            format!(
                "migration {} ({}) failed part-way",
                e.version, e.description
            ),
        );
    }
    match local {
        None => return (HealthStatus::Pass, Some(applied.into()), String::new()),
        Some(Err(e)) => {
            return (
                HealthStatus::Fail,
                Some(applied.into()),
                format!("MIGRATIONS_DIR: {e}"),
            );
        }
        Some(Ok(_)) => {}
    }
    let problems: Vec<String> = oldest_first()
        .filter_map(|e| match e.status {
            MissingLocally => Some(format!(
                "{} is applied but missing from MIGRATIONS_DIR",
                e.version
            )),
            ChecksumMismatch => Some(format!(
                "{} was changed after it was applied (checksum differs)",
                e.version
            )),
            _ => None,
        })
        .collect();
    if !problems.is_empty() {
        return (
            HealthStatus::Fail,
            Some(applied.into()),
            problems.join("; "),
        );
    }
    let mut pending: Vec<i64> = state.pending().map(|e| e.version).collect();
    pending.reverse();
    if pending.is_empty() {
        return (HealthStatus::Pass, Some(applied.into()), String::new());
    }
    let words = format!(
        "{} pending: {}",
        pending.len(),
        pending
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let status = match require {
        MigrationRequirement::Applied => HealthStatus::Fail,
        MigrationRequirement::NoFailures => HealthStatus::Warn,
    };
    (status, Some(applied.into()), words)
}

/// The liveness body: no database involved.
#[derive(Debug, Serialize)]
pub(crate) struct Liveness {
    pub(crate) status: HealthStatus,
    pub(crate) version: &'static str,
    pub(crate) uptime_seconds: u64,
}
