//! What one served connection is doing, as the bounded server needs to know it: waiting for a
//! request head (since the connection opened or since its first byte after a response), busy
//! with a request, or idle between requests. The socket and the service report the moves; the
//! connection's own task turns them into deadlines.
//!
//! hyper's own `header_read_timeout` cannot serve here: in hyper 1.12 its timer starts as soon
//! as a response is written, so it would also close idle keep-alive connections at the header
//! bound, and it cannot tell a half-sent request from an idle one at shutdown.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Body as AxumBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for (the rest of) a request head: bounded by the header read timeout.
    Head = 0,
    /// A request is being answered.
    Busy = 1,
    /// Between requests, nothing received yet: bounded by the idle timeout.
    Idle = 2,
}

/// The shared state of one connection: its phase, since when, and whether the server asked
/// it to go (to make room at the connection limit).
#[derive(Debug)]
pub(crate) struct ConnClock {
    epoch: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    evicted: AtomicBool,
    /// Woken on every phase change and on eviction, so the task recomputes its deadline.
    pub(crate) changed: Notify,
}

impl ConnClock {
    /// A connection just accepted: it owes its first request head.
    pub(crate) fn opened(epoch: Instant) -> Arc<Self> {
        let clock = Arc::new(Self {
            epoch,
            phase: AtomicU8::new(Phase::Head as u8),
            since_ms: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        });
        clock.since_ms.store(clock.now_ms(), Ordering::Relaxed);
        clock
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        }
    }

    /// When the current phase began.
    pub(crate) fn since(&self) -> Instant {
        self.epoch + std::time::Duration::from_millis(self.since_ms.load(Ordering::Acquire))
    }

    fn enter(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    /// Asks the connection to close (it is the longest idle one at the connection limit).
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }
}

/// The socket, reporting the first byte of a request that arrives on an idle connection.
#[derive(Debug)]
pub(crate) struct WatchedIo<T> {
    pub(crate) inner: T,
    pub(crate) clock: Arc<ConnClock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.clock.phase() == Phase::Idle {
            self.clock.enter(Phase::Head);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router as hyper calls it: busy from the complete head until the response body has been
/// handed to hyper, idle after.
#[derive(Debug, Clone)]
pub(crate) struct TrackedService {
    pub(crate) router: TowerToHyperService<axum::Router>,
    pub(crate) clock: Arc<ConnClock>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.clock.enter(Phase::Busy);
        let guard = BusyGuard(self.clock.clone());
        let answer = self.router.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|inner| TrackedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// Ends the busy phase when dropped: with the response body once hyper has read all of it, or
/// with the answer's future if the connection goes first.
#[derive(Debug)]
struct BusyGuard(Arc<ConnClock>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.0.phase() == Phase::Busy {
            self.0.enter(Phase::Idle);
        }
    }
}

/// The router's response body, holding the connection busy until it is dropped.
#[derive(Debug)]
pub(crate) struct TrackedBody {
    inner: AxumBody,
    _guard: BusyGuard,
}

impl Body for TrackedBody {
    type Data = <AxumBody as Body>::Data;
    type Error = <AxumBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
