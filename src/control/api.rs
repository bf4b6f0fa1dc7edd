//! Changes the admin API makes to the running configuration: add or
//! remove a backend, drain or enable it, set its weight. Each edits the
//! desired config and publishes a new snapshot; a reload from the file
//! replaces them (and says so).

use std::net::SocketAddr;

use super::{Control, ControlState};
use crate::config::{parse_backend, BackendConfig, Config};

/// One change to a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add `addr` (a `HOST:PORT`, resolved now) with `weight`.
    Add { addr: String, weight: u32 },
    /// Remove the backend: its in-flight requests finish.
    Remove,
    /// Stop sending it new requests (`true`), or start again (`false`).
    Drain(bool),
    /// Set its configured weight.
    Weight(u32),
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// No pool or no backend by that name (404).
    NotFound(String),
    /// The value is not acceptable (400).
    Invalid(String),
    /// The backend is already in the pool (409).
    Conflict(String),
}

impl ChangeError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 400,
            Self::Conflict(_) => 409,
        }
    }

    /// What to tell the caller.
    pub fn message(&self) -> &str {
        match self {
            Self::NotFound(m) | Self::Invalid(m) | Self::Conflict(m) => m,
        }
    }
}

/// Weights accepted, as in the config file.
const WEIGHTS: std::ops::RangeInclusive<u32> = 1..=10_000;

fn check_weight(weight: u32) -> Result<u32, ChangeError> {
    if WEIGHTS.contains(&weight) {
        Ok(weight)
    } else {
        Err(ChangeError::Invalid(format!(
            "weight {weight}: must be from {} to {}",
            WEIGHTS.start(),
            WEIGHTS.end()
        )))
    }
}

/// Find `backend` (an address as listed, or its resolved form) in `pool`
/// of `config`: (pool index, backend index).
fn find(config: &Config, pool: &str, backend: &str) -> Result<(usize, usize), ChangeError> {
    let p = config
        .pools
        .iter()
        .position(|p| p.name == pool)
        .ok_or_else(|| ChangeError::NotFound(format!("no pool named {pool:?}")))?;
    let resolved: Option<SocketAddr> = backend.parse().ok();
    let b = config.pools[p]
        .backends
        .iter()
        .position(|b| b.name == backend || Some(b.addr) == resolved)
        .ok_or_else(|| ChangeError::NotFound(format!("pool {pool:?} has no backend {backend}")))?;
    Ok((p, b))
}

/// Apply `change` to `backend` of `pool` in `config` (pure: the caller
/// publishes). For [`Change::Add`], `backend` is ignored.
pub fn edit(
    config: &mut Config,
    pool: &str,
    backend: &str,
    change: &Change,
) -> Result<String, ChangeError> {
    match change {
        Change::Add { addr, weight } => {
            let weight = check_weight(*weight)?;
            let p = config
                .pools
                .iter()
                .position(|p| p.name == pool)
                .ok_or_else(|| ChangeError::NotFound(format!("no pool named {pool:?}")))?;
            let parsed: BackendConfig = parse_backend(addr)
                .map_err(|e| ChangeError::Invalid(format!("addr {addr:?}: {e}")))?;
            if config.pools[p]
                .backends
                .iter()
                .any(|b| b.addr == parsed.addr)
            {
                return Err(ChangeError::Conflict(format!(
                    "pool {pool:?} already has backend {addr}"
                )));
            }
            config.pools[p]
                .backends
                .push(BackendConfig { weight, ..parsed });
            Ok(format!(
                "added backend {addr} (weight {weight}) to pool {pool:?}"
            ))
        }
        Change::Remove => {
            let (p, b) = find(config, pool, backend)?;
            if config.pools[p].backends.len() == 1 {
                return Err(ChangeError::Invalid(format!(
                    "{backend} is the last backend of pool {pool:?}; a pool needs at least one"
                )));
            }
            config.pools[p].backends.remove(b);
            Ok(format!("removed backend {backend} from pool {pool:?}"))
        }
        Change::Drain(on) => {
            let (p, b) = find(config, pool, backend)?;
            config.pools[p].backends[b].drained = *on;
            let what = if *on { "draining" } else { "enabled" };
            Ok(format!("backend {backend} of pool {pool:?} {what}"))
        }
        Change::Weight(weight) => {
            let weight = check_weight(*weight)?;
            let (p, b) = find(config, pool, backend)?;
            config.pools[p].backends[b].weight = weight;
            Ok(format!(
                "backend {backend} of pool {pool:?} now has weight {weight}"
            ))
        }
    }
}

impl Control {
    /// Apply an admin change and publish it to every worker.
    pub fn change(
        &self,
        pool: &str,
        backend: &str,
        change: &Change,
    ) -> Result<String, ChangeError> {
        let mut state: std::sync::MutexGuard<'_, ControlState> = self.lock();
        let mut desired = state.desired.clone();
        let message = edit(&mut desired, pool, backend, change)?;
        state.desired = desired;
        state.runtime_changes += 1;
        let generation = self.publish(&mut state, true);
        Ok(format!("{message}; generation {generation}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Cli;
    use clap::Parser;

    fn config() -> Config {
        Config::load(&Cli::parse_from([
            "corelb",
            "--backend",
            "127.0.0.1:9001",
            "--backend",
            "127.0.0.1:9002",
        ]))
        .unwrap()
    }

    #[test]
    fn add_weight_drain_remove() {
        let mut c = config();
        let add = Change::Add {
            addr: "127.0.0.1:9003".into(),
            weight: 2,
        };
        edit(&mut c, "default", "", &add).unwrap();
        assert_eq!(c.pools[0].backends[2].weight, 2);
        edit(&mut c, "default", "127.0.0.1:9003", &Change::Weight(5)).unwrap();
        assert_eq!(c.pools[0].backends[2].weight, 5);
        edit(&mut c, "default", "127.0.0.1:9001", &Change::Drain(true)).unwrap();
        assert!(c.pools[0].backends[0].drained);
        edit(&mut c, "default", "127.0.0.1:9001", &Change::Drain(false)).unwrap();
        assert!(!c.pools[0].backends[0].drained);
        edit(&mut c, "default", "127.0.0.1:9002", &Change::Remove).unwrap();
        assert_eq!(c.pools[0].backends.len(), 2);
    }

    #[test]
    fn refused_changes_change_nothing() {
        let c = config();
        let cases = [
            ("nope", "127.0.0.1:9001", Change::Remove, 404),
            ("default", "127.0.0.1:1", Change::Weight(2), 404),
            ("default", "127.0.0.1:9001", Change::Weight(0), 400),
            (
                "default",
                "",
                Change::Add {
                    addr: "127.0.0.1:9001".into(),
                    weight: 1,
                },
                409,
            ),
            (
                "default",
                "",
                Change::Add {
                    addr: "not an address".into(),
                    weight: 1,
                },
                400,
            ),
        ];
        for (pool, backend, change, status) in cases {
            let mut edited = c.clone();
            let err = edit(&mut edited, pool, backend, &change).unwrap_err();
            assert_eq!(err.status(), status, "{change:?}: {err:?}");
            assert_eq!(edited, c, "{change:?} changed something");
        }
    }

    #[test]
    fn the_last_backend_stays() {
        let mut c =
            Config::load(&Cli::parse_from(["corelb", "--backend", "127.0.0.1:9001"])).unwrap();
        let err = edit(&mut c, "default", "127.0.0.1:9001", &Change::Remove).unwrap_err();
        assert_eq!(err.status(), 400);
    }
}
