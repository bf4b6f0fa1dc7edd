//! The `corelb-health` thread: active probes, and a 100 ms tick that turns
//! what the workers counted into backend states, effective weights and
//! panic flags. It runs its own small monoio runtime (probes are many
//! small concurrent exchanges) and never handles a client request.
//!
//! Per backend address it keeps a `Tracked` (`tracked.rs`): the breaker, the probe
//! results, the counter totals seen last tick, the state it last
//! published. Workers write a backend's state only to trip its breaker
//! (`Up`/`HalfOpen` → `Open`, see [`crate::plan::Plan::record`]); the
//! tick sees such a trip as a published state it did not write, and tells
//! the breaker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::backend_state::{advance_backend, totals};
use super::breaker::Breaker;
use super::health::{Health, HealthPolicy, ProbeTls};
use super::pace::Pace;
use super::pool_state::{update_panic, update_weights};
use super::probe::probe_loop;
use super::tracked::{State, Tracked};
use super::weights::LatencyFloor;
use crate::config::Resilience;
use crate::plan::ejection::{ejected_in, ejection_allowed, is_ejected};
use crate::shared::Shared;
use crate::snapshot::Pool;
use crate::state::backend::BackendState;
use crate::state::lifecycle::Phase as Lifecycle;

/// How often states, weights and panic flags are brought up to date.
pub const TICK: Duration = Duration::from_millis(100);

/// Start the thread.
pub fn start(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("corelb-health".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(run(shared)),
                Err(e) => {
                    warn!("health checks and ejection are off: cannot start their runtime: {e}")
                }
            }
        })
}

async fn run(shared: Arc<Shared>) {
    let state = Rc::new(RefCell::new(State {
        shared: Arc::clone(&shared),
        backends: HashMap::new(),
        shares: HashMap::new(),
        started: false,
        last_tick: Instant::now(),
    }));
    let mut pace = Pace::default();
    loop {
        if shared.lifecycle.phase() == Lifecycle::Stopping {
            return;
        }
        let now = Instant::now();
        if pace.due(shared.generation(), shared.activity(), now) {
            let to_probe = tick(&mut state.borrow_mut(), now);
            for addr in to_probe {
                monoio::spawn(probe_loop(Rc::clone(&state), addr));
            }
            pace.walked(settled(&state.borrow(), now));
        }
        monoio::time::sleep(TICK).await;
    }
}

/// Is every backend at rest: up, not probed, not failing, not ramping up?
fn settled(state: &State, now: Instant) -> bool {
    let slow_start = state.shared.snapshot().settings.resilience.slow_start;
    state.backends.values().all(|t| {
        t.published == BackendState::Up
            && t.stats.state() == BackendState::Up
            && t.probe_policy.is_none()
            && !t.probing
            && t.failure_rate == 0.0
            && t.half_open_refill.is_none()
            && t.up_since
                .is_none_or(|since| now.saturating_duration_since(since) >= slow_start)
    })
}

/// One tick; returns the addresses whose probe loop should start.
fn tick(state: &mut State, now: Instant) -> Vec<SocketAddr> {
    let snapshot = Arc::clone(&state.shared.snapshot());
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
                    latency: LatencyFloor::default(),
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
                tracked.probe_policy = policy.clone().map(|mut p| {
                    p.tls = pool.tls.as_ref().map(|connector| ProbeTls {
                        connector: Arc::clone(connector),
                        name: backend.name.clone(),
                    });
                    p
                });
            }
        }
    }
    let before = state.backends.len();
    state.backends.retain(|_, t| t.seen || t.probing);
    if state.backends.len() < before {
        // Backends left (a reload, an admin removal): forget their weight
        // shares too, and give the memory back (see `crate::memory`).
        let tracked = &state.backends;
        state
            .shares
            .retain(|(_, addr), _| tracked.contains_key(addr));
        state.backends.shrink_to_fit();
        state.shares.shrink_to_fit();
        crate::memory::give_back();
    }

    let mut to_probe = Vec::new();
    for (addr, tracked) in state.backends.iter_mut() {
        if tracked.probe_policy.is_some() && !tracked.probing {
            tracked.probing = true;
            // A backend published down before its first probe (a discovered
            // one, see `Control::publish`) is down until probes pass.
            let down = tracked.published == BackendState::Down;
            tracked
                .health
                .get_or_insert_with(|| if down { Health::down() } else { Health::new() });
            to_probe.push(*addr);
        }
        if tracked.probe_policy.is_none() && !tracked.probing {
            tracked.health = None;
        }
    }

    let policy = settings.breaker();
    let now_ns = crate::state::ewma::ns_at(now);
    // (ejected, in rotation) per pool, kept up to date as breakers open
    // during this tick, so several opening at once still respect the cap.
    let mut pool_counts: Vec<(usize, usize)> = snapshot.pools.iter().map(ejected_in).collect();
    for (addr, tracked) in state.backends.iter_mut() {
        if !tracked.seen {
            continue;
        }
        let may_open = tracked.pools.iter().all(|&p| {
            let (ejected, total) = pool_counts[p];
            ejection_allowed(ejected, total, settings.max_ejection_percent)
        });
        tracked.latency.record(tracked.stats.latency_at(now_ns));
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
        // "Fast" is never slower than the interval: with a short interval
        // (300ms) a backend coming back is up within rise × interval.
        fast_interval: h.fast_interval.min(h.interval),
        down_interval: h.down_interval,
        timeout: h.timeout,
        statuses: h.statuses.0..=h.statuses.1,
        rise: h.rise,
        fall: h.fall,
        tls: None,
        proxy_header: pool.send_proxy_protocol,
    })
}
