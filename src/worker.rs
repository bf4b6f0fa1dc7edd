//! What one worker thread owns: its upstream pool, its timeouts, its own
//! balancer state for every pool of the current snapshot, its drain state
//! and its access log.
//!
//! A worker is used from its own thread only (`Rc`, `Cell`, `RefCell`);
//! what it shares with other threads is reached through [`Control`]: the
//! snapshot it reads, the backend atomics, its own metrics block.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::AccessLog;
use crate::backend::{Backend, BackendState};
use crate::balance::{self, Balancer, WeightedSampler};
use crate::buffers::{BufferPool, TRIM_INTERVAL};
use crate::config::Settings;
use crate::control::lifecycle::Phase;
use crate::control::Control;
use crate::deadline::{Deadlines, TICK};
use crate::http::{upgrade, RequestHead};
use crate::outcome::WorkerMetrics;
use crate::pool::UpstreamPool;
use crate::resilience::breaker::ejection_allowed;
use crate::retry_budget::RetryBudget;
use crate::slots::FutureSlots;
use crate::snapshot::Snapshot;

/// How long an idle pooled upstream connection is kept. Backends commonly
/// close idle connections after 60 s (nginx: 75 s); reusing one they are
/// about to close only costs a replay, but dropping ours first is cheaper.
const UPSTREAM_IDLE_TIME: Duration = Duration::from_secs(30);

/// Weighted draws for a failover target before walking the pool instead.
const FAILOVER_DRAWS: usize = 4;

/// While draining, a kept-alive connection idle this long is closed. Not
/// at once: a client that has just read a response is about to send its
/// next request, and closing under it would fail that request; given a
/// moment, it gets an answer with `Connection: close` instead.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// The balancers built for one snapshot.
struct Routing {
    snapshot: Arc<Snapshot>,
    balancers: Vec<Box<dyn Balancer>>,
    /// Per pool: where a request goes when its backend cannot be reached.
    failover: Vec<WeightedSampler>,
}

impl Routing {
    fn new(snapshot: Arc<Snapshot>, worker_id: usize) -> Self {
        let balancers = snapshot
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let seed = (worker_id as u64) << 32 | i as u64;
                balance::build(pool.algorithm, &pool.backends, seed)
            })
            .collect();
        let failover = snapshot
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let seed = !((worker_id as u64) << 32 | i as u64);
                WeightedSampler::new(&pool.backends, seed)
            })
            .collect();
        Self {
            snapshot,
            balancers,
            failover,
        }
    }
}

/// Open client connections from which a worker has its io_uring driver
/// collect completions eagerly after a busy turn (`set_eager_collect` in the
/// vendored monoio). Under `DEFER_TASKRUN` an enter runs the deferred work
/// of at most 20 completions, and with 2 000 connections the rest waited
/// turns of the loop: p99 4x nginx's (`perf/README.md`). Eager collects
/// cost CPU per request when the queue is short, as it is with a few
/// hundred connections, so below this they stay off.
const EAGER_COLLECT_CONNECTIONS: usize = 1024;

/// Per-thread state of one data-plane worker.
pub struct Worker {
    /// Index of this worker (0-based).
    pub id: usize,
    /// The owner of everything shared.
    pub control: Arc<Control>,
    /// Idle upstream connections.
    pub pool: UpstreamPool,
    /// Buffers of the exchanges in flight, taken and given back.
    pub buffers: BufferPool,
    /// Memory of the head-reading and exchange futures in flight, likewise
    /// (one free list per future type: each holds blocks of one size).
    pub head_slots: FutureSlots,
    pub exchange_slots: FutureSlots,
    /// Timeouts of this worker's socket waits (swept by a task of its own).
    pub deadlines: Deadlines,
    /// The access log, if on.
    pub access_log: Option<AccessLog>,
    routing: RefCell<Routing>,
    /// Behind an `Rc`: read several times a request, and copying the
    /// whole struct each time would cost more than a count.
    settings: RefCell<Rc<Settings>>,
    draining: Cell<bool>,
    /// Client connections this worker has open.
    connections: Cell<usize>,
    /// This worker's listening socket, closed when the drain starts.
    listener_fd: Cell<Option<RawFd>>,
    /// Backend failures are logged at most once a second per worker.
    pub failure_log: crate::logging::Limiter,
    /// Retries this worker may still send (`--retry-budget`).
    pub retry_budget: RetryBudget,
    /// So are connections refused by `--max-connections-per-ip`.
    pub refusal_log: crate::logging::Limiter,
}

impl Worker {
    /// State for worker `id`.
    pub fn new(id: usize, control: Arc<Control>, access_log: Option<AccessLog>) -> Self {
        let snapshot = control.snapshot().clone();
        let settings = snapshot.settings;
        Self {
            id,
            pool: UpstreamPool::new(settings.upstream_keepalive, UPSTREAM_IDLE_TIME),
            buffers: BufferPool::new(),
            head_slots: FutureSlots::new(),
            exchange_slots: FutureSlots::new(),
            deadlines: Deadlines::new(),
            access_log,
            routing: RefCell::new(Routing::new(snapshot, id)),
            settings: RefCell::new(Rc::new(settings)),
            draining: Cell::new(false),
            connections: Cell::new(0),
            listener_fd: Cell::new(None),
            failure_log: crate::logging::Limiter::new(Duration::from_secs(1)),
            retry_budget: RetryBudget::new(std::time::Instant::now()),
            refusal_log: crate::logging::Limiter::new(Duration::from_secs(1)),
            control,
        }
    }

    /// The reloadable settings, as of the last request's snapshot.
    #[inline]
    pub fn settings(&self) -> Rc<Settings> {
        Rc::clone(&self.settings.borrow())
    }

    /// This worker's metrics block.
    #[inline]
    pub fn metrics(&self) -> &WorkerMetrics {
        self.control.worker_metrics(self.id)
    }

    /// Is this worker draining (answer with `Connection: close`)?
    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Take up a newly published snapshot, if there is one: new balancer
    /// state on the new pools, the new settings.
    fn refresh(&self, routing: &mut Routing) {
        let current = self.control.snapshot();
        if routing.snapshot.generation != current.generation {
            *routing = Routing::new(Arc::clone(&current), self.id);
            let settings = current.settings;
            self.pool.set_max_idle(settings.upstream_keepalive);
            *self.settings.borrow_mut() = Rc::new(settings);
        }
    }

    /// Route the request to a pool and pick a backend from it.
    /// `None` means no backend is eligible (answer 503).
    pub fn pick(
        &self,
        host: &[u8],
        path: &[u8],
        client_ip: IpAddr,
        req: &RequestHead<'_, '_>,
    ) -> Option<Choice> {
        let mut routing = self.routing.borrow_mut();
        self.refresh(&mut routing);
        let pool_index = routing.snapshot.route(host, path);
        let pool = &routing.snapshot.pools[pool_index];
        let hash = balance::request_hash(&pool.hash_key, pool.algorithm, client_ip, req);
        let chosen = routing.balancers[pool_index].pick(&pool.backends, hash)?;
        self.retry_budget.on_request();
        let mut choice = Choice {
            backend: Arc::clone(&pool.backends[chosen]),
            pool: pool_index,
            generation: routing.snapshot.generation,
            max_body_size: pool.max_body_size,
            upgrade: req
                .upgrade
                .is_some_and(|p| upgrade::may_forward(req.method, p, &pool.allow_upgrades)),
        };
        if !choice.backend.stats().admit() {
            // Half-open, and another core took the last trial permit.
            drop(routing);
            choice.backend = self.pick_other(&choice, &Arc::clone(&choice.backend))?;
        }
        Some(choice)
    }

    /// Count a finished try against (or for) its backend, and trip the
    /// backend's breaker when this was the failure too many: at once, on
    /// this core, so no more requests go there meanwhile. `failed` by
    /// [`crate::resilience::breaker::counts_as_failure`].
    pub fn note_try(&self, choice: &Choice, backend: &Backend, failed: bool) {
        let stats = backend.stats();
        let streak = stats.note_try(failed);
        if !failed {
            return;
        }
        let settings = self.settings().resilience;
        match backend.state() {
            BackendState::HalfOpen => {
                stats.change_state(BackendState::HalfOpen, BackendState::Open, 0);
            }
            BackendState::Up
                if settings.max_fails > 0
                    && streak >= settings.max_fails
                    && self.may_eject(choice, settings.max_ejection_percent) =>
            {
                stats.change_state(BackendState::Up, BackendState::Open, 0);
            }
            _ => {}
        }
    }

    /// Would ejecting one more backend of the choice's pool stay within
    /// `--max-ejection-percent`? Counted only when a streak is long
    /// enough to eject, so the scan is rare.
    fn may_eject(&self, choice: &Choice, max_percent: u32) -> bool {
        let routing = self.routing.borrow();
        if routing.snapshot.generation != choice.generation {
            return true;
        }
        let Some(pool) = routing.snapshot.pools.get(choice.pool) else {
            return true;
        };
        let (ejected, total) = crate::resilience::pool_state::ejected_in(pool);
        ejection_allowed(ejected, total, max_percent)
    }

    /// Another backend of the same pool than `failed`, for a request that
    /// could not be delivered (its connect failed, so nothing was sent).
    /// `None` when the pool has no other eligible backend, or when a reload
    /// replaced the pools meanwhile.
    pub fn pick_other(&self, choice: &Choice, failed: &Backend) -> Option<Arc<Backend>> {
        let routing = self.routing.borrow();
        if routing.snapshot.generation != choice.generation {
            return None;
        }
        let backends = &routing.snapshot.pools.get(choice.pool)?.backends;
        let failed_at = backends.iter().position(|b| b.addr == failed.addr)?;
        // Drawn by weight from the others, not the next one in pool order:
        // with a backend down, its whole share would fall on one neighbour.
        // Not the balancer either: a second pick would move its cursor, and
        // with one backend down round-robin would then start every request
        // on it.
        let sampler = routing.failover.get(choice.pool)?;
        for _ in 0..FAILOVER_DRAWS {
            let i = sampler.pick(backends, Some(failed_at))?;
            // The same address listed twice is the same dead server.
            if backends[i].addr != failed.addr && backends[i].stats().admit() {
                return Some(Arc::clone(&backends[i]));
            }
        }
        // Entries for the failed address crowd the pool: walk to another.
        (1..backends.len())
            .map(|step| &backends[(failed_at + step) % backends.len()])
            .find(|b| b.is_eligible() && b.addr != failed.addr && b.stats().admit())
            .map(Arc::clone)
    }

    /// A client connection opened on this worker.
    pub fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
        self.metrics().accepted.inc();
        self.metrics().open.change(1);
    }

    /// A client connection of this worker closed.
    pub fn connection_closed(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
        self.metrics().open.change(-1);
    }

    /// Client connections open on this worker.
    pub fn open_connections(&self) -> usize {
        self.connections.get()
    }

    /// Remember the listening socket, to close it when the drain starts.
    pub fn set_listener(&self, fd: RawFd) {
        self.listener_fd.set(Some(fd));
    }

    /// Every tick: expire socket waits, follow the lifecycle, and tell the
    /// io_uring driver whether this worker is busy enough to collect
    /// completions eagerly. Ends when the process stops.
    pub async fn run_ticks(self: std::rc::Rc<Self>) {
        loop {
            monoio::time::sleep(TICK).await;
            self.deadlines.sweep(std::time::Instant::now());
            monoio::utils::set_eager_collect(self.open_connections() >= EAGER_COLLECT_CONNECTIONS);
            match self.control.lifecycle.phase() {
                Phase::Running => {}
                Phase::Draining if !self.draining.get() => self.start_drain(),
                Phase::Draining => {}
                Phase::Stopping => return,
            }
        }
    }

    /// Stop accepting: take what is already queued, then close the
    /// listener (a connection left in its queue would be reset).
    fn start_drain(self: &std::rc::Rc<Self>) {
        self.draining.set(true);
        self.deadlines.start_drain(DRAIN_IDLE_GRACE);
        if let Some(fd) = self.listener_fd.take() {
            crate::listener::take_queued(self, fd);
        }
    }

    /// Let go of the buffers and exchange blocks no exchange needed for a
    /// whole interval, every [`TRIM_INTERVAL`], for ever.
    pub async fn run_trimmer(&self) {
        let mut collect_again = false;
        loop {
            monoio::time::sleep(TRIM_INTERVAL).await;
            let dropped =
                self.buffers.trim() + self.head_slots.trim() + self.exchange_slots.trim() > 0;
            if dropped || collect_again {
                // mimalloc keeps freed pages for reuse until asked, and
                // hands back recently freed ones only on a later call:
                // without this, a burst's peak would stay resident.
                // SAFETY: a plain call; harmless if mimalloc is not the
                // allocator (its heap is then empty).
                unsafe { libmimalloc_sys::mi_collect(true) };
            }
            collect_again = dropped;
        }
    }

    /// Write the access log out once a second, reopening it after SIGUSR1.
    pub async fn run_log_flusher(&self) {
        let Some(log) = &self.access_log else {
            return;
        };
        loop {
            monoio::time::sleep(Duration::from_secs(1)).await;
            log.flush_and_reopen(self.control.log_epoch());
        }
    }

    /// Wait until this worker's last connection has closed, or the process
    /// is stopping.
    pub async fn wait_drained(&self) {
        while self.connections.get() > 0 && self.control.lifecycle.phase() != Phase::Stopping {
            monoio::time::sleep(TICK).await;
        }
    }
}

/// The backend chosen for a request, and what is needed to choose again.
pub struct Choice {
    /// The backend to send the request to.
    pub backend: Arc<Backend>,
    pool: usize,
    /// The snapshot `pool` indexes into.
    generation: u64,
    /// The pool's limit on request bodies.
    pub max_body_size: Option<u64>,
    /// The request's ask to upgrade goes to the backend (the pool allows
    /// the protocol).
    pub upgrade: bool,
}
