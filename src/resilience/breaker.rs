//! The circuit breaker of one backend: Closed → Open → HalfOpen → Closed.
//!
//! Pure: it is told what the data plane saw since the last tick and what
//! time it is, and says which phase the backend is in. The resilience
//! thread owns one per backend address and publishes the phase to the
//! backend's state byte, which the balancers read.
//!
//! - **Closed → Open** when `max_fails` tries in a row failed (the worker
//!   that sees the last of them opens the breaker at once, see
//!   [`crate::plan::Plan::record`]; the breaker then only learns
//!   that it was tripped), or when at least `min_requests` tries in the last
//!   `window` failed in a share of `ratio` or more.
//! - **Open → HalfOpen** after the open time: `base_open` the first time,
//!   doubled on each trip that follows without a rest in between, up to
//!   `max_open` (Envoy's ejection time growing with each ejection).
//! - **HalfOpen** admits [`HALF_OPEN_TRIALS`] trial requests across all
//!   cores (an atomic permit count on the backend). A failed trial opens it
//!   again (the worker, at once); a successful one closes it.
//! - A breaker that stays closed for `max_open` forgets its past trips.
//!
//! This is also corelb's passive outlier ejection: an "ejected" backend is
//! one whose breaker is open, and it comes back through half-open trials
//! rather than at full traffic.

use std::time::{Duration, Instant};

use crate::config::resilience::BreakerPolicy;

/// Trial requests a half-open breaker lets through, across all cores.
pub const HALF_OPEN_TRIALS: u32 = 3;

/// Buckets of the rolling failure window.
const BUCKETS: usize = 10;

/// The phase a breaker is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Traffic flows.
    Closed,
    /// No traffic until `until`.
    Open {
        /// When trials may start.
        until: Instant,
    },
    /// A few trial requests decide.
    HalfOpen,
}

/// What the data plane saw since the last tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tries that succeeded.
    pub ok: u64,
    /// Tries that failed.
    pub failed: u64,
    /// A worker opened the breaker (a streak of failures, or a failed
    /// trial while half-open).
    pub tripped: bool,
}

/// One backend's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    phase: Phase,
    /// Trips since the breaker last rested closed for `max_open`.
    trips: u32,
    /// When it last closed (or was made).
    closed_at: Instant,
    /// (ok, failed) per bucket of the rolling window, the newest at `head`.
    buckets: [(u64, u64); BUCKETS],
    head: usize,
    bucket_started: Instant,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(now: Instant) -> Self {
        Self {
            phase: Phase::Closed,
            trips: 0,
            closed_at: now,
            buckets: [(0, 0); BUCKETS],
            head: 0,
            bucket_started: now,
        }
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Trips counted toward the next open time.
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// Take in what was `observed` since the last call and move on in time.
    /// `may_open`: opening now would not take more of the pool out than
    /// allowed (`--max-ejection-percent`); a streak the worker already
    /// tripped is not undone by it.
    pub fn advance(
        &mut self,
        policy: &BreakerPolicy,
        observed: Observed,
        may_open: bool,
        now: Instant,
    ) -> Phase {
        self.roll(policy, now);
        match self.phase {
            Phase::Closed => {
                let bucket = &mut self.buckets[self.head];
                bucket.0 += observed.ok;
                bucket.1 += observed.failed;
                if observed.tripped || (may_open && self.ratio_exceeded(policy)) {
                    self.open(policy, now);
                } else if self.trips > 0
                    && now.saturating_duration_since(self.closed_at) >= policy.max_open
                {
                    self.trips = 0;
                }
            }
            Phase::Open { until } => {
                if observed.tripped {
                    // A worker's view raced ours; the open time stands.
                } else if now >= until {
                    self.phase = Phase::HalfOpen;
                }
            }
            Phase::HalfOpen => {
                if observed.tripped {
                    self.open(policy, now);
                } else if observed.ok > 0 {
                    self.close(now);
                }
            }
        }
        self.phase
    }

    /// Close at once (active health checks saw it healthy again).
    pub fn close(&mut self, now: Instant) {
        self.phase = Phase::Closed;
        self.closed_at = now;
        self.buckets = [(0, 0); BUCKETS];
    }

    fn open(&mut self, policy: &BreakerPolicy, now: Instant) {
        self.trips = self.trips.saturating_add(1);
        let doublings = (self.trips - 1).min(20);
        let open_for = policy
            .base_open
            .saturating_mul(1 << doublings)
            .min(policy.max_open);
        self.phase = Phase::Open {
            until: now + open_for,
        };
        self.buckets = [(0, 0); BUCKETS];
    }

    fn ratio_exceeded(&self, policy: &BreakerPolicy) -> bool {
        if policy.ratio <= 0.0 {
            return false;
        }
        let (ok, failed) = self
            .buckets
            .iter()
            .fold((0, 0), |(o, f), (bo, bf)| (o + bo, f + bf));
        let total = ok + failed;
        total >= policy.min_requests.max(1) && failed as f64 >= policy.ratio * total as f64
    }

    /// Move the window's head to the bucket `now` falls in, emptying those
    /// passed over.
    fn roll(&mut self, policy: &BreakerPolicy, now: Instant) {
        let width = (policy.window / BUCKETS as u32).max(Duration::from_millis(1));
        let mut steps = 0;
        while now.saturating_duration_since(self.bucket_started) >= width && steps <= BUCKETS {
            self.head = (self.head + 1) % BUCKETS;
            self.buckets[self.head] = (0, 0);
            self.bucket_started += width;
            steps += 1;
        }
        if steps > BUCKETS {
            self.bucket_started = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            max_fails: 5,
            ratio: 0.5,
            min_requests: 20,
            window: Duration::from_secs(10),
            base_open: Duration::from_secs(5),
            max_open: Duration::from_secs(60),
        }
    }

    fn tripped() -> Observed {
        Observed {
            tripped: true,
            ..Observed::default()
        }
    }

    fn ok(n: u64) -> Observed {
        Observed {
            ok: n,
            ..Observed::default()
        }
    }

    #[test]
    fn a_trip_opens_and_time_half_opens() {
        let t0 = Instant::now();
        let p = policy();
        let mut b = Breaker::new(t0);
        assert_eq!(b.advance(&p, ok(100), true, t0), Phase::Closed);
        let open = b.advance(&p, tripped(), true, t0);
        assert_eq!(
            open,
            Phase::Open {
                until: t0 + Duration::from_secs(5)
            }
        );
        let t = t0 + Duration::from_millis(4900);
        assert!(matches!(
            b.advance(&p, Observed::default(), true, t),
            Phase::Open { .. }
        ));
        let t = t0 + Duration::from_secs(5);
        assert_eq!(b.advance(&p, Observed::default(), true, t), Phase::HalfOpen);
        assert_eq!(b.advance(&p, ok(1), true, t), Phase::Closed);
    }

    #[test]
    fn repeated_trips_back_off_up_to_the_cap() {
        let mut t = Instant::now();
        let p = policy();
        let mut b = Breaker::new(t);
        let mut open_times = Vec::new();
        for _ in 0..6 {
            let Phase::Open { until } = b.advance(&p, tripped(), true, t) else {
                panic!("not open");
            };
            open_times.push((until - t).as_secs());
            t = until;
            assert_eq!(b.advance(&p, Observed::default(), true, t), Phase::HalfOpen);
            // The trial fails: the worker trips it again.
        }
        assert_eq!(open_times, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn a_long_rest_forgets_past_trips() {
        let mut t = Instant::now();
        let p = policy();
        let mut b = Breaker::new(t);
        b.advance(&p, tripped(), true, t);
        t += Duration::from_secs(5);
        b.advance(&p, Observed::default(), true, t);
        assert_eq!(b.advance(&p, ok(1), true, t), Phase::Closed);
        assert_eq!(b.trips(), 1);
        t += Duration::from_secs(61);
        b.advance(&p, ok(1), true, t);
        assert_eq!(b.trips(), 0);
        let Phase::Open { until } = b.advance(&p, tripped(), true, t) else {
            panic!("not open");
        };
        assert_eq!(until - t, Duration::from_secs(5));
    }

    #[test]
    fn a_failure_ratio_opens_only_with_enough_requests() {
        let t0 = Instant::now();
        let p = policy();
        let mut b = Breaker::new(t0);
        let seen = |ok, failed| Observed {
            ok,
            failed,
            tripped: false,
        };
        // 10 of 19 failed: below the minimum count.
        assert_eq!(b.advance(&p, seen(9, 10), true, t0), Phase::Closed);
        // One more failure: 11 of 20.
        assert!(matches!(
            b.advance(&p, seen(0, 1), true, t0),
            Phase::Open { .. }
        ));
        // The cap on ejections holds a ratio back.
        let mut capped = Breaker::new(t0);
        assert_eq!(capped.advance(&p, seen(10, 30), false, t0), Phase::Closed);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let p = policy();
        let mut b = Breaker::new(t0);
        let failed = |n| Observed {
            ok: 0,
            failed: n,
            tripped: false,
        };
        assert_eq!(b.advance(&p, failed(15), true, t0), Phase::Closed);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.advance(&p, failed(15), true, later), Phase::Closed);
        assert!(matches!(
            b.advance(&p, failed(5), true, later),
            Phase::Open { .. }
        ));
    }
}
