//! The process-wide cap on open client connections (`--max-connections`),
//! shared by every worker's accept loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The process-wide cap on open client connections.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    /// A reload may change it.
    max: AtomicUsize,
}

impl ConnectionLimit {
    /// Allow at most `max` connections open at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Allow at most `max` from now on (connections above it stay open).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn is_full(&self) -> bool {
        self.open() >= self.max.load(Ordering::Relaxed)
    }

    pub fn acquire(self: &Arc<Self>) -> ConnectionPermit {
        self.open.fetch_add(1, Ordering::Relaxed);
        ConnectionPermit(Arc::clone(self))
    }
}

/// One open connection; counted until dropped.
pub struct ConnectionPermit(Arc<ConnectionLimit>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
