//! Parsers for single values, shared by the flags and the config file:
//! durations, addresses, backends and io drivers (hash keys parse in
//! [`crate::balance::HashKey`]).
//!
//! Each returns a short reason on failure; the caller adds where the value
//! came from (which flag, or which file, line and key).

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use super::{BackendConfig, IoDriver};
use crate::state::origin::Origin;

/// Weights allowed for a backend.
pub const WEIGHTS: std::ops::RangeInclusive<i64> = 1..=10_000;

impl FromStr for IoDriver {
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

/// The longest timeout accepted.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parse a duration such as `500ms`, `5s` or `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (expected a duration such as 500ms, 10s or 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    // Deadlines are `now + d`; an absurd duration would overflow `Instant`.
    if d > MAX_DURATION {
        return Err("must be at most 1 day".into());
    }
    Ok(d)
}

/// Parse a duration where `0s` means "off" (slow start).
pub fn parse_duration_or_off(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() => Ok(d),
        _ => parse_duration(text),
    }
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

/// Resolve a backend's `HOST:PORT`: [`resolve`], and a port that can be
/// connected to (0 only makes sense for a listener).
pub fn resolve_backend(addr: &str) -> Result<SocketAddr, String> {
    let resolved = resolve(addr)?;
    if resolved.port() == 0 {
        return Err("port 0 cannot be connected to (expected HOST:PORT)".into());
    }
    Ok(resolved)
}

/// Check a weight is in [`WEIGHTS`].
pub fn check_weight(weight: i64) -> Result<u32, String> {
    if WEIGHTS.contains(&weight) {
        // In range, so it fits.
        Ok(weight as u32)
    } else {
        Err(format!(
            "must be from {} to {}",
            WEIGHTS.start(),
            WEIGHTS.end()
        ))
    }
}

/// Parse `HOST:PORT[,weight=N]` (the `--backend` flag).
pub fn parse_backend(spec: &str) -> Result<BackendConfig, String> {
    let mut parts = spec.split(',');
    let addr_text = parts.next().unwrap_or("").trim();
    if addr_text.is_empty() {
        return Err("missing address (expected HOST:PORT[,weight=N])".into());
    }
    let weight = parse_weight_options(parts)?;
    let addr = resolve_backend(addr_text)?;
    Ok(BackendConfig::new(
        addr,
        addr_text.to_string(),
        weight,
        Origin::Static,
    ))
}

/// The options after a backend's address: `weight=N` or nothing (1).
pub fn parse_weight_options<'a>(options: impl Iterator<Item = &'a str>) -> Result<u32, String> {
    let mut weight = 1;
    for option in options {
        match option.trim().split_once('=') {
            Some(("weight", w)) => {
                weight = w
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("weight `{w}` is not a whole number"))
                    .and_then(|w| check_weight(w).map_err(|e| format!("weight `{w}` {e}")))?;
            }
            _ => return Err(format!("unknown option `{option}` (expected weight=N)")),
        }
    }
    Ok(weight)
}

/// Check a route's `host`: a host name or address without a port.
/// Returns it lower-cased.
pub fn parse_route_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("must not be empty (leave `host` out to match any host)".into());
    }
    if host
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
    {
        return Err("is not a host name".into());
    }
    if host.contains('*') {
        return Err("must be an exact host name: wildcards are not supported".into());
    }
    let without_ipv6 = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if without_ipv6.is_none() && host.contains(':') {
        return Err(
            "must not include a port (routes match the Host header without its port)".into(),
        );
    }
    Ok(host.to_ascii_lowercase())
}

/// Check a route's `path_prefix`: it must start with `/`.
pub fn parse_path_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err("must start with `/`".into());
    }
    if prefix
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("must not contain spaces or control characters".into());
    }
    if prefix.contains(['?', '#']) {
        return Err("must be a path only: routes match the path without its query".into());
    }
    Ok(prefix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_weight_parses() {
        let b = parse_backend("localhost:80,weight=3").unwrap();
        assert_eq!(b.weight, 3);
        assert_eq!(b.addr.port(), 80);
        assert_eq!(b.name, "localhost:80");
        assert!(parse_backend("127.0.0.1:80,weight=0").is_err());
        assert!(parse_backend("127.0.0.1:80,weight=10001").is_err());
        assert!(parse_backend("127.0.0.1:80,weight=x").is_err());
        assert_eq!(
            parse_backend("127.0.0.1:80,weight=10000").unwrap().weight,
            10_000
        );
        assert!(parse_backend("127.0.0.1:80,color=red").is_err());
        assert!(parse_backend("127.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(parse_backend("127.0.0.1").is_err());
        assert!(parse_backend("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration(" 2m ").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1000000000years").is_err());
    }

    #[test]
    fn io_drivers() {
        assert_eq!("auto".parse::<IoDriver>().unwrap(), IoDriver::Auto);
        assert_eq!("io_uring".parse::<IoDriver>().unwrap(), IoDriver::Uring);
        assert_eq!("epoll".parse::<IoDriver>().unwrap(), IoDriver::Epoll);
        assert!("kqueue".parse::<IoDriver>().is_err());
    }

    #[test]
    fn route_hosts_and_prefixes() {
        assert_eq!(
            parse_route_host("Static.Example.com").unwrap(),
            "static.example.com"
        );
        assert_eq!(parse_route_host("[::1]").unwrap(), "[::1]");
        assert!(parse_route_host("example.com:8080").is_err());
        assert!(parse_route_host("").is_err());
        assert!(parse_route_host("a b").is_err());
        assert_eq!(parse_path_prefix("/api/").unwrap(), "/api/");
        assert!(parse_path_prefix("api/").is_err());
        // Never matched: routes see the host exactly and the path without
        // its query.
        assert!(parse_route_host("*.example.com").is_err());
        assert!(parse_path_prefix("/api?x=1").is_err());
        assert!(parse_path_prefix("/page#top").is_err());
    }
}
