//! What keeps a web page from using the admin API through an operator's
//! browser. A page may send requests anywhere (a form post, a `no-cors`
//! fetch with a `text/plain` body need no permission), and with DNS
//! rebinding a name it controls may point at the admin address. So:
//!
//! - every request must name this API in `Host`: its own address, a
//!   loopback address, `localhost`, or a name given with `--admin-host`
//!   (a rebound name is none of these);
//! - a state-changing request must not say it comes from a page of
//!   another origin (`Origin`) or site (`Sec-Fetch-Site`), and must carry
//!   `Content-Type: application/json`, which a page can only send to
//!   another origin after a CORS preflight that this API never grants.
//!
//! Pure: each check takes header values and says why it refuses.

use std::net::IpAddr;

use crate::config::canonical_host;

/// Does `host` (a request's `Host`) name this admin API, reached at the
/// local address `local`, with `named` the `--admin-host` names?
pub fn check_host(host: Option<&str>, local: IpAddr, named: &[String]) -> Result<(), String> {
    let Some(value) = host else {
        return Err("the request has no Host header".into());
    };
    let name = without_port(value).and_then(canonical_host);
    let allowed = name.as_deref().is_some_and(|name| {
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
        name == "localhost"
            || ip.is_some_and(|ip| ip.is_loopback() || ip == local.to_canonical())
            || named.iter().any(|n| n == name)
    });
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "Host {value:?} is not a name of this admin API: use its address, a loopback \
             address or localhost, or allow the name with --admin-host"
        ))
    }
}

/// A `Host` value without its port: `None` if the port is not a number
/// or the value is not `host[:port]`.
fn without_port(value: &str) -> Option<&str> {
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            (&value[..end + 2], &rest[end + 1..])
        }
        None => match value.split_once(':') {
            Some((host, _)) => (host, &value[host.len()..]),
            None => (value, ""),
        },
    };
    match port.strip_prefix(':') {
        None if port.is_empty() => Some(host),
        Some(digits)
            if (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(host)
        }
        _ => None,
    }
}

/// May a request to `host` (already checked) with these headers change
/// state? Refused if a browser says it comes from a page elsewhere, or if
/// it is not JSON.
pub fn check_state_change(
    host: &str,
    origin: Option<&str>,
    fetch_site: Option<&str>,
    content_type: Option<&str>,
) -> Result<(), String> {
    if let Some(site) = fetch_site {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Err(format!(
                "Sec-Fetch-Site: {site}: a page of another origin sent this request"
            ));
        }
    }
    if let Some(origin) = origin {
        let own = format!("http://{}", without_default_port(host));
        if !without_default_port(origin).eq_ignore_ascii_case(&own) {
            return Err(format!(
                "Origin {origin} is not this admin API ({own}): a page of another origin \
                 sent this request"
            ));
        }
    }
    let media_type = content_type.map(|t| t.split(';').next().unwrap_or("").trim());
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return Err("calls that change state need Content-Type: application/json".into());
    }
    Ok(())
}

/// `host:80` as a browser writes it in `Origin` (`host`).
fn without_default_port(authority: &str) -> &str {
    authority.strip_suffix(":80").unwrap_or(authority)
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is
/// case-insensitive (RFC 9110 §11.1).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_ok(host: &str) -> bool {
        let local: IpAddr = "10.0.0.5".parse().unwrap();
        check_host(Some(host), local, &["corelb.internal".to_string()]).is_ok()
    }

    #[test]
    fn hosts_this_api_answers_to() {
        for good in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:9901",
            "[::1]",
            "localhost:9901",
            "LOCALHOST",
            "10.0.0.5:9901",
            "corelb.internal",
            "Corelb.Internal.:9901",
        ] {
            assert!(host_ok(good), "{good} refused");
        }
        for bad in [
            "evil.example:9901",
            "10.0.0.6:9901",
            "127.0.0.1:x",
            "127.0.0.1:123456",
            "[::1",
            "a:b:c",
            "::1",
            "localhost.evil.example",
            "",
        ] {
            assert!(!host_ok(bad), "{bad} allowed");
        }
        assert!(check_host(None, "127.0.0.1".parse().unwrap(), &[]).is_err());
        // A v4 client of a dual-stack listener arrives at a mapped address.
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert!(check_host(Some("10.0.0.5:9901"), mapped, &[]).is_ok());
    }

    #[test]
    fn pages_of_other_origins_cannot_change_state() {
        let json = Some("application/json");
        let check = |origin, site, ty| check_state_change("127.0.0.1:9901", origin, site, ty);
        assert!(check(None, None, json).is_ok());
        assert!(check(Some("http://127.0.0.1:9901"), Some("same-origin"), json).is_ok());
        assert!(check(None, Some("none"), Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check(Some("http://127.0.0.1:8000"), None, json).is_err());
        assert!(check(Some("null"), None, json).is_err());
        assert!(check(Some("https://127.0.0.1:9901"), None, json).is_err());
        assert!(check(None, Some("cross-site"), json).is_err());
        assert!(check(None, Some("Same-Site"), json).is_err());
        assert!(check(None, None, None).is_err());
        assert!(check(None, None, Some("text/plain")).is_err());
        assert!(check(None, None, Some("application/jsonx")).is_err());
        assert!(check_state_change("a", Some("http://a:80"), None, json).is_ok());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer t0k"), Some("t0k"));
        assert_eq!(bearer_token("bearer  t0k"), Some("t0k"));
        assert_eq!(bearer_token("BEARER\tt0k"), Some("t0k"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
