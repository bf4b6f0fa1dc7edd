//! The routing table workers read on every request: pools of backends,
//! the routes that choose a pool, and the settings a reload may change.
//!
//! A [`Snapshot`] is immutable. The control plane ([`crate::control`])
//! builds a new one on reload or admin change and publishes it whole; workers
//! load it without locks and tell snapshots apart by their generation. A
//! rebuilt snapshot takes each backend's state and counters from the
//! control plane's [`Registry`] (by address), so in-flight counts, latency
//! estimates and counters survive a reload.

use std::sync::Arc;

use crate::balance::Algorithm;
use crate::config::retry_on::RetryOn;
use crate::config::{Config, HashKey, RouteConfig, Settings};
use crate::state::backend::Backend;
use crate::state::registry::Registry;
use crate::transport::tls::connector::TlsConnector;

/// A pool as workers see it.
#[derive(Debug)]
pub struct Pool {
    /// From the config.
    pub name: String,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// What consistent hashing hashes.
    pub hash_key: HashKey,
    /// Active health checks: `GET` this path.
    pub health_path: Option<String>,
    /// `Host` of the probes.
    pub health_host: Option<String>,
    /// In config order.
    pub backends: Vec<Arc<Backend>>,
    /// Largest request body forwarded; `None`: no limit.
    pub max_body_size: Option<u64>,
    /// Upgrade protocols forwarded besides `websocket`, lower case.
    pub allow_upgrades: Vec<String>,
    /// Answers with these statuses are retried on another backend.
    pub retry_on: RetryOn,
    /// TLS to the backends (`tls = true`); `None`: plaintext.
    pub tls: Option<Arc<TlsConnector>>,
    /// Each new backend connection starts with this PROXY protocol header
    /// (health probes' too).
    pub send_proxy_protocol: Option<crate::proxy_protocol::Version>,
}

/// Immutable routing state.
#[derive(Debug)]
pub struct Snapshot {
    /// Counts up from 1 with every snapshot published.
    pub generation: u64,
    /// Pools, in config order.
    pub pools: Vec<Pool>,
    /// Routes, tried in order.
    pub routes: Vec<RouteConfig>,
    /// Timeouts, buffer size, keep-alive and connection limits.
    pub settings: Settings,
}

impl Snapshot {
    /// Build generation `generation` from a validated config, with backend
    /// state and counters from `registry` and each pool's TLS connector
    /// from `connectors` (in pool order; built from the same config).
    pub fn build(
        config: &Config,
        registry: &mut Registry,
        generation: u64,
        connectors: &[Option<Arc<TlsConnector>>],
    ) -> Snapshot {
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, pc)| Pool {
                name: pc.name.clone(),
                algorithm: pc.algorithm,
                hash_key: pc.hash_key.clone(),
                health_path: pc.health_path.clone(),
                health_host: pc.health_host.clone(),
                backends: pc
                    .backends
                    .iter()
                    .map(|bc| {
                        Arc::new(
                            Backend::with_stats(
                                bc.addr,
                                bc.name.clone(),
                                bc.weight,
                                bc.drained,
                                registry.backend(bc.addr),
                                registry.entry(&pc.name, bc.addr),
                            )
                            .with_max_requests(config.settings.resilience.max_requests)
                            .with_origin(bc.origin)
                            .with_send_proxy(pc.send_proxy_protocol),
                        )
                    })
                    .collect(),
                max_body_size: pc.max_body_size,
                allow_upgrades: pc.allow_upgrades.clone(),
                retry_on: pc.retry_on,
                tls: connectors.get(i).cloned().flatten(),
                send_proxy_protocol: pc.send_proxy_protocol,
            })
            .collect();
        Snapshot {
            generation,
            pools,
            routes: config.routes.clone(),
            settings: config.settings(),
        }
    }

    /// The pool for a request that came in on `listener` with this `Host`
    /// (port already stripped, any case) and path. No matching route means
    /// pool 0. (A listener's own routes, and its default pool as a last
    /// catch-all, are routes of that listener only: `config/pools.rs`.)
    pub fn route(&self, listener: u8, host: &[u8], path: &[u8]) -> usize {
        self.routes
            .iter()
            .find(|r| {
                r.listener.is_none_or(|l| l == listener)
                    && r.host
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
    use crate::config::cli::Cli;
    use crate::config::{BackendConfig, PoolConfig};
    use clap::Parser;

    fn config() -> Config {
        let pool = |name: &str, port: u16| PoolConfig {
            name: name.into(),
            algorithm: Algorithm::RoundRobin,
            hash_key: HashKey::ClientIp,
            health_path: None,
            health_host: None,
            backends: vec![BackendConfig {
                addr: format!("127.0.0.1:{port}").parse().unwrap(),
                name: "b".into(),
                weight: 1,
                drained: false,
                origin: Default::default(),
            }],
            discovery: Vec::new(),
            max_body_size: None,
            allow_upgrades: Vec::new(),
            retry_on: Default::default(),
            tls: None,
            send_proxy_protocol: None,
        };
        let base = Config::load(&Cli::parse_from(["corelb", "--backend", "127.0.0.1:1"])).unwrap();
        Config {
            pools: vec![pool("static", 1), pool("api", 2)],
            routes: vec![
                RouteConfig {
                    host: None,
                    path_prefix: Some("/api/".into()),
                    pool: 1,
                    listener: None,
                },
                RouteConfig {
                    host: Some("static.example.com".into()),
                    path_prefix: None,
                    pool: 0,
                    listener: None,
                },
            ],
            ..base
        }
    }

    #[test]
    fn routes_match_in_order() {
        let s = Snapshot::build(&config(), &mut Registry::new(1), 1, &[]);
        assert_eq!(s.route(0, b"x.com", b"/api/users"), 1);
        assert_eq!(s.route(0, b"STATIC.example.com", b"/img"), 0);
        assert_eq!(s.route(0, b"other", b"/"), 0);
    }

    #[test]
    fn rebuild_keeps_counters() {
        let mut registry = Registry::new(1);
        let first = Snapshot::build(&config(), &mut registry, 1, &[]);
        let _guard = first.pools[1].backends[0].start_request();
        let second = Snapshot::build(&config(), &mut registry, 2, &[]);
        assert_eq!(second.generation, 2);
        assert_eq!(second.pools[1].backends[0].inflight(), 1);
        assert_eq!(second.pools[0].backends[0].inflight(), 0);
        assert!(Arc::ptr_eq(
            first.pools[0].backends[0].entry(),
            second.pools[0].backends[0].entry()
        ));
    }

    #[test]
    fn a_server_in_two_pools_is_one_backend() {
        let mut c = config();
        c.pools[1].backends[0].addr = c.pools[0].backends[0].addr;
        c.pools[1].backends[0].weight = 5;
        let s = Snapshot::build(&c, &mut Registry::new(1), 1, &[]);
        let (a, b) = (&s.pools[0].backends[0], &s.pools[1].backends[0]);
        let _guard = a.start_request();
        assert_eq!(b.inflight(), 1, "one in-flight count for the one server");
        assert_eq!((a.effective_weight(), b.effective_weight()), (1, 5));
    }
}
