//! The one place backends are kept across snapshots, by identity: a
//! backend by its address, a backend's place in a pool by (pool, address).
//!
//! A snapshot's `Backend`s are rebuilt on every reload or admin change, but
//! the state and counters behind them ([`BackendStats`]) come from here, so
//! a server that stays keeps its in-flight count, latency estimate, health
//! and counters, and a server listed in two pools is one server: counted,
//! and later probed, once. Used by the control plane only (under its lock);
//! workers never see the registry, only the snapshots built from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::backend::BackendStats;
use super::entry::EntryStats;

/// Backends by address and pool entries by (pool, address), as long as a
/// snapshot uses them.
#[derive(Debug)]
pub struct Registry {
    workers: usize,
    backends: HashMap<SocketAddr, Arc<BackendStats>>,
    entries: HashMap<(String, SocketAddr), Arc<EntryStats>>,
}

impl Registry {
    /// An empty registry whose counters have a block per worker.
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            backends: HashMap::new(),
            entries: HashMap::new(),
        }
    }

    /// The state of the backend at `addr`, made fresh if it is new.
    pub fn backend(&mut self, addr: SocketAddr) -> Arc<BackendStats> {
        let workers = self.workers;
        Arc::clone(
            self.backends
                .entry(addr)
                .or_insert_with(|| BackendStats::new(workers)),
        )
    }

    /// Is a backend at `addr` kept already?
    pub fn knows(&self, addr: SocketAddr) -> bool {
        self.backends.contains_key(&addr)
    }

    /// The counters of `addr` in pool `pool`, made fresh if new.
    pub fn entry(&mut self, pool: &str, addr: SocketAddr) -> Arc<EntryStats> {
        let key = (pool.to_string(), addr);
        let workers = self.workers;
        Arc::clone(
            self.entries
                .entry(key)
                .or_insert_with(|| EntryStats::new(workers)),
        )
    }

    /// Forget every backend and entry not in `entries` (pool, address): a
    /// server removed and added back later starts afresh, as a new server
    /// would. (Requests still in flight to a removed one keep its state
    /// alive through their own `Arc`.)
    pub fn retain(&mut self, entries: &[(&str, SocketAddr)]) {
        self.backends
            .retain(|addr, _| entries.iter().any(|(_, a)| a == addr));
        self.entries
            .retain(|(pool, addr), _| entries.contains(&(pool.as_str(), *addr)));
    }

    /// Backends known.
    pub fn backend_count(&self) -> usize {
        self.backends.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_one_backend() {
        let mut r = Registry::new(2);
        let a = r.backend("127.0.0.1:1".parse().unwrap());
        let again = r.backend("127.0.0.1:1".parse().unwrap());
        let other = r.backend("127.0.0.1:2".parse().unwrap());
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(r.backend_count(), 2);
    }

    #[test]
    fn removed_backends_start_afresh() {
        let mut r = Registry::new(1);
        let addr = "127.0.0.1:1".parse().unwrap();
        let first = r.backend(addr);
        let entry = r.entry("p", addr);
        r.retain(&[("p", addr)]);
        assert!(Arc::ptr_eq(&first, &r.backend(addr)));
        assert!(Arc::ptr_eq(&entry, &r.entry("p", addr)));
        r.retain(&[]);
        assert!(!Arc::ptr_eq(&first, &r.backend(addr)));
        assert!(!Arc::ptr_eq(&entry, &r.entry("p", addr)));
    }
}
