//! The poller owns the retrying pool. While connected it sends one snapshot per tick, built
//! from ONE statement (the server view) plus the pool's own figures (no round trip). The view
//! is read through a production session: a check that its guards took, then one READ ONLY
//! transaction (BEGIN with its SET LOCALs in one message, the view, ROLLBACK), four round
//! trips in all, where a bare connection would need one but could not prove it only reads. When one
//! reading costs the server more than pgvigil's budget (a thousand connections), the view is
//! read every few ticks (`server_view_every`); the ticks between send `SELECT 1` instead, so a
//! lost or frozen server is still noticed within a tick. While the
//! database is down it keeps retrying with backoff, forever, and reports each state change;
//! a hanging query makes the link "unresponsive" without ever blocking the UI.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::message::{Bus, Message};
use super::snapshot::Snapshot;
use pgvigil::DbError;
use pgvigil::catalog::{server_view, server_view_every};
use pgvigil::config::PoolConfig;
use pgvigil::pool::{AcquireError, Connector, FailureKind, RetryNow};

/// Handles the app loop uses to steer the poller.
pub struct PollerHandle {
    pub refresh: watch::Sender<Duration>,
    pub paused: watch::Sender<bool>,
    pub retry_now: RetryNow,
    pub task: tokio::task::JoinHandle<()>,
}

/// Why one poll failed: the pool gave no connection, or the statement failed.
enum PollFailure {
    Acquire(AcquireError),
    Statement(DbError),
}

impl PollFailure {
    fn kind(&self) -> FailureKind {
        match self {
            PollFailure::Acquire(e) => e.kind,
            PollFailure::Statement(e) => e.kind(),
        }
    }

    /// The words for the log and the link's state (scrubbed where each error entered).
    fn words(&self) -> String {
        match self {
            PollFailure::Acquire(e) => e.to_string(),
            PollFailure::Statement(e) => e.to_string(),
        }
    }
}

/// Starts polling; every snapshot goes on the bus.
pub fn spawn(mut config: PoolConfig, refresh: Duration, bus: Bus) -> PollerHandle {
    // The dashboard never gives up on a database that is down.
    config.retry.max_retries = None;
    // No ping before each checkout: the session's own first statement is the ping.
    config.test_before_acquire = false;
    let connector = Arc::new(Connector::new(config));
    let (refresh_tx, refresh_rx) = watch::channel(refresh);
    let (paused_tx, paused_rx) = watch::channel(false);
    let retry_now = connector.retry_now();
    let task = tokio::spawn(run(connector, bus, refresh_rx, paused_rx));
    PollerHandle {
        refresh: refresh_tx,
        paused: paused_tx,
        retry_now,
        task,
    }
}

async fn run(
    connector: Arc<Connector>,
    tx: Bus,
    mut refresh: watch::Receiver<Duration>,
    mut paused: watch::Receiver<bool>,
) {
    // Every snapshot carries the connector's own state: the retry loop moves it while
    // connecting, and this loop reports a lost or unanswering server back to the connector.
    let snapshot = |server, pool| -> Message {
        Snapshot {
            taken_at: Utc::now(),
            link: connector.state(),
            server,
            pool,
        }
        .into()
    };
    loop {
        // Connect phase: forward every change of the retry loop's state.
        let mut link_rx = connector.subscribe();
        let connect = connector.connect();
        tokio::pin!(connect);
        let pool = loop {
            tokio::select! {
                result = &mut connect => match result {
                    Ok(pool) => break Some(pool),
                    Err(_) => {
                        // Unlimited retries end only on a fatal error (wrong password, no such
                        // database, a certificate that cannot be trusted): retrying would only
                        // fail again (and may lock the account), so wait for `r`.
                        let _ = tx.send(snapshot(None, None)).await;
                        connector.retry_now().wait().await;
                        break None;
                    }
                },
                changed = link_rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    link_rx.borrow_and_update();
                    let _ = tx.send(snapshot(None, None)).await;
                }
            }
        };
        let Some(pool) = pool else { continue };
        // Poll phase.
        let mut unresponsive_since = None;
        // The last warning logged while connected: a failure repeated each tick is logged once.
        let mut warned: Option<String> = None;
        let warn_once = |warned: &mut Option<String>, line: String| {
            if warned.as_deref() != Some(line.as_str()) {
                tracing::warn!(target: "pgvigil::poller", "{line}");
                *warned = Some(line);
            }
        };
        let mut first = true;
        // When the server view is due again (see the module doc): a time, so that a change of
        // the refresh interval takes effect at once.
        let mut view_due = tokio::time::Instant::now();
        loop {
            if !first {
                // On the shared cadence (see tui::cadence).
                let interval = *refresh.borrow();
                tokio::select! {
                    _ = tokio::time::sleep_until(super::cadence::next_boundary(interval)) => {}
                    _ = refresh.changed() => view_due = tokio::time::Instant::now(),
                }
                while *paused.borrow() {
                    if paused.changed().await.is_err() {
                        return;
                    }
                }
            }
            first = false;
            let interval = *refresh.borrow();
            let read_view = tokio::time::Instant::now() >= view_due;
            let deadline = (interval * 2).max(Duration::from_secs(3));
            let poll = async {
                let mut conn = pool
                    .acquire_labeled("poller")
                    .await
                    .map_err(PollFailure::Acquire)?;
                let statement =
                    |e| PollFailure::Statement(DbError::new(e, &connector.config().database_url));
                if read_view {
                    let mut session = pgvigil::session::ProductionSession::from_checkout(
                        conn,
                        connector.config(),
                    )
                    .await
                    .map_err(statement)?;
                    session.read(server_view).await.map(Some).map_err(statement)
                } else {
                    sqlx::query("SELECT 1")
                        .execute(&mut *conn)
                        .await
                        .map(|_| None)
                        .map_err(|e| {
                            PollFailure::Statement(DbError::new(
                                e,
                                &connector.config().database_url,
                            ))
                        })
                }
            };
            match tokio::time::timeout(deadline, poll).await {
                Ok(Ok(view)) => {
                    if let Some(v) = &view {
                        // Due again after `every` ticks; half a tick early, as the cadence
                        // wakes on boundaries.
                        let every = server_view_every(v.read_ms, interval);
                        view_due = tokio::time::Instant::now() + interval * every - interval / 2;
                    }
                    unresponsive_since = None;
                    if warned.take().is_some() {
                        tracing::info!(target: "pgvigil::poller", "the server answers again");
                    }
                    connector.unresponsive(None);
                    if tx.send(snapshot(view, Some(pool.stats()))).await.is_err() {
                        return;
                    }
                }
                Ok(Err(failure)) if failure.kind().is_retryable() => {
                    connector.lost(&failure.words());
                    if let Some(down) = connector.state().down() {
                        tracing::warn!(target: "pgvigil::poller", "lost the database: {}; reconnecting", down.last_error);
                    }
                    let _ = tx.send(snapshot(None, None)).await;
                    break;
                }
                Ok(Err(failure)) => {
                    // The server answered but refused the statement (permissions, a bug):
                    // stay connected, keep the pool figures, say why in the log.
                    connector.unresponsive(None);
                    warn_once(
                        &mut warned,
                        format!("server view failed: {}", failure.words()),
                    );
                    let _ = tx.send(snapshot(None, Some(pool.stats()))).await;
                }
                Err(_) => {
                    let since = *unresponsive_since.get_or_insert_with(Utc::now);
                    connector.unresponsive(Some(since));
                    warn_once(
                        &mut warned,
                        format!("no answer from the server within {}s", deadline.as_secs()),
                    );
                    let _ = tx.send(snapshot(None, Some(pool.stats()))).await;
                }
            }
        }
        pool.close().await;
    }
}
