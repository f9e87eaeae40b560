//! A bounded HTTP/1 server for the router: what `axum::serve` leaves open, closed. A request head
//! must arrive within `HTTP_HEADER_READ_TIMEOUT` of the connection opening (or of its first
//! byte after a response) and fit in `HTTP_MAX_HEADER_BYTES` (else 431 and close); a keep-alive
//! connection idle past `HTTP_IDLE_TIMEOUT` is closed; at most `HTTP_MAX_CONNECTIONS` are open,
//! and at that limit the connection idle (or half-sent) the longest is closed to accept the new
//! one, so a probe is answered under a flood of idle sockets. On shutdown idle and half-sent
//! connections close at once, requests in flight get `HTTP_SHUTDOWN_TIMEOUT`, then everything
//! still open is closed.
//!
//! Memory per connection is bounded by the header limit (hyper's read buffer stops there) plus
//! a response in flight; the whole server by that times the connection limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::connection::{ConnClock, Phase, TrackedService, WatchedIo};
use crate::config::format_duration;

/// hyper refuses a read buffer below this (its `max_buf_size` minimum).
const HYPER_MIN_BUF: usize = 8192;

/// File descriptors kept free for everything that is not an HTTP connection: the pool's
/// connections, the log, the listener, DNS, the migrations directory.
pub const RESERVED_FDS: u64 = 64;

/// The bounds of [`serve_bounded`]. From `HTTP_HEADER_READ_TIMEOUT`, `HTTP_IDLE_TIMEOUT`,
/// `HTTP_MAX_HEADER_BYTES`, `HTTP_MAX_CONNECTIONS` and `HTTP_SHUTDOWN_TIMEOUT` (see
/// [`ServeLimits::from_sources`](crate::ConfigSources)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeLimits {
    /// Time a client has to send a complete request head, from the connection opening or from
    /// its first byte after a response (default 5 s).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests (default 30 s).
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) accepted; larger gets 431 and a close
    /// (default 16 KiB).
    pub max_header_bytes: usize,
    /// Connections open at once; at the limit the one idle or half-sent the longest is closed
    /// for the new one (default 512).
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take before every
    /// connection is closed (default 10 s, below Kubernetes' default 30 s grace period).
    pub shutdown_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_connections: 512,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeLimits {
    /// The connection limit this process can honour: raises the soft open-files limit to the
    /// hard one and keeps the limit [`RESERVED_FDS`] below it (a process out of descriptors
    /// cannot even accept a probe). Returns the limit to use and, when it had to be lowered,
    /// why, for the log.
    pub fn fit_open_files(&self) -> (usize, Option<String>) {
        let Some(soft) = raise_open_files_limit() else {
            return (self.max_connections, None);
        };
        let room = soft.saturating_sub(RESERVED_FDS).max(1);
        if (self.max_connections as u64) <= room {
            return (self.max_connections, None);
        }
        (
            room as usize,
            Some(format!(
                "HTTP_MAX_CONNECTIONS {} is more than the open-files limit ({soft}) minus {RESERVED_FDS} \
                 reserved allows: using {room} (raise `ulimit -n` for more)",
                self.max_connections
            )),
        )
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; the soft limit in force after, if known.
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    // rlim_t is u64 on 64-bit Linux, not on every target.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

/// How the server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Idle or half-sent connections closed at once when the shutdown began.
    pub closed_at_once: usize,
    /// Connections still answering when `shutdown_timeout` ran out, closed then.
    pub cut_off: usize,
}

/// The open connections, for the limit and for eviction.
#[derive(Debug, Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<ConnClock>>>,
    next_id: AtomicU64,
}

impl Connections {
    /// Makes room for one more: `false` when every open connection is busy answering (the new
    /// one is then closed; answers are bounded, so room comes back soon).
    fn admit(&self, limit: usize) -> Option<(u64, bool)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        if open.len() >= limit {
            let victim = open
                .iter()
                .filter(|(_, c)| c.phase() != Phase::Busy)
                .min_by_key(|(_, c)| c.since())
                .map(|(id, _)| *id)?;
            if let Some(clock) = open.remove(&victim) {
                clock.evict();
                evicted = true;
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Some((id, evicted))
    }

    fn insert(&self, id: u64, clock: Arc<ConnClock>) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, clock);
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then stops within
/// `limits.shutdown_timeout`. `max_connections` is used as given (see
/// [`ServeLimits::fit_open_files`]).
pub async fn serve_bounded(
    listener: TcpListener,
    router: axum::Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Stopped {
    let limits = Arc::new(limits);
    let epoch = Instant::now();
    let connections = Arc::new(Connections::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // The header bound is ours (see connection.rs); hyper's would also cut keep-alive.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        .max_header_size(limits.max_header_bytes);
    let builder = Arc::new(builder);
    let service = TowerToHyperService::new(router);
    let mut tasks = JoinSet::new();
    let mut last_full_warning: Option<Instant> = None;
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of descriptors or memory: wait a little rather than spin; say so once a
                // minute, not once per attempt.
                if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(target: "pgvigil::serve", "accepting a connection failed: {e}");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some((id, evicted)) = connections.admit(limits.max_connections) else {
            drop(stream);
            warn_full(
                &mut last_full_warning,
                &limits,
                "every connection is answering a request: refused a new one",
            );
            continue;
        };
        if evicted {
            warn_full(
                &mut last_full_warning,
                &limits,
                "closing the connection idle or half-sent the longest for each new one",
            );
        }
        let clock = ConnClock::opened(epoch);
        connections.insert(id, clock.clone());
        let (builder, service, limits, stop, connections) = (
            builder.clone(),
            service.clone(),
            limits.clone(),
            stop_rx.clone(),
            connections.clone(),
        );
        tasks.spawn(async move {
            serve_connection(&builder, stream, peer, service, clock, &limits, stop).await;
            connections.remove(id);
        });
    }
    drop(listener);
    while tasks.try_join_next().is_some() {}
    let (closed_at_once, in_flight) = {
        let open = connections.open.lock().unwrap_or_else(|p| p.into_inner());
        let busy = open.values().filter(|c| c.phase() == Phase::Busy).count();
        (open.len() - busy, busy)
    };
    let _ = stop_tx.send(true);
    tracing::info!(
        target: "pgvigil::serve",
        "stopping: closed {closed_at_once} idle or half-sent connection(s); waiting at most {} (HTTP_SHUTDOWN_TIMEOUT) for {in_flight} request(s) in flight",
        format_duration(limits.shutdown_timeout)
    );
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let cut_off = if drained.is_err() {
        let n = tasks.len();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::warn!(
            target: "pgvigil::serve",
            "{n} connection(s) still answering after HTTP_SHUTDOWN_TIMEOUT ({}): closed",
            format_duration(limits.shutdown_timeout)
        );
        n
    } else {
        0
    };
    Stopped {
        closed_at_once,
        cut_off,
    }
}

fn warn_full(last: &mut Option<Instant>, limits: &ServeLimits, what: &str) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
        tracing::warn!(
            target: "pgvigil::serve",
            "{} connections open (HTTP_MAX_CONNECTIONS): {what}",
            limits.max_connections
        );
        *last = Some(Instant::now());
    }
}

/// Drives one connection until it ends, its phase outlives its bound, it is evicted, or the
/// shutdown closes it.
async fn serve_connection(
    builder: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    router: TowerToHyperService<axum::Router>,
    clock: Arc<ConnClock>,
    limits: &ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        clock: clock.clone(),
    });
    let conn = builder.serve_connection(
        io,
        TrackedService {
            router,
            clock: clock.clone(),
        },
    );
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        return;
    }
    loop {
        let phase = clock.phase();
        // Busy has no bound of its own: the handlers are bounded (readiness by
        // HEALTH_READY_TIMEOUT), and the shutdown bound covers the rest.
        let deadline = match phase {
            Phase::Head => Some(clock.since() + limits.header_read_timeout),
            Phase::Idle => Some(clock.since() + limits.idle_timeout),
            Phase::Busy => None,
        };
        // During the shutdown hyper closes the connection itself once its answer is written.
        let deadline = if stopping { None } else { deadline };
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            let bound = match phase {
                Phase::Head => "no complete request head within HTTP_HEADER_READ_TIMEOUT",
                _ => "idle past HTTP_IDLE_TIMEOUT",
            };
            tracing::debug!(target: "pgvigil::serve", "closed {peer}: {bound}");
            return;
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            () = clock.changed.notified() => {
                if clock.is_evicted() {
                    tracing::debug!(target: "pgvigil::serve", "closed {peer}: evicted at HTTP_MAX_CONNECTIONS");
                    return;
                }
            }
            // The loop's top decides: the phase may have moved on meanwhile.
            () = sleep_until(deadline) => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || clock.phase() != Phase::Busy {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
