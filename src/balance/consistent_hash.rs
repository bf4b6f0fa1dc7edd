//! Consistent hashing with Maglev (Eisenbud et al., NSDI 2016).
//!
//! Each backend gets a pseudo-random permutation of the slots of a lookup
//! table (its own `offset` and `skip`, from hashing its name); the backends
//! take turns claiming their next still-free slot until the table is full.
//! A request goes to `table[hash]`. Because the permutations depend only on
//! the backends' names, removing one of N backends frees only its own slots
//! (about 1/N of the keys move) plus a little churn where turns shift, and
//! every worker and every process builds the same table.
//!
//! Weights: a backend claims a slot in a turn only once it has earned
//! `max_weight` credit, earning its own weight per turn, so it ends with a
//! share of slots proportional to its weight. Everyone claims in the first
//! turn, so even a very light backend owns at least one slot.
//!
//! The table size is a prime (so every `skip` walks all slots) of at least
//! 100 slots per backend, keeping each backend's share within about 1% of
//! its ideal. The weights and names are read when the table is built; a
//! changed weight takes effect when the worker rebuilds its balancers.
//!
//! An ineligible backend keeps its slots (so its keys come back when it
//! does); its requests walk on to the next slots until one belongs to an
//! eligible backend. That spreads them over the others in proportion to
//! their shares, deterministically, and moves no other key.

use std::sync::Arc;

use super::stable_hash::{hash_bytes, mix64};
use super::Balancer;
use crate::state::backend::Backend;

/// Smallest table: a prime, comfortably above 100 × any small pool.
const MIN_TABLE_SIZE: u64 = 65_537;
/// Slots per backend at least, for even shares.
const SLOTS_PER_BACKEND: u64 = 100;
/// Slots to walk past ineligible backends before the last-resort search.
/// With a tenth of the slots eligible, 64 all fail about once in 800.
const WALK_LIMIT: usize = 64;
/// Fixed seeds of the independent hashes of a backend's name.
const OFFSET_SEED: u64 = 0x6f66_6673_6574;
const SKIP_SEED: u64 = 0x736b_6970;
const IDENTITY_SEED: u64 = 0x6964_656e_7469_7479;

/// A table slot not claimed yet (only during the build).
const UNCLAIMED: u32 = u32::MAX;

/// A worker's Maglev table for one pool.
#[derive(Debug)]
pub struct ConsistentHash {
    /// Slot → index into the backends slice.
    table: Box<[u32]>,
    /// A stable hash of each backend's name, for the last-resort search.
    identities: Box<[u64]>,
}

impl ConsistentHash {
    /// Build the table for `backends`, weighted by their effective weights.
    ///
    /// Costs O(M log M) for a table of M slots: a few milliseconds for
    /// 65 537 slots, once per worker per reload.
    pub fn new(backends: &[Arc<Backend>]) -> Self {
        let identities: Box<[u64]> = backends
            .iter()
            .map(|b| hash_bytes(IDENTITY_SEED, b.name.as_bytes()))
            .collect();
        let table = populate(backends, &identities);
        Self { table, identities }
    }

    /// The table slot a request hash maps to.
    #[inline]
    fn slot_of(&self, request_hash: u64) -> usize {
        // Multiply-shift instead of `%`: same spread for a mixed hash,
        // without a 64-bit division on every request.
        ((u128::from(request_hash) * self.table.len() as u128) >> 64) as usize
    }

    /// When the walk found only ineligible backends: the eligible backend
    /// with the highest `mix(hash, identity)` (rendezvous hashing).
    /// Deterministic and consistent, but unweighted and O(n): it only runs
    /// when almost every slot belongs to a backend that is down.
    #[cold]
    fn highest_random_weight(&self, backends: &[Arc<Backend>], request_hash: u64) -> Option<usize> {
        backends
            .iter()
            .zip(self.identities.iter())
            .enumerate()
            .filter(|(_, (backend, _))| backend.is_eligible())
            .max_by_key(|(_, (_, &identity))| mix64(request_hash ^ identity))
            .map(|(i, _)| i)
    }
}

impl Balancer for ConsistentHash {
    fn pick(&self, backends: &[Arc<Backend>], request_hash: u64) -> Option<usize> {
        let size = self.table.len();
        let mut slot = self.slot_of(request_hash);
        for _ in 0..WALK_LIMIT.min(size) {
            let index = self.table[slot] as usize;
            if backends.get(index).is_some_and(|b| b.is_eligible()) {
                return Some(index);
            }
            slot += 1;
            if slot == size {
                slot = 0;
            }
        }
        self.highest_random_weight(backends, request_hash)
    }
}

/// The smallest prime ≥ max(65 537, 100 × backends).
fn table_size(backends: usize) -> u64 {
    let mut size = MIN_TABLE_SIZE.max(SLOTS_PER_BACKEND.saturating_mul(backends as u64));
    while !is_prime(size) {
        size += 1;
    }
    size
}

/// Trial division: at most a few thousand steps for any table we build.
fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// One backend's walk through the table while it is being filled.
struct Claimant {
    index: u32,
    weight: u64,
    credit: u64,
    next_slot: u64,
    skip: u64,
}

/// Fill the table: backends take turns claiming their next free slot.
fn populate(backends: &[Arc<Backend>], identities: &[u64]) -> Box<[u32]> {
    if backends.is_empty() {
        return Box::new([]);
    }
    let size = table_size(backends.len());
    let max_weight = backends
        .iter()
        .map(|b| u64::from(b.effective_weight()))
        .max()
        .unwrap_or(1);
    let mut claimants: Vec<Claimant> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let name = b.name.as_bytes();
            let weight = u64::from(b.effective_weight());
            Claimant {
                // A pool of 4 billion backends does not fit in memory.
                index: i as u32,
                weight,
                // Start one claim's worth short so that every backend
                // claims in the first turn.
                credit: max_weight - weight,
                next_slot: hash_bytes(OFFSET_SEED, name) % size,
                skip: hash_bytes(SKIP_SEED, name) % (size - 1) + 1,
            }
        })
        .collect();
    // Turn order by name hash, not config order: the same backends listed
    // in another order must give the same table.
    claimants.sort_by_key(|c| (identities[c.index as usize], c.index));

    let mut table = vec![UNCLAIMED; size as usize].into_boxed_slice();
    // Probing looks at "is this slot taken?" about M·ln M times, at random
    // places. A bit per slot keeps those probes in cache (8 KiB for 65 537
    // slots, 50 KiB for 409 609) where the table itself (4 bytes a slot)
    // would miss: this makes the build several times faster.
    let mut taken = vec![0u64; (size as usize).div_ceil(64)];
    let mut filled = 0u64;
    loop {
        for claimant in &mut claimants {
            claimant.credit += claimant.weight;
            if claimant.credit < max_weight {
                continue;
            }
            claimant.credit -= max_weight;
            // The permutation visits every slot, and one is still free.
            loop {
                let slot = claimant.next_slot as usize;
                // `next_slot + skip < 2 × size`: one subtraction replaces a
                // division on the build's hottest line.
                claimant.next_slot += claimant.skip;
                if claimant.next_slot >= size {
                    claimant.next_slot -= size;
                }
                let (word, bit) = (slot / 64, 1u64 << (slot % 64));
                if taken[word] & bit == 0 {
                    taken[word] |= bit;
                    table[slot] = claimant.index;
                    break;
                }
            }
            filled += 1;
            if filled == size {
                return table;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::{named_pool, pool, shares};
    use crate::state::backend::BackendState;

    const KEYS: u64 = 100_000;

    fn key_hash(key: u64) -> u64 {
        hash_bytes(0, format!("key-{key}").as_bytes())
    }

    /// For each key, the name of the backend it maps to.
    fn mapping(backends: &[Arc<Backend>]) -> Vec<String> {
        let ch = ConsistentHash::new(backends);
        (0..KEYS)
            .map(|k| {
                let i = ch.pick(backends, key_hash(k)).expect("a backend is up");
                backends[i].name.clone()
            })
            .collect()
    }

    fn fraction_moved(before: &[String], after: &[String], only: impl Fn(&str) -> bool) -> f64 {
        let considered: Vec<_> = before.iter().zip(after).filter(|(b, _)| only(b)).collect();
        let moved = considered.iter().filter(|(b, a)| b != a).count();
        moved as f64 / considered.len() as f64
    }

    #[test]
    fn table_sizes_are_primes_of_100_per_backend() {
        assert_eq!(table_size(1), 65_537);
        assert_eq!(table_size(655), 65_537);
        assert_eq!(table_size(1000), 100_003);
        assert!(is_prime(table_size(4096)));
        assert!(!is_prime(1) && is_prime(2) && is_prime(3) && !is_prime(9));
    }

    #[test]
    fn removing_one_of_ten_moves_about_a_tenth() {
        let ten = named_pool(10);
        let before = mapping(&ten);
        let nine: Vec<_> = ten.iter().filter(|b| b.name != "b3").cloned().collect();
        let after = mapping(&nine);
        let moved = fraction_moved(&before, &after, |_| true);
        assert!((0.08..0.15).contains(&moved), "moved {moved}");
        let others_moved = fraction_moved(&before, &after, |name| name != "b3");
        assert!(
            others_moved < 0.03,
            "keys of remaining backends moved {others_moved}"
        );
    }

    #[test]
    fn adding_an_eleventh_moves_about_an_eleventh() {
        let eleven = named_pool(11);
        let before = mapping(&eleven[..10]);
        let after = mapping(&eleven);
        let moved = fraction_moved(&before, &after, |_| true);
        assert!((0.07..0.15).contains(&moved), "moved {moved}");
        let to_newcomer = after.iter().filter(|name| *name == "b10").count() as f64;
        assert!((to_newcomer / KEYS as f64 - 1.0 / 11.0).abs() < 0.01);
    }

    #[test]
    fn a_down_backend_moves_only_its_own_keys_spread_over_the_rest() {
        let backends = named_pool(10);
        let before = mapping(&backends);
        backends[3].set_state(BackendState::Down);
        let after = mapping(&backends);
        assert_eq!(fraction_moved(&before, &after, |name| name != "b3"), 0.0);
        assert_eq!(fraction_moved(&before, &after, |name| name == "b3"), 1.0);
        let mut heirs: Vec<_> = before
            .iter()
            .zip(&after)
            .filter(|(b, _)| *b == "b3")
            .map(|(_, a)| a.clone())
            .collect();
        heirs.sort();
        heirs.dedup();
        assert_eq!(heirs.len(), 9, "{heirs:?}");
        // It comes back to exactly its old keys.
        backends[3].set_state(BackendState::Up);
        assert_eq!(mapping(&backends), before);
    }

    #[test]
    fn same_key_same_backend_across_builds_and_orders() {
        let backends = named_pool(7);
        let a = mapping(&backends);
        let b = mapping(&backends);
        assert_eq!(a, b);
        let mut reversed = backends.clone();
        reversed.reverse();
        assert_eq!(mapping(&reversed), a);
    }

    #[test]
    fn weights_1_to_3_give_quarter_and_three_quarters() {
        let backends = pool(&[1, 3]);
        let ch = ConsistentHash::new(&backends);
        let mut key = 0;
        let got = shares(2, KEYS as usize, || {
            key += 1;
            ch.pick(&backends, key_hash(key))
        });
        assert!((got[0] - 0.25).abs() < 0.03, "{got:?}");
        assert!((got[1] - 0.75).abs() < 0.03, "{got:?}");
    }

    #[test]
    fn very_light_backend_still_owns_a_slot() {
        let mut weights = vec![10_000; 9];
        weights.push(1);
        let backends = pool(&weights);
        let ch = ConsistentHash::new(&backends);
        assert!(ch.table.contains(&9));
        assert!(!ch.table.contains(&UNCLAIMED));
    }

    #[test]
    fn last_eligible_backend_gets_every_key() {
        let backends = named_pool(20);
        for b in &backends[1..] {
            b.set_state(BackendState::Open);
        }
        let ch = ConsistentHash::new(&backends);
        for k in 0..1000 {
            assert_eq!(ch.pick(&backends, key_hash(k)), Some(0));
        }
    }

    #[test]
    fn none_when_nothing_is_eligible_or_empty() {
        let backends = named_pool(3);
        let ch = ConsistentHash::new(&backends);
        for b in &backends {
            b.set_state(BackendState::Down);
        }
        assert_eq!(ch.pick(&backends, 42), None);
        let empty = ConsistentHash::new(&[]);
        assert_eq!(empty.pick(&[], 42), None);
        // A slice shorter than the table was built for never panics.
        assert_eq!(ch.pick(&[], 42), None);
    }
}
