//! What discovery found, kept by the control plane: each source's current
//! backends and its last resolution. The `corelb-discovery` thread hands
//! every result to [`super::Control::discovered`]; the next snapshot is
//! the desired config with these backends added to their pools
//! ([`Discovered::apply_to`]), built and published like a reload, so a
//! backend that stays keeps its state (the registry holds it by address).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::config::discovery::DiscoverySource;
use crate::config::{BackendConfig, Config};
use crate::state::origin::Origin;

/// One resolution (or reading of a file), as the discovery thread hands it
/// over.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The backends the pool should have from this source now; `None`:
    /// keep the last good set (a failure, or NXDOMAIN within the hold).
    pub backends: Option<Vec<BackendConfig>>,
    /// `ok`, `failed`, `nxdomain`, `empty` or `invalid` (a bad file).
    pub result: &'static str,
    /// Why, in words (for the log and `/status`); empty when `ok`.
    pub detail: String,
    /// The records' TTL as used (clamped), for DNS answers.
    pub ttl: Option<Duration>,
}

/// A source's last resolution and counts, for `/status` and `/metrics`.
#[derive(Debug, Clone)]
pub struct SourceReport {
    /// The pool it fills.
    pub pool: String,
    /// `dns:NAME:PORT`, `srv:NAME`, `file:PATH`.
    pub source: String,
    /// What its backends are shown as.
    pub origin: Origin,
    /// When it was last resolved (or read).
    pub at: SystemTime,
    /// The last result (see [`Resolution::result`]).
    pub result: &'static str,
    /// Why, when not `ok`.
    pub detail: String,
    /// The TTL used, for DNS.
    pub ttl: Option<Duration>,
    /// Backends it gives the pool now.
    pub backends: usize,
    /// Resolutions by result, since start.
    pub counts: BTreeMap<&'static str, u64>,
}

/// Discovered backends and reports by (pool, source label).
#[derive(Debug, Default)]
pub struct Discovered {
    sets: BTreeMap<(String, String), Vec<BackendConfig>>,
    reports: BTreeMap<(String, String), SourceReport>,
}

/// What [`Discovered::record`] changed.
pub struct Change {
    /// Addresses the source gained and lost.
    pub added: usize,
    pub removed: usize,
    /// The source's first set: its backends are taken as configured ones
    /// at start are, up before any probe.
    pub first: bool,
}

impl Discovered {
    /// Take one resolution of `source` for `pool`. `Some`: its set of
    /// backends changed (publish a new snapshot).
    pub fn record(
        &mut self,
        pool: &str,
        source: &DiscoverySource,
        resolution: Resolution,
    ) -> Option<Change> {
        let key = (pool.to_string(), source.label());
        let first = self.sets.get(&key).is_none_or(|set| set.is_empty());
        let current = self.sets.entry(key.clone()).or_default();
        let change = match resolution.backends {
            Some(new) if new != *current => {
                let added = new
                    .iter()
                    .filter(|b| !current.iter().any(|c| c.addr == b.addr))
                    .count();
                let removed = current
                    .iter()
                    .filter(|c| !new.iter().any(|b| b.addr == c.addr))
                    .count();
                *current = new;
                Some(Change {
                    added,
                    removed,
                    first,
                })
            }
            _ => None,
        };
        let backends = current.len();
        let report = self.reports.entry(key).or_insert_with(|| SourceReport {
            pool: pool.to_string(),
            source: source.label(),
            origin: source.origin(),
            at: SystemTime::now(),
            result: resolution.result,
            detail: String::new(),
            ttl: None,
            backends: 0,
            counts: BTreeMap::new(),
        });
        report.at = SystemTime::now();
        report.result = resolution.result;
        report.detail = resolution.detail;
        report.ttl = resolution.ttl;
        report.backends = backends;
        *report.counts.entry(resolution.result).or_default() += 1;
        change
    }

    /// The last result of `source` (a label) of `pool`, if it has one.
    pub fn last_result(&self, pool: &str, source: &str) -> Option<&'static str> {
        self.reports
            .get(&(pool.to_string(), source.to_string()))
            .map(|r| r.result)
    }

    /// Every source's report, by pool then source.
    pub fn reports(&self) -> Vec<SourceReport> {
        self.reports.values().cloned().collect()
    }

    /// `desired` with each pool's discovered backends after its static
    /// ones (an address already in the pool is not added twice). Sources
    /// the config no longer names are forgotten first.
    pub fn apply_to(&mut self, desired: &Config) -> Config {
        let configured: Vec<(String, String)> = desired
            .pools
            .iter()
            .flat_map(|p| p.discovery.iter().map(|s| (p.name.clone(), s.label())))
            .collect();
        self.sets.retain(|key, _| configured.contains(key));
        self.reports.retain(|key, _| configured.contains(key));
        let mut effective = desired.clone();
        for pool in &mut effective.pools {
            for source in &pool.discovery {
                let key = (pool.name.clone(), source.label());
                for found in self.sets.get(&key).into_iter().flatten() {
                    if !pool.backends.iter().any(|b| b.addr == found.addr) {
                        pool.backends.push(found.clone());
                    }
                }
            }
        }
        effective
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Cli;
    use clap::Parser;

    fn found(addrs: &[&str]) -> Resolution {
        Resolution {
            backends: Some(
                addrs
                    .iter()
                    .map(|a| BackendConfig {
                        addr: a.parse().unwrap(),
                        name: a.to_string(),
                        weight: 1,
                        drained: false,
                        origin: Origin::Dns,
                    })
                    .collect(),
            ),
            result: "ok",
            detail: String::new(),
            ttl: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn a_difference_is_applied_and_a_failure_keeps_the_set() {
        let cli = Cli::parse_from([
            "corelb",
            "--backend",
            "127.0.0.1:1",
            "--backend-dns",
            "api.test:80",
        ]);
        let config = Config::load(&cli).unwrap();
        let source = config.pools[0].discovery[0].clone();
        let mut d = Discovered::default();
        let change = d.record("default", &source, found(&["10.0.0.1:80", "127.0.0.1:1"]));
        assert_eq!(change.map(|c| (c.added, c.removed)), Some((2, 0)));
        let addrs = |c: &Config| -> Vec<String> {
            c.pools[0]
                .backends
                .iter()
                .map(|b| b.addr.to_string())
                .collect()
        };
        assert_eq!(addrs(&d.apply_to(&config)), ["127.0.0.1:1", "10.0.0.1:80"]);
        let failed = Resolution {
            backends: None,
            result: "failed",
            detail: "timed out".into(),
            ttl: None,
        };
        assert!(d.record("default", &source, failed).is_none());
        assert_eq!(addrs(&d.apply_to(&config)), ["127.0.0.1:1", "10.0.0.1:80"]);
        let change = d.record("default", &source, found(&["10.0.0.2:80"]));
        assert_eq!(change.map(|c| (c.added, c.removed)), Some((1, 2)));
        let report = &d.reports()[0];
        assert_eq!((report.result, report.backends), ("ok", 1));
        assert_eq!(report.counts.get("failed"), Some(&1));
    }
}
