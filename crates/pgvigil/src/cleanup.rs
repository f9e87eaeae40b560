//! What every way out must finish. A command interrupted by SIGINT or SIGTERM drops its work
//! mid-statement; dropping a connection does not stop its statement on the server (the backend
//! notices only when it next writes), and a read that holds ACCESS SHARE on `documents` would
//! keep a queued migration waiting. So each backend pgvigil has a statement on is registered
//! here while it runs, and the way out cancels them on the server; scratch databases dropped
//! from a guard register their drop task, and the way out waits for it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

static NEXT: AtomicU64 = AtomicU64::new(1);
static IN_FLIGHT: Mutex<Vec<(u64, PgConnectOptions, i32)>> = Mutex::new(Vec::new());
static TASKS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// A registered backend. The work that registered it calls [`Tracked::done`] when it ends
/// normally; if it is dropped instead (its future cancelled by a signal, Esc or a quit), the
/// backend's statement is cancelled on the server from a task the way out waits for.
#[derive(Debug)]
pub(crate) struct Tracked {
    id: u64,
    armed: bool,
}

impl Tracked {
    /// The work finished: nothing to cancel.
    pub(crate) fn done(mut self) {
        self.armed = false;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let entry = IN_FLIGHT.lock().ok().and_then(|mut list| {
            let at = list.iter().position(|(id, _, _)| *id == self.id)?;
            Some(list.remove(at))
        });
        if !self.armed {
            return;
        }
        if let (Some((_, options, pid)), Ok(handle)) =
            (entry, tokio::runtime::Handle::try_current())
        {
            spawn(&handle, async move { cancel(options, pid).await });
        }
    }
}

/// Registers backend `pid`, reachable with `options`, until the returned value is dropped.
pub(crate) fn track_pid(options: &PgConnectOptions, pid: i32) -> Tracked {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut list) = IN_FLIGHT.lock() {
        list.push((id, options.clone(), pid));
    }
    Tracked { id, armed: true }
}

/// Cancels the statement running on backend `pid` of the server `options` reach, from a
/// connection of its own (the dashboard's Esc and every way out use this one).
pub async fn cancel_backend(options: &PgConnectOptions, pid: i32) -> Result<(), sqlx::Error> {
    let mut conn = options
        .clone()
        .log_statements(tracing::log::LevelFilter::Trace)
        .connect()
        .await?;
    sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .execute(&mut conn)
        .await?;
    conn.close().await
}

async fn cancel(options: PgConnectOptions, pid: i32) {
    let cancelled = cancel_backend(&options, pid);
    match tokio::time::timeout(Duration::from_secs(5), cancelled).await {
        Ok(Ok(())) => {
            tracing::info!(target: "pgvigil::cleanup", "cancelled the statement of backend {pid} on the server")
        }
        Ok(Err(e)) => tracing::warn!(
            target: "pgvigil::cleanup",
            "could not cancel backend {pid}: {}",
            crate::db_error::DbError::new(e, &crate::db_error::NoSecrets)
        ),
        Err(_) => tracing::warn!(target: "pgvigil::cleanup", "cancelling backend {pid} timed out"),
    }
}

/// Runs `task` (a cleanup started from a Drop) and lets the way out wait for it.
pub(crate) fn spawn(
    handle: &tokio::runtime::Handle,
    task: impl Future<Output = ()> + Send + 'static,
) {
    let h = handle.spawn(task);
    if let Ok(mut list) = TASKS.lock() {
        list.retain(|t| !t.is_finished());
        list.push(h);
    }
}

/// Cancels the statement of every backend still registered (from connections of their own),
/// then waits for pending cleanup tasks (cancels started by dropped work, scratch databases
/// being dropped), all within `bound`. Returns how many cancels and cleanups it waited for.
pub async fn finish(bound: Duration) -> usize {
    let backends: Vec<(PgConnectOptions, i32)> = IN_FLIGHT
        .lock()
        .map(|mut l| l.drain(..).map(|(_, o, p)| (o, p)).collect())
        .unwrap_or_default();
    let cancels: Vec<_> = backends
        .into_iter()
        .map(|(options, pid)| cancel(options, pid))
        .collect();
    let tasks: Vec<JoinHandle<()>> = TASKS
        .lock()
        .map(|mut l| l.drain(..).collect())
        .unwrap_or_default();
    let count = cancels.len() + tasks.len();
    let all = async {
        futures_util::future::join_all(cancels).await;
        futures_util::future::join_all(tasks).await;
    };
    let _ = tokio::time::timeout(bound, all).await;
    count
}
