//! How many retries a worker may send: a share of its recent requests,
//! plus a small allowance, so that when every backend fails the retries
//! add at most that share to the load instead of multiplying it (Envoy's
//! retry budget; per worker here, so it needs no shared counter).
//!
//! Pure apart from `Cell`s: the caller passes the time.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The window requests and retries are counted over.
const WINDOW: Duration = Duration::from_secs(1);

/// Retries a worker may always send per window, however few its requests.
pub const MIN_RETRIES_PER_WINDOW: u64 = 3;

/// One worker's retry budget.
#[derive(Debug)]
pub struct RetryBudget {
    window_start: Cell<Instant>,
    /// Requests and retries in the current window.
    requests: Cell<u64>,
    retries: Cell<u64>,
    /// Requests of the window before, so a new window does not start empty.
    previous_requests: Cell<u64>,
}

impl RetryBudget {
    /// An empty budget.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: Cell::new(now),
            requests: Cell::new(0),
            retries: Cell::new(0),
            previous_requests: Cell::new(0),
        }
    }

    /// Count one request (not a retry).
    #[inline]
    pub fn on_request(&self) {
        self.requests.set(self.requests.get() + 1);
    }

    /// May a retry be sent now, at `ratio` retries per request (0.2 for
    /// 20 %)? If so it is counted.
    pub fn try_retry(&self, ratio: f64, now: Instant) -> bool {
        self.roll(now);
        let recent = self.requests.get().max(self.previous_requests.get());
        let allowed = MIN_RETRIES_PER_WINDOW + (ratio * recent as f64) as u64;
        if self.retries.get() >= allowed {
            return false;
        }
        self.retries.set(self.retries.get() + 1);
        true
    }

    fn roll(&self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start.get());
        if elapsed < WINDOW {
            return;
        }
        let previous = if elapsed < 2 * WINDOW {
            self.requests.get()
        } else {
            // Only a retry rolls the window: after a stretch without one,
            // `requests` counts all of `elapsed`. One window's share of it
            // is the recent rate; dropping it (as this did) left the first
            // retries after a quiet stretch only the minimum, and under
            // load a backend's first burst of 503s went to clients.
            let share = u128::from(self.requests.get()) * WINDOW.as_nanos() / elapsed.as_nanos();
            u64::try_from(share).unwrap_or(u64::MAX)
        };
        self.previous_requests.set(previous);
        self.requests.set(0);
        self.retries.set(0);
        self.window_start.set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_share_of_requests() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..100 {
            b.on_request();
        }
        let granted = (0..100).filter(|_| b.try_retry(0.2, t0)).count();
        assert_eq!(granted as u64, MIN_RETRIES_PER_WINDOW + 20);
    }

    #[test]
    fn a_quiet_worker_still_gets_the_minimum() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        b.on_request();
        let granted = (0..10).filter(|_| b.try_retry(0.2, t0)).count();
        assert_eq!(granted as u64, MIN_RETRIES_PER_WINDOW);
    }

    #[test]
    fn a_new_window_starts_from_the_last_ones_rate() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..100 {
            b.on_request();
        }
        let t1 = t0 + Duration::from_millis(1100);
        let granted = (0..100).filter(|_| b.try_retry(0.2, t1)).count();
        assert_eq!(granted as u64, MIN_RETRIES_PER_WINDOW + 20);
        // After a long silence, only the minimum.
        let t2 = t1 + Duration::from_secs(5);
        let granted = (0..100).filter(|_| b.try_retry(0.2, t2)).count();
        assert_eq!(granted as u64, MIN_RETRIES_PER_WINDOW);
    }

    #[test]
    fn steady_requests_without_retries_still_count_after_a_long_window() {
        // 1 000 requests a second for 5 s and no retry: nothing rolled
        // the window. A burst of retries then (a backend starting to
        // answer 503) gets a fifth of one second's requests.
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..5_000 {
            b.on_request();
        }
        let t1 = t0 + Duration::from_secs(5);
        let granted = (0..1_000).filter(|_| b.try_retry(0.2, t1)).count();
        assert_eq!(granted as u64, MIN_RETRIES_PER_WINDOW + 200);
    }
}
