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

use tracing::warn;

use super::backend_state::{advance_backend, totals};
use super::breaker::{self, Breaker};
use super::health::{Health, HealthPolicy};
use super::pool_state::{ejected_in, is_ejected, update_panic, update_weights};
use super::probe::probe_loop;
use super::weights::LatencyFloor;
use crate::backend::{BackendState, BackendStats};
use crate::config::Resilience;
use crate::control::lifecycle::Phase as Lifecycle;
use crate::control::Control;
use crate::snapshot::Pool;

/// How often states, weights and panic flags are brought up to date.
pub const TICK: Duration = Duration::from_millis(100);

/// What the thread keeps about one backend address.
pub(super) struct Tracked {
    pub(super) stats: Arc<BackendStats>,
    pub(super) breaker: Breaker,
    /// Probe results, while the backend is probed.
    pub(super) health: Option<Health>,
    /// How to probe it now (`None`: not probed; a running probe loop ends).
    pub(super) probe_policy: Option<HealthPolicy>,
    pub(super) probing: bool,
    /// The state this thread published last.
    pub(super) published: BackendState,
    /// Counter totals at the last tick: (ok, failed).
    pub(super) totals: (u64, u64),
    /// Smoothed share of failed tries.
    pub(super) failure_rate: f64,
    /// Its latency estimate's floor over the last second (weights).
    pub(super) latency: LatencyFloor,
    /// When it last became available (slow start); `None`: since start.
    pub(super) up_since: Option<Instant>,
    /// Seen in the current snapshot this tick.
    pub(super) seen: bool,
    /// The snapshot's pools that list it (indices), this tick.
    pub(super) pools: Vec<usize>,
    /// While half-open: when to hand out trial permits again if the
    /// trials came to nothing (a client that left mid-try counts neither
    /// way, and must not keep the backend half-open for ever).
    pub(super) half_open_refill: Option<Instant>,
}

/// Per pool entry (pool name, address): its share of full weight now.
pub(super) type Shares = HashMap<(String, SocketAddr), f64>;

/// Everything the thread keeps, shared by its tick and probe tasks.
pub(super) struct State {
    pub(super) control: Arc<Control>,
    pub(super) backends: HashMap<SocketAddr, Tracked>,
    pub(super) shares: Shares,
    /// The first tick takes the backends configured at start as they are:
    /// slow start is for returns, not for the first start.
    pub(super) started: bool,
    pub(super) last_tick: Instant,
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
    let now_ns = crate::ewma::ns_at(now);
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
        fast_interval: h.fast_interval,
        down_interval: h.down_interval,
        timeout: h.timeout,
        statuses: h.statuses.0..=h.statuses.1,
        rise: h.rise,
        fall: h.fall,
    })
}
