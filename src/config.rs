//! The validated, typed configuration corelb runs with.
//!
//! [`Config::load`] merges the config file (if any) with the flags — flags
//! win — and checks every value, so the rest of the program never sees a
//! bad one. Errors name the flag (or the file and key) and the bad value.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::balance::Algorithm;
use crate::cli::Cli;

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

impl std::str::FromStr for IoDriver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Self::Uring),
            "epoll" | "legacy" => Ok(Self::Epoll),
            other => Err(format!(
                "unknown io driver `{other}` (expected auto, uring or epoll)"
            )),
        }
    }
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
    /// Between reads from a backend (head and body).
    pub upstream: Duration,
}

/// One backend as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Resolved address.
    pub addr: SocketAddr,
    /// As written by the user.
    pub name: String,
    /// Relative share of traffic (≥ 1).
    pub weight: u32,
}

/// What a consistent-hash pool hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    /// The client's IP address.
    #[default]
    ClientIp,
    /// The value of a request header (name lower-cased).
    Header(String),
    /// The request path (without the query).
    Path,
    /// The value of a cookie.
    Cookie(String),
}

/// A named group of backends with its own algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Name routes refer to.
    pub name: String,
    /// How to choose among the backends.
    pub algorithm: Algorithm,
    /// Used by consistent hashing.
    pub hash_key: HashKey,
    /// At least one.
    pub backends: Vec<BackendConfig>,
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

/// Everything corelb needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of every worker's listener.
    pub listen: SocketAddr,
    /// Worker count.
    pub threads: usize,
    /// Pin worker `i` to core `i`.
    pub pin: bool,
    /// Driver for the monoio runtimes.
    pub io_driver: IoDriver,
    /// Listen backlog per worker socket.
    pub backlog: u32,
    /// Open client connections allowed per process.
    pub max_connections: usize,
    /// Read buffer size per connection; the largest head accepted.
    pub buffer_size: usize,
    /// Idle pooled upstream connections per worker per backend.
    pub upstream_keepalive: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Backend pools; at least one.
    pub pools: Vec<PoolConfig>,
    /// Routes, tried in order; a request no route matches goes to pool 0.
    pub routes: Vec<RouteConfig>,
}

/// A configuration problem, worded for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn flag_error(flag: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("invalid value `{value}` for --{flag}: {why}"))
}

/// Parse a duration such as `500ms`, `5s` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Resolve `HOST:PORT` (host names allowed) to one socket address.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let mut found = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?;
    found
        .next()
        .ok_or_else(|| "resolves to no address".to_string())
}

/// Parse `HOST:PORT[,weight=N]`.
pub fn parse_backend(spec: &str) -> Result<BackendConfig, String> {
    let mut parts = spec.split(',');
    let addr_text = parts.next().unwrap_or("").trim();
    if addr_text.is_empty() {
        return Err("missing address (expected HOST:PORT[,weight=N])".into());
    }
    let mut weight = 1;
    for option in parts {
        match option.trim().split_once('=') {
            Some(("weight", w)) => {
                weight = w
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=10_000).contains(w))
                    .ok_or_else(|| format!("weight `{w}` is not a whole number from 1 to 10000"))?;
            }
            _ => return Err(format!("unknown option `{option}` (expected weight=N)")),
        }
    }
    let addr = resolve(addr_text)?;
    Ok(BackendConfig {
        addr,
        name: addr_text.to_string(),
        weight,
    })
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Config {
    /// Build the configuration from the flags (and, later, the file).
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let listen_text = cli.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = resolve(listen_text).map_err(|e| flag_error("listen", listen_text, e))?;

        let threads = cli.threads.unwrap_or_else(default_threads);
        if threads == 0 || threads > 1024 {
            return Err(flag_error(
                "threads",
                &threads.to_string(),
                "must be from 1 to 1024",
            ));
        }
        let io_driver = match &cli.io_driver {
            Some(s) => s.parse().map_err(|e| flag_error("io-driver", s, e))?,
            None => IoDriver::Auto,
        };
        let algorithm = match &cli.algorithm {
            Some(s) => s.parse().map_err(|e| flag_error("algorithm", s, e))?,
            None => Algorithm::RoundRobin,
        };
        let backlog = cli.backlog.unwrap_or(4096);
        if backlog == 0 {
            return Err(flag_error("backlog", "0", "must be at least 1"));
        }
        let max_connections = cli.max_connections.unwrap_or(100_000);
        if max_connections == 0 {
            return Err(flag_error("max-connections", "0", "must be at least 1"));
        }
        let buffer_size = cli.buffer_size.unwrap_or(16 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&buffer_size) {
            return Err(flag_error(
                "buffer-size",
                &buffer_size.to_string(),
                "must be from 1024 to 16777216 bytes",
            ));
        }
        let upstream_keepalive = cli.upstream_keepalive.unwrap_or(64);

        let duration = |flag: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => parse_duration(text).map_err(|e| flag_error(flag, text, e)),
            None => Ok(default),
        };
        let timeouts = Timeouts {
            client_header: duration(
                "client-header-timeout",
                &cli.client_header_timeout,
                Duration::from_secs(10),
            )?,
            client_idle: duration(
                "client-idle-timeout",
                &cli.client_idle_timeout,
                Duration::from_secs(60),
            )?,
            connect: duration(
                "connect-timeout",
                &cli.connect_timeout,
                Duration::from_secs(3),
            )?,
            upstream: duration(
                "upstream-timeout",
                &cli.upstream_timeout,
                Duration::from_secs(30),
            )?,
        };

        let backends = cli
            .backends
            .iter()
            .map(|spec| parse_backend(spec).map_err(|e| flag_error("backend", spec, e)))
            .collect::<Result<Vec<_>, _>>()?;
        if backends.is_empty() {
            return Err(ConfigError(
                "no backends: give at least one --backend HOST:PORT (or run `corelb demo`)".into(),
            ));
        }
        let pools = vec![PoolConfig {
            name: "default".into(),
            algorithm,
            hash_key: HashKey::ClientIp,
            backends,
        }];

        Ok(Config {
            listen,
            threads,
            pin: !cli.no_pin,
            io_driver,
            backlog,
            max_connections,
            buffer_size,
            upstream_keepalive,
            timeouts,
            pools,
            routes: Vec::new(),
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

    #[test]
    fn defaults_apply() {
        let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.timeouts.connect, Duration::from_secs(3));
        assert_eq!(c.pools[0].backends[0].weight, 1);
        assert!(c.pin);
    }

    #[test]
    fn backend_weight_parses() {
        let b = parse_backend("localhost:80,weight=3").unwrap();
        assert_eq!(b.weight, 3);
        assert_eq!(b.addr.port(), 80);
        assert!(parse_backend("127.0.0.1:80,weight=0").is_err());
        assert!(parse_backend("127.0.0.1:80,color=red").is_err());
        assert!(parse_backend("127.0.0.1").is_err());
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--connect-timeout", "soon"]))
            .unwrap_err();
        assert!(e.0.contains("--connect-timeout"), "{e}");
        let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--io-driver", "kqueue"]))
            .unwrap_err();
        assert!(e.0.contains("--io-driver"), "{e}");
        let e = Config::load(&cli(&["--backend", "nope"])).unwrap_err();
        assert!(e.0.contains("--backend"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
    }
}
