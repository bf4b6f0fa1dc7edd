//! Power of two choices: draw two distinct eligible backends at random
//! (by weight) and send to the one with fewer requests in flight per unit
//! of weight.
//!
//! Two reads instead of n, yet the worst backend's load stays within
//! O(log log n) of the mean instead of the O(log n / log log n) of one
//! random draw (Mitzenmacher). The pair must be distinct: drawing the same
//! backend twice is a wasted comparison, and with two backends it would
//! send a share of requests to the busier one for no reason.
//!
//! When the two are equally loaded (always, when idle) the first draw
//! wins; since it was drawn by weight, light traffic follows the weights.

use std::sync::Arc;

use super::weighted_sample::WeightedSampler;
use super::Balancer;
use crate::state::backend::Backend;

/// Per-worker power-of-two-choices state.
#[derive(Debug)]
pub struct PowerOfTwo {
    sampler: WeightedSampler,
}

impl PowerOfTwo {
    /// State for `backends`, seeded with `seed`.
    pub fn new(backends: &[Arc<Backend>], seed: u64) -> Self {
        Self {
            sampler: WeightedSampler::new(backends, seed),
        }
    }
}

/// Is `a` at least as good as `b`: `inflight_a / weight_a ≤ inflight_b / weight_b`?
#[inline]
fn no_busier(a: &Backend, b: &Backend) -> bool {
    u64::from(a.inflight()) * u64::from(b.effective_weight())
        <= u64::from(b.inflight()) * u64::from(a.effective_weight())
}

impl Balancer for PowerOfTwo {
    fn pick(&self, backends: &[Arc<Backend>], _request_hash: u64) -> Option<usize> {
        let (first, second) = self.sampler.pick_pair(backends)?;
        let Some(second) = second else {
            return Some(first);
        };
        if no_busier(&backends[first], &backends[second]) {
            Some(first)
        } else {
            Some(second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{pool, shares};
    use crate::state::backend::BackendState;

    #[test]
    fn idle_shares_follow_weights_1_2_3() {
        let backends = pool(&[1, 2, 3]);
        let p2c = PowerOfTwo::new(&backends, 21);
        let got = shares(3, 100_000, || p2c.pick(&backends, 0));
        for (share, want) in got.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((share - want).abs() < 0.02, "{got:?}");
        }
    }

    #[test]
    fn never_picks_the_busiest_of_three() {
        // Every pair contains a less loaded backend than #0, so with
        // distinct pairs #0 can never win.
        let backends = pool(&[1, 1, 1]);
        let _load: Vec<_> = (0..5).map(|_| backends[0].start_request()).collect();
        let _one = backends[1].start_request();
        let p2c = PowerOfTwo::new(&backends, 22);
        let got = shares(3, 10_000, || p2c.pick(&backends, 0));
        assert_eq!(got[0], 0.0, "{got:?}");
        // #1 (one in flight) only wins against #0; #2 (idle) wins the rest.
        assert!((got[1] - 1.0 / 3.0).abs() < 0.02, "{got:?}");
    }

    #[test]
    fn two_backends_always_compare_both() {
        let backends = pool(&[1, 1]);
        let _busy = backends[1].start_request();
        let p2c = PowerOfTwo::new(&backends, 23);
        for _ in 0..1000 {
            assert_eq!(p2c.pick(&backends, 0), Some(0));
        }
    }

    #[test]
    fn load_is_divided_by_weight() {
        // 2 in flight on weight 4 (0.5 each) beats 1 in flight on weight 1.
        let backends = pool(&[4, 1]);
        let _load: Vec<_> = [0, 0, 1]
            .iter()
            .map(|&i| backends[i].start_request())
            .collect();
        let p2c = PowerOfTwo::new(&backends, 24);
        for _ in 0..1000 {
            assert_eq!(p2c.pick(&backends, 0), Some(0));
        }
    }

    #[test]
    fn held_requests_stay_balanced() {
        let backends = pool(&[1; 8]);
        let p2c = PowerOfTwo::new(&backends, 25);
        let _guards: Vec<_> = (0..800)
            .filter_map(|_| p2c.pick(&backends, 0))
            .map(|i| backends[i].start_request())
            .collect();
        let loads: Vec<u32> = backends.iter().map(|b| b.inflight()).collect();
        let spread = loads.iter().max().unwrap() - loads.iter().min().unwrap();
        assert!(spread <= 4, "{loads:?}");
    }

    #[test]
    fn skips_ineligible_and_none_when_nothing_is_up() {
        let backends = pool(&[1, 1, 1]);
        let _busy: Vec<_> = (0..3).map(|_| backends[1].start_request()).collect();
        backends[0].set_state(BackendState::Down);
        backends[2].set_state(BackendState::Open);
        let p2c = PowerOfTwo::new(&backends, 26);
        for _ in 0..100 {
            assert_eq!(p2c.pick(&backends, 0), Some(1));
        }
        backends[1].set_state(BackendState::Draining);
        assert_eq!(p2c.pick(&backends, 0), None);
        assert_eq!(p2c.pick(&[], 0), None);
    }
}
