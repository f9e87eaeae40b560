//! One cadence for everything that ticks: the clock, the poller and every source of pool
//! figures wake on the same wall-clock boundaries (whole seconds at the default refresh), so
//! their readings arrive together and are drawn as one frame instead of one frame each.

use std::time::Duration;

use chrono::Utc;

/// How long from `now_ms` (milliseconds since the epoch) to the next multiple of `interval`.
pub fn until_boundary(now_ms: i64, interval: Duration) -> Duration {
    let step = (interval.as_millis() as i64).max(1);
    let into = now_ms.rem_euclid(step);
    Duration::from_millis((step - into) as u64)
}

/// The next wall-clock multiple of `interval`, as a tokio instant.
pub fn next_boundary(interval: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + until_boundary(Utc::now().timestamp_millis(), interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_whole_multiples_of_the_interval() {
        let second = Duration::from_secs(1);
        assert_eq!(until_boundary(10_250, second), Duration::from_millis(750));
        assert_eq!(
            until_boundary(10_000, second),
            second,
            "on a boundary: the next one"
        );
        assert_eq!(
            until_boundary(10_250, Duration::from_millis(500)),
            Duration::from_millis(250)
        );
        assert_eq!(
            until_boundary(7_000, Duration::from_secs(5)),
            Duration::from_secs(3)
        );
        assert_eq!(until_boundary(5, Duration::ZERO), Duration::from_millis(1));
    }
}
