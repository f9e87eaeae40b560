//! Reads the relation locks given backends hold and wait for, again and again, and keeps for
//! each lock when it was first awaited, when it was granted and when it was last seen: what a
//! migration's backend took, how long it waited and how long it held it. `CREATE INDEX
//! CONCURRENTLY` and other no-transaction statements are traced this way too (a diff of
//! pg_locks after each statement, as some tools do, sees nothing of them). A lock shorter than
//! the interval between two readings can slip through; times are as exact as the interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::{LockMode, RelationLock, blocking_pids, relation_locks_of};

/// One lock as the sampler saw it over time. Times are since the sampler started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSpan {
    /// The backend.
    pub pid: i32,
    /// The relation (schema-qualified unless in public).
    pub relation: String,
    /// The mode.
    pub mode: LockMode,
    /// First reading that showed it (awaited or granted).
    pub first_seen: Duration,
    /// The reading before that one, which did not show it (`None`: it was in the first
    /// reading). The lock began between the two.
    pub unseen_at: Option<Duration>,
    /// First reading that showed it granted; `None` while it was only awaited.
    pub granted_at: Option<Duration>,
    /// Last reading that showed it.
    pub last_seen: Duration,
    /// Who it waited for (`pg_blocking_pids`) at the last reading that showed it awaited.
    pub blocked_by: Vec<i32>,
    /// It was awaited, not granted, at the last reading.
    pub waiting: bool,
}

impl LockSpan {
    /// How long it was awaited before it was granted (or until last seen, if never granted).
    pub fn waited(&self) -> Duration {
        self.granted_at
            .unwrap_or(self.last_seen)
            .saturating_sub(self.first_seen)
    }

    /// How long it was held: from the first reading that showed it granted to the last one
    /// that showed it.
    pub fn held(&self) -> Duration {
        self.granted_at
            .map(|g| self.last_seen.saturating_sub(g))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for LockSpan {
    /// "ACCESS EXCLUSIVE on documents", "waiting for ACCESS EXCLUSIVE on documents (blocked by
    /// pid 123)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.waiting {
            f.write_str("waiting for ")?;
        }
        write!(f, "{} on {}", self.mode, self.relation)?;
        if self.waiting && !self.blocked_by.is_empty() {
            let pids: Vec<String> = self.blocked_by.iter().map(|p| format!("pid {p}")).collect();
            write!(f, " (blocked by {})", pids.join(", "))?;
        }
        Ok(())
    }
}

/// The locks of some backends over time (see the module's words).
#[derive(Debug, Clone)]
pub struct LockSampler {
    pids: Vec<i32>,
    started: Instant,
    readings: u64,
    last_reading: Option<Duration>,
    spans: BTreeMap<(i32, String, LockMode), LockSpan>,
}

impl LockSampler {
    /// Starts watching backends `pids` (nothing is read yet).
    pub fn new(pids: Vec<i32>) -> Self {
        Self {
            pids,
            started: Instant::now(),
            readings: 0,
            last_reading: None,
            spans: BTreeMap::new(),
        }
    }

    /// One reading, from a session of its own on the same server (the watched backends are
    /// busy with their own statements). Who an awaited lock waits for is read too.
    pub(crate) async fn sample(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let locks = relation_locks_of(&mut *conn, &self.pids).await?;
        let at = self.started.elapsed();
        let mut blockers: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for l in locks.iter().filter(|l| !l.granted) {
            if let std::collections::btree_map::Entry::Vacant(e) = blockers.entry(l.pid) {
                e.insert(blocking_pids(&mut *conn, l.pid).await?);
            }
        }
        self.record(at, &locks, &blockers);
        Ok(())
    }

    /// Adds one reading taken `at` after the start.
    fn record(&mut self, at: Duration, locks: &[RelationLock], blockers: &BTreeMap<i32, Vec<i32>>) {
        self.readings += 1;
        for span in self.spans.values_mut() {
            // Not in this reading: no longer awaited (released, or the wait was given up).
            span.waiting = false;
        }
        let unseen_at = self.last_reading;
        self.last_reading = Some(at);
        for l in locks {
            let span = self
                .spans
                .entry((l.pid, l.relation.clone(), l.mode))
                .or_insert_with(|| LockSpan {
                    pid: l.pid,
                    relation: l.relation.clone(),
                    mode: l.mode,
                    first_seen: at,
                    unseen_at,
                    granted_at: None,
                    last_seen: at,
                    blocked_by: Vec::new(),
                    waiting: false,
                });
            span.last_seen = at;
            span.waiting = !l.granted;
            if l.granted {
                span.granted_at.get_or_insert(at);
            } else if let Some(b) = blockers.get(&l.pid) {
                span.blocked_by = b.clone();
            }
        }
    }

    /// When it started: the clock its times count from.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since it started, on its clock.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How many readings were taken.
    pub fn readings(&self) -> u64 {
        self.readings
    }

    /// Every lock seen, by backend, relation and mode.
    pub fn spans(&self) -> impl Iterator<Item = &LockSpan> {
        self.spans.values()
    }

    /// The locks awaited at the last reading.
    pub fn waiting(&self) -> impl Iterator<Item = &LockSpan> {
        self.spans.values().filter(|s| s.waiting)
    }

    /// Locks that were granted at some reading (what the backends took).
    pub fn taken(&self) -> impl Iterator<Item = &LockSpan> {
        self.spans.values().filter(|s| s.granted_at.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mode: LockMode, granted: bool) -> RelationLock {
        RelationLock {
            pid: 7,
            relation: "documents".into(),
            mode,
            granted,
        }
    }

    #[test]
    fn a_lock_awaited_then_held_has_its_wait_and_its_hold() {
        let mut s = LockSampler::new(vec![7]);
        let ms = Duration::from_millis;
        let blocked = BTreeMap::from([(7, vec![42])]);
        s.record(ms(0), &[lock(LockMode::AccessExclusive, false)], &blocked);
        s.record(ms(100), &[lock(LockMode::AccessExclusive, false)], &blocked);
        assert_eq!(s.waiting().count(), 1);
        assert_eq!(
            s.waiting().next().unwrap().to_string(),
            "waiting for ACCESS EXCLUSIVE on documents (blocked by pid 42)"
        );
        s.record(
            ms(200),
            &[lock(LockMode::AccessExclusive, true)],
            &BTreeMap::new(),
        );
        s.record(
            ms(900),
            &[lock(LockMode::AccessExclusive, true)],
            &BTreeMap::new(),
        );
        s.record(ms(1000), &[], &BTreeMap::new());
        let span = s.taken().next().unwrap();
        assert_eq!(span.waited(), ms(200));
        assert_eq!(span.held(), ms(700));
        assert_eq!(span.blocked_by, [42]);
        assert_eq!(s.waiting().count(), 0);
        assert_eq!(s.readings(), 5);
    }

    #[test]
    fn a_lock_never_granted_was_not_taken() {
        let mut s = LockSampler::new(vec![7]);
        s.record(
            Duration::ZERO,
            &[lock(LockMode::Share, false)],
            &BTreeMap::new(),
        );
        s.record(
            Duration::from_secs(3),
            &[lock(LockMode::Share, false)],
            &BTreeMap::new(),
        );
        assert_eq!(s.taken().count(), 0);
        let span = s.spans().next().unwrap();
        assert_eq!(span.waited(), Duration::from_secs(3));
        assert_eq!(span.held(), Duration::ZERO);
    }
}
