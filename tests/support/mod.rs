//! Shared helpers for the integration tests: one private cluster per test binary, fresh
//! databases per test, and a log capture for asserting what an operator would read.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use pgvigil::cluster::PrivateCluster;

/// The cluster shared by the tests of one binary. A test that cannot get PostgreSQL fails
/// loudly here; it never passes without a database.
pub fn cluster() -> &'static PrivateCluster {
    static CLUSTER: LazyLock<PrivateCluster> = LazyLock::new(|| {
        PrivateCluster::start_new().unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL with pgvector (run scripts/setup-postgres.sh): {e}")
        })
    });
    &CLUSTER
}

/// A new empty database on the shared cluster; returns its URL.
pub fn fresh_database(cluster: &PrivateCluster, prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    cluster.create_database(&name).expect("create database");
    cluster.url(&name)
}

/// Everything logged while the guard lives, as text, on this thread (use current-thread
/// runtimes so spawned tasks log here too).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
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

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
