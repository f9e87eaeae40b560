//! How long checkouts hold their connection: a lock-free histogram at fixed bounds (the ones
//! `/metrics` exports), recorded on every return. Unlike the acquire wait it keeps no sliding
//! window, so recording is a few atomic additions, not a mutex on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the usage buckets, in microseconds: 1 ms to 5 min.
const BOUNDS_MICROS: [u64; 15] = [
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// Time held per checkout; `counts[i]` holds the values at or below `BOUNDS_MICROS[i]` and above
/// the previous bound, the last slot the rest.
#[derive(Debug, Default)]
pub(crate) struct UsageHistogram {
    counts: [AtomicU64; 16],
    sum_micros: AtomicU64,
}

impl UsageHistogram {
    pub(crate) fn record(&self, held: Duration) {
        let micros = held.as_micros().min(u128::from(u64::MAX)) as u64;
        let slot = BOUNDS_MICROS.partition_point(|b| *b < micros);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative counts at `bounds_secs` (each must be one of the recorded bounds to be
    /// exact; others count the buckets wholly below them), the total and the sum in seconds.
    pub(crate) fn cumulative_at(&self, bounds_secs: &[f64]) -> (Vec<u64>, u64, f64) {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total = counts.iter().sum();
        let out = bounds_secs
            .iter()
            .map(|bound| {
                let bound_micros = (bound * 1e6).round() as u64;
                BOUNDS_MICROS
                    .iter()
                    .zip(&counts)
                    .filter(|(b, _)| **b <= bound_micros)
                    .map(|(_, c)| c)
                    .sum()
            })
            .collect();
        (
            out,
            total,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_at_their_bound_and_accumulate() {
        let h = UsageHistogram::default();
        h.record(Duration::from_micros(900));
        h.record(Duration::from_millis(1));
        h.record(Duration::from_millis(7));
        h.record(Duration::from_secs(400));
        let (c, total, sum) = h.cumulative_at(&[0.001, 0.005, 0.01, 300.0]);
        assert_eq!(c, vec![2, 2, 3, 3]);
        assert_eq!(total, 4);
        assert!((sum - 400.0089).abs() < 1e-6, "{sum}");
    }
}
