//! Backends and the counters every core shares about them.
//!
//! A [`Backend`] is one upstream server as a pool lists it. Its live state
//! sits in one cache-line-padded block of atomics so that workers on
//! different cores can read and bump it without locks and without false
//! sharing with a neighbouring backend; its counters are one block per
//! worker ([`BackendStats`]). Everything else about a `Backend` is
//! immutable; a reload builds new `Backend`s around the `Arc<BackendStats>`
//! the control plane's registry keeps per address, so state and counters
//! survive it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::entry::EntryStats;
use super::origin::Origin;
use crate::state::ewma;
use crate::state::outcome::{AttemptOutcome, BackendCounters};

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
    /// Circuit breaker open (ejected): too many recent failures.
    Open = 2,
    /// Being removed: finishes what it has, takes nothing new. Shown only;
    /// never stored (a drain is a pool entry's, not a server's).
    Draining = 3,
    /// Circuit breaker half-open: a few trial requests decide.
    HalfOpen = 4,
}

impl BackendState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Up,
            1 => Self::Down,
            2 => Self::Open,
            4 => Self::HalfOpen,
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
            Self::HalfOpen => "half-open",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [BackendState; 5] = [
        Self::Up,
        Self::Down,
        Self::Open,
        Self::HalfOpen,
        Self::Draining,
    ];
}

/// The live state of one backend, shared by all workers: written by any
/// core (in-flight count, latency estimate) or by the control plane (state).
#[derive(Debug)]
struct LiveState {
    /// Requests sent and not yet finished, across all cores.
    inflight: AtomicU32,
    /// A [`BackendState`] as `u8`.
    state: AtomicU8,
    /// Peak EWMA of response latency, in ns ([`crate::state::ewma`]).
    /// Zero means "no sample yet".
    latency_ewma_ns: AtomicU64,
    /// When `latency_ewma_ns` was last updated ([`crate::state::ewma::now_ns`]).
    latency_stamp_ns: AtomicU64,
    /// Tries in a row that failed, across all cores (reset by a success).
    consecutive_failures: AtomicU32,
    /// Trial requests a half-open breaker still admits.
    trial_permits: AtomicU32,
}

/// What the resilience thread counts about one backend (written by that
/// thread only, read on scrape).
#[derive(Debug, Default)]
pub struct ResilienceCounters {
    /// Health probes that passed.
    pub probes_ok: AtomicU64,
    /// Health probes that failed.
    pub probes_failed: AtomicU64,
    /// Times the breaker opened (ejections).
    pub ejections: AtomicU64,
    /// Times the health checks took it down.
    pub health_downs: AtomicU64,
}

/// Everything kept about one backend server, across reloads: its live
/// state (one cache line, shared by all cores) and one block of counters
/// per worker (each written by its worker only, summed on scrape).
///
/// The control plane's registry holds one per address, so a server listed
/// in two pools, or kept by a reload, is one `BackendStats`.
#[derive(Debug)]
pub struct BackendStats {
    live: CachePadded<LiveState>,
    per_worker: Box<[CachePadded<BackendCounters>]>,
    /// Probes and ejections, counted by the resilience thread.
    pub resilience: ResilienceCounters,
}

impl BackendStats {
    /// Fresh state for a backend, with counters for `workers`.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            live: CachePadded::new(LiveState {
                inflight: AtomicU32::new(0),
                state: AtomicU8::new(BackendState::Up as u8),
                latency_ewma_ns: AtomicU64::new(0),
                latency_stamp_ns: AtomicU64::new(0),
                consecutive_failures: AtomicU32::new(0),
                trial_permits: AtomicU32::new(0),
            }),
            per_worker: (0..workers.max(1))
                .map(|_| CachePadded::new(BackendCounters::default()))
                .collect(),
            resilience: ResilienceCounters::default(),
        })
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> BackendState {
        BackendState::from_u8(self.live.state.load(Ordering::Relaxed))
    }

    /// Move from `from` to `to` unless another thread moved it first
    /// (a worker tripping the breaker races the resilience thread's tick).
    /// Entering half-open hands out `permits` trial requests; entering up
    /// forgets the failure streak.
    pub fn change_state(&self, from: BackendState, to: BackendState, permits: u32) -> bool {
        if to == BackendState::HalfOpen {
            self.live.trial_permits.store(permits, Ordering::Relaxed);
        }
        if to == BackendState::Up {
            self.live.consecutive_failures.store(0, Ordering::Relaxed);
        }
        self.live
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Count a finished try: returns the failures in a row now. A success
    /// writes only if a streak was running (no shared write per request).
    #[inline]
    pub fn note_try(&self, failed: bool) -> u32 {
        let streak = &self.live.consecutive_failures;
        if failed {
            streak.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            if streak.load(Ordering::Relaxed) != 0 {
                streak.store(0, Ordering::Relaxed);
            }
            0
        }
    }

    /// The latency estimate as of `now_ns` (see [`Backend::latency_at`]).
    #[inline]
    pub fn latency_at(&self, now_ns: u64) -> u64 {
        let value = self.live.latency_ewma_ns.load(Ordering::Relaxed);
        let stamp = self.live.latency_stamp_ns.load(Ordering::Relaxed);
        ewma::decayed(value, stamp, now_ns)
    }

    /// Take a trial permit if half-open; any other state admits freely.
    #[inline]
    pub fn admit(&self) -> bool {
        if self.state() != BackendState::HalfOpen {
            return true;
        }
        self.live
            .trial_permits
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| p.checked_sub(1))
            .is_ok()
    }

    /// Worker `worker`'s counters (the first block for an unknown index).
    #[inline]
    pub fn counters(&self, worker: usize) -> &BackendCounters {
        self.per_worker.get(worker).unwrap_or(&self.per_worker[0])
    }

    /// Every worker's counters, for a scrape.
    pub fn all_counters(&self) -> impl Iterator<Item = &BackendCounters> {
        self.per_worker.iter().map(|c| &**c)
    }
}

/// One upstream server as one pool lists it.
#[derive(Debug)]
pub struct Backend {
    /// The resolved address corelb connects to.
    pub addr: SocketAddr,
    /// The address as the user wrote it (host name kept), for display.
    pub name: String,
    /// The configured weight (≥ 1).
    pub weight: u32,
    /// Taken out of this pool's rotation by the admin API: finishes what it
    /// has, gets nothing new.
    pub drained: bool,
    /// Weight the balancers use now; starts at the configured weight. Per
    /// pool entry: a server in two pools may weigh differently in each.
    effective_weight: AtomicU32,
    /// The pool is in panic (too few backends left): an open breaker does
    /// not keep this entry out (set by the resilience thread).
    panic: AtomicBool,
    /// Requests in flight allowed (`--max-requests`; 0: no limit).
    max_requests: u32,
    /// Its pool's `send_proxy_protocol`: each new connection starts with
    /// this header, and is never pooled for another client.
    pub send_proxy: Option<crate::proxy_protocol::Version>,
    stats: Arc<BackendStats>,
    entry: Arc<EntryStats>,
    /// Where it came from (config, DNS, SRV, file).
    origin: Origin,
}

impl Backend {
    /// A backend with fresh counters for one worker (tests, benches).
    pub fn new(addr: SocketAddr, name: impl Into<String>, weight: u32) -> Self {
        Self::with_stats(
            addr,
            name,
            weight,
            false,
            BackendStats::new(1),
            EntryStats::new(1),
        )
    }

    /// A backend whose state and counters are `stats` (from the registry).
    pub fn with_stats(
        addr: SocketAddr,
        name: impl Into<String>,
        weight: u32,
        drained: bool,
        stats: Arc<BackendStats>,
        entry: Arc<EntryStats>,
    ) -> Self {
        Self {
            addr,
            name: name.into(),
            weight: weight.max(1),
            drained,
            effective_weight: AtomicU32::new(weight.max(1)),
            panic: AtomicBool::new(false),
            max_requests: 0,
            send_proxy: None,
            stats,
            entry,
            origin: Origin::Static,
        }
    }

    /// The same, with an in-flight cap (0: none).
    pub fn with_max_requests(mut self, max_requests: u32) -> Self {
        self.max_requests = max_requests;
        self
    }

    /// The same, found by discovery (`origin`) rather than configured.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// Where this backend came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The same, sending its pool's PROXY protocol header.
    pub fn with_send_proxy(mut self, send_proxy: Option<crate::proxy_protocol::Version>) -> Self {
        self.send_proxy = send_proxy;
        self
    }

    /// Is this entry's pool in panic?
    pub fn in_panic(&self) -> bool {
        self.panic.load(Ordering::Relaxed)
    }

    /// Set by the resilience thread for every entry of a pool.
    pub fn set_panic(&self, panic: bool) {
        if self.in_panic() != panic {
            self.panic.store(panic, Ordering::Relaxed);
        }
    }

    /// The shared state and counters.
    pub fn stats(&self) -> &Arc<BackendStats> {
        &self.stats
    }

    /// The counters of this backend in this pool.
    pub fn entry(&self) -> &Arc<EntryStats> {
        &self.entry
    }

    /// May a balancer pick this backend for a new request?
    #[inline]
    pub fn is_eligible(&self) -> bool {
        // The common case in two loads and no branch on the state's kind:
        // balancers call this for every candidate of every pick.
        let state = self.stats.live.state.load(Ordering::Relaxed);
        if state == BackendState::Up as u8 && self.max_requests == 0 {
            return !self.drained;
        }
        self.is_eligible_otherwise(BackendState::from_u8(state))
    }

    /// [`Backend::is_eligible`] for a backend not simply up, or capped.
    #[cold]
    #[inline(never)]
    fn is_eligible_otherwise(&self, state: BackendState) -> bool {
        if self.drained {
            return false;
        }
        let admits = match state {
            BackendState::Up => true,
            BackendState::HalfOpen => self.stats.live.trial_permits.load(Ordering::Relaxed) > 0,
            BackendState::Open => self.in_panic(),
            BackendState::Down | BackendState::Draining => false,
        };
        admits && (self.max_requests == 0 || self.inflight() < self.max_requests)
    }

    /// The state shown to operators: a drained backend is `draining` in its
    /// pool whatever its health.
    pub fn shown_state(&self) -> BackendState {
        if self.drained {
            BackendState::Draining
        } else {
            self.state()
        }
    }

    /// The current state.
    #[inline]
    pub fn state(&self) -> BackendState {
        self.stats.state()
    }

    /// Set the state (tests; the resilience thread uses
    /// [`BackendStats::change_state`]).
    pub fn set_state(&self, state: BackendState) {
        self.stats.live.state.store(state as u8, Ordering::Relaxed);
    }

    /// Requests in flight to this backend across all cores.
    #[inline]
    pub fn inflight(&self) -> u32 {
        self.stats.live.inflight.load(Ordering::Relaxed)
    }

    /// The weight balancers should use now.
    #[inline]
    pub fn effective_weight(&self) -> u32 {
        self.effective_weight.load(Ordering::Relaxed).max(1)
    }

    /// Set the weight balancers should use (dynamic weighting).
    pub fn set_effective_weight(&self, weight: u32) {
        self.effective_weight
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
        self.stats.latency_at(now_ns)
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
        let live = &self.stats.live;
        let value = live.latency_ewma_ns.load(Ordering::Relaxed);
        let stamp = live.latency_stamp_ns.load(Ordering::Relaxed);
        let new = ewma::observe(value, stamp, sample_ns, now);
        live.latency_ewma_ns.store(new, Ordering::Relaxed);
        live.latency_stamp_ns.store(now, Ordering::Relaxed);
    }

    /// Count a request as in flight until the returned guard is finished
    /// or dropped.
    ///
    /// The guard decrements on every path, so an error, a timeout or a
    /// cancelled task never leaks an in-flight count.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.stats.live.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            backend: Arc::clone(self),
        }
    }

    /// [`Backend::start_request`] within `--max-requests`: `None` when the
    /// cap is reached. The check and the count are one atomic step: the
    /// balancers' [`Backend::is_eligible`] only reads the count, so two
    /// cores that both saw the last free slot would otherwise both take it.
    #[inline]
    pub fn try_start_request(self: &Arc<Self>) -> Option<InflightGuard> {
        if self.max_requests == 0 {
            return Some(self.start_request());
        }
        let cap = self.max_requests;
        self.stats
            .live
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(InflightGuard {
            backend: Arc::clone(self),
        })
    }
}

/// The latency a failed try counts as, for the latency estimate: a failed
/// backend should look very slow at once (the estimate decays back).
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

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

    /// The one place a try at a backend is recorded: its counters (for
    /// `worker`) and its latency estimate. `now_ns` is the clock reading
    /// the caller took at the end (see [`ewma::ns_at`]).
    pub fn finish(self, worker: usize, outcome: &AttemptOutcome, now_ns: u64) {
        let backend = &self.backend;
        backend.stats.counters(worker).record(outcome);
        if let Some(status) = outcome.status {
            backend.entry.counters(worker).responses[crate::state::metrics::class_of(status)].inc();
        }
        let sample = if outcome.failure.is_some() {
            outcome.elapsed.max(FAILURE_PENALTY)
        } else {
            // The estimate is of time to first byte: what a new request
            // waits for, whatever the size of the body.
            outcome.ttfb.unwrap_or(outcome.elapsed)
        };
        if outcome.failure.is_some() || outcome.ttfb.is_some() {
            let ns = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
            backend.observe_latency_at(ns, now_ns);
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.backend
            .stats
            .live
            .inflight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> Backend {
        Backend::new("127.0.0.1:1".parse().unwrap(), "b", 1)
    }

    #[test]
    fn inflight_guard_counts_and_releases() {
        let b = Arc::new(backend());
        let g1 = b.start_request();
        let g2 = b.start_request();
        assert_eq!(b.inflight(), 2);
        drop(g1);
        assert_eq!(b.inflight(), 1);
        drop(g2);
        assert_eq!(b.inflight(), 0);
    }

    #[test]
    fn a_finished_try_is_counted_for_its_worker() {
        let stats = BackendStats::new(2);
        let b = Arc::new(Backend::with_stats(
            "127.0.0.1:1".parse().unwrap(),
            "b",
            1,
            false,
            Arc::clone(&stats),
            EntryStats::new(2),
        ));
        let outcome = AttemptOutcome {
            status: Some(200),
            failure: None,
            ttfb: Some(Duration::from_millis(2)),
            elapsed: Duration::from_millis(3),
            replayed: false,
            pooled: true,
        };
        b.start_request().finish(1, &outcome, ewma::now_ns());
        assert_eq!(b.inflight(), 0);
        assert_eq!(stats.counters(1).responses[1].get(), 1);
        assert_eq!(stats.counters(0).responses[1].get(), 0);
        assert!(b.latency_ewma_ns() > 1_000_000);
    }

    #[test]
    fn a_drained_backend_is_not_eligible() {
        let b = Backend::with_stats(
            "127.0.0.1:1".parse().unwrap(),
            "b",
            1,
            true,
            BackendStats::new(1),
            EntryStats::new(1),
        );
        assert!(!b.is_eligible());
        assert_eq!(b.shown_state(), BackendState::Draining);
        assert_eq!(b.state(), BackendState::Up);
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
    fn half_open_admits_only_its_trial_permits_across_entries() {
        let stats = BackendStats::new(2);
        let addr = "127.0.0.1:1".parse().unwrap();
        let one = Backend::with_stats(addr, "b", 1, false, Arc::clone(&stats), EntryStats::new(1));
        let other =
            Backend::with_stats(addr, "b", 1, false, Arc::clone(&stats), EntryStats::new(1));
        stats.change_state(BackendState::Up, BackendState::Open, 0);
        assert!(!one.is_eligible());
        assert!(stats.change_state(BackendState::Open, BackendState::HalfOpen, 2));
        assert!(one.is_eligible() && stats.admit());
        assert!(other.is_eligible() && stats.admit());
        assert!(!one.is_eligible() && !other.is_eligible() && !stats.admit());
        // A worker's trip loses to nobody: the state moved only if it was
        // what the caller saw.
        assert!(!stats.change_state(BackendState::Up, BackendState::Open, 0));
        assert!(stats.change_state(BackendState::HalfOpen, BackendState::Up, 0));
        assert!(one.is_eligible() && stats.admit());
    }

    #[test]
    fn a_failure_streak_counts_across_workers_and_a_success_ends_it() {
        let stats = BackendStats::new(2);
        assert_eq!(stats.note_try(true), 1);
        assert_eq!(stats.note_try(true), 2);
        assert_eq!(stats.note_try(false), 0);
        assert_eq!(stats.note_try(true), 1);
        stats.change_state(BackendState::Up, BackendState::Open, 0);
        stats.change_state(BackendState::Open, BackendState::Up, 0);
        assert_eq!(stats.note_try(true), 1, "closing forgets the streak");
    }

    #[test]
    fn panic_lets_an_open_backend_in_and_the_cap_keeps_it_out() {
        let b = Arc::new(backend().with_max_requests(1));
        b.set_state(BackendState::Open);
        assert!(!b.is_eligible());
        b.set_panic(true);
        assert!(b.is_eligible());
        b.set_state(BackendState::Down);
        assert!(!b.is_eligible(), "health-check down stays out in a panic");
        b.set_state(BackendState::Up);
        let guard = b.start_request();
        assert!(!b.is_eligible(), "at --max-requests");
        drop(guard);
        assert!(b.is_eligible());
    }

    #[test]
    fn backends_built_on_one_stats_share_it() {
        let stats = BackendStats::new(1);
        let addr = "127.0.0.1:1".parse().unwrap();
        let entry = EntryStats::new(1);
        let old = Arc::new(Backend::with_stats(
            addr,
            "b",
            1,
            false,
            Arc::clone(&stats),
            Arc::clone(&entry),
        ));
        let _g = old.start_request();
        let new = Backend::with_stats(addr, "b2", 3, false, stats, entry);
        assert_eq!(new.inflight(), 1);
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

    #[test]
    fn a_slot_within_max_requests_is_taken_atomically() {
        let b = Arc::new(backend().with_max_requests(2));
        let g1 = b.try_start_request().expect("a free slot");
        let g2 = b.try_start_request().expect("a second slot");
        assert!(b.try_start_request().is_none(), "past --max-requests");
        assert_eq!(b.inflight(), 2);
        drop(g1);
        let _g3 = b.try_start_request().expect("a slot freed");
        drop(g2);
        let free = Arc::new(backend());
        let _many: Vec<_> = (0..5).map(|_| free.try_start_request().unwrap()).collect();
        assert_eq!(free.inflight(), 5, "no cap: always a slot");
    }
}
