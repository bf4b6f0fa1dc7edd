//! Weighted random: each request goes to an eligible backend drawn with
//! chance proportional to its effective weight.
//!
//! Stateless apart from the worker's generator, so it needs no
//! coordination between cores at all; over many requests it converges on
//! the same shares as weighted round-robin. Unlike round-robin, short runs
//! are uneven (a backend can get several requests in a row), which is the
//! price of having no sequence to keep in step.

use std::sync::Arc;

use super::weighted_sample::WeightedSampler;
use super::Balancer;
use crate::state::backend::Backend;

/// Per-worker weighted random state.
#[derive(Debug)]
pub struct Random {
    sampler: WeightedSampler,
}

impl Random {
    /// State for `backends`, seeded with `seed`.
    pub fn new(backends: &[Arc<Backend>], seed: u64) -> Self {
        Self {
            sampler: WeightedSampler::new(backends, seed),
        }
    }
}

impl Balancer for Random {
    fn pick(&self, backends: &[Arc<Backend>], _request_hash: u64) -> Option<usize> {
        self.sampler.pick(backends, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{pool, shares};
    use crate::state::backend::BackendState;

    #[test]
    fn shares_follow_weights_1_2_3() {
        let backends = pool(&[1, 2, 3]);
        let random = Random::new(&backends, 11);
        let got = shares(3, 100_000, || random.pick(&backends, 0));
        for (share, want) in got.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((share - want).abs() < 0.02, "{got:?}");
        }
    }

    #[test]
    fn same_seed_same_choices() {
        let backends = pool(&[1, 2, 3]);
        let a = Random::new(&backends, 5);
        let b = Random::new(&backends, 5);
        for _ in 0..1000 {
            assert_eq!(a.pick(&backends, 0), b.pick(&backends, 0));
        }
    }

    #[test]
    fn skips_ineligible_and_none_when_nothing_is_up() {
        let backends = pool(&[5, 1, 5]);
        backends[0].set_state(BackendState::Down);
        backends[2].set_state(BackendState::Open);
        let random = Random::new(&backends, 12);
        for _ in 0..1000 {
            assert_eq!(random.pick(&backends, 0), Some(1));
        }
        backends[1].set_state(BackendState::Draining);
        assert_eq!(random.pick(&backends, 0), None);
        assert_eq!(random.pick(&[], 0), None);
    }
}
