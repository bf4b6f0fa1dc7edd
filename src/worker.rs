//! What one worker thread owns: its config handle, its upstream pool, and
//! its own balancer state for every pool of the current snapshot.
//!
//! A worker is used from its own thread only (`Rc`, `RefCell`); nothing here
//! is shared except the snapshot it reads and the backend atomics.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::balance::{self, Balancer, WeightedSampler};
use crate::config::Config;
use crate::deadline::Deadlines;
use crate::http::RequestHead;
use crate::pool::UpstreamPool;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// How long an idle pooled upstream connection is kept. Backends commonly
/// close idle connections after 60 s (nginx: 75 s); reusing one they are
/// about to close only costs a replay, but dropping ours first is cheaper.
const UPSTREAM_IDLE_TIME: Duration = Duration::from_secs(30);

/// Weighted draws for a failover target before walking the pool instead.
const FAILOVER_DRAWS: usize = 4;

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

/// Per-thread state of one data-plane worker.
pub struct Worker {
    /// Index of this worker (0-based).
    pub id: usize,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Idle upstream connections.
    pub pool: UpstreamPool,
    /// Timeouts of this worker's socket waits (swept by a task of its own).
    pub deadlines: Deadlines,
    snapshot: SharedSnapshot,
    routing: RefCell<Routing>,
}

impl Worker {
    /// State for worker `id`.
    pub fn new(id: usize, config: Arc<Config>, snapshot: SharedSnapshot) -> Self {
        let routing = Routing::new(snapshot.load_full(), id);
        Self {
            id,
            pool: UpstreamPool::new(config.upstream_keepalive, UPSTREAM_IDLE_TIME),
            deadlines: Deadlines::new(),
            config,
            snapshot,
            routing: RefCell::new(routing),
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
        let current = self.snapshot.load();
        let mut routing = self.routing.borrow_mut();
        if !Arc::ptr_eq(&routing.snapshot, &current) {
            // A reload happened: start fresh balancer state on the new pools.
            *routing = Routing::new(Arc::clone(&current), self.id);
        }
        let pool_index = routing.snapshot.route(host, path);
        let pool = &routing.snapshot.pools[pool_index];
        let hash = balance::request_hash(&pool.hash_key, pool.algorithm, client_ip, req);
        let chosen = routing.balancers[pool_index].pick(&pool.backends, hash)?;
        Some(Choice {
            backend: Arc::clone(&pool.backends[chosen]),
            pool: pool_index,
            snapshot: Arc::as_ptr(&routing.snapshot) as usize,
        })
    }

    /// Another backend of the same pool than `failed`, for a request that
    /// could not be delivered (its connect failed, so nothing was sent).
    /// `None` when the pool has no other eligible backend, or when a reload
    /// replaced the pools meanwhile.
    pub fn pick_other(&self, choice: &Choice, failed: &Backend) -> Option<Arc<Backend>> {
        let routing = self.routing.borrow();
        if Arc::as_ptr(&routing.snapshot) as usize != choice.snapshot {
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
            if backends[i].addr != failed.addr {
                return Some(Arc::clone(&backends[i]));
            }
        }
        // Entries for the failed address crowd the pool: walk to another.
        (1..backends.len())
            .map(|step| &backends[(failed_at + step) % backends.len()])
            .find(|b| b.is_eligible() && b.addr != failed.addr)
            .map(Arc::clone)
    }
}

/// The backend chosen for a request, and what is needed to choose again.
pub struct Choice {
    /// The backend to send the request to.
    pub backend: Arc<Backend>,
    pool: usize,
    /// Identity of the snapshot `pool` indexes into.
    snapshot: usize,
}
