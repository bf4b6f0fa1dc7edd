//! Choosing a backend for a request.
//!
//! Every algorithm is a small type behind [`Balancer`]. A worker builds its
//! own balancer for each pool (so cursors, smooth-weight state and random
//! number generators live in the worker, in `Cell`s, and are never shared);
//! the only shared state an algorithm reads is the per-backend atomics
//! (in-flight count, effective weight, state, latency EWMA).
//!
//! Picking is synchronous and pure apart from those atomic reads: no I/O,
//! no locks, no allocation in steady state. Algorithms that keep a table
//! derived from weights (round-robin's schedule, the weighted sampler's
//! alias table) notice a changed weight or state as they go and rebuild
//! it then — seconds apart, not per request.
//!
//! | algorithm | cost a pick | file |
//! |---|---|---|
//! | `round-robin` | O(1), replays a precomputed smooth-WRR period | `round_robin.rs`, `wrr_schedule.rs` |
//! | `least-connections` | O(n) scan | `least_connections.rs` |
//! | `random` | O(1), alias table | `random.rs`, `weighted_sample.rs`, `alias_table.rs` |
//! | `power-of-two` | O(1), two distinct weighted draws | `power_of_two.rs` |
//! | `peak-ewma` | O(1), two distinct weighted draws | `peak_ewma.rs` |
//! | `consistent-hash` | O(1), Maglev table | `consistent_hash.rs`, `hash_key.rs`, `stable_hash.rs` |

mod alias_table;
mod consistent_hash;
mod hash_key;
mod least_connections;
mod peak_ewma;
mod power_of_two;
mod random;
mod rng;
mod round_robin;
mod stable_hash;
mod weighted_sample;
mod wrr_schedule;

pub use consistent_hash::ConsistentHash;
pub use hash_key::HashKey;
pub use least_connections::LeastConnections;
pub use peak_ewma::PeakEwma;
pub use power_of_two::PowerOfTwo;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_sample::WeightedSampler;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use crate::http::RequestHead;
use crate::state::backend::Backend;

/// A load-balancing policy, as named by `--algorithm` and `algorithm =`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Smooth weighted round-robin (nginx's algorithm).
    RoundRobin,
    /// Fewest in-flight requests per unit of weight, scanning every backend.
    LeastConnections,
    /// A random backend, drawn by weight.
    Random,
    /// The less loaded of two distinct random backends.
    PowerOfTwo,
    /// The cheaper of two distinct random backends by latency × load.
    PeakEwma,
    /// Maglev consistent hashing of the pool's hash key.
    ConsistentHash,
}

impl Algorithm {
    /// Every accepted name, for help texts and error messages.
    pub const NAMES: &'static [&'static str] = &[
        "round-robin",
        "least-connections",
        "random",
        "power-of-two",
        "peak-ewma",
        "consistent-hash",
    ];

    /// Every algorithm, in the order of [`Self::NAMES`].
    pub const ALL: &'static [Algorithm] = &[
        Self::RoundRobin,
        Self::LeastConnections,
        Self::Random,
        Self::PowerOfTwo,
        Self::PeakEwma,
        Self::ConsistentHash,
    ];

    /// The name as written in flags and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::LeastConnections => "least-connections",
            Self::Random => "random",
            Self::PowerOfTwo => "power-of-two",
            Self::PeakEwma => "peak-ewma",
            Self::ConsistentHash => "consistent-hash",
        }
    }

    /// Does this algorithm read the request's hash key? Only then is the
    /// request searched for it.
    pub fn uses_hash(self) -> bool {
        matches!(self, Self::ConsistentHash)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown algorithm `{s}` (expected one of: {})",
                    Self::NAMES.join(", ")
                )
            })
    }
}

/// Picks one backend for each request.
pub trait Balancer {
    /// The index into `backends` of the chosen one, or `None` when no
    /// backend is eligible (the caller answers 503).
    ///
    /// `backends` is the same slice (same order) on every call until the
    /// worker rebuilds the balancer after a reload. `request_hash` is the
    /// hash of the pool's hash key for this request; algorithms other than
    /// consistent hashing ignore it.
    fn pick(&self, backends: &[Arc<Backend>], request_hash: u64) -> Option<usize>;
}

/// Build a worker's balancer for one pool.
///
/// `seed` makes random choices differ between workers yet stay reproducible
/// in tests. Consistent hashing ignores it: its table must be the same on
/// every worker.
pub fn build(algorithm: Algorithm, backends: &[Arc<Backend>], seed: u64) -> Box<dyn Balancer> {
    // Workers pass small consecutive seeds; spread them so neighbouring
    // workers' generators do not start from neighbouring states.
    let seed = stable_hash::mix64(seed);
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::starting_at(backends, seed)),
        Algorithm::LeastConnections => Box::new(LeastConnections::new(seed)),
        Algorithm::Random => Box::new(Random::new(backends, seed)),
        Algorithm::PowerOfTwo => Box::new(PowerOfTwo::new(backends, seed)),
        Algorithm::PeakEwma => Box::new(PeakEwma::new(backends, seed)),
        Algorithm::ConsistentHash => Box::new(ConsistentHash::new(backends)),
    }
}

/// The hash of the pool's hash key for this request, for algorithms that
/// use one (0 otherwise, without looking at the request).
pub fn request_hash(
    key: &HashKey,
    algorithm: Algorithm,
    client_ip: IpAddr,
    req: &RequestHead<'_, '_>,
) -> u64 {
    if !algorithm.uses_hash() {
        return 0;
    }
    hash_key::hash_request_key(key, client_ip, req)
}

/// Helpers shared by the algorithms' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Backends `b0`, `b1`, … with the given weights.
    pub fn pool(weights: &[u32]) -> Vec<Arc<Backend>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16));
                Arc::new(Backend::new(addr, format!("b{i}"), w))
            })
            .collect()
    }

    /// `n` backends `b0`, `b1`, … of weight 1.
    pub fn named_pool(n: usize) -> Vec<Arc<Backend>> {
        pool(&vec![1; n])
    }

    /// Call `pick` `picks` times; the share each of `n` backends got.
    /// Panics if a pick returns `None`.
    pub fn shares(n: usize, picks: usize, mut pick: impl FnMut() -> Option<usize>) -> Vec<f64> {
        let mut counts = vec![0usize; n];
        for _ in 0..picks {
            counts[pick().expect("a backend is eligible")] += 1;
        }
        counts.iter().map(|&c| c as f64 / picks as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, MAX_HEADERS};
    use crate::state::backend::BackendState;
    use test_support::pool;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        assert_eq!(Algorithm::NAMES.len(), Algorithm::ALL.len());
        for (&name, &algorithm) in Algorithm::NAMES.iter().zip(Algorithm::ALL) {
            assert_eq!(algorithm.as_str(), name);
            assert_eq!(name.parse::<Algorithm>(), Ok(algorithm));
            assert_eq!(algorithm.to_string(), name);
        }
        for bad in [
            "",
            "rr",
            "Round-Robin",
            "least_connections",
            "p2c",
            "maglev",
        ] {
            let err = bad.parse::<Algorithm>().expect_err(bad);
            assert!(err.contains("consistent-hash"), "{err}");
        }
    }

    #[test]
    fn only_consistent_hash_reads_the_request() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = parse_request(raw, &mut headers)
            .expect("valid")
            .expect("complete");
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for &algorithm in Algorithm::ALL {
            let hash = request_hash(&HashKey::Path, algorithm, ip, &req);
            assert_eq!(hash != 0, algorithm.uses_hash(), "{algorithm}");
        }
    }

    #[test]
    fn every_algorithm_skips_ineligible_and_gives_none_when_all_are_down() {
        for &algorithm in Algorithm::ALL {
            let backends = pool(&[1, 2, 3, 1]);
            for i in [0, 1, 3] {
                backends[i].set_state(BackendState::Down);
            }
            let balancer = build(algorithm, &backends, 9);
            for hash in 0..200u64 {
                let hash = stable_hash::mix64(hash);
                assert_eq!(balancer.pick(&backends, hash), Some(2), "{algorithm}");
            }
            backends[2].set_state(BackendState::Draining);
            assert_eq!(balancer.pick(&backends, 1), None, "{algorithm}");
            assert_eq!(build(algorithm, &[], 9).pick(&[], 1), None, "{algorithm}");
        }
    }
}
