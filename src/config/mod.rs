//! The validated, typed configuration corelb runs with.
//!
//! [`Config::load`] merges the config file (`--config`, if any) with the
//! flags and checks every value, so the rest of the program never sees a bad
//! one. Errors name where the value came from and the value itself:
//!
//! ```text
//! invalid value `soon` for --connect-timeout: expected number at 0
//! configs/x.toml:7:40: pools[1].backends[0].weight: invalid value 0: must be from 1 to 10000
//! ```
//!
//! # Flags and the file
//!
//! A flag given on the command line wins over the file's key of the same
//! name (`--connect-timeout` over `connect_timeout`), and either wins over
//! the built-in default. Both are checked: a bad value in the file is an
//! error even when a flag overrides it.
//!
//! Every scalar setting is declared once, in `settings.rs`: its typed
//! field, file key, flag, default, range or parser and help text, in a
//! group that says whether a reload may change it. `declare.rs` makes the
//! flags ([`SettingFlags`]), the file's keys, `--help`, the typed structs
//! and their loading (`read.rs`) from that list, so none of them repeats a
//! setting; [`Config::restart_only_changes`] compares the `restart` group.
//!
//! Pools follow one rule, built around **the default pool** — the one that
//! serves requests no route matches. It is the pool named `default` if the
//! file has one, otherwise the file's first pool. In [`Config::pools`] it is
//! always at index 0 (the others keep their file order), which is why
//! [`crate::snapshot::Snapshot::route`] falls back to pool 0.
//!
//! - `--backend` flags (if any) form the pool named `default`: they replace
//!   the backends of the file's `default` pool, or, when the file has none,
//!   a new pool `default` (round-robin, hashing the client IP) is added and
//!   becomes the default pool. Without `--config` it is the only pool.
//! - `--algorithm` and `--hash-key` set the default pool's algorithm and
//!   hash key and leave every other pool alone.

mod backend_tls;
pub mod cli;
mod declare;
pub mod discovery;
mod file;
mod listener_routes;
mod listeners;
mod operations;
mod pools;
mod read;
pub mod resilience;
pub mod retry_on;
mod settings;
mod spec;
mod values;

pub use backend_tls::BackendTlsConfig;
pub use listeners::{CertificateFiles, ListenerConfig, ListenerTls};
pub use operations::{
    canonical_host, AccessLogConfig, AccessLogFormat, AccessLogTarget, AdminListen, LogFormat,
    LogLevel, DEFAULT_ADMIN,
};
pub use settings::{
    specs, AdminAuth, DiscoveryTiming, HealthTiming, PoolDefaults, ProcessConfig, Resilience,
    SettingFlags, Settings, Timeouts, TlsSessions,
};
pub use spec::SettingSpec;
pub use values::{check_weight, parse_backend, parse_duration, resolve};

use std::net::SocketAddr;

use crate::balance::Algorithm;
pub use crate::balance::HashKey;
use crate::source_file::{read_source_file, MAX_SOURCE_FILE};
use crate::state::origin::Origin;
use cli::Cli;
use file::Source;
use listener_routes::with_listener_routes;
use pools::pools_and_routes;
use read::{flag_error, Reader};
use settings::FileConfig;

/// Name of the pool `--backend` flags form, and of the pool that serves
/// requests no route matches when the file has one by that name.
pub const DEFAULT_POOL: &str = "default";

/// Which io driver each worker's monoio runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring where the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring only; fail to start without it.
    Uring,
    /// epoll only.
    Epoll,
}

/// One backend as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Resolved address.
    pub addr: SocketAddr,
    /// As written by the user.
    pub name: String,
    /// Relative share of traffic (1 to 10000).
    pub weight: u32,
    /// Taken out of rotation by the admin API (never set by the file).
    pub drained: bool,
    /// Configured, or found by discovery.
    pub origin: Origin,
}

impl BackendConfig {
    /// A backend at `addr` called `name`, not drained.
    pub fn new(addr: SocketAddr, name: String, weight: u32, origin: Origin) -> Self {
        Self {
            addr,
            name,
            weight,
            drained: false,
            origin,
        }
    }
}

/// A named group of backends with its own algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name routes refer to; unique, not empty.
    pub name: String,
    /// How to choose among the backends.
    pub algorithm: Algorithm,
    /// Used by consistent hashing.
    pub hash_key: HashKey,
    /// Probe the backends with `GET` this path (active health checks).
    pub health_path: Option<String>,
    /// `Host` of the probes (the backend's address when `None`).
    pub health_host: Option<String>,
    /// Configured backends; at least one unless `discovery` finds them.
    pub backends: Vec<BackendConfig>,
    /// Where more backends are found at run time (DNS, SRV, a file).
    pub discovery: Vec<discovery::DiscoverySource>,
    /// Largest request body forwarded (413 above it); `None`: no limit.
    pub max_body_size: Option<u64>,
    /// Upgrade protocols forwarded besides `websocket`, lower case.
    pub allow_upgrades: Vec<String>,
    /// Answers with these statuses are retried on another backend.
    pub retry_on: retry_on::RetryOn,
    /// TLS to the backends; `None`: plaintext.
    pub tls: Option<BackendTlsConfig>,
    /// Start each new backend connection with this PROXY protocol header.
    pub send_proxy_protocol: Option<crate::proxy_protocol::Version>,
}

/// Sends matching requests to a pool. All given keys must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Exact host (without port), lower-cased; `None` matches any.
    pub host: Option<String>,
    /// Path prefix; `None` matches any.
    pub path_prefix: Option<String>,
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// The listener (its place in [`Config::listeners`]) whose requests
    /// it routes; `None`: every listener's.
    pub listener: Option<u8>,
}

/// Everything corelb needs to run.
///
/// What a reload may change follows from the types: everything but
/// [`Config::process`] (and `takeover`, a flag of this start only); a
/// reload keeps the running `process` and names the flags that differ
/// ([`Config::restart_only_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Threads, drivers, admin address, logs: restart-only.
    pub process: ProcessConfig,
    /// Where clients connect: addresses and protocols take a restart,
    /// a TLS listener's certificates are read again on reload.
    pub listeners: Vec<ListenerConfig>,
    /// Limits, timeouts and resilience, published to the workers.
    pub settings: Settings,
    /// The admin API's token.
    pub auth: AdminAuth,
    /// What the TLS listeners share: the ticket-key file.
    pub tls: TlsSessions,
    /// Resolvers and re-resolution timing of discovered backends.
    pub discovery: DiscoveryTiming,
    /// Backend pools; at least one. Pool 0 is the default pool (see the
    /// module docs); the rest are in file order.
    pub pools: Vec<PoolConfig>,
    /// Routes, tried in order; a request no route matches goes to pool 0.
    pub routes: Vec<RouteConfig>,
    /// Join a listen address another process serves (`--takeover`).
    pub takeover: bool,
}

/// A configuration problem, worded for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A string as TOML would write it, for messages about file values.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl Config {
    /// Build the configuration from the flags and, with `--config`, the file
    /// (a regular file of at most [`MAX_SOURCE_FILE`] bytes).
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        match &cli.config {
            Some(path) => {
                let name = path.display().to_string();
                let text = read_source_file(path, MAX_SOURCE_FILE).map_err(ConfigError)?;
                Config::from_toml(cli, &name, &text)
            }
            None => Config::build(cli, None),
        }
    }

    /// Build the configuration from the flags and the text of a config file
    /// called `name` in messages. `cli.config` is not read.
    pub fn from_toml(cli: &Cli, name: &str, text: &str) -> Result<Config, ConfigError> {
        Config::build(cli, Some(&Source { name, text }))
    }

    /// The settings a reload may change, apart from pools and routes.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The settings that differ between `self` and `new` but take a restart
    /// to change, by their flag names.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if !self.same_listeners(new) {
            changed.push("listen");
        }
        changed.extend(self.process.changes(&new.process));
        changed
    }

    /// Are the listeners of `new` the same sockets as ours (address,
    /// protocol, redirect), whatever their certificates?
    pub fn same_listeners(&self, new: &Config) -> bool {
        let shape = |l: &ListenerConfig| (l.addr, l.tls.is_some(), l.redirect_https, l.h2);
        self.listeners.len() == new.listeners.len()
            && self
                .listeners
                .iter()
                .zip(&new.listeners)
                .all(|(a, b)| shape(a) == shape(b))
    }

    /// One line for `--check`: `N pools, M backends, R routes` (with the
    /// discovery sources, if any, after the backends).
    pub fn summary(&self) -> String {
        let backends: usize = self.pools.iter().map(|p| p.backends.len()).sum();
        let sources: usize = self.pools.iter().map(|p| p.discovery.len()).sum();
        let found = match sources {
            0 => String::new(),
            n => format!(" (and {n} discovery sources)"),
        };
        format!(
            "{} pools, {backends} backends{found}, {} routes",
            self.pools.len(),
            self.routes.len()
        )
    }

    fn build(cli: &Cli, src: Option<&Source<'_>>) -> Result<Config, ConfigError> {
        let file = match src {
            Some(src) => src.parse()?,
            None => FileConfig::default(),
        };
        let (flags, mut r) = (&cli.settings, Reader::new(src));
        let process = ProcessConfig::load(flags, &file, &mut r)?;
        let listeners = listeners::listeners(cli, src, file.listen.as_ref(), &file.listeners)?;
        listeners::check_count(&listeners)?;
        let settings = Settings::load(flags, &file, &mut r)?;
        let defaults = PoolDefaults::load(flags, &file, &mut r)?;
        let (mut pools, routes) = pools_and_routes(cli, src, &file.pools, &file.routes)?;
        // `--listen` flags replace the file's listeners, and their routing.
        let file_listeners = if cli.listen.is_empty() {
            &file.listeners[..]
        } else {
            &[]
        };
        let routes = with_listener_routes(src, file_listeners, routes, &pools)?;
        for listener in &listeners {
            pools::refuse_own_listener(listener.addr, &pools)?;
        }
        for pool in &mut pools {
            // 0, the default, is no limit.
            pool.max_body_size = pool
                .max_body_size
                .or(Some(defaults.max_body_size))
                .filter(|&n| n > 0);
            if pool.health_path.is_none() {
                pool.health_path.clone_from(&defaults.health_path);
            }
            if pool.health_host.is_none() {
                pool.health_host.clone_from(&defaults.health_host);
            }
        }
        let auth = AdminAuth::load(flags, &file, &mut r)?;
        let tls = TlsSessions::load(flags, &file, &mut r)?;
        let discovery = DiscoveryTiming::load(flags, &file, &mut r)?;
        if discovery.dns_min_ttl > discovery.dns_max_ttl {
            return Err(ConfigError(format!(
                "--dns-min-ttl ({:?}) is more than --dns-max-ttl ({:?})",
                discovery.dns_min_ttl, discovery.dns_max_ttl
            )));
        }
        Ok(Config {
            process,
            listeners,
            settings,
            auth,
            tls,
            discovery,
            pools,
            routes,
            takeover: cli.takeover,
        })
    }
}

#[cfg(test)]
mod tests;
