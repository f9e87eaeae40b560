//! The poller owns the retrying pool. While connected it sends one snapshot per tick, built
//! from ONE statement (the server view) plus the pool's own figures (no round trip). While the
//! database is down it keeps retrying with backoff, forever, and reports each state change;
//! a hanging query makes the link "unresponsive" without ever blocking the UI.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use super::snapshot::{Link, Snapshot};
use pgvigil::catalog::server_view;
use pgvigil::config::PoolConfig;
use pgvigil::pool::{Connector, InstrumentedPool, LinkState, RetryNow, classify};

/// Handles the app loop uses to steer the poller.
pub struct PollerHandle {
    pub refresh: watch::Sender<Duration>,
    pub paused: watch::Sender<bool>,
    pub retry_now: RetryNow,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts polling. `pool_out`, when given, receives the current pool (the demo's workload
/// runs through it so the pool panel has something to show).
pub fn spawn(
    mut config: PoolConfig,
    refresh: Duration,
    snapshots: mpsc::Sender<Snapshot>,
    pool_out: Option<watch::Sender<Option<InstrumentedPool>>>,
) -> PollerHandle {
    // The dashboard never gives up on a database that is down.
    config.retry.max_retries = None;
    // One round trip per poll: no ping before each checkout.
    config.test_before_acquire = false;
    let connector = Arc::new(Connector::new(config));
    let (refresh_tx, refresh_rx) = watch::channel(refresh);
    let (paused_tx, paused_rx) = watch::channel(false);
    let retry_now = connector.retry_now();
    let task = tokio::spawn(run(connector, snapshots, refresh_rx, paused_rx, pool_out));
    PollerHandle {
        refresh: refresh_tx,
        paused: paused_tx,
        retry_now,
        task,
    }
}

async fn run(
    connector: Arc<Connector>,
    tx: mpsc::Sender<Snapshot>,
    mut refresh: watch::Receiver<Duration>,
    mut paused: watch::Receiver<bool>,
    pool_out: Option<watch::Sender<Option<InstrumentedPool>>>,
) {
    let scrub = |s: &str| connector.config().database_url.scrub(s);
    let mut down_since = None;
    let mut last_error = String::new();
    loop {
        // Connect phase: forward every change of the retry loop's state.
        let mut link_rx = connector.subscribe();
        let connect = connector.connect();
        tokio::pin!(connect);
        let pool = loop {
            tokio::select! {
                result = &mut connect => match result {
                    Ok(pool) => break Some(pool),
                    Err(e) => {
                        // Unlimited retries end only on a fatal error (wrong password, no such
                        // database, a certificate that cannot be trusted): retrying would only
                        // fail again (and may lock the account), so wait for `r`.
                        last_error = scrub(&e.to_string());
                        let since = *down_since.get_or_insert_with(Utc::now);
                        let _ = tx.send(Snapshot {
                            taken_at: Utc::now(),
                            link: Link::Disconnected {
                                since,
                                attempt: e.attempts(),
                                next_retry_at: None,
                                last_error: last_error.clone(),
                                retrying: false,
                            },
                            server: None,
                            pool: None,
                        }).await;
                        connector.retry_now().wait().await;
                        break None;
                    }
                },
                changed = link_rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let state = link_rx.borrow_and_update().clone();
                    if let Some(link) = link_of(&state, &mut down_since, &mut last_error, &scrub) {
                        let _ = tx.send(Snapshot { taken_at: Utc::now(), link, server: None, pool: None }).await;
                    }
                }
            }
        };
        let Some(pool) = pool else { continue };
        if let Some(out) = &pool_out {
            let _ = out.send(Some(pool.clone()));
        }
        let connected_since = Utc::now();
        // Poll phase.
        let mut unresponsive_since = None;
        let mut first = true;
        loop {
            if !first {
                let interval = *refresh.borrow();
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = refresh.changed() => {}
                }
                while *paused.borrow() {
                    if paused.changed().await.is_err() {
                        return;
                    }
                }
            }
            first = false;
            let interval = *refresh.borrow();
            let deadline = (interval * 2).max(Duration::from_secs(3));
            let poll = async {
                let mut conn = pool
                    .acquire_labeled("poller")
                    .await
                    .map_err(|e| (e.kind, e.to_string()))?;
                server_view(&mut conn)
                    .await
                    .map_err(|e| (classify(&e), pgvigil::pool::error_text(&e)))
            };
            match tokio::time::timeout(deadline, poll).await {
                Ok(Ok(view)) => {
                    unresponsive_since = None;
                    let snap = Snapshot {
                        taken_at: Utc::now(),
                        link: Link::Connected {
                            since: connected_since,
                        },
                        server: Some(view),
                        pool: Some(pool.stats()),
                    };
                    if tx.send(snap).await.is_err() {
                        return;
                    }
                }
                Ok(Err((kind, message))) if kind.is_retryable() => {
                    last_error = scrub(&message);
                    tracing::warn!(target: "pgvigil::poller", "lost the database: {last_error}; reconnecting");
                    let since = Utc::now();
                    down_since = Some(since);
                    let _ = tx
                        .send(Snapshot {
                            taken_at: since,
                            link: Link::Disconnected {
                                since,
                                attempt: 0,
                                next_retry_at: None,
                                last_error: last_error.clone(),
                                retrying: true,
                            },
                            server: None,
                            pool: None,
                        })
                        .await;
                    break;
                }
                Ok(Err((_, message))) => {
                    // The server answered but refused the statement (permissions, a bug):
                    // stay connected, keep the pool figures, say why in the log.
                    tracing::warn!(target: "pgvigil::poller", "server view failed: {}", scrub(&message));
                    let _ = tx
                        .send(Snapshot {
                            taken_at: Utc::now(),
                            link: Link::Connected {
                                since: connected_since,
                            },
                            server: None,
                            pool: Some(pool.stats()),
                        })
                        .await;
                }
                Err(_) => {
                    let since = *unresponsive_since.get_or_insert_with(Utc::now);
                    tracing::warn!(target: "pgvigil::poller", "no answer from the server within {}s", deadline.as_secs());
                    let _ = tx
                        .send(Snapshot {
                            taken_at: Utc::now(),
                            link: Link::Unresponsive { since },
                            server: None,
                            pool: Some(pool.stats()),
                        })
                        .await;
                }
            }
        }
        if let Some(out) = &pool_out {
            let _ = out.send(None);
        }
        pool.close().await;
    }
}

/// The UI's link from the retry loop's state. The first attempt before any failure is
/// "connecting"; everything after a failure is "disconnected" with the attempt and next retry.
fn link_of(
    state: &LinkState,
    down_since: &mut Option<chrono::DateTime<Utc>>,
    last_error: &mut String,
    scrub: &impl Fn(&str) -> String,
) -> Option<Link> {
    match state {
        LinkState::Connecting { attempt, since, .. } => Some(match down_since {
            None => Link::Connecting {
                attempt: *attempt,
                since: *since,
            },
            Some(down) => Link::Disconnected {
                since: *down,
                attempt: *attempt,
                next_retry_at: None,
                last_error: last_error.clone(),
                retrying: true,
            },
        }),
        LinkState::Waiting {
            attempt,
            down_since: d,
            next_retry_at,
            last_error: e,
            ..
        } => {
            let since = *down_since.get_or_insert(*d);
            *last_error = scrub(e);
            Some(Link::Disconnected {
                since,
                attempt: *attempt,
                next_retry_at: Some(*next_retry_at),
                last_error: last_error.clone(),
                retrying: true,
            })
        }
        LinkState::Connected { .. } | LinkState::Failed { .. } => None,
    }
}
