//! Shared helpers for the library's integration tests: the private cluster and fresh databases
//! every crate's tests share (pgvigil-test-support), and a log capture for asserting what an
//! operator would read.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

// Not every test binary uses each of them.
#[allow(unused_imports)]
pub use pgvigil_test_support::{cluster, fresh_database};

mod production;
#[allow(unused_imports)]
pub use production::{prod_config, prod_connection};

/// Everything logged on this thread while the guard lives (use current-thread runtimes so
/// spawned tasks log here too). One global subscriber routes events to the capture installed
/// on the emitting thread: per-thread default subscribers race with tracing's interest cache
/// when tests run in parallel.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CURRENT: std::cell::RefCell<Option<LogCapture>> = const { std::cell::RefCell::new(None) };
}

pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}

struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(capture) = c.borrow().as_ref() {
                capture.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn install() -> (Self, CaptureGuard) {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .init();
        });
        let capture = Self::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(capture.clone()));
        (capture, CaptureGuard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}
