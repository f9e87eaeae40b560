//! From the copy to production: durations scaled when the copy holds fewer rows than
//! production (linear for rewrites and B-tree builds, n log n for HNSW: its build inserts each
//! row into a graph of logarithmic depth), how many statements would queue behind each
//! blocking hold at production's current rate (the lint's reading of pg_stat_user_tables), and
//! the thresholds a hold must stay under.

use std::time::Duration;

use super::report::{LockHold, Projection};
use crate::catalog::LockMode;
use crate::window::lint::{CatalogReading, TableReading};

/// How a duration grows with the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleModel {
    /// Rewrites, B-tree and IVFFlat builds, backfills: proportional to the rows.
    Linear,
    /// HNSW builds: n log n.
    NLogN,
}

impl ScaleModel {
    /// The factor from `copy` rows to `production` rows.
    pub fn factor(self, copy: u64, production: u64) -> f64 {
        let (c, p) = (copy.max(1) as f64, production.max(1) as f64);
        match self {
            Self::Linear => p / c,
            // log2 of at least 2, so that a one-row copy does not divide by zero.
            Self::NLogN => (p * p.max(2.0).log2()) / (c * c.max(2.0).log2()),
        }
    }

    /// The words for the report.
    pub fn words(self, table: &str) -> String {
        match self {
            Self::Linear => format!("linear in {table}'s rows"),
            Self::NLogN => format!("n log n in {table}'s rows (HNSW build)"),
        }
    }
}

/// Whether production is big enough beyond the copy to scale at all: more than 5 % more rows.
/// A copy at least production's size is not scaled down (its times are the cautious ones); a
/// copy whose rows are not known (0: a table never analysed) is not scaled at all.
pub fn scales(copy: u64, production: u64) -> bool {
    copy > 0 && production as f64 > copy as f64 * 1.05
}

/// Hold thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// ACCESS EXCLUSIVE (blocks reads too): Database Lab's default, 10 s.
    pub access_exclusive: Duration,
    /// The other modes that block writes (SHARE from a plain CREATE INDEX, SHARE ROW
    /// EXCLUSIVE, EXCLUSIVE).
    pub write_block: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            access_exclusive: Duration::from_secs(10),
            write_block: Duration::from_secs(60),
        }
    }
}

impl Thresholds {
    /// The threshold `hold` passes, in words, if any.
    pub fn passed(&self, mode: LockMode, hold: Duration) -> Option<String> {
        let (limit, flag) = if mode == LockMode::AccessExclusive {
            (self.access_exclusive, "--max-exclusive-hold")
        } else if mode.blocks_writes() {
            (self.write_block, "--max-write-block")
        } else {
            return None;
        };
        (hold > limit).then(|| {
            format!(
                "held past {}, the limit {flag} sets for {mode}",
                seconds(limit)
            )
        })
    }
}

/// "10 s", "2.3 s".
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The table a lock on `relation` holds up on production: the relation itself, or an index's
/// table.
pub fn production_table<'a>(
    catalog: &'a CatalogReading,
    relation: &str,
    index_table: Option<&str>,
) -> Option<(&'a str, &'a TableReading)> {
    let key = super::qualified(index_table.unwrap_or(relation));
    catalog
        .tables
        .get_key_value(&key)
        .map(|(k, v)| (k.as_str(), v))
}

/// What production would see of `hold` on a table read as `reading`.
pub fn project(hold: &LockHold, reading: &TableReading) -> Option<Projection> {
    if !(hold.blocks_reads || hold.blocks_writes) {
        return None;
    }
    let held = hold.production_held_ms.unwrap_or(hold.held_ms) as f64 / 1000.0;
    let mut per_s = 0.0;
    if hold.blocks_writes {
        per_s += reading.writes_per_s;
    }
    if hold.blocks_reads {
        per_s += reading.scans_per_s;
    }
    Some(Projection {
        writes_per_s: reading.writes_per_s,
        reads_per_s: reading.scans_per_s,
        would_queue: (held * per_s).round() as u64,
    })
}

/// "ACCESS EXCLUSIVE on documents held 2.3 s (blocks reads and writes); production writes 140
/// rows/s to it and reads it 30 times/s: about 390 statements would queue".
pub fn words(hold: &LockHold) -> String {
    let mut s = format!(
        "{} on {} held {} ({})",
        hold.mode,
        hold.relation,
        seconds(Duration::from_millis(hold.held_ms)),
        hold.blocking
    );
    if hold.waited_ms > 0 {
        s.push_str(&format!(
            ", after waiting {}",
            seconds(Duration::from_millis(hold.waited_ms))
        ));
    }
    if let Some(p) = hold.production_held_ms {
        s.push_str(&format!(
            "; about {} at production's size",
            seconds(Duration::from_millis(p))
        ));
    }
    if let Some(p) = &hold.production {
        s.push_str(&format!(
            "; production writes {:.0} rows/s to it and reads it {:.0} times/s: about {} statements would queue",
            p.writes_per_s, p.reads_per_s, p.would_queue
        ));
    }
    if let Some(t) = &hold.over_threshold {
        s.push_str(&format!("; {t}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hnsw_grows_faster_than_linear() {
        let linear = ScaleModel::Linear.factor(2_000, 2_000_000);
        let nlogn = ScaleModel::NLogN.factor(2_000, 2_000_000);
        assert!((linear - 1000.0).abs() < 1e-9);
        // log2(2e6) / log2(2e3) = 20.93 / 10.97
        assert!((nlogn / linear - 1.9087).abs() < 0.01, "{nlogn}");
        assert!(!scales(2_000, 2_050));
        assert!(
            !scales(0, 2_000_000),
            "unknown copy rows are not scaled by production's"
        );
        assert!(scales(2_000, 2_200));
    }

    #[test]
    fn only_blocking_holds_past_their_limit_are_flagged() {
        let t = Thresholds::default();
        let s = Duration::from_secs;
        assert!(t.passed(LockMode::AccessExclusive, s(11)).is_some());
        assert!(t.passed(LockMode::AccessExclusive, s(9)).is_none());
        assert!(t.passed(LockMode::Share, s(61)).is_some());
        assert!(t.passed(LockMode::ShareUpdateExclusive, s(3600)).is_none());
        assert_eq!(
            t.passed(LockMode::AccessExclusive, s(12)).unwrap(),
            "held past 10 s, the limit --max-exclusive-hold sets for ACCESS EXCLUSIVE"
        );
    }

    #[test]
    fn a_blocking_hold_queues_production_s_statements() {
        let hold = LockHold {
            relation: "documents".into(),
            mode: LockMode::AccessExclusive,
            blocks_reads: true,
            blocks_writes: true,
            blocking: LockMode::AccessExclusive.blocking_words(),
            created_here: false,
            waited_ms: 0,
            held_ms: 2_300,
            production_held_ms: None,
            production: None,
            over_threshold: None,
        };
        let reading = TableReading {
            rows: 2_100_000,
            bytes: 26 << 30,
            writes_per_s: 140.0,
            scans_per_s: 0.0,
        };
        let p = project(&hold, &reading).unwrap();
        assert_eq!(p.would_queue, 322);
        let with = LockHold {
            production: Some(p),
            ..hold
        };
        assert!(
            words(&with).contains("production writes 140 rows/s to it and reads it 0 times/s: about 322 statements would queue"),
            "{}",
            words(&with)
        );
    }
}
