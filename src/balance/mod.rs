//! Choosing a backend for a request.
//!
//! Every algorithm is a small type behind [`Balancer`]. A worker builds its
//! own balancer for each pool (so cursors, smooth-weight state and random
//! number generators live in the worker, in `Cell`s, and are never shared);
//! the only shared state an algorithm reads is the per-backend atomics
//! (in-flight count, effective weight, state, latency EWMA).
//!
//! Picking is synchronous and pure apart from those atomic reads: no I/O,
//! no locks, no allocation.

mod round_robin;

pub use round_robin::RoundRobin;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::backend::Backend;

/// A load-balancing policy, as named by `--algorithm` and `algorithm =`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Smooth weighted round-robin (nginx's algorithm).
    RoundRobin,
}

impl Algorithm {
    /// Every accepted name, for help texts and error messages.
    pub const NAMES: &'static [&'static str] = &["round-robin"];

    /// The name as written in flags and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
        }
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
        match s {
            "round-robin" | "rr" => Ok(Self::RoundRobin),
            other => Err(format!(
                "unknown algorithm `{other}` (expected one of: {})",
                Self::NAMES.join(", ")
            )),
        }
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
/// in tests.
pub fn build(algorithm: Algorithm, backends: &[Arc<Backend>], seed: u64) -> Box<dyn Balancer> {
    let _ = seed;
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(backends)),
    }
}

/// The hash of the pool's hash key for this request, for algorithms that
/// use one (0 otherwise, without looking at the request).
pub fn request_hash(
    key: &crate::config::HashKey,
    algorithm: Algorithm,
    client_ip: std::net::IpAddr,
    req: &crate::http::RequestHead<'_, '_>,
) -> u64 {
    let _ = (key, client_ip, req);
    match algorithm {
        Algorithm::RoundRobin => 0,
    }
}
