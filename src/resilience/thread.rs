//! The `corelb-health` thread: active probes, and a 100 ms tick that turns
//! what the workers counted into backend states, effective weights and
//! panic flags. It runs its own small monoio runtime (probes are many
//! small concurrent exchanges) and never handles a client request.
//!
//! Per backend address it keeps a [`Tracked`]: the breaker, the probe
//! results, the counter totals seen last tick, the state it last
//! published. Workers write a backend's state only to trip its breaker
//! (`Up`/`HalfOpen` → `Open`, see [`crate::worker::Worker::note_try`]); the
//! tick sees such a trip as a published state it did not write, and tells
//! the breaker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::breaker::{self, Breaker, Observed, Phase, HALF_OPEN_TRIALS};
use super::health::{self, Health, HealthPolicy};
use super::probe;
use super::weights::{self, Inputs};
use crate::backend::{BackendState, BackendStats};
use crate::config::Resilience;
use crate::control::lifecycle::Phase as Lifecycle;
use crate::control::Control;
use crate::ewma;
use crate::snapshot::Pool;

/// How often states, weights and panic flags are brought up to date.
pub const TICK: Duration = Duration::from_millis(100);

/// Weight of the newest tick in a backend's failure-rate average.
const FAILURE_RATE_ALPHA: f64 = 0.2;

/// What the thread keeps about one backend address.
struct Tracked {
    stats: Arc<BackendStats>,
    breaker: Breaker,
    /// Probe results, while the backend is probed.
    health: Option<Health>,
    /// How to probe it now (`None`: not probed; a running probe loop ends).
    probe_policy: Option<HealthPolicy>,
    probing: bool,
    /// The state this thread published last.
    published: BackendState,
    /// Counter totals at the last tick: (ok, failed).
    totals: (u64, u64),
    /// Smoothed share of failed tries.
    failure_rate: f64,
    /// When it last became available (slow start); `None`: since start.
    up_since: Option<Instant>,
    /// Seen in the current snapshot this tick.
    seen: bool,
    /// The snapshot's pools that list it (indices), this tick.
    pools: Vec<usize>,
    /// While half-open: when to hand out trial permits again if the
    /// trials came to nothing (a client that left mid-try counts neither
    /// way, and must not keep the backend half-open for ever).
    half_open_refill: Option<Instant>,
}

/// Per pool entry (pool name, address): its share of full weight now.
type Shares = HashMap<(String, SocketAddr), f64>;

struct State {
    control: Arc<Control>,
    backends: HashMap<SocketAddr, Tracked>,
    shares: Shares,
    /// The first tick takes the backends configured at start as they are:
    /// slow start is for returns, not for the first start.
    started: bool,
    last_tick: Instant,
}

/// Start the thread.
pub fn start(control: Arc<Control>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("corelb-health".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(run(control)),
                Err(e) => {
                    warn!("health checks and ejection are off: cannot start their runtime: {e}")
                }
            }
        })
}

async fn run(control: Arc<Control>) {
    let state = Rc::new(RefCell::new(State {
        control: Arc::clone(&control),
        backends: HashMap::new(),
        shares: HashMap::new(),
        started: false,
        last_tick: Instant::now(),
    }));
    loop {
        if control.lifecycle.phase() == Lifecycle::Stopping {
            return;
        }
        let to_probe = tick(&mut state.borrow_mut(), Instant::now());
        for addr in to_probe {
            monoio::spawn(probe_loop(Rc::clone(&state), addr));
        }
        monoio::time::sleep(TICK).await;
    }
}

/// One tick; returns the addresses whose probe loop should start.
fn tick(state: &mut State, now: Instant) -> Vec<SocketAddr> {
    let snapshot = Arc::clone(&state.control.snapshot());
    let settings = snapshot.settings.resilience;
    let elapsed = now.saturating_duration_since(state.last_tick);
    state.last_tick = now;
    let first = !state.started;
    state.started = true;

    for tracked in state.backends.values_mut() {
        tracked.seen = false;
        tracked.probe_policy = None;
        tracked.pools.clear();
    }
    for (pool_index, pool) in snapshot.pools.iter().enumerate() {
        let policy = probe_policy(pool, &settings);
        for backend in &pool.backends {
            let tracked = state
                .backends
                .entry(backend.addr)
                .or_insert_with(|| Tracked {
                    stats: Arc::clone(backend.stats()),
                    breaker: Breaker::new(now),
                    health: None,
                    probe_policy: None,
                    probing: false,
                    published: backend.state(),
                    totals: totals(backend.stats(), settings.fail_on_5xx),
                    failure_rate: 0.0,
                    up_since: (!first).then_some(now),
                    seen: false,
                    pools: Vec::new(),
                    half_open_refill: None,
                });
            // A backend removed and added back has fresh stats.
            if !Arc::ptr_eq(&tracked.stats, backend.stats()) {
                tracked.stats = Arc::clone(backend.stats());
                tracked.totals = totals(backend.stats(), settings.fail_on_5xx);
                tracked.published = backend.state();
                tracked.breaker = Breaker::new(now);
                tracked.up_since = Some(now);
            }
            tracked.seen = true;
            if !tracked.pools.contains(&pool_index) {
                tracked.pools.push(pool_index);
            }
            if tracked.probe_policy.is_none() {
                tracked.probe_policy = policy.clone();
            }
        }
    }
    state.backends.retain(|_, t| t.seen || t.probing);

    let mut to_probe = Vec::new();
    for (addr, tracked) in state.backends.iter_mut() {
        if tracked.probe_policy.is_some() && !tracked.probing {
            tracked.probing = true;
            tracked.health.get_or_insert_with(Health::new);
            to_probe.push(*addr);
        }
        if tracked.probe_policy.is_none() && !tracked.probing {
            tracked.health = None;
        }
    }

    let policy = settings.breaker();
    // (ejected, in rotation) per pool, kept up to date as breakers open
    // during this tick, so several opening at once still respect the cap.
    let mut pool_counts: Vec<(usize, usize)> = snapshot.pools.iter().map(ejected_in).collect();
    for (addr, tracked) in state.backends.iter_mut() {
        if !tracked.seen {
            continue;
        }
        let may_open = tracked.pools.iter().all(|&p| {
            let (ejected, total) = pool_counts[p];
            breaker::ejection_allowed(ejected, total, settings.max_ejection_percent)
        });
        let was_ejected = is_ejected(tracked.stats.state());
        advance_backend(*addr, tracked, &policy, &settings, may_open, now);
        let ejected = is_ejected(tracked.stats.state());
        if ejected != was_ejected {
            for &p in &tracked.pools {
                let count = &mut pool_counts[p].0;
                *count = if ejected {
                    *count + 1
                } else {
                    count.saturating_sub(1)
                };
            }
        }
    }

    for pool in &snapshot.pools {
        update_panic(pool, settings.panic_threshold);
        update_weights(pool, state, &settings, elapsed, now);
    }
    to_probe
}

/// How a pool's backends are probed, if they are.
fn probe_policy(pool: &Pool, settings: &Resilience) -> Option<HealthPolicy> {
    let h = settings.health;
    pool.health_path.as_ref().map(|path| HealthPolicy {
        path: path.clone(),
        host: pool.health_host.clone(),
        interval: h.interval,
        fast_interval: h.fast_interval,
        down_interval: h.down_interval,
        timeout: h.timeout,
        statuses: h.statuses.0..=h.statuses.1,
        rise: h.rise,
        fall: h.fall,
    })
}

/// Tries that succeeded and failed, summed over every worker.
fn totals(stats: &BackendStats, fail_on_5xx: bool) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    for c in stats.all_counters() {
        for (class, counter) in c.responses.iter().enumerate() {
            if class == 4 && fail_on_5xx {
                failed += counter.get();
            } else {
                ok += counter.get();
            }
        }
        failed += c.failures.iter().map(|f| f.get()).sum::<u64>();
    }
    (ok, failed)
}

/// Is a backend in this state ejected (its breaker not closed)?
fn is_ejected(state: BackendState) -> bool {
    matches!(state, BackendState::Open | BackendState::HalfOpen)
}

/// (ejected, in rotation) of a pool: breakers not closed, among entries
/// not drained.
pub fn ejected_in(pool: &Pool) -> (usize, usize) {
    let live = pool.backends.iter().filter(|b| !b.drained);
    let (mut ejected, mut total) = (0, 0);
    for b in live {
        total += 1;
        if is_ejected(b.state()) {
            ejected += 1;
        }
    }
    (ejected, total)
}

/// Feed one backend's counts to its breaker, and publish the state that
/// breaker and health checks together call for.
fn advance_backend(
    addr: SocketAddr,
    tracked: &mut Tracked,
    policy: &breaker::BreakerPolicy,
    settings: &Resilience,
    may_open: bool,
    now: Instant,
) {
    let current = tracked.stats.state();
    let (ok, failed) = totals(&tracked.stats, settings.fail_on_5xx);
    let observed = Observed {
        ok: ok.saturating_sub(tracked.totals.0),
        failed: failed.saturating_sub(tracked.totals.1),
        tripped: current == BackendState::Open
            && matches!(tracked.published, BackendState::Up | BackendState::HalfOpen),
    };
    tracked.totals = (ok, failed);
    let tries = observed.ok + observed.failed;
    if tries > 0 {
        let rate = observed.failed as f64 / tries as f64;
        tracked.failure_rate += FAILURE_RATE_ALPHA * (rate - tracked.failure_rate);
    }
    let healthy = tracked.health.as_ref().is_none_or(Health::is_up);
    let before = tracked.breaker.phase();
    let phase = tracked.breaker.advance(policy, observed, may_open, now);
    let wanted = if !healthy {
        BackendState::Down
    } else {
        match phase {
            Phase::Closed => BackendState::Up,
            Phase::Open { .. } => BackendState::Open,
            Phase::HalfOpen => BackendState::HalfOpen,
        }
    };
    if matches!(phase, Phase::Open { .. }) && !matches!(before, Phase::Open { .. }) {
        tracked
            .stats
            .resilience
            .ejections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let why = if observed.tripped {
            format!("{} failed tries in a row", settings.max_fails.max(1))
        } else {
            format!(
                "{}% or more of recent tries failed",
                settings.fail_ratio_percent
            )
        };
        let Phase::Open { until } = phase else {
            unreachable!()
        };
        let secs = until.saturating_duration_since(now).as_secs_f64();
        match before {
            Phase::HalfOpen => {
                info!("backend {addr}: trial request failed: ejected again for {secs:.0}s")
            }
            _ => info!("backend {addr}: ejected for {secs:.0}s: {why}"),
        }
    }
    if wanted == current {
        tracked.published = current;
        if current == BackendState::HalfOpen {
            let refill = *tracked
                .half_open_refill
                .get_or_insert(now + settings.ejection_time);
            if now >= refill {
                tracked
                    .stats
                    .change_state(current, current, HALF_OPEN_TRIALS);
                tracked.half_open_refill = Some(now + settings.ejection_time);
            }
        } else {
            tracked.half_open_refill = None;
        }
        return;
    }
    tracked.half_open_refill = None;
    if tracked
        .stats
        .change_state(current, wanted, HALF_OPEN_TRIALS)
    {
        match (current, wanted) {
            (_, BackendState::HalfOpen) => {
                info!("backend {addr}: half-open: {HALF_OPEN_TRIALS} trial requests")
            }
            (BackendState::HalfOpen, BackendState::Up) => {
                info!("backend {addr}: trial request succeeded: back in rotation")
            }
            _ => {}
        }
        if wanted == BackendState::Up {
            tracked.up_since = Some(now);
        }
        tracked.published = wanted;
    }
}

/// A pool with fewer than `threshold` percent of its entries available
/// lets its ejected (breaker-open) backends take traffic again: better
/// some errors than refusing everything. Backends down by health checks
/// stay out.
fn update_panic(pool: &Pool, threshold: u32) {
    let live: Vec<_> = pool.backends.iter().filter(|b| !b.drained).collect();
    let available = live
        .iter()
        .filter(|b| matches!(b.state(), BackendState::Up | BackendState::HalfOpen))
        .count();
    let panic = !live.is_empty() && available * 100 < live.len() * threshold as usize;
    let was = pool.backends.iter().any(|b| b.in_panic());
    if panic != was {
        if panic {
            warn!(
                "pool {}: only {available} of {} backends available (panic threshold {threshold}%): \
                 ejected backends take traffic again",
                pool.name,
                live.len()
            );
        } else {
            info!("pool {}: out of panic", pool.name);
        }
    }
    for b in &pool.backends {
        b.set_panic(panic);
    }
}

fn update_weights(
    pool: &Pool,
    state: &mut State,
    settings: &Resilience,
    elapsed: Duration,
    now: Instant,
) {
    let (adaptive, slow_start) = weights::applies(pool.algorithm, settings);
    if !adaptive && !slow_start {
        for b in &pool.backends {
            if b.effective_weight() != b.weight {
                b.set_effective_weight(b.weight);
            }
        }
        if !state.shares.is_empty() {
            state.shares.retain(|(name, _), _| name != &pool.name);
        }
        return;
    }
    let now_ns = ewma::ns_at(now);
    let mut latencies: Vec<u64> = pool
        .backends
        .iter()
        .filter(|b| b.state() == BackendState::Up)
        .map(|b| b.latency_at(now_ns))
        .collect();
    latencies.sort_unstable();
    let pool_latency =
        Duration::from_nanos(latencies.get(latencies.len() / 2).copied().unwrap_or(0));
    for b in &pool.backends {
        let Some(tracked) = state.backends.get(&b.addr) else {
            continue;
        };
        let inputs = Inputs {
            latency: Duration::from_nanos(b.latency_at(now_ns)),
            pool_latency,
            failure_rate: tracked.failure_rate,
            since_up: tracked.up_since.map(|t| now.saturating_duration_since(t)),
        };
        let slow = if slow_start {
            settings.slow_start
        } else {
            Duration::ZERO
        };
        let target = weights::target_share(&inputs, adaptive, slow);
        let key = (pool.name.clone(), b.addr);
        let current = state.shares.get(&key).copied().unwrap_or(target);
        let share = if slow_start && inputs.since_up.is_some_and(|s| s < settings.slow_start) {
            // The ramp is its own smoothing.
            target
        } else {
            weights::next_share(current, target, elapsed)
        };
        state.shares.insert(key, share);
        let weight = weights::effective_weight(b.weight, share);
        if b.effective_weight() != weight {
            b.set_effective_weight(weight);
        }
    }
}

/// Probe one backend for as long as some pool wants it probed.
async fn probe_loop(state: Rc<RefCell<State>>, addr: SocketAddr) {
    // Spread the first probes of many backends over a short moment.
    let mut seed = u64::from(addr.port()) ^ (ewma::now_ns() << 16);
    monoio::time::sleep(health::jittered(Duration::from_millis(100), seed)).await;
    loop {
        let policy = {
            let mut s = state.borrow_mut();
            let Some(tracked) = s.backends.get_mut(&addr) else {
                return;
            };
            match &tracked.probe_policy {
                Some(p) => p.clone(),
                None => {
                    tracked.probing = false;
                    tracked.health = None;
                    return;
                }
            }
        };
        let result = probe::probe(addr, &policy).await;
        let healthy = health::is_healthy(&policy, result.ok());
        let next = {
            let mut s = state.borrow_mut();
            let Some(tracked) = s.backends.get_mut(&addr) else {
                return;
            };
            let counters = &tracked.stats.resilience;
            let counter = if healthy {
                &counters.probes_ok
            } else {
                &counters.probes_failed
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let health = tracked.health.get_or_insert_with(Health::new);
            match health.record(&policy, healthy) {
                Some(true) => {
                    info!(
                        "backend {addr}: health check passed {} times in a row: up",
                        policy.rise
                    );
                    // Healthy again by direct evidence: an open breaker
                    // need not wait out its time.
                    tracked.breaker.close(Instant::now());
                }
                Some(false) => {
                    counters
                        .health_downs
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let what = match result {
                        Ok(code) => format!("answered {code}"),
                        Err(e) => e.as_str().to_string(),
                    };
                    warn!(
                        "backend {addr}: health check failed {} times in a row ({what}): down",
                        policy.fall
                    );
                }
                None => {}
            }
            health.next_interval(&policy)
        };
        seed = seed.wrapping_add(1);
        monoio::time::sleep(health::jittered(next, seed)).await;
    }
}
