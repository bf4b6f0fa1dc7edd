//! The routing table workers read on every request: pools of backends and
//! the routes that choose a pool.
//!
//! A [`Snapshot`] is immutable. The control plane builds a new one on reload
//! and swaps it in whole ([`SharedSnapshot`] is an `ArcSwap`); workers load
//! it without locks. A rebuilt snapshot reuses the counters of backends that
//! stay (matched by pool name and address), so in-flight counts and error
//! totals survive a reload.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::backend::Backend;
use crate::balance::Algorithm;
use crate::config::{Config, HashKey, RouteConfig};

/// A pool as workers see it.
#[derive(Debug)]
pub struct Pool {
    /// From the config.
    pub name: String,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// What consistent hashing hashes.
    pub hash_key: HashKey,
    /// In config order.
    pub backends: Vec<Arc<Backend>>,
}

/// Immutable routing state.
#[derive(Debug)]
pub struct Snapshot {
    /// Pools, in config order.
    pub pools: Vec<Pool>,
    /// Routes, tried in order.
    pub routes: Vec<RouteConfig>,
}

/// The snapshot shared between the control plane and the workers.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    /// Build from a validated config, carrying over the counters of
    /// backends that were in `previous`.
    pub fn build(config: &Config, previous: Option<&Snapshot>) -> Snapshot {
        let pools = config
            .pools
            .iter()
            .map(|pc| {
                let old_pool = previous.and_then(|p| p.pools.iter().find(|op| op.name == pc.name));
                let backends = pc
                    .backends
                    .iter()
                    .map(|bc| {
                        let old =
                            old_pool.and_then(|op| op.backends.iter().find(|b| b.addr == bc.addr));
                        Arc::new(match old {
                            Some(old) => Backend::carrying_over(old, bc.name.clone(), bc.weight),
                            None => Backend::new(bc.addr, bc.name.clone(), bc.weight),
                        })
                    })
                    .collect();
                Pool {
                    name: pc.name.clone(),
                    algorithm: pc.algorithm,
                    hash_key: pc.hash_key.clone(),
                    backends,
                }
            })
            .collect();
        Snapshot {
            pools,
            routes: config.routes.clone(),
        }
    }

    /// The pool for a request with this `Host` (port already stripped,
    /// any case) and path. No matching route means pool 0.
    pub fn route(&self, host: &[u8], path: &[u8]) -> usize {
        self.routes
            .iter()
            .find(|r| {
                r.host
                    .as_ref()
                    .is_none_or(|h| h.as_bytes().eq_ignore_ascii_case(host))
                    && r.path_prefix
                        .as_ref()
                        .is_none_or(|p| path.starts_with(p.as_bytes()))
            })
            .map_or(0, |r| r.pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, IoDriver, PoolConfig, Timeouts};
    use std::time::Duration;

    fn config() -> Config {
        let pool = |name: &str, port: u16| PoolConfig {
            name: name.into(),
            algorithm: Algorithm::RoundRobin,
            hash_key: HashKey::ClientIp,
            backends: vec![BackendConfig {
                addr: format!("127.0.0.1:{port}").parse().unwrap(),
                name: "b".into(),
                weight: 1,
            }],
        };
        let d = Duration::from_secs(1);
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            threads: 1,
            pin: false,
            accept_steering: false,
            io_driver: IoDriver::Auto,
            backlog: 1,
            max_connections: 1,
            buffer_size: 1024,
            upstream_keepalive: 1,
            timeouts: Timeouts {
                client_header: d,
                client_idle: d,
                connect: d,
                upstream: d,
            },
            pools: vec![pool("static", 1), pool("api", 2)],
            routes: vec![
                RouteConfig {
                    host: None,
                    path_prefix: Some("/api/".into()),
                    pool: 1,
                },
                RouteConfig {
                    host: Some("static.example.com".into()),
                    path_prefix: None,
                    pool: 0,
                },
            ],
        }
    }

    #[test]
    fn routes_match_in_order() {
        let s = Snapshot::build(&config(), None);
        assert_eq!(s.route(b"x.com", b"/api/users"), 1);
        assert_eq!(s.route(b"STATIC.example.com", b"/img"), 0);
        assert_eq!(s.route(b"other", b"/"), 0);
    }

    #[test]
    fn rebuild_keeps_counters() {
        let first = Snapshot::build(&config(), None);
        let _guard = first.pools[1].backends[0].start_request();
        let second = Snapshot::build(&config(), Some(&first));
        assert_eq!(second.pools[1].backends[0].inflight(), 1);
        assert_eq!(second.pools[0].backends[0].inflight(), 0);
    }
}
