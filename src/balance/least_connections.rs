//! Least connections: send to the backend with the fewest requests in
//! flight (across all cores) per unit of weight.
//!
//! `inflight / weight` is compared by cross-multiplying
//! (`inflight_a × weight_b` vs `inflight_b × weight_a`, both `u32`s, so the
//! products fit a `u64`): exact, no floats.
//!
//! Ties are common — at low load every backend has 0 in flight — so how
//! they are broken decides where light traffic goes. Taking the first
//! would pile it onto backend 0; a rotating start would ignore weights.
//! Instead the tied backends are sampled in one pass with a weighted
//! reservoir of size one: the k-th tied backend replaces the current
//! choice with probability `weight_k / (sum of tied weights so far)`,
//! which leaves each tied backend chosen with chance proportional to its
//! weight.
//!
//! This reads every backend on every pick (O(n)); `power-of-two` gets most
//! of the benefit for a constant cost when pools are large.

use std::sync::Arc;

use super::rng::WorkerRng;
use super::Balancer;
use crate::state::backend::Backend;

/// Per-worker least-connections state: only the tie-breaking generator.
#[derive(Debug)]
pub struct LeastConnections {
    rng: WorkerRng,
}

impl LeastConnections {
    /// State seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: WorkerRng::new(seed),
        }
    }
}

/// The best candidate so far and the total weight of everyone tied with it.
struct Leader {
    index: usize,
    inflight: u64,
    weight: u64,
    tied_weight: u64,
}

impl Balancer for LeastConnections {
    fn pick(&self, backends: &[Arc<Backend>], _request_hash: u64) -> Option<usize> {
        let mut leader: Option<Leader> = None;
        for (index, backend) in backends.iter().enumerate() {
            if !backend.is_eligible() {
                continue;
            }
            let inflight = u64::from(backend.inflight());
            let weight = u64::from(backend.effective_weight());
            let candidate = Leader {
                index,
                inflight,
                weight,
                tied_weight: weight,
            };
            let Some(current) = &mut leader else {
                leader = Some(candidate);
                continue;
            };
            let ours = inflight * current.weight;
            let theirs = current.inflight * weight;
            if ours < theirs {
                *current = candidate;
            } else if ours == theirs {
                current.tied_weight += weight;
                if self.rng.below(current.tied_weight) < weight {
                    current.index = index;
                    current.inflight = inflight;
                    current.weight = weight;
                }
            }
        }
        leader.map(|l| l.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{pool, shares};
    use crate::state::backend::BackendState;

    #[test]
    fn prefers_the_least_loaded() {
        let backends = pool(&[1, 1, 1]);
        let _load: Vec<_> = [0, 0, 2, 2]
            .iter()
            .map(|&i| backends[i].start_request())
            .collect();
        let lc = LeastConnections::new(1);
        for _ in 0..100 {
            assert_eq!(lc.pick(&backends, 0), Some(1));
        }
    }

    #[test]
    fn load_is_divided_by_weight() {
        // 3 in flight on weight 4 (0.75 each) beats 1 in flight on weight 1.
        let backends = pool(&[4, 1]);
        let _load: Vec<_> = [0, 0, 0, 1]
            .iter()
            .map(|&i| backends[i].start_request())
            .collect();
        let lc = LeastConnections::new(2);
        assert_eq!(lc.pick(&backends, 0), Some(0));
        let _one_more = backends[0].start_request();
        // Now 4/4 vs 1/1: a tie, which both sides must win sometimes.
        let got = shares(2, 10_000, || lc.pick(&backends, 0));
        assert!((got[0] - 0.8).abs() < 0.02, "{got:?}");
    }

    #[test]
    fn ties_spread_evenly_and_by_weight() {
        let backends = pool(&[1, 1, 1, 1]);
        let lc = LeastConnections::new(3);
        let got = shares(4, 100_000, || lc.pick(&backends, 0));
        for share in &got {
            assert!((share - 0.25).abs() < 0.01, "{got:?}");
        }
        let weighted = pool(&[1, 2, 3]);
        let got = shares(3, 100_000, || lc.pick(&weighted, 0));
        for (share, want) in got.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((share - want).abs() < 0.02, "{got:?}");
        }
    }

    #[test]
    fn keeps_load_even_as_requests_pile_up() {
        let backends = pool(&[1, 1, 1]);
        let lc = LeastConnections::new(4);
        let guards: Vec<_> = (0..30)
            .filter_map(|_| lc.pick(&backends, 0))
            .map(|i| backends[i].start_request())
            .collect();
        assert_eq!(guards.len(), 30);
        assert!(backends.iter().all(|b| b.inflight() == 10));
    }

    #[test]
    fn skips_ineligible_and_none_when_nothing_is_up() {
        let backends = pool(&[1, 1, 1]);
        let _busy = backends[1].start_request();
        backends[0].set_state(BackendState::Down);
        backends[2].set_state(BackendState::Draining);
        let lc = LeastConnections::new(5);
        assert_eq!(lc.pick(&backends, 0), Some(1));
        backends[1].set_state(BackendState::Open);
        assert_eq!(lc.pick(&backends, 0), None);
        assert_eq!(lc.pick(&[], 0), None);
    }
}
