//! The saturation warning: raised as soon as in-use / max reaches POOL_SATURATION_WARN, cleared
//! only after the ratio has stayed clearly below it (ten points lower) for a hold time. Both
//! bands matter: a busy pool hovers around its threshold many times a second, and a warning
//! that blinks on and off with every checkout is one an engineer learns to ignore.
//!
//! The rule is a value ([`SaturationRule`], [`SaturationWatch`], [`SaturationLevel`]) on the
//! caller's clock, so that every pool on a screen is judged by it: pgvigil's own pool (through
//! [`SaturationAlarm`]) and the pools read from other processes (the dashboard's state).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The thresholds: warn at `warn_at`, clear below `clear_below` after `hold` of calm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaturationRule {
    /// The share of the maximum in use at which the warning is raised (0 to 1).
    pub warn_at: f64,
    /// A raised warning clears only below this share.
    pub clear_below: f64,
    /// ... after staying below it this long.
    pub hold: Duration,
}

impl SaturationRule {
    /// The rule for a threshold: clear ten points lower (half of it for a low one) after `hold`.
    pub fn new(warn_at: f64, hold: Duration) -> Self {
        Self {
            warn_at,
            // Ten points below the threshold, or half of it for very low thresholds; rounded so
            // that 0.80 - 0.10 is 0.70, not 0.7000000000000001.
            clear_below: ((warn_at - 0.10).max(warn_at / 2.0) * 1e6).round() / 1e6,
            hold,
        }
    }

    /// The level of a pool at `ratio` whose warning is (or is not) `raised`.
    pub fn level(&self, ratio: f64, raised: bool) -> SaturationLevel {
        match (raised, ratio >= self.warn_at) {
            (true, true) => SaturationLevel::Saturated,
            (true, false) => SaturationLevel::Cooling,
            // Within the hysteresis band: one more busy moment raises the warning.
            (false, _) if ratio >= self.clear_below => SaturationLevel::Near,
            (false, _) => SaturationLevel::Calm,
        }
    }
}

/// Where a pool stands against its rule: what the screen colours and words come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaturationLevel {
    /// Below the clear level, no warning.
    Calm,
    /// Within the band between the clear level and the threshold, no warning (yet).
    Near,
    /// The warning is raised and the pool is at or over the threshold.
    Saturated,
    /// The warning is raised but the pool is below the threshold: it clears after the hold.
    Cooling,
}

impl SaturationLevel {
    /// The warning is raised (saturated now, or not yet calm for the hold time).
    pub fn is_warning(self) -> bool {
        matches!(self, Self::Saturated | Self::Cooling)
    }

    /// The words beside a raised warning: `SATURATED`, or `was 80%+` while it cools down.
    pub fn words(self, rule: &SaturationRule) -> Option<String> {
        match self {
            Self::Saturated => Some("SATURATED".to_string()),
            Self::Cooling => Some(format!("was {:.0}%+", rule.warn_at * 100.0)),
            Self::Calm | Self::Near => None,
        }
    }
}

/// One pool's warning over time, on the caller's clock (`at` is any monotonic time: an
/// [`Instant`]'s offset, or the dashboard's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaturationWatch {
    /// The thresholds it applies.
    pub rule: SaturationRule,
    raised: bool,
    /// Since when the ratio has been below `clear_below` while raised.
    calm_since: Option<Duration>,
}

/// What a reading changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaturationChange {
    /// The warning was raised by this reading.
    Raised,
    /// The warning cleared with this reading.
    Cleared,
    /// Neither.
    Unchanged,
}

impl SaturationWatch {
    /// A watch whose warning is not raised.
    pub fn new(rule: SaturationRule) -> Self {
        Self {
            rule,
            raised: false,
            calm_since: None,
        }
    }

    /// Feeds a reading of `ratio` at `at`.
    pub fn observe(&mut self, ratio: f64, at: Duration) -> SaturationChange {
        if ratio >= self.rule.warn_at {
            self.calm_since = None;
            if !self.raised {
                self.raised = true;
                return SaturationChange::Raised;
            }
        } else if self.raised {
            if ratio >= self.rule.clear_below {
                self.calm_since = None;
            } else {
                let since = *self.calm_since.get_or_insert(at);
                if at.saturating_sub(since) >= self.rule.hold {
                    self.calm_since = None;
                    self.raised = false;
                    return SaturationChange::Cleared;
                }
            }
        }
        SaturationChange::Unchanged
    }

    /// Whether the warning is raised.
    pub fn is_raised(&self) -> bool {
        self.raised
    }

    /// The level at `ratio` (the reading last observed).
    pub fn level(&self, ratio: f64) -> SaturationLevel {
        self.rule.level(ratio, self.raised)
    }
}

/// pgvigil's own pool's warning: a [`SaturationWatch`] shared by the pool's tasks, with the
/// log lines and the count of warnings raised.
pub struct SaturationAlarm {
    origin: Instant,
    watch: Mutex<SaturationWatch>,
    raised_total: AtomicU64,
}

impl SaturationAlarm {
    pub fn new(warn_at: f64, hold: Duration) -> Self {
        Self {
            origin: Instant::now(),
            watch: Mutex::new(SaturationWatch::new(SaturationRule::new(warn_at, hold))),
            raised_total: AtomicU64::new(0),
        }
    }

    pub fn rule(&self) -> SaturationRule {
        self.watch.lock().unwrap_or_else(|p| p.into_inner()).rule
    }

    pub fn warn_at(&self) -> f64 {
        self.rule().warn_at
    }

    pub fn clear_below(&self) -> f64 {
        self.rule().clear_below
    }

    /// Feeds a new reading; returns whether the warning is raised afterwards.
    pub fn observe(&self, in_use: usize, max: u32) -> bool {
        self.observe_at(in_use, max, Instant::now())
    }

    fn observe_at(&self, in_use: usize, max: u32, now: Instant) -> bool {
        let ratio = saturation(in_use, max);
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        let change = watch.observe(ratio, now.saturating_duration_since(self.origin));
        match change {
            SaturationChange::Raised => {
                self.raised_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "pgvigil::pool",
                    "pool saturation {:.0}% ({in_use} of {max} in use) reached the warning level {:.0}%",
                    ratio * 100.0,
                    watch.rule.warn_at * 100.0
                );
            }
            SaturationChange::Cleared => tracing::info!(
                target: "pgvigil::pool",
                "pool saturation back to {:.0}% ({in_use} of {max} in use) for {}s",
                ratio * 100.0,
                watch.rule.hold.as_secs_f64().round()
            ),
            SaturationChange::Unchanged => {}
        }
        watch.is_raised()
    }

    pub fn raised_total(&self) -> u64 {
        self.raised_total.load(Ordering::Relaxed)
    }
}

impl super::PoolStats {
    /// The rule these figures were judged by.
    pub fn saturation_rule(&self) -> SaturationRule {
        SaturationRule {
            warn_at: self.saturation_warn_at,
            clear_below: self.saturation_clear_below,
            // The hold is not part of the figures; it only decides when a warning clears.
            hold: crate::config::DEFAULT_SATURATION_HOLD,
        }
    }

    /// Where the pool stands: the warning as the pool raised it, the band from the figures.
    pub fn saturation_level(&self) -> SaturationLevel {
        self.saturation_rule()
            .level(self.saturation, self.saturation_warning)
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

    #[test]
    fn levels_follow_the_rule_for_any_pool() {
        let rule = SaturationRule::new(0.80, Duration::from_secs(10));
        let mut watch = SaturationWatch::new(rule);
        let at = Duration::from_secs;
        assert_eq!(watch.level(0.5), SaturationLevel::Calm);
        assert_eq!(watch.observe(0.75, at(0)), SaturationChange::Unchanged);
        assert_eq!(watch.level(0.75), SaturationLevel::Near);
        assert_eq!(watch.observe(0.85, at(1)), SaturationChange::Raised);
        assert_eq!(watch.level(0.85), SaturationLevel::Saturated);
        assert_eq!(watch.observe(0.5, at(2)), SaturationChange::Unchanged);
        assert_eq!(watch.level(0.5), SaturationLevel::Cooling);
        assert_eq!(
            SaturationLevel::Cooling.words(&rule).as_deref(),
            Some("was 80%+")
        );
        assert_eq!(watch.observe(0.5, at(12)), SaturationChange::Cleared);
        assert_eq!(watch.level(0.5), SaturationLevel::Calm);
    }
}
