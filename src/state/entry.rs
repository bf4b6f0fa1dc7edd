//! The counters of one backend *in one pool* (a server listed in two pools
//! is one backend, with one entry in each), one block per worker.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::metrics::Counter;

/// One worker's counters for one backend in one pool.
#[derive(Debug, Default)]
pub struct EntryCounters {
    /// Responses relayed from this backend for requests of this pool, by
    /// status class.
    pub responses: [Counter; 5],
}

/// Counters of one backend in one pool, one block per worker. (A request
/// reaches them through the `Backend` it already holds: no extra shared
/// reference count per request.)
#[derive(Debug)]
pub struct EntryStats {
    per_worker: Box<[CachePadded<EntryCounters>]>,
}

impl EntryStats {
    /// Fresh counters for `workers`.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            per_worker: (0..workers.max(1))
                .map(|_| CachePadded::new(EntryCounters::default()))
                .collect(),
        })
    }

    /// Worker `worker`'s counters.
    #[inline]
    pub fn counters(&self, worker: usize) -> &EntryCounters {
        self.per_worker.get(worker).unwrap_or(&self.per_worker[0])
    }

    /// Every worker's counters.
    pub fn all_counters(&self) -> impl Iterator<Item = &EntryCounters> {
        self.per_worker.iter().map(|c| &**c)
    }
}
