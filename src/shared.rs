//! Everything the workers share, reachable from one value.
//!
//! [`Shared`] holds the published [`Snapshot`] (told apart by generation),
//! every worker's metrics block, the connection limits, the lifecycle and
//! the access-log reopen signal. Workers and the resilience thread read it
//! without locks: an `ArcSwap` load per request and a few atomics per tick.
//! Only the control plane ([`crate::control`]) publishes snapshots and
//! changes limits; this module owns the data, not the decisions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use crossbeam_utils::CachePadded;

use crate::snapshot::Snapshot;
use crate::state::lifecycle::Lifecycle;
use crate::state::limits::ConnectionLimit;
use crate::state::outcome::WorkerMetrics;
use crate::state::per_ip::PerIpLimit;

/// What every thread reads. See the module docs.
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    workers: Box<[CachePadded<WorkerMetrics>]>,
    /// The process-wide cap on open client connections.
    pub limit: Arc<ConnectionLimit>,
    /// Open client connections per client address.
    pub per_ip: Arc<PerIpLimit>,
    /// Running, draining or stopping.
    pub lifecycle: Lifecycle,
    /// Bumped by SIGUSR1: workers reopen their access log file.
    log_epoch: AtomicU64,
}

impl Shared {
    /// Shared state for `threads` workers serving `listeners` listeners,
    /// starting with `first`.
    pub fn new(first: Snapshot, threads: usize, listeners: usize) -> Arc<Self> {
        let settings = first.settings;
        Arc::new(Self {
            workers: (0..threads.max(1))
                .map(|_| CachePadded::new(WorkerMetrics::new(listeners)))
                .collect(),
            limit: ConnectionLimit::new(settings.max_connections),
            per_ip: PerIpLimit::new(settings.max_connections_per_ip),
            lifecycle: Lifecycle::default(),
            log_epoch: AtomicU64::new(0),
            snapshot: ArcSwap::from_pointee(first),
        })
    }

    /// The snapshot workers should use now (cheap: no reference count
    /// traffic unless kept).
    #[inline]
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Make `snapshot` the one every worker uses from its next request,
    /// with the connection limits it carries.
    pub fn publish(&self, snapshot: Snapshot) {
        self.limit.set_max(snapshot.settings.max_connections);
        self.per_ip
            .set_max(snapshot.settings.max_connections_per_ip);
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The generation published last.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// Worker `id`'s metrics block.
    #[inline]
    pub fn worker_metrics(&self, id: usize) -> &WorkerMetrics {
        self.workers.get(id).unwrap_or(&self.workers[0])
    }

    /// Every worker's metrics block.
    pub fn all_worker_metrics(&self) -> impl Iterator<Item = &WorkerMetrics> {
        self.workers.iter().map(|w| &**w)
    }

    /// A sum of worker counters that moves whenever a client is served or
    /// a try is retried: while it stands still (and the generation too),
    /// no backend's counters move either, so readers that walk every
    /// backend may skip the walk.
    pub fn activity(&self) -> u64 {
        self.all_worker_metrics()
            .map(|w| {
                w.accepted.get()
                    + w.retries.get()
                    + w.responses.iter().map(|r| r.get()).sum::<u64>()
            })
            .fold(0, u64::wrapping_add)
    }

    /// The access log epoch: workers reopen their file when it moves.
    pub fn log_epoch(&self) -> u64 {
        self.log_epoch.load(Ordering::Relaxed)
    }

    /// Ask every worker to reopen its access log file (SIGUSR1).
    pub fn reopen_logs(&self) {
        self.log_epoch.fetch_add(1, Ordering::Relaxed);
    }
}
