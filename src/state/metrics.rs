//! Counters the data plane writes and the admin API reads.
//!
//! Every counter here has exactly one writer: the worker thread whose block
//! it is in. A worker bumps its own counters with a plain load and store
//! (no locked read-modify-write, no cache line shared with another core on
//! the request path); a scrape on the admin thread reads every worker's
//! block and sums them. A reader may see a worker's counters a few
//! requests apart from each other, never a torn value.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic count written by one thread only.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning worker may call this: two writers would
    /// lose counts (that is the price of not locking the bus).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level (open connections) written by one thread only.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Change by `delta`; owner only, like [`Counter::add`].
    #[inline]
    pub fn change(&self, delta: i64) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }

    /// The level now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds: 0.5 ms to 10 s,
/// roughly 1-2.5-5 steps, as Prometheus client libraries default to.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Buckets: one per bound, and one above the last (`+Inf`).
pub const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A latency histogram with fixed buckets, written by one thread.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket.
    buckets: [Counter; BUCKETS],
    /// Sum of all samples, in microseconds.
    sum_us: Counter,
}

/// Which bucket a latency of `us` microseconds falls in.
#[inline]
pub fn bucket_of(us: u64) -> usize {
    LATENCY_BOUNDS_US
        .iter()
        .position(|&bound| us <= bound)
        .unwrap_or(BUCKETS - 1)
}

impl Histogram {
    /// Count one sample.
    #[inline]
    pub fn observe(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].inc();
        self.sum_us.add(us);
    }

    /// The counts now.
    pub fn read(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

/// What a [`Histogram`] (or a sum of several) held at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramCounts {
    /// Non-cumulative counts per bucket.
    pub buckets: [u64; BUCKETS],
    /// Sum of the samples, microseconds.
    pub sum_us: u64,
}

impl HistogramCounts {
    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Add another histogram's counts (another worker's).
    pub fn add(&mut self, other: &HistogramCounts) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// The counts since `earlier` (for a window's quantiles).
    pub fn since(&self, earlier: &HistogramCounts) -> HistogramCounts {
        HistogramCounts {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// The `q` quantile (0..1) in milliseconds, linearly interpolated inside
    /// its bucket, as Prometheus's `histogram_quantile` does; `None`
    /// without samples. Above the last bound, the last bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((seen + n) as f64) < rank {
                seen += n;
                continue;
            }
            let Some(&upper) = LATENCY_BOUNDS_US.get(i) else {
                return Some(LATENCY_BOUNDS_US[BUCKETS - 2] as f64 / 1000.0);
            };
            let lower = if i == 0 { 0 } else { LATENCY_BOUNDS_US[i - 1] };
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return Some((lower as f64 + within * (upper - lower) as f64) / 1000.0);
        }
        Some(LATENCY_BOUNDS_US[BUCKETS - 2] as f64 / 1000.0)
    }
}

/// Response status classes counted: 1xx to 5xx.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of `status`'s class in [`STATUS_CLASSES`].
#[inline]
pub fn class_of(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_bucket() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(500), 0);
        assert_eq!(bucket_of(501), 1);
        assert_eq!(bucket_of(10_000_000), BUCKETS - 2);
        assert_eq!(bucket_of(10_000_001), BUCKETS - 1);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = Histogram::default();
        assert_eq!(h.read().quantile_ms(0.5), None);
        // 100 samples between 1 and 2.5 ms.
        for _ in 0..100 {
            h.observe(Duration::from_micros(2_000));
        }
        let counts = h.read();
        assert_eq!(counts.count(), 100);
        assert_eq!(counts.sum_us, 200_000);
        let p50 = counts.quantile_ms(0.5).unwrap();
        assert!((1.0..=2.5).contains(&p50), "{p50}");
        assert_eq!(counts.quantile_ms(1.0), Some(2.5));
    }

    #[test]
    fn windows_subtract_and_workers_add() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(1));
        let before = h.read();
        h.observe(Duration::from_secs(20));
        let window = h.read().since(&before);
        assert_eq!(window.count(), 1);
        assert_eq!(window.buckets[BUCKETS - 1], 1);
        let mut sum = before;
        sum.add(&window);
        assert_eq!(sum, h.read());
    }

    #[test]
    fn single_writer_counters_count() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::default();
        g.change(3);
        g.change(-1);
        assert_eq!(g.get(), 2);
        assert_eq!(class_of(204), 1);
        assert_eq!(class_of(503), 4);
        assert_eq!(class_of(99), 0);
        assert_eq!(class_of(700), 4);
    }
}
