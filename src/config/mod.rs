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

mod file;
mod operations;
mod pools;
pub mod resilience;
mod values;

pub use operations::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, AdminListen, LogFormat, LogLevel,
    DEFAULT_ADMIN,
};
pub use values::{parse_backend, parse_duration, resolve};

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use crate::balance::Algorithm;
pub use crate::balance::HashKey;
use crate::cli::Cli;
use file::{FileConfig, Source};
use pools::pools_and_routes;
pub use resilience::{HealthTiming, Resilience};

/// Name of the pool `--backend` flags form, and of the pool that serves
/// requests no route matches when the file has one by that name.
pub const DEFAULT_POOL: &str = "default";

/// Idle upstream connections kept per worker per backend. At least the
/// number of concurrent requests a worker sends one backend, or busy
/// periods churn connections: an idle connection is cheap, a new one is a
/// TCP handshake.
const DEFAULT_UPSTREAM_KEEPALIVE: usize = 1024;

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

/// Timeouts, all enforced per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request head to its end.
    pub client_header: Duration,
    /// Between requests on a keep-alive client connection.
    pub client_idle: Duration,
    /// To establish a backend connection.
    pub connect: Duration,
    /// Between reads from a backend's body, and for it to take the request.
    pub upstream: Duration,
    /// For a backend's response head, per try.
    pub response: Duration,
    /// Between reads of a request body from the client.
    pub client_body: Duration,
    /// With no byte either way through an upgraded tunnel.
    pub tunnel_idle: Duration,
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
    /// At least one.
    pub backends: Vec<BackendConfig>,
    /// Largest request body forwarded (413 above it); `None`: no limit.
    pub max_body_size: Option<u64>,
    /// Upgrade protocols forwarded besides `websocket`, lower case.
    pub allow_upgrades: Vec<String>,
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
}

/// The settings a reload may change besides pools and routes: workers
/// read them from the published snapshot, so a change applies to the next
/// request (buffer size: the next connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Open client connections allowed per process.
    pub max_connections: usize,
    /// Open client connections allowed per client IP (0: no limit).
    pub max_connections_per_ip: usize,
    /// Read buffer size per connection; the largest head accepted.
    pub buffer_size: usize,
    /// Idle pooled upstream connections per worker per backend (0: none).
    pub upstream_keepalive: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Health checks, ejection, breaker, weights and retries.
    pub resilience: Resilience,
}

/// Everything corelb needs to run.
///
/// Which fields a reload may change: [`Config::settings`], `pools`,
/// `routes` and `admin_token`. The others take a restart
/// ([`Config::restart_only_changes`] names them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of every worker's listener.
    pub listen: SocketAddr,
    /// Worker count.
    pub threads: usize,
    /// Pin worker `i` to core `i`.
    pub pin: bool,
    /// Split new connections by how much of its core each worker gets
    /// (`crate::steering`), not evenly.
    pub accept_steering: bool,
    /// Driver for the monoio runtimes.
    pub io_driver: IoDriver,
    /// Listen backlog per worker socket.
    pub backlog: u32,
    /// Open client connections allowed per process.
    pub max_connections: usize,
    /// Open client connections allowed per client IP (0: no limit).
    pub max_connections_per_ip: usize,
    /// Read buffer size per connection; the largest head accepted.
    pub buffer_size: usize,
    /// Idle pooled upstream connections per worker per backend (0: none).
    pub upstream_keepalive: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Health checks, ejection, breaker, weights and retries.
    pub resilience: Resilience,
    /// Backend pools; at least one. Pool 0 is the default pool (see the
    /// module docs); the rest are in file order.
    pub pools: Vec<PoolConfig>,
    /// Routes, tried in order; a request no route matches goes to pool 0.
    pub routes: Vec<RouteConfig>,
    /// How long a graceful stop waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Join a listen address another process serves (`--takeover`).
    pub takeover: bool,
    /// The admin API's address.
    pub admin: AdminListen,
    /// Required as `Authorization: Bearer` by state-changing admin calls.
    pub admin_token: Option<String>,
    /// Least severe level logged.
    pub log_level: LogLevel,
    /// Log line format.
    pub log_format: LogFormat,
    /// The access log, if on.
    pub access_log: Option<AccessLogConfig>,
}

/// A configuration problem, worded for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn flag_error(flag: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid value `{value}` for --{flag}: {why}"))
}

/// A string as TOML would write it, for messages about file values.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Checks one setting given by a flag, the file, or neither.
///
/// The file's value (if any) is checked first, then the flag's, which wins.
struct Setting<'a> {
    src: Option<&'a Source<'a>>,
}

impl Setting<'_> {
    /// A setting written as a string.
    fn text<T>(
        &self,
        flag: (&str, Option<&str>),
        key: (&str, Option<&Spanned<String>>),
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let mut value = None;
        if let (Some(src), Some(v)) = (self.src, key.1) {
            let parsed = parse(v.get_ref())
                .map_err(|e| src.invalid(v.span(), key.0, quoted(v.get_ref()), e))?;
            value = Some(parsed);
        }
        if let Some(text) = flag.1 {
            value = Some(parse(text).map_err(|e| flag_error(flag.0, text, e))?);
        }
        Ok(value)
    }

    /// A whole number that must lie in `range`.
    fn number(
        &self,
        flag: (&str, Option<u64>),
        key: (&str, Option<&Spanned<i64>>),
        range: RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        let why = || format!("must be from {} to {}", range.start(), range.end());
        let mut value = None;
        if let (Some(src), Some(v)) = (self.src, key.1) {
            let n = *v.get_ref();
            if !range.contains(&n) {
                return Err(src.invalid(v.span(), key.0, n, why()));
            }
            value = Some(n);
        }
        if let Some(n) = flag.1 {
            let n = i64::try_from(n)
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| flag_error(flag.0, &n.to_string(), why()))?;
            value = Some(n);
        }
        Ok(value)
    }
}

/// Integer flags as `u64` for [`Setting::number`].
fn wide<T: Into<u64>>(v: Option<T>) -> Option<u64> {
    v.map(Into::into)
}

fn wide_usize(v: Option<usize>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(u64::MAX))
}

impl Config {
    /// Build the configuration from the flags and, with `--config`, the file.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        match &cli.config {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("{name}: cannot read: {e}")))?;
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
        Settings {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            buffer_size: self.buffer_size,
            upstream_keepalive: self.upstream_keepalive,
            timeouts: self.timeouts,
            resilience: self.resilience,
        }
    }

    /// The settings that differ between `self` and `new` but take a restart
    /// to change, by their flag names.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |differs: bool, name: &'static str| {
            if differs {
                changed.push(name);
            }
        };
        check(self.listen != new.listen, "listen");
        check(self.threads != new.threads, "threads");
        check(self.pin != new.pin, "pin");
        check(
            self.accept_steering != new.accept_steering,
            "accept-steering",
        );
        check(self.io_driver != new.io_driver, "io-driver");
        check(self.backlog != new.backlog, "backlog");
        check(self.admin != new.admin, "admin");
        check(self.log_level != new.log_level, "log-level");
        check(self.log_format != new.log_format, "log-format");
        check(self.access_log != new.access_log, "access-log");
        check(
            self.shutdown_timeout != new.shutdown_timeout,
            "shutdown-timeout",
        );
        changed
    }

    /// One line for `--check`: `N pools, M backends, R routes`.
    pub fn summary(&self) -> String {
        let backends: usize = self.pools.iter().map(|p| p.backends.len()).sum();
        format!(
            "{} pools, {backends} backends, {} routes",
            self.pools.len(),
            self.routes.len()
        )
    }

    fn build(cli: &Cli, src: Option<&Source<'_>>) -> Result<Config, ConfigError> {
        let file = match src {
            Some(src) => src.parse()?,
            None => FileConfig::default(),
        };
        let s = Setting { src };

        let listen = s
            .text(
                ("listen", cli.listen.as_deref()),
                ("listen", file.listen.as_ref()),
                resolve,
            )?
            .map_or_else(|| resolve("127.0.0.1:8080").map_err(ConfigError), Ok)?;
        let threads = s
            .number(
                ("threads", wide_usize(cli.threads)),
                ("threads", file.threads.as_ref()),
                1..=1024,
            )?
            .map_or_else(default_threads, |n| n as usize);
        let mut pin = file.pin.unwrap_or(true);
        if cli.pin {
            pin = true;
        }
        if cli.no_pin {
            pin = false;
        }
        let mut accept_steering = file.accept_steering.unwrap_or(true);
        if cli.accept_steering {
            accept_steering = true;
        }
        if cli.no_accept_steering {
            accept_steering = false;
        }
        let io_driver = s
            .text(
                ("io-driver", cli.io_driver.as_deref()),
                ("io_driver", file.io_driver.as_ref()),
                str::parse,
            )?
            .unwrap_or(IoDriver::Auto);
        let backlog = s
            .number(
                ("backlog", wide(cli.backlog)),
                ("backlog", file.backlog.as_ref()),
                1..=1_000_000,
            )?
            .map_or(4096, |n| n as u32);
        let max_connections = s
            .number(
                ("max-connections", wide_usize(cli.max_connections)),
                ("max_connections", file.max_connections.as_ref()),
                1..=100_000_000,
            )?
            .map_or(100_000, |n| n as usize);
        let max_connections_per_ip = s
            .number(
                (
                    "max-connections-per-ip",
                    wide_usize(cli.max_connections_per_ip),
                ),
                (
                    "max_connections_per_ip",
                    file.max_connections_per_ip.as_ref(),
                ),
                0..=100_000_000,
            )?
            .map_or(0, |n| n as usize);
        let buffer_size = s
            .number(
                ("buffer-size", wide_usize(cli.buffer_size)),
                ("buffer_size", file.buffer_size.as_ref()),
                1024..=16 * 1024 * 1024,
            )?
            .map_or(16 * 1024, |n| n as usize);
        let upstream_keepalive = s
            .number(
                ("upstream-keepalive", wide_usize(cli.upstream_keepalive)),
                ("upstream_keepalive", file.upstream_keepalive.as_ref()),
                0..=100_000,
            )?
            .map_or(DEFAULT_UPSTREAM_KEEPALIVE, |n| n as usize);

        let duration = |flag: &str, flag_value: &Option<String>, key: &str, key_value, default| {
            s.text(
                (flag, flag_value.as_deref()),
                (key, key_value),
                parse_duration,
            )
            .map(|d| d.unwrap_or(default))
        };
        let upstream = duration(
            "upstream-timeout",
            &cli.upstream_timeout,
            "upstream_timeout",
            file.upstream_timeout.as_ref(),
            Duration::from_secs(30),
        )?;
        let timeouts = Timeouts {
            client_header: duration(
                "client-header-timeout",
                &cli.client_header_timeout,
                "client_header_timeout",
                file.client_header_timeout.as_ref(),
                Duration::from_secs(10),
            )?,
            client_idle: duration(
                "client-idle-timeout",
                &cli.client_idle_timeout,
                "client_idle_timeout",
                file.client_idle_timeout.as_ref(),
                Duration::from_secs(60),
            )?,
            connect: duration(
                "connect-timeout",
                &cli.connect_timeout,
                "connect_timeout",
                file.connect_timeout.as_ref(),
                Duration::from_secs(3),
            )?,
            upstream,
            // Until set, the upstream timeout covers the head too, as it
            // did before the two were told apart.
            response: s
                .text(
                    ("response-timeout", cli.response_timeout.as_deref()),
                    ("response_timeout", file.response_timeout.as_ref()),
                    parse_duration,
                )?
                .unwrap_or(upstream),
            client_body: duration(
                "client-body-timeout",
                &cli.client_body_timeout,
                "client_body_timeout",
                file.client_body_timeout.as_ref(),
                Duration::from_secs(60),
            )?,
            tunnel_idle: duration(
                "tunnel-idle-timeout",
                &cli.tunnel_idle_timeout,
                "tunnel_idle_timeout",
                file.tunnel_idle_timeout.as_ref(),
                Duration::from_secs(3600),
            )?,
        };
        let resilience = resilience::load(cli, &s, &file)?;

        // The top-level limit is every pool's unless it sets its own; 0
        // (the default) is none.
        let max_body_size = s
            .number(
                ("max-body-size", cli.max_body_size),
                ("max_body_size", file.max_body_size.as_ref()),
                0..=i64::MAX,
            )?
            .map(|n| n as u64);
        let (mut pools, routes) = pools_and_routes(cli, src, &file.pools, &file.routes)?;
        // Top-level health keys probe the pools that name none of their own.
        let health_path = s.text(
            ("health-path", None),
            ("health_path", file.health_path.as_ref()),
            resilience::parse_health_path,
        )?;
        let health_host = s.text(
            ("health-host", None),
            ("health_host", file.health_host.as_ref()),
            resilience::parse_health_host,
        )?;
        for pool in &mut pools {
            pool.max_body_size = pool.max_body_size.or(max_body_size).filter(|&n| n > 0);
            if pool.health_path.is_none() {
                pool.health_path.clone_from(&health_path);
            }
            if pool.health_host.is_none() {
                pool.health_host.clone_from(&health_host);
            }
        }

        let shutdown_timeout = duration(
            "shutdown-timeout",
            &cli.shutdown_timeout,
            "shutdown_timeout",
            file.shutdown_timeout.as_ref(),
            Duration::from_secs(30),
        )?;
        let admin = s
            .text(
                ("admin", cli.admin.as_deref()),
                ("admin", file.admin.as_ref()),
                operations::parse_admin,
            )?
            .map_or_else(|| resolve(DEFAULT_ADMIN).map(AdminListen::Default), Ok)
            .map_err(ConfigError)?;
        // The environment is the least visible source: flag, then file, then it.
        let env_token = std::env::var("CORELB_ADMIN_TOKEN").ok();
        let admin_token = match s.text(
            ("admin-token", cli.admin_token.as_deref()),
            ("admin_token", file.admin_token.as_ref()),
            operations::parse_token,
        )? {
            Some(token) => Some(token),
            None => env_token
                .filter(|t| !t.is_empty())
                .map(|t| {
                    operations::parse_token(&t).map_err(|e| {
                        ConfigError(format!("invalid value in CORELB_ADMIN_TOKEN: {e}"))
                    })
                })
                .transpose()?,
        };
        let log_level = s
            .text(
                ("log-level", cli.log_level.as_deref()),
                ("log_level", file.log_level.as_ref()),
                str::parse,
            )?
            .unwrap_or(LogLevel::Info);
        let log_format = s
            .text(
                ("log-format", cli.log_format.as_deref()),
                ("log_format", file.log_format.as_ref()),
                str::parse,
            )?
            .unwrap_or(LogFormat::Text);
        let access_target = s.text(
            ("access-log", cli.access_log.as_deref()),
            ("access_log", file.access_log.as_ref()),
            str::parse::<AccessLogTarget>,
        )?;
        let access_format = s
            .text(
                ("access-log-format", cli.access_log_format.as_deref()),
                ("access_log_format", file.access_log_format.as_ref()),
                str::parse,
            )?
            .unwrap_or(AccessLogFormat::Combined);
        let access_log = access_target.map(|target| AccessLogConfig {
            target,
            format: access_format,
        });

        Ok(Config {
            listen,
            threads,
            pin,
            accept_steering,
            io_driver,
            backlog,
            max_connections,
            max_connections_per_ip,
            buffer_size,
            upstream_keepalive,
            timeouts,
            resilience,
            pools,
            routes,
            shutdown_timeout,
            takeover: cli.takeover,
            admin,
            admin_token,
            log_level,
            log_format,
            access_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        use clap::Parser;
        let mut argv = vec!["corelb"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv)
    }

    fn load(args: &[&str], text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&cli(args), "t.toml", text)
    }

    fn load_err(args: &[&str], text: &str) -> String {
        load(args, text).unwrap_err().0
    }

    const ROUTES: &str = r#"
listen = "127.0.0.1:8081"
threads = 2
pin = false
connect_timeout = "250ms"

[[pools]]
name = "api"
algorithm = "round-robin"
backends = [{ addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002", weight = 3 }]

[[pools]]
name = "static"
hash_key = "header:X-User"
backends = [{ addr = "localhost:9003" }]

[[routes]]
path_prefix = "/api/"
pool = "api"

[[routes]]
host = "Static.Example.com"
pool = "static"

[[routes]]
pool = "static"
"#;

    #[test]
    fn defaults_apply() {
        let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.timeouts.connect, Duration::from_secs(3));
        assert_eq!(c.timeouts.client_header, Duration::from_secs(10));
        assert_eq!(c.pools.len(), 1);
        assert_eq!(c.pools[0].name, "default");
        assert_eq!(c.pools[0].backends[0].weight, 1);
        assert_eq!(c.backlog, 4096);
        assert_eq!(c.buffer_size, 16 * 1024);
        assert_eq!(c.upstream_keepalive, 1024);
        assert_eq!(c.max_connections_per_ip, 0);
        assert!(c.routes.is_empty());
        assert!(c.pin);
    }

    #[test]
    fn tunnel_and_body_limits_default_and_resolve_per_pool() {
        let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
        assert_eq!(c.timeouts.tunnel_idle, Duration::from_secs(3600));
        assert_eq!(c.pools[0].max_body_size, None, "off by default");
        assert!(c.pools[0].allow_upgrades.is_empty());
        let text = "tunnel_idle_timeout = \"5m\"\nmax_body_size = 100\n\
                    [[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\
                    [[pools]]\nname = \"b\"\nmax_body_size = 0\nallow_upgrades = [\"H2C\"]\n\
                    backends = [{ addr = \"127.0.0.1:2\" }]\n\
                    [[pools]]\nname = \"c\"\nmax_body_size = 7\nbackends = [{ addr = \"127.0.0.1:3\" }]\n";
        let c = load(&[], text).unwrap();
        assert_eq!(c.timeouts.tunnel_idle, Duration::from_secs(300));
        let limits: Vec<_> = c.pools.iter().map(|p| p.max_body_size).collect();
        assert_eq!(limits, [Some(100), None, Some(7)]);
        assert_eq!(c.pools[1].allow_upgrades, ["h2c"]);
        // The flag replaces the top-level value, not a pool's own.
        let c = load(
            &["--max-body-size", "50", "--tunnel-idle-timeout", "1s"],
            text,
        )
        .unwrap();
        let limits: Vec<_> = c.pools.iter().map(|p| p.max_body_size).collect();
        assert_eq!(limits, [Some(50), None, Some(7)]);
        assert_eq!(c.timeouts.tunnel_idle, Duration::from_secs(1));
        assert_eq!(
            c.settings().timeouts.tunnel_idle,
            Duration::from_secs(1),
            "reloadable"
        );
    }

    #[test]
    fn no_backends_is_an_error() {
        assert!(Config::load(&cli(&[])).unwrap_err().0.contains("--backend"));
        let e = load_err(&[], "threads = 1\n");
        assert!(e.starts_with("t.toml: no pools"), "{e}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = Config::load(&cli(&[
            "--backend",
            "127.0.0.1:1",
            "--connect-timeout",
            "soon",
        ]))
        .unwrap_err();
        assert!(e.0.contains("--connect-timeout"), "{e}");
        assert!(e.0.contains("`soon`"), "{e}");
        let e =
            Config::load(&cli(&["--backend", "127.0.0.1:1", "--io-driver", "kqueue"])).unwrap_err();
        assert!(e.0.contains("--io-driver"), "{e}");
        let e = Config::load(&cli(&["--backend", "nope"])).unwrap_err();
        assert!(e.0.contains("--backend"), "{e}");
        let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--threads", "0"])).unwrap_err();
        assert!(e.0.contains("--threads"), "{e}");
        let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--hash-key", "ip"])).unwrap_err();
        assert!(e.0.contains("--hash-key"), "{e}");
        let e =
            Config::load(&cli(&["--backend", "127.0.0.1:1", "--algorithm", "nope"])).unwrap_err();
        assert!(e.0.contains("--algorithm"), "{e}");
    }

    #[test]
    fn file_values_load() {
        let c = load(&[], ROUTES).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(c.threads, 2);
        assert!(!c.pin);
        assert_eq!(c.timeouts.connect, Duration::from_millis(250));
        assert_eq!(c.timeouts.upstream, Duration::from_secs(30));
        let names: Vec<_> = c.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["api", "static"]);
        assert_eq!(c.pools[0].backends[1].weight, 3);
        assert_eq!(c.pools[1].backends[0].name, "localhost:9003");
        assert_eq!(c.pools[1].hash_key, HashKey::Header("x-user".into()));
        assert_eq!(
            c.routes,
            [
                RouteConfig {
                    host: None,
                    path_prefix: Some("/api/".into()),
                    pool: 0
                },
                RouteConfig {
                    host: Some("static.example.com".into()),
                    path_prefix: None,
                    pool: 1
                },
                RouteConfig {
                    host: None,
                    path_prefix: None,
                    pool: 1
                },
            ]
        );
        assert_eq!(c.summary(), "2 pools, 3 backends, 3 routes");
    }

    #[test]
    fn routes_pick_pools_through_the_snapshot() {
        let c = load(&[], ROUTES).unwrap();
        let s = crate::snapshot::Snapshot::build(
            &c,
            &mut crate::control::registry::Registry::new(1),
            1,
        );
        assert_eq!(s.route(b"x", b"/api/v1"), 0);
        assert_eq!(s.route(b"STATIC.example.com", b"/api/v1"), 0);
        assert_eq!(s.route(b"static.example.com", b"/img"), 1);
        assert_eq!(s.route(b"other", b"/"), 1);
    }

    #[test]
    fn flags_override_the_file() {
        let c = load(
            &[
                "--threads",
                "1",
                "--connect-timeout",
                "5s",
                "--listen",
                "127.0.0.1:9999",
                "--pin",
            ],
            ROUTES,
        )
        .unwrap();
        assert_eq!(c.threads, 1);
        assert_eq!(c.timeouts.connect, Duration::from_secs(5));
        assert_eq!(c.listen.port(), 9999);
        assert!(c.pin);
        let c = load(
            &["--no-pin"],
            "pin = true\n[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
        )
        .unwrap();
        assert!(!c.pin);
    }

    #[test]
    fn accept_steering_is_on_unless_turned_off() {
        let pool = "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";
        assert!(load(&[], pool).unwrap().accept_steering);
        let off = format!("accept_steering = false\n{pool}");
        assert!(!load(&[], &off).unwrap().accept_steering);
        assert!(load(&["--accept-steering"], &off).unwrap().accept_steering);
        assert!(
            !load(&["--no-accept-steering"], pool)
                .unwrap()
                .accept_steering
        );
    }

    #[test]
    fn file_is_checked_even_when_a_flag_overrides() {
        let e = load_err(&["--threads", "1"], "threads = 0\n");
        assert!(
            e.starts_with("t.toml:1:11: threads: invalid value 0"),
            "{e}"
        );
    }

    #[test]
    fn backend_flags_replace_the_default_pool() {
        let text = r#"
[[pools]]
name = "api"
backends = [{ addr = "127.0.0.1:1" }]
[[pools]]
name = "default"
algorithm = "round-robin"
hash_key = "path"
backends = [{ addr = "127.0.0.1:2" }]
[[routes]]
path_prefix = "/api/"
pool = "api"
"#;
        // The file's `default` pool is the default pool, moved first.
        let c = load(&[], text).unwrap();
        assert_eq!(c.pools[0].name, "default");
        assert_eq!(c.pools[1].name, "api");
        assert_eq!(c.routes[0].pool, 1);
        // --backend replaces its backends and keeps its other settings.
        let c = load(
            &[
                "--backend",
                "127.0.0.1:3",
                "--backend",
                "127.0.0.1:4,weight=2",
            ],
            text,
        )
        .unwrap();
        assert_eq!(c.pools.len(), 2);
        assert_eq!(c.pools[0].name, "default");
        assert_eq!(c.pools[0].hash_key, HashKey::Path);
        let ports: Vec<_> = c.pools[0].backends.iter().map(|b| b.addr.port()).collect();
        assert_eq!(ports, [3, 4]);
        assert_eq!(c.pools[0].backends[1].weight, 2);
        assert_eq!(c.pools[1].backends[0].addr.port(), 1);
    }

    #[test]
    fn backend_flags_add_a_default_pool() {
        let c = load(
            &["--backend", "127.0.0.1:7", "--hash-key", "cookie:sid"],
            ROUTES,
        )
        .unwrap();
        let names: Vec<_> = c.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["default", "api", "static"]);
        assert_eq!(c.pools[0].hash_key, HashKey::Cookie("sid".into()));
        assert_eq!(c.pools[2].hash_key, HashKey::Header("x-user".into()));
        // Routes still point at the pools they name.
        assert_eq!(c.routes[0].pool, 1);
        assert_eq!(c.routes[1].pool, 2);
        assert_eq!(c.summary(), "3 pools, 4 backends, 3 routes");
    }

    #[test]
    fn algorithm_flag_sets_only_the_default_pool() {
        let c = load(&["--hash-key", "path"], ROUTES).unwrap();
        // No `default` pool and no --backend: the first pool is the default.
        assert_eq!(c.pools[0].name, "api");
        assert_eq!(c.pools[0].hash_key, HashKey::Path);
        assert_eq!(c.pools[1].hash_key, HashKey::Header("x-user".into()));
        assert!(load_err(&["--algorithm", "nope"], ROUTES).contains("--algorithm"));
    }

    #[test]
    fn file_errors_name_file_key_and_value() {
        let pool = |extra: &str| {
            format!("[[pools]]\nname = \"a\"\nbackends = [{{ addr = \"127.0.0.1:1\" }}]\n{extra}")
        };
        let cases: &[(String, &str)] = &[
            (
                "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\", weight = 0 }]\n"
                    .into(),
                "t.toml:3:46: pools[0].backends[0].weight: invalid value 0: must be from 1 to 10000",
            ),
            (
                pool("[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:2\" }]\n"),
                "t.toml:5:8: pools[1].name: invalid value \"a\": duplicate pool name (also pools[0].name)",
            ),
            (
                pool("[[pools]]\nname = \"\"\nbackends = [{ addr = \"127.0.0.1:2\" }]\n"),
                "t.toml:5:8: pools[1].name: invalid value \"\": must not be empty",
            ),
            (
                "[[pools]]\nname = \"a\"\nbackends = []\n".into(),
                "t.toml:3:12: pools[0].backends: a pool needs at least one backend",
            ),
            (
                pool("[[routes]]\npool = \"b\"\n"),
                "t.toml:5:8: routes[0].pool: invalid value \"b\": no pool by that name (pools: a)",
            ),
            (
                pool("[[routes]]\nhost = \"a.com:80\"\npool = \"a\"\n"),
                "t.toml:5:8: routes[0].host: invalid value \"a.com:80\": must not include a port",
            ),
            (
                pool("[[routes]]\npath_prefix = \"api\"\npool = \"a\"\n"),
                "t.toml:5:15: routes[0].path_prefix: invalid value \"api\": must start with `/`",
            ),
            (
                pool("[[routes]]\npool = \"a\"\n[[routes]]\nhost = \"x\"\npool = \"a\"\n"),
                "t.toml:8:8: routes[1]: unreachable: routes[0]",
            ),
            (
                format!("connect_timeout = \"soon\"\n{}", pool("")),
                "t.toml:1:19: connect_timeout: invalid value \"soon\": ",
            ),
            (
                format!("io_driver = \"kqueue\"\n{}", pool("")),
                "t.toml:1:13: io_driver: invalid value \"kqueue\": unknown io driver",
            ),
            (
                "[[pools]]\nname = \"a\"\nalgorithm = \"nope\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
                "t.toml:3:13: pools[0].algorithm: invalid value \"nope\": unknown algorithm",
            ),
            (
                "[[pools]]\nname = \"a\"\nhash_key = \"ip\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
                "t.toml:3:12: pools[0].hash_key: invalid value \"ip\": unknown hash key",
            ),
            (
                "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1\" }]\n".into(),
                "t.toml:3:22: pools[0].backends[0].addr: invalid value \"127.0.0.1\": cannot resolve",
            ),
            (
                format!("max_connections_per_ip = -1\n{}", pool("")),
                "t.toml:1:26: max_connections_per_ip: invalid value -1: must be from 0 to 100000000",
            ),
            (
                format!("buffer_size = 10\n{}", pool("")),
                "t.toml:1:15: buffer_size: invalid value 10: must be from 1024 to 16777216",
            ),
            (
                format!("max_body_size = -1\n{}", pool("")),
                "t.toml:1:17: max_body_size: invalid value -1: must be from 0 to",
            ),
            (
                "[[pools]]\nname = \"a\"\nmax_body_size = -5\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
                "t.toml:3:17: pools[0].max_body_size: invalid value -5: must be 0 (no limit) or more",
            ),
            (
                "[[pools]]\nname = \"a\"\nallow_upgrades = [\"h2c\", \"web socket\"]\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
                "t.toml:3:26: pools[0].allow_upgrades[1]: invalid value \"web socket\": expected a protocol name",
            ),
            (
                format!("tunnel_idle_timeout = \"forever\"\n{}", pool("")),
                "t.toml:1:23: tunnel_idle_timeout: invalid value \"forever\": ",
            ),
        ];
        for (text, want) in cases {
            let got = load_err(&[], text);
            assert!(
                got.starts_with(want),
                "\n got: {got}\nwant: {want}\ntext:\n{text}"
            );
        }
    }

    #[test]
    fn per_ip_limit_from_the_file_or_a_flag() {
        let file = "max_connections_per_ip = 20\n[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";
        assert_eq!(
            load(&[], file).unwrap().settings().max_connections_per_ip,
            20
        );
        let c = load(&["--max-connections-per-ip", "0"], file).unwrap();
        assert_eq!(c.max_connections_per_ip, 0);
        let e = Config::load(&cli(&[
            "--backend",
            "127.0.0.1:9000",
            "--max-connections-per-ip",
            "100000001",
        ]))
        .unwrap_err();
        assert_eq!(
            e.0,
            "invalid value `100000001` for --max-connections-per-ip: must be from 0 to 100000000"
        );
    }

    #[test]
    fn toml_errors_have_positions() {
        let e = load_err(&[], "threads = 2\n[[pools]\n");
        assert!(e.starts_with("t.toml:2:"), "{e}");
        let e = load_err(&[], "threads = 2\nthread = 3\n");
        assert!(
            e.starts_with("t.toml:2:1: thread: unknown field `thread`"),
            "{e}"
        );
        let e = load_err(&[], "threads = \"2\"\n");
        assert!(e.starts_with("t.toml:1:11: threads: invalid type"), "{e}");
    }
}
