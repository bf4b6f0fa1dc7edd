//! The settings that run corelb rather than route its traffic: the admin
//! listener, the shutdown timeout, logs and the access log. Each parses
//! from the text a flag or a file key gives.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::values::resolve;
use super::{ConfigError, ProcessConfig};

/// Where the admin API listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    /// No admin listener (`--admin off`).
    Off,
    /// The built-in default: if the port is taken (a second instance, a
    /// test) corelb warns and runs without admin.
    Default(SocketAddr),
    /// Asked for by the user: failing to bind it is an error.
    Explicit(SocketAddr),
}

/// The default admin address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// The admin address when none is given: [`DEFAULT_ADMIN`], given up
/// quietly if taken.
pub fn default_admin() -> Result<AdminListen, ConfigError> {
    resolve(DEFAULT_ADMIN)
        .map(AdminListen::Default)
        .map_err(ConfigError)
}

/// Parse `--admin`: `off` or `HOST:PORT`.
pub fn parse_admin(text: &str) -> Result<AdminListen, String> {
    match text.trim() {
        "off" | "none" => Ok(AdminListen::Off),
        addr => resolve(addr).map(AdminListen::Explicit),
    }
}

/// A host as the admin API compares a request's `Host` with it (the port
/// left out): a name lower-cased and without a trailing dot, an IPv4
/// address in dotted form, an IPv6 address in brackets. `None` if `text`
/// is neither a name nor an address.
pub fn canonical_host(text: &str) -> Option<String> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(|ip| format!("[{ip}]"));
    }
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => return Some(ip.to_string()),
        Ok(IpAddr::V6(ip)) => return Some(format!("[{ip}]")),
        Err(_) => {}
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let is_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (name.len() <= 253 && name.split('.').all(is_label)).then(|| name.to_ascii_lowercase())
}

/// Parse one `--admin-host`: a host name or an address, without a port.
pub fn parse_admin_host(text: &str) -> Result<String, String> {
    canonical_host(text).ok_or_else(|| {
        "expected a host name or an IP address, without a port (e.g. corelb.internal)".into()
    })
}

/// The least severe log level written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "error" => Ok(Self::Error),
            "warn" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            _ => Err("expected error, warn, info or debug".into()),
        }
    }
}

/// How log lines (stderr) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output (`-`).
    Stdout,
    /// A file, appended to; reopened on SIGUSR1.
    File(PathBuf),
}

impl FromStr for AccessLogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" => Err("expected a file path, or - for standard output".into()),
            "-" => Ok(Self::Stdout),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for AccessLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("-"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The shape of an access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// nginx's `combined`, plus backend, upstream and total time.
    Combined,
    /// One JSON object per line.
    Json,
}

impl FromStr for AccessLogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "combined" => Ok(Self::Combined),
            "json" => Ok(Self::Json),
            _ => Err("expected combined or json".into()),
        }
    }
}

/// The access log, when it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub target: AccessLogTarget,
    pub format: AccessLogFormat,
}

impl ProcessConfig {
    /// The access log, if it is on.
    pub fn access_log(&self) -> Option<AccessLogConfig> {
        self.access_log_target
            .clone()
            .map(|target| AccessLogConfig {
                target,
                format: self.access_log_format,
            })
    }
}

/// The admin token when neither a flag nor the file gives one: the
/// environment, the least visible source, is read last.
pub fn token_from_env() -> Result<Option<String>, ConfigError> {
    std::env::var("CORELB_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| {
            parse_token(&t)
                .map_err(|e| ConfigError(format!("invalid value in CORELB_ADMIN_TOKEN: {e}")))
        })
        .transpose()
}

/// Check an admin token: printable ASCII without spaces, so it can travel
/// in an `Authorization: Bearer` header unchanged.
pub fn parse_token(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_off_or_an_address() {
        assert_eq!(parse_admin("off"), Ok(AdminListen::Off));
        assert_eq!(
            parse_admin("127.0.0.1:9000"),
            Ok(AdminListen::Explicit("127.0.0.1:9000".parse().unwrap()))
        );
        assert!(parse_admin("nowhere").is_err());
    }

    #[test]
    fn admin_hosts_are_names_or_addresses_without_a_port() {
        assert_eq!(
            parse_admin_host("Corelb.Internal."),
            Ok("corelb.internal".into())
        );
        assert_eq!(parse_admin_host("10.0.0.5"), Ok("10.0.0.5".into()));
        assert_eq!(parse_admin_host("::1"), Ok("[::1]".into()));
        assert_eq!(parse_admin_host("[0:0::1]"), Ok("[::1]".into()));
        for bad in [
            "",
            "a b",
            "host:80",
            "[::1]:80",
            "a..b",
            "[nope]",
            "é.example",
        ] {
            assert!(parse_admin_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("warn".parse(), Ok(LogLevel::Warn));
        assert!("loud".parse::<LogLevel>().is_err());
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("-".parse(), Ok(AccessLogTarget::Stdout));
        assert_eq!(
            "/var/log/a.log".parse(),
            Ok(AccessLogTarget::File("/var/log/a.log".into()))
        );
        assert_eq!("combined".parse(), Ok(AccessLogFormat::Combined));
        assert!("apache".parse::<AccessLogFormat>().is_err());
    }

    #[test]
    fn tokens_are_plain() {
        assert!(parse_token("s3cr3t-T0ken").is_ok());
        assert!(parse_token("two words").is_err());
        assert!(parse_token("").is_err());
    }
}
