//! Checkout tracking and leak detection, after HikariCP: every checkout records when and by whom
//! (a label or the caller's source location); one held longer than POOL_LEAK_THRESHOLD is
//! reported once at WARN, and again at INFO when it finally comes back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::format_duration;

struct Lease {
    label: Cow<'static, str>,
    since: Instant,
    since_wall: DateTime<Utc>,
    reported: bool,
}

/// A connection held past the leak threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakedConnection {
    /// Who checked it out: the label given to `acquire_labeled`, or the caller's `file:line`.
    pub label: String,
    /// When it was checked out.
    pub checked_out_at: DateTime<Utc>,
    /// How long it has been held, in seconds.
    pub age_secs: f64,
}

pub struct LeakTracker {
    threshold: Duration,
    next_id: AtomicU64,
    leases: Mutex<HashMap<u64, Lease>>,
    leaks_total: AtomicU64,
}

impl LeakTracker {
    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            next_id: AtomicU64::new(1),
            leases: Mutex::new(HashMap::new()),
            leaks_total: AtomicU64::new(0),
        }
    }

    pub fn threshold(&self) -> Duration {
        self.threshold
    }

    /// Records a checkout; returns its id and the number of connections now checked out.
    pub fn checkout(&self, label: Cow<'static, str>) -> (u64, usize) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut leases = self.lock();
        leases.insert(
            id,
            Lease {
                label,
                since: Instant::now(),
                since_wall: Utc::now(),
                reported: false,
            },
        );
        (id, leases.len())
    }

    /// Records a return; returns the number of connections still checked out, and the time
    /// the lease was held with whether it had been reported leaked (then the connection is
    /// closed instead of reused).
    pub fn checkin(&self, id: u64) -> (usize, Option<(Duration, bool)>) {
        let mut leases = self.lock();
        let lease = leases.remove(&id);
        let remaining = leases.len();
        drop(leases);
        // Held past the threshold counts as leaked even when the scanner (every quarter of the
        // threshold) has not reported it yet: the connection is closed all the same.
        let held = lease.as_ref().map(|l| {
            (
                l.since.elapsed(),
                l.reported || l.since.elapsed() >= self.threshold,
            )
        });
        if let Some(lease) = lease.filter(|l| l.reported || l.since.elapsed() >= self.threshold) {
            if !lease.reported {
                self.leaks_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pgvigil::pool::leak",
                    "possible connection leak: checked out by {} for {} (POOL_LEAK_THRESHOLD {})",
                    lease.label,
                    format_duration(lease.since.elapsed()),
                    format_duration(self.threshold)
                );
            }
            tracing::info!(
                target: "pgvigil::pool::leak",
                "leaked connection returned: checked out by {} for {}; closing it instead of reusing it",
                lease.label,
                format_duration(lease.since.elapsed())
            );
        }
        (remaining, held)
    }

    pub fn in_use(&self) -> usize {
        self.lock().len()
    }

    /// Reports (once each) the checkouts older than the threshold. Called periodically.
    pub fn scan(&self) {
        let now = Instant::now();
        let mut fresh = Vec::new();
        {
            let mut leases = self.lock();
            for lease in leases.values_mut() {
                let age = now.saturating_duration_since(lease.since);
                if !lease.reported && age >= self.threshold {
                    lease.reported = true;
                    fresh.push((lease.label.clone(), age));
                }
            }
        }
        for (label, age) in fresh {
            self.leaks_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "pgvigil::pool::leak",
                "possible connection leak: checked out by {label} for {} (POOL_LEAK_THRESHOLD {})",
                format_duration(age),
                format_duration(self.threshold)
            );
        }
    }

    /// Connections currently held past the threshold, oldest first.
    pub fn leaked(&self) -> Vec<LeakedConnection> {
        let now = Instant::now();
        let mut out: Vec<LeakedConnection> = self
            .lock()
            .values()
            .filter(|l| now.saturating_duration_since(l.since) >= self.threshold)
            .map(|l| LeakedConnection {
                label: l.label.to_string(),
                checked_out_at: l.since_wall,
                age_secs: now.saturating_duration_since(l.since).as_secs_f64(),
            })
            .collect();
        out.sort_by(|a, b| b.age_secs.total_cmp(&a.age_secs));
        out
    }

    pub fn leaks_total(&self) -> u64 {
        self.leaks_total.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Lease>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }
}
