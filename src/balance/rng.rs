//! The per-worker random number generator the balancers draw from.
//!
//! A worker's balancer is used from one thread only, so its generator lives
//! in a plain `Cell` (no atomics, no lock, no borrow flag). It is
//! `fastrand`'s wyrand, whose whole state is one `u64`: we keep that word in
//! the cell and rebuild the generator around it for each draw, which the
//! compiler reduces to the bare arithmetic.

use std::cell::Cell;

/// A seeded, single-threaded source of random numbers.
#[derive(Debug)]
pub struct WorkerRng {
    state: Cell<u64>,
}

impl WorkerRng {
    /// A generator whose sequence is fixed by `seed` (tests rely on that).
    pub fn new(seed: u64) -> Self {
        Self {
            state: Cell::new(seed),
        }
    }

    /// A uniformly random 64-bit word.
    #[inline]
    pub fn next_u64(&self) -> u64 {
        let mut rng = fastrand::Rng::with_seed(self.state.get());
        let value = rng.u64(..);
        self.state.set(rng.get_seed());
        value
    }

    /// A number in `0..bound`; 0 when `bound` is 0.
    ///
    /// Lemire's multiply-shift instead of a modulo or a rejection loop: one
    /// multiply, no branch, no panic on an empty range. Its bias is at most
    /// `bound / 2^64`, far below anything a load balancer could notice.
    #[inline]
    pub fn below(&self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// An index in `0..len` plus a second, independent uniform 64-bit
    /// value, from a single draw.
    ///
    /// The low half of Lemire's product is the "fractional part" of the
    /// draw: it is spread evenly over `u64` whatever index came out, so it
    /// can decide a second question (rejection sampling's "keep it?")
    /// without another trip through the generator.
    #[inline]
    pub fn index_and_spare(&self, len: usize) -> (usize, u64) {
        let product = u128::from(self.next_u64()) * len as u128;
        ((product >> 64) as usize, product as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let a = WorkerRng::new(42);
        let b = WorkerRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(WorkerRng::new(1).next_u64(), WorkerRng::new(2).next_u64());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = WorkerRng::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            let v = rng.below(5);
            assert!(v < 5);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (1800..2200).contains(&n)), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn spare_is_independent_of_the_index() {
        // For each of 3 indices, the spare's top two bits must be even.
        let rng = WorkerRng::new(9);
        let mut seen = [[0u32; 4]; 3];
        for _ in 0..120_000 {
            let (i, spare) = rng.index_and_spare(3);
            seen[i][(spare >> 62) as usize] += 1;
        }
        for row in seen {
            assert!(
                row.iter().all(|&n| (9_400..10_600).contains(&n)),
                "{seen:?}"
            );
        }
    }
}
