//! Peak EWMA (Finagle, Linkerd): latency-aware power of two choices.
//!
//! Each backend's cost is its latency EWMA times the requests it would have
//! in flight with this one (`inflight + 1`), divided by its weight: the
//! expected wait if we queued behind what it is already doing. Draw two
//! distinct eligible backends by weight and send to the cheaper.
//!
//! The EWMA in [`Backend::observe_latency`] is peak-sensitive — one slow
//! response raises it at once, fast ones bring it down slowly — so a
//! backend that turns slow is avoided from its next response on, well
//! within a second, while recovery is cautious.
//!
//! A backend with no sample yet (EWMA 0) would cost 0 and win every
//! comparison, and a new backend would get a whole burst before its first
//! answer told us anything. So an unsampled backend borrows the latency of
//! the backend it is compared with: the two are then ranked by load alone,
//! which gets it tried as soon as it is no busier than the other, and stops
//! short of flooding it. Two unsampled backends are ranked by load.
//!
//! Costs are compared by cross-multiplying in `u128`, saturating: no floats,
//! no overflow whatever the EWMA holds.

use std::sync::Arc;

use super::weighted_sample::WeightedSampler;
use super::Balancer;
use crate::state::backend::Backend;

/// Per-worker peak-EWMA state.
#[derive(Debug)]
pub struct PeakEwma {
    sampler: WeightedSampler,
}

impl PeakEwma {
    /// State for `backends`, seeded with `seed`.
    pub fn new(backends: &[Arc<Backend>], seed: u64) -> Self {
        Self {
            sampler: WeightedSampler::new(backends, seed),
        }
    }
}

/// Is `a` no more expensive than `b`?
/// `latency_a × (inflight_a + 1) / weight_a ≤ latency_b × (inflight_b + 1) / weight_b`.
#[inline]
fn no_costlier(a: &Backend, b: &Backend) -> bool {
    let now = crate::state::ewma::now_ns();
    let (mut latency_a, mut latency_b) = (a.latency_at(now), b.latency_at(now));
    // Unsampled: borrow the other's latency so load alone decides.
    if latency_a == 0 {
        latency_a = latency_b;
    }
    if latency_b == 0 {
        latency_b = latency_a;
    }
    // Both unsampled: any equal non-zero latency ranks by load.
    let (latency_a, latency_b) = (latency_a.max(1), latency_b.max(1));
    let cost_a = u128::from(latency_a)
        .saturating_mul(u128::from(a.inflight()) + 1)
        .saturating_mul(u128::from(b.effective_weight()));
    let cost_b = u128::from(latency_b)
        .saturating_mul(u128::from(b.inflight()) + 1)
        .saturating_mul(u128::from(a.effective_weight()));
    cost_a <= cost_b
}

impl Balancer for PeakEwma {
    fn pick(&self, backends: &[Arc<Backend>], _request_hash: u64) -> Option<usize> {
        let (first, second) = self.sampler.pick_pair(backends)?;
        let Some(second) = second else {
            return Some(first);
        };
        if no_costlier(&backends[first], &backends[second]) {
            Some(first)
        } else {
            Some(second)
        }
    }
}

#[cfg(test)]
mod tests {
    /// One update time for every sample in a test, so equal latencies
    /// stay exactly equal while they decay.
    fn stamp() -> u64 {
        static STAMP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *STAMP.get_or_init(crate::state::ewma::now_ns)
    }

    use super::*;
    use crate::balance::test_support::{pool, shares};
    use crate::state::backend::BackendState;

    const MS: u64 = 1_000_000;

    #[test]
    fn steers_away_from_a_slow_backend() {
        let backends = pool(&[1, 1, 1]);
        backends[0].observe_latency_at(MS, stamp());
        backends[1].observe_latency_at(MS, stamp());
        backends[2].observe_latency_at(50 * MS, stamp());
        let ewma = PeakEwma::new(&backends, 31);
        let got = shares(3, 10_000, || ewma.pick(&backends, 0));
        assert_eq!(got[2], 0.0, "{got:?}");
    }

    #[test]
    fn reacts_to_the_first_slow_response() {
        let backends = pool(&[1, 1, 1]);
        for b in &backends {
            b.observe_latency_at(MS, stamp());
        }
        let ewma = PeakEwma::new(&backends, 32);
        let before = shares(3, 10_000, || ewma.pick(&backends, 0));
        assert!((before[2] - 1.0 / 3.0).abs() < 0.02, "{before:?}");
        backends[2].observe_latency_at(200 * MS, stamp());
        let after = shares(3, 1_000, || ewma.pick(&backends, 0));
        assert_eq!(after[2], 0.0, "{after:?}");
    }

    #[test]
    fn latency_is_weighed_against_load() {
        // Fast but 9 deep (1 ms × 10) loses to slow but idle (5 ms × 1).
        let backends = pool(&[1, 1]);
        backends[0].observe_latency_at(MS, stamp());
        backends[1].observe_latency_at(5 * MS, stamp());
        let _queue: Vec<_> = (0..9).map(|_| backends[0].start_request()).collect();
        let ewma = PeakEwma::new(&backends, 33);
        assert_eq!(ewma.pick(&backends, 0), Some(1));
    }

    #[test]
    fn cost_is_divided_by_weight() {
        // Same latency and load, but #0 has 3× the capacity.
        let backends = pool(&[3, 1]);
        backends[0].observe_latency_at(MS, stamp());
        backends[1].observe_latency_at(MS, stamp());
        let _load: Vec<_> = [0, 0, 1]
            .iter()
            .map(|&i| backends[i].start_request())
            .collect();
        let ewma = PeakEwma::new(&backends, 34);
        for _ in 0..100 {
            assert_eq!(ewma.pick(&backends, 0), Some(0));
        }
    }

    #[test]
    fn unsampled_backend_is_tried_but_not_flooded() {
        let backends = pool(&[1, 1, 1]);
        backends[0].observe_latency_at(MS, stamp());
        backends[1].observe_latency_at(MS, stamp());
        let ewma = PeakEwma::new(&backends, 35);
        // Idle and unsampled: as good as anyone, so it gets its share.
        let got = shares(3, 10_000, || ewma.pick(&backends, 0));
        assert!((got[2] - 1.0 / 3.0).abs() < 0.02, "{got:?}");
        // Unsampled but already busier than the others: not chosen.
        let _load: Vec<_> = (0..3).map(|_| backends[2].start_request()).collect();
        let got = shares(3, 1_000, || ewma.pick(&backends, 0));
        assert_eq!(got[2], 0.0, "{got:?}");
    }

    #[test]
    fn huge_latencies_do_not_overflow() {
        let backends = pool(&[10_000, 1]);
        backends[0].observe_latency_at(u64::MAX, stamp());
        backends[1].observe_latency_at(u64::MAX - 1, stamp());
        let _load: Vec<_> = (0..5).map(|_| backends[0].start_request()).collect();
        let ewma = PeakEwma::new(&backends, 36);
        assert!(ewma.pick(&backends, 0).is_some());
    }

    #[test]
    fn skips_ineligible_and_none_when_nothing_is_up() {
        let backends = pool(&[1, 1, 1]);
        backends[1].observe_latency_at(500 * MS, stamp());
        backends[0].set_state(BackendState::Down);
        backends[2].set_state(BackendState::Draining);
        let ewma = PeakEwma::new(&backends, 37);
        for _ in 0..100 {
            assert_eq!(ewma.pick(&backends, 0), Some(1));
        }
        backends[1].set_state(BackendState::Open);
        assert_eq!(ewma.pick(&backends, 0), None);
        assert_eq!(ewma.pick(&[], 0), None);
    }
}
