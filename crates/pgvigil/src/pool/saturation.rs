//! The saturation warning: raised as soon as in-use / max reaches POOL_SATURATION_WARN, cleared
//! only after the ratio has stayed clearly below it (ten points lower) for a hold time. Both
//! bands matter: a busy pool hovers around its threshold many times a second, and a warning
//! that blinks on and off with every checkout is one an engineer learns to ignore.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct SaturationAlarm {
    warn_at: f64,
    clear_below: f64,
    hold: Duration,
    raised: AtomicBool,
    raised_total: AtomicU64,
    /// Since when the ratio has been below `clear_below` while raised.
    calm_since: Mutex<Option<Instant>>,
}

impl SaturationAlarm {
    pub fn new(warn_at: f64, hold: Duration) -> Self {
        Self {
            warn_at,
            // Ten points below the threshold, or half of it for very low thresholds; rounded so
            // that 0.80 - 0.10 is 0.70, not 0.7000000000000001.
            clear_below: ((warn_at - 0.10).max(warn_at / 2.0) * 1e6).round() / 1e6,
            hold,
            raised: AtomicBool::new(false),
            raised_total: AtomicU64::new(0),
            calm_since: Mutex::new(None),
        }
    }

    pub fn warn_at(&self) -> f64 {
        self.warn_at
    }

    pub fn clear_below(&self) -> f64 {
        self.clear_below
    }

    /// Feeds a new reading; returns whether the warning is raised afterwards.
    pub fn observe(&self, in_use: usize, max: u32) -> bool {
        self.observe_at(in_use, max, Instant::now())
    }

    fn observe_at(&self, in_use: usize, max: u32, now: Instant) -> bool {
        let ratio = saturation(in_use, max);
        let mut calm = self.calm_since.lock().unwrap_or_else(|p| p.into_inner());
        if ratio >= self.warn_at {
            *calm = None;
            if !self.raised.swap(true, Ordering::AcqRel) {
                self.raised_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pgvigil::pool",
                    "pool saturation {:.0}% ({in_use} of {max} in use) reached the warning level {:.0}%",
                    ratio * 100.0,
                    self.warn_at * 100.0
                );
            }
        } else if self.raised.load(Ordering::Acquire) {
            if ratio >= self.clear_below {
                *calm = None;
            } else {
                let since = *calm.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.hold {
                    *calm = None;
                    self.raised.store(false, Ordering::Release);
                    tracing::info!(
                        target: "pgvigil::pool",
                        "pool saturation back to {:.0}% ({in_use} of {max} in use) for {}s",
                        ratio * 100.0,
                        self.hold.as_secs_f64().round()
                    );
                }
            }
        }
        self.is_raised()
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    pub fn raised_total(&self) -> u64 {
        self.raised_total.load(Ordering::Relaxed)
    }
}

/// Share of the pool's maximum in use, `in_use / max` (0 when `max` is 0).
pub fn saturation(in_use: usize, max: u32) -> f64 {
    if max == 0 {
        0.0
    } else {
        in_use as f64 / max as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_has_hysteresis_in_level_and_time() {
        let alarm = SaturationAlarm::new(0.80, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let readings = [
            (0, 10, false),
            (1, 16, true),   // 80 %: raised at once
            (2, 15, true),   // 75 %: above the clear level, still raised
            (3, 13, true),   // 65 %: below, but only just
            (4, 16, true),   // back up: the calm period starts over
            (5, 12, true),   // calm from 5 s
            (14, 12, true),  // 9 s calm: not yet
            (15, 11, false), // 10 s calm: cleared
            (16, 15, false), // 75 %: not raised again until 80 %
            (17, 17, true),
        ];
        for (s, in_use, raised) in readings {
            assert_eq!(
                alarm.observe_at(in_use, 20, at(s)),
                raised,
                "t={s}s {in_use}/20"
            );
        }
        assert_eq!(alarm.raised_total(), 2);
        assert_eq!(alarm.clear_below(), 0.70);
    }
}
