//! The dashboard's answer to a panic. A panic the library contained (a source's reading broke
//! the driver, see `pgvigil::contain`) is that source's error: nothing is printed, nothing is
//! restored, the dashboard goes on. Any other panic, in whichever task or thread, ends the
//! dashboard: the hooks below this one restore the terminal and print the report, this one
//! wakes the app loop, which leaves before drawing again and exits non-zero. A dashboard
//! half alive (a dead source task, frames drawn over a restored terminal) is never left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long the app loop has to end after a panic before the process exits by itself (a loop
/// that cannot come round, a panic on its own path that leaves it stuck).
const LAST_RESORT: Duration = Duration::from_secs(10);

/// What the panic hook tells the app loop.
#[derive(Clone, Default)]
pub struct Panics {
    happened: Arc<AtomicBool>,
    /// Set by the loop once it is on its way out, so the last resort stands down.
    leaving: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Panics {
    /// Whether a panic that was not contained happened since [`install`].
    pub fn happened(&self) -> bool {
        self.happened.load(Ordering::SeqCst)
    }

    /// Resolves at the first such panic.
    pub async fn wait(&self) {
        while !self.happened() {
            self.wake.notified().await;
        }
    }

    /// The loop is ending (after a panic or not): the last resort is not needed.
    pub fn leaving(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }
}

/// Chains a hook in front of the current ones (ratatui's restore, then color-eyre's report).
/// Call after `ratatui::init`.
pub fn install() -> Panics {
    let panics = Panics::default();
    let previous = std::panic::take_hook();
    let shared = panics.clone();
    std::panic::set_hook(Box::new(move |info| {
        if pgvigil::contain::note_contained(info) {
            return;
        }
        // Restore the terminal and print the report (the hooks below), then end.
        previous(info);
        if !shared.happened.swap(true, Ordering::SeqCst) {
            let leaving = shared.leaving.clone();
            std::thread::spawn(move || {
                std::thread::sleep(LAST_RESORT);
                if !leaving.load(Ordering::SeqCst) {
                    std::process::exit(101);
                }
            });
        }
        shared.wake.notify_one();
    }));
    panics
}

/// The error `run_dashboard` ends with after a panic.
pub fn ended_by_panic() -> std::io::Error {
    std::io::Error::other("a panic ended the dashboard (its report is above)")
}
