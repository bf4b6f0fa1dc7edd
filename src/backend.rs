//! Backends and the counters every core shares about them.
//!
//! A [`Backend`] is one upstream server. Its live counters sit in one
//! cache-line-padded block of atomics ([`BackendStats`]) so that workers on
//! different cores can read and bump them without locks and without false
//! sharing with a neighbouring backend. Everything else about a backend is
//! immutable; a config reload builds new `Backend`s but carries the
//! `Arc<BackendStats>` of backends that stay, so counters survive it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::ewma;

/// Whether the balancers may send new requests to a backend.
///
/// Health checks, passive ejection and the circuit breaker write this;
/// the balancers only read it through [`Backend::is_eligible`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BackendState {
    /// Serving normally.
    Up = 0,
    /// Failed its health checks.
    Down = 1,
    /// Circuit breaker open: too many recent failures.
    Open = 2,
    /// Being removed: finishes what it has, takes nothing new.
    Draining = 3,
}

impl BackendState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Up,
            1 => Self::Down,
            2 => Self::Open,
            _ => Self::Draining,
        }
    }

    /// The lower-case name used in logs, metrics and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Open => "open",
            Self::Draining => "draining",
        }
    }
}

/// The live counters of one backend, shared by all workers.
#[derive(Debug)]
pub struct BackendStats {
    /// Requests sent and not yet finished, across all cores.
    inflight: AtomicU32,
    /// Weight the balancers use now; starts at the configured weight.
    effective_weight: AtomicU32,
    /// A [`BackendState`] as `u8`.
    state: AtomicU8,
    /// Peak EWMA of response latency, in ns ([`crate::ewma`]).
    /// Zero means "no sample yet".
    latency_ewma_ns: AtomicU64,
    /// When `latency_ewma_ns` was last updated ([`crate::ewma::now_ns`]).
    latency_stamp_ns: AtomicU64,
    /// Requests sent to this backend since start.
    requests: AtomicU64,
    /// Requests that ended in a connect, I/O, timeout or protocol error.
    errors: AtomicU64,
}

impl BackendStats {
    fn new(weight: u32) -> Self {
        Self {
            inflight: AtomicU32::new(0),
            effective_weight: AtomicU32::new(weight),
            state: AtomicU8::new(BackendState::Up as u8),
            latency_ewma_ns: AtomicU64::new(0),
            latency_stamp_ns: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }
}

/// One upstream server.
#[derive(Debug)]
pub struct Backend {
    /// The resolved address corelb connects to.
    pub addr: SocketAddr,
    /// The address as the user wrote it (host name kept), for display.
    pub name: String,
    /// The configured weight (≥ 1).
    pub weight: u32,
    stats: Arc<CachePadded<BackendStats>>,
}

impl Backend {
    /// A backend with fresh counters.
    pub fn new(addr: SocketAddr, name: impl Into<String>, weight: u32) -> Self {
        let weight = weight.max(1);
        Self {
            addr,
            name: name.into(),
            weight,
            stats: Arc::new(CachePadded::new(BackendStats::new(weight))),
        }
    }

    /// A backend that keeps the counters of `previous` (same server across a reload).
    pub fn carrying_over(previous: &Backend, name: impl Into<String>, weight: u32) -> Self {
        let weight = weight.max(1);
        previous
            .stats
            .effective_weight
            .store(weight, Ordering::Relaxed);
        Self {
            addr: previous.addr,
            name: name.into(),
            weight,
            stats: Arc::clone(&previous.stats),
        }
    }

    /// May a balancer pick this backend for a new request?
    #[inline]
    pub fn is_eligible(&self) -> bool {
        self.state() == BackendState::Up
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> BackendState {
        BackendState::from_u8(self.stats.state.load(Ordering::Relaxed))
    }

    /// Set the state (health checks, breaker, drain).
    pub fn set_state(&self, state: BackendState) {
        self.stats.state.store(state as u8, Ordering::Relaxed);
    }

    /// Requests in flight to this backend across all cores.
    #[inline]
    pub fn inflight(&self) -> u32 {
        self.stats.inflight.load(Ordering::Relaxed)
    }

    /// The weight balancers should use now.
    #[inline]
    pub fn effective_weight(&self) -> u32 {
        self.stats.effective_weight.load(Ordering::Relaxed).max(1)
    }

    /// Set the weight balancers should use (dynamic weighting).
    pub fn set_effective_weight(&self, weight: u32) {
        self.stats
            .effective_weight
            .store(weight.max(1), Ordering::Relaxed);
    }

    /// Latency estimate in nanoseconds now (0 when nothing was measured yet).
    pub fn latency_ewma_ns(&self) -> u64 {
        self.latency_at(ewma::now_ns())
    }

    /// Latency estimate as of `now_ns` (from [`ewma::now_ns`]); lets a
    /// balancer comparing several backends read the clock once.
    #[inline]
    pub fn latency_at(&self, now_ns: u64) -> u64 {
        let value = self.stats.latency_ewma_ns.load(Ordering::Relaxed);
        let stamp = self.stats.latency_stamp_ns.load(Ordering::Relaxed);
        ewma::decayed(value, stamp, now_ns)
    }

    /// Fold one response latency into the estimate.
    ///
    /// Two cores racing here may lose one sample or pair one core's value
    /// with the other's stamp; an average can afford both, and a CAS loop on
    /// every response would cost more than it is worth.
    pub fn observe_latency(&self, sample_ns: u64) {
        self.observe_latency_at(sample_ns, ewma::now_ns());
    }

    /// [`Backend::observe_latency`] at a given time (from [`ewma::now_ns`]).
    pub fn observe_latency_at(&self, sample_ns: u64, now: u64) {
        let value = self.stats.latency_ewma_ns.load(Ordering::Relaxed);
        let stamp = self.stats.latency_stamp_ns.load(Ordering::Relaxed);
        let new = ewma::observe(value, stamp, sample_ns, now);
        self.stats.latency_ewma_ns.store(new, Ordering::Relaxed);
        self.stats.latency_stamp_ns.store(now, Ordering::Relaxed);
    }

    /// Requests sent since start.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// Failed requests since start.
    pub fn errors(&self) -> u64 {
        self.stats.errors.load(Ordering::Relaxed)
    }

    /// Count a failed request.
    pub fn record_error(&self) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a request as in flight until the returned guard drops.
    ///
    /// The guard decrements on every path, so an error, a timeout or a
    /// cancelled task never leaks an in-flight count.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.stats.inflight.fetch_add(1, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            backend: Arc::clone(self),
        }
    }
}

/// Holds one in-flight count on a backend; releases it on drop.
#[derive(Debug)]
pub struct InflightGuard {
    backend: Arc<Backend>,
}

impl InflightGuard {
    /// The backend this request went to.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.backend.stats.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Arc<Backend> {
        Arc::new(Backend::new("127.0.0.1:1".parse().unwrap(), "b", 1))
    }

    #[test]
    fn inflight_guard_counts_and_releases() {
        let b = backend();
        let g1 = b.start_request();
        let g2 = b.start_request();
        assert_eq!(b.inflight(), 2);
        drop(g1);
        assert_eq!(b.inflight(), 1);
        drop(g2);
        assert_eq!(b.inflight(), 0);
        assert_eq!(b.requests(), 2);
    }

    #[test]
    fn only_up_backends_are_eligible() {
        let b = backend();
        assert!(b.is_eligible());
        for s in [
            BackendState::Down,
            BackendState::Open,
            BackendState::Draining,
        ] {
            b.set_state(s);
            assert!(!b.is_eligible(), "{s:?}");
            assert_eq!(b.state(), s);
        }
    }

    #[test]
    fn carried_over_backend_shares_counters() {
        let old = backend();
        let _g = old.start_request();
        let new = Backend::carrying_over(&old, "b2", 3);
        assert_eq!(new.inflight(), 1);
        assert_eq!(new.effective_weight(), 3);
    }

    #[test]
    fn latency_estimate_takes_peaks() {
        let b = backend();
        assert_eq!(b.latency_ewma_ns(), 0);
        b.observe_latency(1_000_000);
        b.observe_latency(50_000_000);
        // Read back at once: barely decayed from the 50 ms peak.
        let now = b.latency_ewma_ns();
        assert!(now > 49_000_000 && now <= 50_000_000, "{now}");
    }
}
