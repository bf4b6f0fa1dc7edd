//! Drawing an eligible backend at random, with chance proportional to its
//! effective weight — the building block of `random`, `power-of-two` and
//! `peak-ewma`.
//!
//! The obvious way (sum the weights, draw below the sum, walk) reads every
//! backend on every pick: fine for 3 backends, 10 µs for 4096. Rejection
//! sampling (draw uniformly, keep with chance `weight / max_weight`) reads
//! one or two, but its keep-or-retry branch is a coin toss the CPU cannot
//! predict: with weights 1:2:3 it cost about 20 ns a draw, six times the
//! draw itself (measured in `benches/balance.rs`).
//!
//! So each worker keeps an [`AliasTable`] over the backends' *tracked
//! weights* — the effective weight, or 0 while a backend is not eligible —
//! and draws from it in O(1) without a data-dependent branch. Weights and
//! states change under us (health checks, the breaker, dynamic weighting,
//! other cores), so the table is checked as it is used: every drawn
//! backend is compared with what the table was built from, and so is one
//! more backend per pick in rotation, so any change is seen within n picks
//! and usually at once. A mismatch rebuilds the table (O(n), reusing its
//! buffers) — rare, since states and weights change seconds apart, not
//! per request.
//!
//! When the table cannot answer (a rebuild just happened, every draw hit
//! the excluded backend, nothing was eligible when it was built) the exact
//! linear walk decides. Both paths draw in proportion to weight, so mixing
//! them does not skew the distribution.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::alias_table::AliasTable;
use super::rng::WorkerRng;
use crate::state::backend::Backend;

/// Draws before the exact walk. A draw only fails by hitting the excluded
/// backend (second of a pair), which happens with chance `w_excluded / W`.
const DRAWS: usize = 4;

/// The weight a backend should be drawn with now: 0 while ineligible.
#[inline]
fn tracked_weight(backend: &Backend) -> u32 {
    if backend.is_eligible() {
        backend.effective_weight()
    } else {
        0
    }
}

/// How a draw from the table went.
enum Draw {
    /// A backend whose state and weight match the table.
    Chosen(usize),
    /// The drawn backend changed since the table was built.
    Stale,
    /// The table holds no weight at all.
    Empty,
    /// Every draw hit the excluded backend.
    OnlyExcluded,
}

/// Per-worker weighted sampler.
#[derive(Debug)]
pub struct WeightedSampler {
    rng: WorkerRng,
    table: RefCell<AliasTable>,
    /// The tracked weight of each backend when `table` was built.
    built_from: RefCell<Vec<u32>>,
    /// The backend whose tracked weight the next pick re-checks.
    audit_cursor: Cell<usize>,
}

impl WeightedSampler {
    /// A sampler for `backends`, drawing from a generator seeded with `seed`.
    pub fn new(backends: &[Arc<Backend>], seed: u64) -> Self {
        let sampler = Self {
            rng: WorkerRng::new(seed),
            table: RefCell::new(AliasTable::default()),
            built_from: RefCell::new(Vec::with_capacity(backends.len())),
            audit_cursor: Cell::new(0),
        };
        sampler.rebuild(backends);
        sampler
    }

    /// One eligible backend other than `exclude`, chosen with chance
    /// proportional to effective weight; `None` if there is none.
    #[inline]
    pub fn pick(&self, backends: &[Arc<Backend>], exclude: Option<usize>) -> Option<usize> {
        if !self.audit_one(backends) {
            self.rebuild(backends);
        }
        match self.draw(backends, exclude) {
            Draw::Chosen(i) => Some(i),
            Draw::Stale => {
                self.rebuild(backends);
                self.pick_by_walking(backends, exclude)
            }
            Draw::Empty => {
                let chosen = self.pick_by_walking(backends, exclude);
                if chosen.is_some() {
                    // Something came up since the table was built.
                    self.rebuild(backends);
                }
                chosen
            }
            Draw::OnlyExcluded => self.pick_by_walking(backends, exclude),
        }
    }

    /// Draw from the table, checking the drawn backend against it.
    #[inline]
    fn draw(&self, backends: &[Arc<Backend>], exclude: Option<usize>) -> Draw {
        let table = self.table.borrow();
        let built_from = self.built_from.borrow();
        for _ in 0..DRAWS {
            let (column, spare) = self.rng.index_and_spare(table.len());
            let Some(i) = table.draw(column, spare) else {
                return Draw::Empty;
            };
            if Some(i) == exclude {
                continue;
            }
            return match (backends.get(i), built_from.get(i)) {
                (Some(backend), Some(&expected)) if tracked_weight(backend) == expected => {
                    Draw::Chosen(i)
                }
                _ => Draw::Stale,
            };
        }
        Draw::OnlyExcluded
    }

    /// Two distinct eligible backends drawn by weight (the second drawn
    /// from the rest), or one when only one is eligible.
    #[inline]
    pub fn pick_pair(&self, backends: &[Arc<Backend>]) -> Option<(usize, Option<usize>)> {
        let first = self.pick(backends, None)?;
        if let [a, b] = backends {
            // Two backends: the other one is the whole "rest", and drawing
            // for it would mostly hit `first` again and retry.
            let (other, index) = if first == 0 { (b, 1) } else { (a, 0) };
            return Some((first, other.is_eligible().then_some(index)));
        }
        Some((first, self.pick(backends, Some(first))))
    }

    /// Re-check one backend (in rotation) against the table; false if the
    /// table is out of date.
    #[inline]
    fn audit_one(&self, backends: &[Arc<Backend>]) -> bool {
        let built_from = self.built_from.borrow();
        if built_from.len() != backends.len() {
            return false;
        }
        let Some(backend) = backends.get(self.audit_cursor.get()) else {
            // Empty pool, or the cursor outlived a shorter pool.
            self.audit_cursor.set(0);
            return true;
        };
        let i = self.audit_cursor.get();
        self.audit_cursor
            .set(if i + 1 >= backends.len() { 0 } else { i + 1 });
        tracked_weight(backend) == built_from[i]
    }

    #[cold]
    fn rebuild(&self, backends: &[Arc<Backend>]) {
        let mut built_from = self.built_from.borrow_mut();
        built_from.clear();
        built_from.extend(backends.iter().map(|b| tracked_weight(b)));
        self.table.borrow_mut().rebuild(built_from.iter().copied());
    }

    /// The exact draw: total the eligible weights, draw below the total,
    /// walk to it.
    #[cold]
    fn pick_by_walking(&self, backends: &[Arc<Backend>], exclude: Option<usize>) -> Option<usize> {
        let total: u64 = backends
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != exclude)
            .map(|(_, b)| u64::from(tracked_weight(b)))
            .sum();
        if total == 0 {
            return None;
        }
        let mut target = self.rng.below(total);
        let mut last_eligible = None;
        for (i, backend) in backends.iter().enumerate() {
            if Some(i) == exclude {
                continue;
            }
            let weight = u64::from(tracked_weight(backend));
            if weight == 0 {
                continue;
            }
            if target < weight {
                return Some(i);
            }
            target -= weight;
            last_eligible = Some(i);
        }
        // Another core lowered a weight between the two passes; any
        // eligible backend is a fine answer to a race that rare.
        last_eligible
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{pool, shares};
    use crate::state::backend::BackendState;

    #[test]
    fn draws_follow_weights() {
        let backends = pool(&[1, 2, 3]);
        let sampler = WeightedSampler::new(&backends, 1);
        let got = shares(3, 100_000, || sampler.pick(&backends, None));
        for (share, want) in got.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((share - want).abs() < 0.01, "{got:?}");
        }
    }

    #[test]
    fn exclusion_is_respected_and_still_weighted() {
        let backends = pool(&[1, 2, 3]);
        let sampler = WeightedSampler::new(&backends, 2);
        let got = shares(3, 100_000, || sampler.pick(&backends, Some(1)));
        assert_eq!(got[1], 0.0);
        assert!((got[0] - 0.25).abs() < 0.01, "{got:?}");
        assert!((got[2] - 0.75).abs() < 0.01, "{got:?}");
    }

    #[test]
    fn pairs_are_distinct() {
        let backends = pool(&[1, 5, 1, 1]);
        let sampler = WeightedSampler::new(&backends, 3);
        for _ in 0..10_000 {
            let (a, b) = sampler.pick_pair(&backends).unwrap();
            assert_ne!(Some(a), b);
            assert!(b.is_some());
        }
        let single = pool(&[4]);
        let sampler = WeightedSampler::new(&single, 3);
        assert_eq!(sampler.pick_pair(&single), Some((0, None)));
    }

    #[test]
    fn follows_state_and_weight_changes() {
        let backends = pool(&[1, 1, 1, 100]);
        let sampler = WeightedSampler::new(&backends, 4);
        backends[3].set_state(BackendState::Down);
        let got = shares(4, 30_000, || sampler.pick(&backends, None));
        assert_eq!(got[3], 0.0);
        for share in &got[..3] {
            assert!((share - 1.0 / 3.0).abs() < 0.02, "{got:?}");
        }
        backends[0].set_effective_weight(7);
        let got = shares(4, 30_000, || sampler.pick(&backends, None));
        assert!((got[0] - 7.0 / 9.0).abs() < 0.02, "{got:?}");
        // A light backend coming back is noticed within n picks even if
        // no draw lands on it.
        backends[3].set_state(BackendState::Up);
        for _ in 0..backends.len() {
            sampler.pick(&backends, None);
        }
        assert_eq!(sampler.built_from.borrow()[3], 100);
    }

    #[test]
    fn a_longer_or_shorter_pool_is_handled() {
        let backends = pool(&[1, 2, 3]);
        let sampler = WeightedSampler::new(&backends[..1], 6);
        let got = shares(3, 30_000, || sampler.pick(&backends, None));
        assert!((got[2] - 0.5).abs() < 0.02, "{got:?}");
        assert_eq!(sampler.pick(&backends[..1], None), Some(0));
    }

    #[test]
    fn nothing_eligible_gives_none() {
        let backends = pool(&[1, 2]);
        let sampler = WeightedSampler::new(&backends, 5);
        assert_eq!(sampler.pick(&[], None), None);
        assert_eq!(sampler.pick(&backends[..1], Some(0)), None);
        for b in &backends {
            b.set_state(BackendState::Down);
        }
        assert_eq!(sampler.pick(&backends, None), None);
        assert_eq!(sampler.pick_pair(&backends), None);
    }
}
