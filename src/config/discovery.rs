//! Where a pool's backends are found at run time, as configured: DNS names
//! (`--backend-dns`, `dns = [...]`), an SRV name (`srv = "..."`) and a
//! backends file (`--backends-file`, `backends_file = "..."`), and the
//! resolvers asked (`--resolver`). Only parsing and checking here; the
//! `corelb-discovery` thread (`crate::discovery`) does the finding.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::values::parse_weight_options;
use crate::state::origin::Origin;

/// The DNS port, when `--resolver` gives none.
const DNS_PORT: u16 = 53;

/// One place a pool's backends come from, besides its static list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiscoverySource {
    /// Every A and AAAA record of `name`, at `port`, each with `weight`.
    Dns {
        name: String,
        port: u16,
        weight: u32,
    },
    /// Every SRV record of `name` (`_http._tcp.api.internal`): each
    /// target's addresses at the record's port, with its weight.
    Srv { name: String },
    /// A JSON list of `{"addr": "IP:PORT", "weight": N}`, watched.
    File { path: PathBuf },
}

impl DiscoverySource {
    /// What the backends it finds are shown as coming from.
    pub fn origin(&self) -> Origin {
        match self {
            DiscoverySource::Dns { .. } => Origin::Dns,
            DiscoverySource::Srv { .. } => Origin::Srv,
            DiscoverySource::File { .. } => Origin::File,
        }
    }

    /// How logs, `/status` and `/metrics` name it: `dns:NAME:PORT`,
    /// `srv:NAME`, `file:PATH`.
    pub fn label(&self) -> String {
        match self {
            DiscoverySource::Dns { name, port, .. } => format!("dns:{name}:{port}"),
            DiscoverySource::Srv { name } => format!("srv:{name}"),
            DiscoverySource::File { path } => format!("file:{}", path.display()),
        }
    }
}

/// `NAME:PORT[,weight=N]` (the `--backend-dns` flag; a pool's `dns`
/// entries have no options).
pub fn parse_dns_backend(spec: &str) -> Result<DiscoverySource, String> {
    let mut parts = spec.split(',');
    let target = parts.next().unwrap_or("").trim();
    let weight = parse_weight_options(parts)?;
    let (name, port) = target
        .rsplit_once(':')
        .ok_or("expected NAME:PORT (a DNS name and the backends' port)")?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("port `{port}` is not a port number (1 to 65535)"))?;
    Ok(DiscoverySource::Dns {
        name: check_dns_name(name)?,
        port,
        weight,
    })
}

/// An SRV name such as `_http._tcp.api.internal`.
pub fn parse_srv_name(text: &str) -> Result<DiscoverySource, String> {
    let name = check_dns_name(text.trim())?;
    if !name.starts_with('_') {
        return Err("expected an SRV name such as _http._tcp.api.internal".into());
    }
    Ok(DiscoverySource::Srv { name })
}

/// A backends file's path (not read here: it may appear later).
pub fn parse_backends_file(text: &str) -> Result<DiscoverySource, String> {
    if text.trim().is_empty() {
        return Err("expected the path of a JSON file".into());
    }
    Ok(DiscoverySource::File {
        path: PathBuf::from(text),
    })
}

/// A DNS name: letters, digits, `-`, `_` and dots, at most 253 bytes.
fn check_dns_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.split('.').any(|label| label.len() > 63);
    if !ok {
        return Err(format!("`{name}` is not a DNS name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// `ADDR[:PORT]` of a DNS server (`--resolver`): `10.0.0.2`,
/// `127.0.0.1:5353`, `::1` or `[::1]:5353`; the port defaults to 53.
pub fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .map_err(|_| "expected an IP address, with :PORT if not 53".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_backends_parse_or_say_why_not() {
        assert_eq!(
            parse_dns_backend("API.internal:8080,weight=3"),
            Ok(DiscoverySource::Dns {
                name: "api.internal".into(),
                port: 8080,
                weight: 3
            })
        );
        assert!(parse_dns_backend("api.internal")
            .unwrap_err()
            .contains("NAME:PORT"));
        assert!(parse_dns_backend("api:0").unwrap_err().contains("port"));
        assert!(parse_dns_backend("a b:80")
            .unwrap_err()
            .contains("not a DNS name"));
        assert!(parse_dns_backend("api:80,w=1")
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse_srv_name("api.internal").is_err());
        assert_eq!(
            parse_srv_name("_http._tcp.api").unwrap().label(),
            "srv:_http._tcp.api"
        );
    }

    #[test]
    fn resolvers_default_to_port_53() {
        assert_eq!(
            parse_resolver("10.0.0.2"),
            Ok("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(parse_resolver("::1"), Ok("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_resolver("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert!(parse_resolver("dns.example").is_err());
    }
}
