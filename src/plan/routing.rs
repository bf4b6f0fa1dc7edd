//! A worker's own balancer state for one snapshot: one balancer per pool
//! (its cursors are this worker's, so no counter is shared between cores)
//! and one failover sampler per pool.
//!
//! Rebuilt when the worker sees a new snapshot generation; used from the
//! worker's thread only.

use std::net::IpAddr;
use std::sync::Arc;

use crate::balance::{self, Balancer, WeightedSampler};
use crate::config::retry_on::RetryOn;
use crate::error::ProxyError;
use crate::http::{upgrade, RequestHead};
use crate::snapshot::Snapshot;
use crate::state::backend::Backend;
use crate::transport::tls::connector::TlsConnector;

/// Weighted draws for a failover target before walking the pool instead.
const FAILOVER_DRAWS: usize = 4;

/// The balancers built for one snapshot.
pub struct Routing {
    snapshot: Arc<Snapshot>,
    balancers: Vec<Box<dyn Balancer>>,
    /// Per pool: where a request goes when its backend cannot be reached.
    failover: Vec<WeightedSampler>,
}

/// Where a request's first try goes, and what its pool allows.
pub struct FirstPick {
    /// The backend drawn by the pool's balancer.
    pub backend: Arc<Backend>,
    /// The pool, as an index into the snapshot of `generation`.
    pub pool: usize,
    pub generation: u64,
    /// The pool's limit on request bodies.
    pub max_body_size: Option<u64>,
    /// The statuses the pool retries answers on.
    pub retry_on: RetryOn,
    /// The request's ask to upgrade goes to the backend (the pool allows
    /// the protocol).
    pub upgrade: bool,
    /// The pool's TLS to its backends; `None`: plaintext.
    pub tls: Option<Arc<TlsConnector>>,
}

impl Routing {
    /// Balancers for `snapshot`, seeded apart per worker and pool.
    pub fn new(snapshot: Arc<Snapshot>, worker_id: usize) -> Self {
        let seed = |pool: usize| (worker_id as u64) << 32 | pool as u64;
        let balancers = snapshot
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| balance::build(pool.algorithm, &pool.backends, seed(i)))
            .collect();
        let failover = snapshot
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| WeightedSampler::new(&pool.backends, !seed(i)))
            .collect();
        Self {
            snapshot,
            balancers,
            failover,
        }
    }

    /// The snapshot these balancers were built for.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Route the request to a pool and draw a backend from it with the
    /// pool's balancer. `Err`: no backend is eligible, or (a pool whose
    /// discovery found none) the pool has none at all.
    pub fn pick(
        &mut self,
        listener: u8,
        host: &[u8],
        path: &[u8],
        client_ip: IpAddr,
        req: &RequestHead<'_, '_>,
    ) -> Result<FirstPick, ProxyError> {
        let pool_index = self.snapshot.route(listener, host, path);
        let pool = &self.snapshot.pools[pool_index];
        if pool.backends.is_empty() {
            return Err(ProxyError::PoolEmpty);
        }
        let hash = balance::request_hash(&pool.hash_key, pool.algorithm, client_ip, req);
        let chosen = self.balancers[pool_index]
            .pick(&pool.backends, hash)
            .ok_or(ProxyError::NoBackend)?;
        Ok(FirstPick {
            backend: Arc::clone(&pool.backends[chosen]),
            pool: pool_index,
            generation: self.snapshot.generation,
            max_body_size: pool.max_body_size,
            retry_on: pool.retry_on,
            upgrade: req
                .upgrade
                .is_some_and(|p| upgrade::may_forward(req.method, p, &pool.allow_upgrades)),
            tls: pool.tls.clone(),
        })
    }

    /// Another backend of pool `pool` (of snapshot `generation`) than
    /// `failed`, that admits a request now. `None` when the pool has no
    /// other eligible backend, or when a reload replaced the pools
    /// meanwhile.
    pub fn pick_other(
        &self,
        pool: usize,
        generation: u64,
        failed: &Backend,
    ) -> Option<Arc<Backend>> {
        if self.snapshot.generation != generation {
            return None;
        }
        let backends = &self.snapshot.pools.get(pool)?.backends;
        let failed_at = backends.iter().position(|b| b.addr == failed.addr)?;
        // Drawn by weight from the others, not the next one in pool order:
        // with a backend down, its whole share would fall on one neighbour.
        // Not the balancer either: a second pick would move its cursor, and
        // with one backend down round-robin would then start every request
        // on it.
        let sampler = self.failover.get(pool)?;
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

    /// Would ejecting one more backend of pool `pool` stay within
    /// `max_percent`? Asked only when a streak is long enough to eject,
    /// so the scan is rare. A pool of another snapshot: yes.
    pub fn may_eject(&self, pool: usize, generation: u64, max_percent: u32) -> bool {
        if self.snapshot.generation != generation {
            return true;
        }
        let Some(pool) = self.snapshot.pools.get(pool) else {
            return true;
        };
        let (ejected, total) = super::ejection::ejected_in(pool);
        super::ejection::ejection_allowed(ejected, total, max_percent)
    }
}
