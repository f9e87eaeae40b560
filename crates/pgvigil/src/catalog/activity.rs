//! What a backend is doing over time, beside its locks: the phases of an index build it runs
//! (`pg_stat_progress_create_index`, which also covers `CREATE INDEX CONCURRENTLY` and
//! pgvector's own HNSW phases) and what it waits on (`pg_stat_activity.wait_event`). The
//! migration runner reads it from its observer session at the same readings as the locks, so
//! a rehearsal can say how long each phase of a build took and what the migration waited for.
//! Times are as exact as the interval between two readings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgConnection;

/// One reading: wait event type and name, the build's command, phase, index, tuples done and
/// their total.
type ActivityRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// One phase of an index build, as seen over the readings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseSpan {
    /// The index (schema-qualified unless in public), once the build has created it.
    pub index: Option<String>,
    /// `CREATE INDEX`, `CREATE INDEX CONCURRENTLY`, `REINDEX`, `REINDEX CONCURRENTLY`.
    pub command: String,
    /// The phase's name as the server (or pgvector) reports it: `building index: loading
    /// tuples`, `waiting for old snapshots`, ...
    pub phase: String,
    /// First reading that showed it.
    #[serde(skip)]
    pub first_seen: Duration,
    /// Last reading that showed it.
    #[serde(skip)]
    pub last_seen: Duration,
    /// How long it was seen, in milliseconds (last reading minus first).
    pub seen_ms: u64,
    /// Tuples done and the total, at the last reading (0 when the phase does not count them).
    pub tuples_done: i64,
    /// The total the phase counts towards.
    pub tuples_total: i64,
}

/// The index builds and waits of one backend over time.
#[derive(Debug, Clone)]
pub struct ActivityTrace {
    pid: i32,
    started: Instant,
    readings: u64,
    phases: Vec<PhaseSpan>,
    /// `type:event` -> readings that showed it.
    waits: BTreeMap<String, u64>,
}

impl ActivityTrace {
    /// Starts watching backend `pid`; times count from `started` (the lock sampler's start, so
    /// both traces share one clock).
    pub fn new(pid: i32, started: Instant) -> Self {
        Self {
            pid,
            started,
            readings: 0,
            phases: Vec::new(),
            waits: BTreeMap::new(),
        }
    }

    /// One reading, from a session of its own on the same server.
    pub(crate) async fn sample(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let row: Option<ActivityRow> = sqlx::query_as(
            "SELECT a.wait_event_type, a.wait_event, p.command, p.phase,
                        CASE WHEN p.index_relid <> 0 THEN p.index_relid::regclass::text END,
                        p.tuples_done, p.tuples_total
                   FROM pg_stat_activity a
                   LEFT JOIN pg_stat_progress_create_index p ON p.pid = a.pid
                  WHERE a.pid = $1",
        )
        .bind(self.pid)
        .fetch_optional(&mut *conn)
        .await?;
        let at = self.started.elapsed();
        self.readings += 1;
        let Some((wait_type, wait, command, phase, index, done, total)) = row else {
            return Ok(());
        };
        if let (Some(t), Some(w)) = (wait_type, wait) {
            *self.waits.entry(format!("{t}:{w}")).or_default() += 1;
        }
        if let (Some(command), Some(phase)) = (command, phase) {
            self.record(
                at,
                command,
                phase,
                index,
                done.unwrap_or(0),
                total.unwrap_or(0),
            );
        }
        Ok(())
    }

    fn record(
        &mut self,
        at: Duration,
        command: String,
        phase: String,
        index: Option<String>,
        done: i64,
        total: i64,
    ) {
        match self.phases.last_mut() {
            Some(last) if last.phase == phase && last.command == command => {
                last.last_seen = at;
                last.seen_ms = at.saturating_sub(last.first_seen).as_millis() as u64;
                last.tuples_done = done;
                last.tuples_total = total;
                if last.index.is_none() {
                    last.index = index;
                }
            }
            _ => self.phases.push(PhaseSpan {
                index,
                command,
                phase,
                first_seen: at,
                last_seen: at,
                seen_ms: 0,
                tuples_done: done,
                tuples_total: total,
            }),
        }
    }

    /// The build phases seen, in order.
    pub fn phases(&self) -> &[PhaseSpan] {
        &self.phases
    }

    /// What the backend waited on (`Lock:relation`, `IO:DataFileRead`), with roughly how long:
    /// the readings that showed it times `interval`.
    pub fn waits(&self, interval: Duration) -> Vec<(String, Duration)> {
        let mut w: Vec<(String, Duration)> = self
            .waits
            .iter()
            .map(|(k, n)| (k.clone(), interval * (*n as u32)))
            .collect();
        w.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        w
    }

    /// How many readings were taken.
    pub fn readings(&self) -> u64 {
        self.readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_seen_at_consecutive_readings_is_one_span() {
        let mut t = ActivityTrace::new(7, Instant::now());
        let ms = Duration::from_millis;
        let cic = || "CREATE INDEX CONCURRENTLY".to_string();
        t.record(ms(0), cic(), "initializing".into(), None, 0, 0);
        t.record(
            ms(100),
            cic(),
            "building index: loading tuples".into(),
            Some("i".into()),
            10,
            200,
        );
        t.record(
            ms(200),
            cic(),
            "building index: loading tuples".into(),
            Some("i".into()),
            150,
            200,
        );
        t.record(
            ms(300),
            cic(),
            "waiting for old snapshots".into(),
            Some("i".into()),
            0,
            0,
        );
        assert_eq!(t.phases().len(), 3);
        let loading = &t.phases()[1];
        assert_eq!(loading.seen_ms, 100);
        assert_eq!((loading.tuples_done, loading.tuples_total), (150, 200));
        assert_eq!(loading.index.as_deref(), Some("i"));
    }
}
