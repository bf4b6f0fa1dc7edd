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

    /// A place under the cap, or `None` if it is full. Checked and taken
    /// in one step: every worker's accept loop checks [`Self::is_full`]
    /// before it waits for a connection, but another worker may fill the
    /// last place meanwhile, so the check alone let the cap be passed.
    pub fn try_acquire(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let max = self.max.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(ConnectionPermit(Arc::clone(self)))
    }
}

/// Descriptors besides the connections themselves: listeners, the admin
/// API, io_uring rings, logs, the health checker's probes.
const OTHER_DESCRIPTORS: u64 = 64;

/// How many descriptors `max_connections` clients can take at once, on
/// `listeners` listeners: each client connection, and an upstream
/// connection for each (a request in flight, or one kept alive).
pub fn descriptors_needed(max_connections: usize, listeners: usize) -> u64 {
    2 * max_connections as u64 + listeners as u64 + OTHER_DESCRIPTORS
}

/// The process's `nofile` soft limit; `None` if unlimited or unreadable.
pub fn nofile_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills in the struct it is handed.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// One open connection; counted until dropped.
pub struct ConnectionPermit(Arc<ConnectionLimit>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_never_passed() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire();
        let b = limit.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert!(limit.try_acquire().is_some());
    }

    #[test]
    fn each_client_may_need_an_upstream_connection_too() {
        assert_eq!(descriptors_needed(100, 2), 200 + 2 + OTHER_DESCRIPTORS);
    }
}
