//! Acquire wait times: a log-linear histogram (about 6 % resolution from 1 µs to minutes) kept
//! both cumulatively (for Prometheus and totals) and per second over a sliding window (for the
//! p50/p95/p99/max an on-call engineer reads "now"). Recording is one short mutex section.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Width of the sliding window, in one-second slots.
pub const WINDOW_SECS: u64 = 60;

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS; // 16 sub-buckets per power of two
const LINEAR: u64 = 2 * SUB; // values below 32 µs get a bucket each
const BUCKETS: usize = 400; // up to 2^29 µs (about 9 minutes), the last bucket takes the rest

fn bucket_of(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exp = 63 - micros.leading_zeros() as u64; // >= 5
    let sub = (micros >> (exp - SUB_BITS as u64)) & (SUB - 1);
    let index = LINEAR + (exp - (SUB_BITS as u64 + 1)) * SUB + sub;
    (index as usize).min(BUCKETS - 1)
}

/// Largest value (µs) that falls in `index`.
fn bucket_upper(index: usize) -> u64 {
    let i = index as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + SUB_BITS as u64 + 1;
    let sub = (i - LINEAR) % SUB;
    ((SUB + sub + 1) << (exp - SUB_BITS as u64)) - 1
}

#[derive(Clone)]
struct Buckets {
    counts: Vec<u64>,
    count: u64,
    sum_micros: u64,
    max_micros: u64,
}

impl Buckets {
    fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_micros: 0,
            max_micros: 0,
        }
    }

    fn record(&mut self, micros: u64) {
        self.counts[bucket_of(micros)] += 1;
        self.count += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
        self.max_micros = self.max_micros.max(micros);
    }

    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.count = 0;
        self.sum_micros = 0;
        self.max_micros = 0;
    }

    fn merge(&mut self, other: &Buckets) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// Upper bound of the bucket holding quantile `q`, never above the exact maximum.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_upper(i).min(self.max_micros);
            }
        }
        self.max_micros
    }
}

struct Slot {
    second: u64,
    buckets: Buckets,
}

struct Inner {
    slots: Vec<Slot>,
    total: Buckets,
}

/// A recorder of durations (acquire waits, connection usage) owned by the instrumented pool.
pub struct WaitRecorder {
    origin: Instant,
    inner: Mutex<Inner>,
}

/// A wait as an engineer reads it, the one wording for every pool pgvigil shows (the
/// dashboard's rows, `check`, the pool's log line), from seconds: none is `0ms`, under a
/// millisecond `<1ms` (its hundredths change every tick and say nothing about the pool), then
/// whole milliseconds, then seconds (one decimal below ten).
pub fn wait_text(seconds: f64) -> String {
    if seconds.is_nan() || seconds <= 0.0 {
        "0ms".into()
    } else if seconds < 0.001 {
        "<1ms".into()
    } else if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else if seconds < 10.0 {
        format!("{seconds:.1}s")
    } else {
        format!("{seconds:.0}s")
    }
}

/// Wait figures as shown on screen and exported: the sliding window and the totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AcquireWait {
    /// Width of the sliding window, in seconds ([`WINDOW_SECS`]).
    pub window_secs: u64,
    /// Acquisitions within the window.
    pub window_count: u64,
    /// Median wait in the window, in milliseconds (bucket upper bound, about 6 % resolution).
    pub p50_ms: f64,
    /// 95th-percentile wait in the window, in milliseconds.
    pub p95_ms: f64,
    /// 99th-percentile wait in the window, in milliseconds.
    pub p99_ms: f64,
    /// Longest wait in the window, in milliseconds (exact).
    pub max_ms: f64,
    /// All acquisitions since the pool was created (the histogram's count).
    pub total_count: u64,
    /// Time spent waiting by all acquisitions since the pool was created, in seconds.
    pub total_seconds: f64,
    /// Longest wait since the pool was created, in milliseconds.
    pub max_ever_ms: f64,
}

impl std::fmt::Debug for WaitRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitRecorder").finish_non_exhaustive()
    }
}

impl Default for WaitRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitRecorder {
    pub fn new() -> Self {
        let slots = (0..WINDOW_SECS)
            .map(|_| Slot {
                second: u64::MAX,
                buckets: Buckets::new(),
            })
            .collect();
        Self {
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                slots,
                total: Buckets::new(),
            }),
        }
    }

    pub fn record(&self, waited: Duration) {
        self.record_at(Instant::now(), waited);
    }

    fn record_at(&self, at: Instant, waited: Duration) {
        let micros = waited.as_micros().min(u64::MAX as u128) as u64;
        let second = at.saturating_duration_since(self.origin).as_secs();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut inner.slots[(second % WINDOW_SECS) as usize];
        if slot.second != second {
            slot.second = second;
            slot.buckets.clear();
        }
        slot.buckets.record(micros);
        inner.total.record(micros);
    }

    pub fn summary(&self) -> AcquireWait {
        self.summary_at(Instant::now())
    }

    fn summary_at(&self, at: Instant) -> AcquireWait {
        let now = at.saturating_duration_since(self.origin).as_secs();
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut window = Buckets::new();
        for slot in &inner.slots {
            if slot.second != u64::MAX && slot.second + WINDOW_SECS > now && slot.second <= now {
                window.merge(&slot.buckets);
            }
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        AcquireWait {
            window_secs: WINDOW_SECS,
            window_count: window.count,
            p50_ms: ms(window.quantile(0.50)),
            p95_ms: ms(window.quantile(0.95)),
            p99_ms: ms(window.quantile(0.99)),
            max_ms: ms(window.max_micros),
            total_count: inner.total.count,
            total_seconds: inner.total.sum_micros as f64 / 1e6,
            max_ever_ms: ms(inner.total.max_micros),
        }
    }

    /// Cumulative counts at the given upper bounds (seconds), for a Prometheus histogram.
    pub fn cumulative_at(&self, bounds_secs: &[f64]) -> (Vec<u64>, u64, f64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![0; bounds_secs.len()];
        for (i, c) in inner.total.counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let upper = bucket_upper(i) as f64 / 1e6;
            for (slot, bound) in out.iter_mut().zip(bounds_secs) {
                if upper <= *bound {
                    *slot += c;
                }
            }
        }
        (out, inner.total.count, inner.total.sum_micros as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wording_for_a_wait() {
        let cases = [
            (0.0, "0ms"),
            (f64::NAN, "0ms"),
            (0.0004, "<1ms"),
            (0.0126, "13ms"),
            (0.84, "840ms"),
            (2.4, "2.4s"),
            (42.0, "42s"),
        ];
        for (seconds, text) in cases {
            assert_eq!(wait_text(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn buckets_are_contiguous_and_fine() {
        let mut prev = 0;
        for i in 1..BUCKETS - 1 {
            let upper = bucket_upper(i);
            assert_eq!(bucket_of(upper), i, "upper of {i}");
            assert_eq!(bucket_of(prev + 1), i, "lower of {i}");
            // Relative width stays under 1/16 beyond the linear range.
            if i as u64 >= LINEAR {
                assert!((upper - prev) as f64 / upper as f64 <= 1.0 / 16.0 + 1e-9);
            }
            prev = upper;
        }
    }

    #[test]
    fn quantiles_follow_the_samples() {
        let rec = WaitRecorder::new();
        let at = rec.origin;
        for ms in 1..=100u64 {
            rec.record_at(at, Duration::from_millis(ms));
        }
        let s = rec.summary_at(at);
        assert_eq!(s.window_count, 100);
        assert_eq!(s.total_count, 100);
        assert!((s.p50_ms - 50.0).abs() / 50.0 < 0.07, "{}", s.p50_ms);
        assert!((s.p95_ms - 95.0).abs() / 95.0 < 0.07, "{}", s.p95_ms);
        assert!((s.p99_ms - 99.0).abs() / 99.0 < 0.07, "{}", s.p99_ms);
        assert_eq!(s.max_ms, 100.0);
        assert!(s.p99_ms <= s.max_ms);
    }

    #[test]
    fn window_forgets_old_seconds_but_totals_keep_them() {
        let rec = WaitRecorder::new();
        let t0 = rec.origin;
        rec.record_at(t0, Duration::from_secs(5));
        rec.record_at(t0 + Duration::from_secs(30), Duration::from_millis(2));
        let s = rec.summary_at(t0 + Duration::from_secs(61));
        assert_eq!(s.window_count, 1);
        assert_eq!(s.max_ms, 2.0);
        assert_eq!(s.total_count, 2);
        assert_eq!(s.max_ever_ms, 5000.0);
        assert_eq!(rec.summary_at(t0 + Duration::from_secs(89)).window_count, 1);
        // Second 90 reuses second 30's slot, which starts empty again.
        rec.record_at(t0 + Duration::from_secs(90), Duration::from_millis(1));
        let s = rec.summary_at(t0 + Duration::from_secs(90));
        assert_eq!(s.window_count, 1);
        assert_eq!(s.max_ms, 1.0);
        assert_eq!(s.total_count, 3);
    }

    #[test]
    fn cumulative_counts_respect_bounds() {
        let rec = WaitRecorder::new();
        for ms in [1u64, 4, 20, 300] {
            rec.record(Duration::from_millis(ms));
        }
        let (counts, total, _) = rec.cumulative_at(&[0.005, 0.1, 1.0]);
        assert_eq!(counts, vec![2, 3, 4]);
        assert_eq!(total, 4);
    }
}
