//! The saturation warning: raised when in-use / max reaches POOL_SATURATION_WARN, cleared only
//! when it falls clearly below (hysteresis), so a pool hovering at the threshold does not flap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct SaturationAlarm {
    warn_at: f64,
    clear_below: f64,
    raised: AtomicBool,
    raised_total: AtomicU64,
}

impl SaturationAlarm {
    pub fn new(warn_at: f64) -> Self {
        Self {
            warn_at,
            // Ten points below the threshold, or half of it for very low thresholds.
            // Rounded so that 0.80 - 0.10 is 0.70, not 0.7000000000000001.
            clear_below: ((warn_at - 0.10).max(warn_at / 2.0) * 1e6).round() / 1e6,
            raised: AtomicBool::new(false),
            raised_total: AtomicU64::new(0),
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
        let ratio = saturation(in_use, max);
        if ratio >= self.warn_at {
            if self
                .raised
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.raised_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pgvigil::pool",
                    in_use,
                    max,
                    "pool saturation {:.0}% ({in_use} of {max} in use) reached the warning level {:.0}%",
                    ratio * 100.0,
                    self.warn_at * 100.0
                );
            }
        } else if ratio < self.clear_below
            && self
                .raised
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::info!(
                target: "pgvigil::pool",
                "pool saturation back to {:.0}% ({in_use} of {max} in use)",
                ratio * 100.0
            );
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
    fn warning_has_hysteresis() {
        let alarm = SaturationAlarm::new(0.80);
        let readings = [
            (10, false),
            (16, true),  // 80 %: raised
            (15, true),  // 75 %: still raised, no flapping
            (14, true),  // 70 %: not below 70 %
            (13, false), // 65 %: cleared
            (15, false), // 75 %: not raised again until 80 %
            (17, true),
        ];
        for (in_use, raised) in readings {
            assert_eq!(alarm.observe(in_use, 20), raised, "{in_use}/20");
        }
        assert_eq!(alarm.raised_total(), 2);
    }
}
