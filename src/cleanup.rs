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
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::task::JoinHandle;

static NEXT: AtomicU64 = AtomicU64::new(1);
static IN_FLIGHT: Mutex<Vec<(u64, PgConnectOptions, i32)>> = Mutex::new(Vec::new());
static TASKS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// A registered backend; dropping it unregisters.
#[derive(Debug)]
pub struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut list) = IN_FLIGHT.lock() {
            list.retain(|(id, _, _)| *id != self.0);
        }
    }
}

/// Registers backend `pid`, reachable with `options`, until the returned value is dropped.
pub fn track_pid(options: &PgConnectOptions, pid: i32) -> Tracked {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut list) = IN_FLIGHT.lock() {
        list.push((id, options.clone(), pid));
    }
    Tracked(id)
}

/// Registers the backend of `conn` (one statement: `pg_backend_pid()`).
pub async fn track(conn: &mut PgConnection, options: &PgConnectOptions) -> Option<Tracked> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .ok()?;
    Some(track_pid(options, pid))
}

/// Runs `task` (a cleanup started from a Drop) and lets the way out wait for it.
pub fn spawn(handle: &tokio::runtime::Handle, task: impl Future<Output = ()> + Send + 'static) {
    let h = handle.spawn(task);
    if let Ok(mut list) = TASKS.lock() {
        list.retain(|t| !t.is_finished());
        list.push(h);
    }
}

/// Cancels the statement of every registered backend (from connections of their own), then
/// waits for pending cleanup tasks, all within `bound`. Returns how many backends were asked.
pub async fn finish(bound: Duration) -> usize {
    let backends: Vec<(PgConnectOptions, i32)> = IN_FLIGHT
        .lock()
        .map(|mut l| l.drain(..).map(|(_, o, p)| (o, p)).collect())
        .unwrap_or_default();
    let count = backends.len();
    let cancels = backends.into_iter().map(|(options, pid)| async move {
        let cancelled = async {
            let mut conn = options
                .log_statements(tracing::log::LevelFilter::Trace)
                .connect()
                .await?;
            sqlx::query("SELECT pg_cancel_backend($1)")
                .bind(pid)
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        if let Err(e) = cancelled.await {
            tracing::warn!(target: "pgvigil::cleanup", "could not cancel backend {pid}: {e}");
        }
    });
    let tasks: Vec<JoinHandle<()>> = TASKS
        .lock()
        .map(|mut l| l.drain(..).collect())
        .unwrap_or_default();
    let all = async {
        futures_util::future::join_all(cancels).await;
        futures_util::future::join_all(tasks).await;
    };
    let _ = tokio::time::timeout(bound, all).await;
    count
}
