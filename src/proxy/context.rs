//! What one worker thread owns that its connections use: its upstream
//! pool, buffers, timeouts, balancer state, retry budget, settings, access
//! log and counters.
//!
//! Used from its own thread only (`Rc`, `Cell`, `RefCell`); what it shares
//! with other threads is reached through [`Shared`]: the snapshot it
//! reads, the backend atomics, its own metrics block. The worker
//! (`crate::worker`) builds it, runs its periodic tasks and accepts the
//! connections that use it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::buffers::BufferPool;
use crate::config::Settings;
use crate::deadline::Deadlines;
use crate::logging::Limiter;
use crate::plan::retry_budget::RetryBudget;
use crate::plan::routing::Routing;
use crate::pool::UpstreamPool;
use crate::shared::Shared;
use crate::slots::FutureSlots;
use crate::splice::Pipes;
use crate::state::outcome::WorkerMetrics;
use crate::transport::backend::BackendStream;

/// How long an idle pooled upstream connection is kept. Backends commonly
/// close idle connections after 60 s (nginx: 75 s); reusing one they are
/// about to close only costs a replay, but dropping ours first is cheaper.
const UPSTREAM_IDLE_TIME: Duration = Duration::from_secs(30);

/// Per-thread state of one data-plane worker.
pub struct WorkerContext {
    /// Index of this worker (0-based).
    pub id: usize,
    /// What every thread shares.
    pub shared: Arc<Shared>,
    /// Idle upstream connections.
    pub pool: UpstreamPool<BackendStream>,
    /// Buffers of the exchanges in flight, taken and given back.
    pub buffers: BufferPool,
    /// Memory of the head-reading and exchange futures in flight, likewise
    /// (one free list per future type: each holds blocks of one size).
    pub head_slots: FutureSlots,
    pub exchange_slots: FutureSlots,
    /// Timeouts of this worker's socket waits (swept by a task of its own).
    pub deadlines: Deadlines,
    /// Spare pipes for bodies spliced from backend to client.
    pub pipes: Pipes,
    /// The access log, if on.
    pub access_log: Option<AccessLog>,
    /// This worker's balancers, for the snapshot it last saw.
    routing: RefCell<Routing>,
    /// Behind an `Rc`: read several times a request, and copying the
    /// whole struct each time would cost more than a count.
    settings: RefCell<Rc<Settings>>,
    draining: Cell<bool>,
    /// Client connections this worker has open.
    connections: Cell<usize>,
    /// Backend failures are logged at most once a second per worker.
    pub failure_log: Limiter,
    /// Retries this worker may still send (`--retry-budget`).
    pub retry_budget: RetryBudget,
    /// So are connections refused by `--max-connections-per-ip`.
    pub refusal_log: Limiter,
    /// TLS handshakes in progress on this worker (`crate::worker`'s cap).
    pub handshakes: Cell<usize>,
    /// And corelb's own shortages (descriptors, ports) connecting upstream.
    pub shortage_log: Limiter,
}

impl WorkerContext {
    /// State for worker `id`.
    pub fn new(id: usize, shared: Arc<Shared>, access_log: Option<AccessLog>) -> Self {
        let snapshot = shared.snapshot().clone();
        let settings = snapshot.settings;
        Self {
            id,
            pool: UpstreamPool::new(settings.upstream_keepalive, UPSTREAM_IDLE_TIME),
            buffers: BufferPool::new(),
            head_slots: FutureSlots::new(),
            exchange_slots: FutureSlots::new(),
            deadlines: Deadlines::new(),
            pipes: Pipes::default(),
            access_log,
            routing: RefCell::new(Routing::new(snapshot, id)),
            settings: RefCell::new(Rc::new(settings)),
            draining: Cell::new(false),
            connections: Cell::new(0),
            failure_log: Limiter::new(Duration::from_secs(1)),
            retry_budget: RetryBudget::new(Instant::now()),
            refusal_log: Limiter::new(Duration::from_secs(1)),
            handshakes: Cell::new(0),
            shortage_log: Limiter::new(Duration::from_secs(1)),
            shared,
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
        self.shared.worker_metrics(self.id)
    }

    /// This worker's balancers, up to date with the published snapshot:
    /// a new generation brings new balancer state on the new pools and
    /// the new settings. For a request's first pick.
    pub fn fresh_routing(&self) -> std::cell::RefMut<'_, Routing> {
        let mut routing = self.routing.borrow_mut();
        self.bring_up_to_date(&mut routing);
        routing
    }

    /// Take up a new generation even without requests, so an idle worker
    /// does not keep the old snapshot (and every backend it names) alive.
    /// True if there was one. Skipped if the routing is in use.
    pub fn refresh_routing(&self) -> bool {
        self.routing
            .try_borrow_mut()
            .is_ok_and(|mut routing| self.bring_up_to_date(&mut routing))
    }

    fn bring_up_to_date(&self, routing: &mut Routing) -> bool {
        let current = self.shared.snapshot();
        if routing.snapshot().generation == current.generation {
            return false;
        }
        *routing = Routing::new(Arc::clone(&current), self.id);
        let settings = current.settings;
        self.pool.set_max_idle(settings.upstream_keepalive);
        *self.settings.borrow_mut() = Rc::new(settings);
        true
    }

    /// This worker's balancers as they are (for a request under way,
    /// whose plan names pools of the snapshot it started with).
    pub fn routing(&self) -> std::cell::Ref<'_, Routing> {
        self.routing.borrow()
    }

    /// Is this worker draining (answer with `Connection: close`)?
    #[inline]
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// From now on, answer with `Connection: close` and accept nothing.
    pub fn start_draining(&self) {
        self.draining.set(true);
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
}
