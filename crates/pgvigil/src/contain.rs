//! Containing a panic inside a driver: a reading of something outside (PgBouncer's console)
//! goes through code that trusts the wire (sqlx indexes a DataRow by its RowDescription, so a
//! row with fewer fields panics). [`contained`] turns such a panic into an error of that one
//! reading, and marks the thread while it polls, so that the process's panic hook can tell a
//! contained panic (nothing to print, nothing to restore, the process goes on) from a bug that
//! must end the process.
//!
//! A process that reads through [`contained`] installs [`quiet_contained_panics`] once after
//! its other hooks (or asks [`note_contained`] from a hook of its own, as the dashboard does).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// How many [`Contained`] futures this thread is polling right now (they may nest).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last contained panic on this thread happened, noted by the hook, taken by
    /// [`Contained`] for its error.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught while polling a [`contained`] future.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", location.as_ref().map(|l| format!(" (at {l})")).unwrap_or_default())]
pub struct ContainedPanic {
    /// The panic's message (a `&str` or `String` payload; otherwise a placeholder).
    pub message: String,
    /// The source file (its last two path components) and line, when a hook noted it.
    pub location: Option<String>,
}

/// Whether the current thread is polling a [`contained`] future: a panic now is contained.
pub fn is_contained() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// For a panic hook: when this panic is contained, notes where it happened (for the reading's
/// error) and returns true; the hook then prints nothing and does nothing else.
pub fn note_contained(info: &PanicHookInfo<'_>) -> bool {
    if !is_contained() {
        return false;
    }
    let location = info.location().map(|l| {
        let file: Vec<&str> = l.file().rsplit(['/', '\\']).take(2).collect();
        let file: Vec<&str> = file.into_iter().rev().collect();
        format!("{}:{}", file.join("/"), l.line())
    });
    LOCATION.with(|slot| *slot.borrow_mut() = location);
    true
}

/// Wraps the panic hook installed now so that contained panics are not printed; every other
/// panic goes to it unchanged. Call once, after the process's other hooks are in place.
pub fn quiet_contained_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !note_contained(info) {
            previous(info);
        }
    }));
}

/// Runs `future`, turning a panic while it is polled into [`ContainedPanic`]. The future is
/// dropped at the panic: whatever it held (a connection mid-answer) is not used again.
pub fn contained<F: Future>(future: F) -> Contained<F> {
    Contained {
        inner: Some(Box::pin(future)),
    }
}

/// The future [`contained`] returns.
pub struct Contained<F> {
    inner: Option<Pin<Box<F>>>,
}

/// Marks the thread while polling; unmarks on every way out, unwinding included.
struct Depth;

impl Depth {
    fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, ContainedPanic>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `inner` is boxed, so `Contained` is Unpin whatever F is.
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            panic!("a contained future polled after it finished");
        };
        let polled = {
            let _depth = Depth::enter();
            // The future is dropped on a panic and never polled again, so a state it left
            // half-changed is never observed.
            catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                this.inner = None;
                Poll::Ready(Ok(output))
            }
            Err(payload) => {
                this.inner = None;
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                let location = LOCATION.with(|slot| slot.borrow_mut().take());
                Poll::Ready(Err(ContainedPanic { message, location }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_inside_becomes_an_error_and_the_mark_is_gone_after() {
        let out = contained(async {
            assert!(is_contained());
            let v: Vec<u8> = Vec::new();
            #[allow(clippy::out_of_bounds_indexing)]
            v[std::hint::black_box(3)]
        })
        .await;
        let err = out.unwrap_err();
        assert!(err.message.contains("index out of bounds"), "{err}");
        assert!(!is_contained());
        assert_eq!(contained(async { 7 }).await, Ok(7));
    }

    #[tokio::test]
    async fn the_mark_holds_across_awaits_only_while_polled() {
        let out = contained(async {
            tokio::task::yield_now().await;
            is_contained()
        })
        .await;
        assert_eq!(out, Ok(true));
        assert!(!is_contained());
    }
}
