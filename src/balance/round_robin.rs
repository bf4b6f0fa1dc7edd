//! Smooth weighted round-robin, as nginx does it.
//!
//! Each pick adds every eligible backend's weight to its running score,
//! takes the highest score, and subtracts the total weight from the winner.
//! With weights 5,1,1 this yields a,a,b,a,c,a,a: the heavy backend gets its
//! share spread out instead of in a burst. With equal weights it is plain
//! rotation, so that case skips the scores and just moves a cursor.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::Balancer;
use crate::backend::Backend;

/// Per-worker smooth weighted round-robin state.
pub struct RoundRobin {
    /// Next index to try when all weights are equal.
    cursor: Cell<usize>,
    /// Running score per backend (nginx's `current_weight`).
    scores: RefCell<Vec<i64>>,
}

impl RoundRobin {
    /// State for a pool of `backends`.
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        Self {
            cursor: Cell::new(0),
            scores: RefCell::new(vec![0; backends.len()]),
        }
    }

    fn pick_rotating(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let n = backends.len();
        let start = self.cursor.get();
        for step in 0..n {
            let i = (start + step) % n;
            if backends[i].is_eligible() {
                self.cursor.set((i + 1) % n);
                return Some(i);
            }
        }
        None
    }

    fn pick_smooth(&self, backends: &[Arc<Backend>]) -> Option<usize> {
        let mut scores = self.scores.borrow_mut();
        scores.resize(backends.len(), 0);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, b) in backends.iter().enumerate() {
            if !b.is_eligible() {
                continue;
            }
            let w = i64::from(b.effective_weight());
            scores[i] += w;
            total += w;
            if best.is_none_or(|j| scores[i] > scores[j]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        scores[chosen] -= total;
        Some(chosen)
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, backends: &[Arc<Backend>], _request_hash: u64) -> Option<usize> {
        let first = backends.first()?.effective_weight();
        if backends.iter().all(|b| b.effective_weight() == first) {
            self.pick_rotating(backends)
        } else {
            self.pick_smooth(backends)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendState;

    fn pool(weights: &[u32]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
                Arc::new(Backend::new(addr, format!("b{i}"), w))
            })
            .collect()
    }

    fn sequence(rr: &RoundRobin, backends: &[Arc<Backend>], n: usize) -> String {
        (0..n)
            .map(|_| (b'a' + rr.pick(backends, 0).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn weights_5_1_1_follow_nginx_order() {
        let backends = pool(&[5, 1, 1]);
        let rr = RoundRobin::new(&backends);
        assert_eq!(sequence(&rr, &backends, 14), "aabacaaaabacaa");
    }

    #[test]
    fn equal_weights_rotate() {
        let backends = pool(&[1, 1, 1]);
        let rr = RoundRobin::new(&backends);
        assert_eq!(sequence(&rr, &backends, 7), "abcabca");
    }

    #[test]
    fn skips_ineligible_backends() {
        let backends = pool(&[1, 1, 1]);
        backends[1].set_state(BackendState::Down);
        let rr = RoundRobin::new(&backends);
        assert_eq!(sequence(&rr, &backends, 4), "acac");
        let weighted = pool(&[3, 1, 1]);
        weighted[0].set_state(BackendState::Open);
        let rr = RoundRobin::new(&weighted);
        assert_eq!(sequence(&rr, &weighted, 4), "bcbc");
    }

    #[test]
    fn nothing_eligible_gives_none() {
        let backends = pool(&[1, 2]);
        for b in &backends {
            b.set_state(BackendState::Down);
        }
        let rr = RoundRobin::new(&backends);
        assert_eq!(rr.pick(&backends, 0), None);
        assert_eq!(rr.pick(&[], 0), None);
    }
}
