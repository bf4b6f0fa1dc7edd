//! What consistent hashing hashes: the part of a request named by the
//! pool's [`HashKey`], reduced to a stable 64-bit hash.
//!
//! A request without the header or cookie falls back to its client IP:
//! hashing all of them like an empty value would pile every such client
//! onto one backend.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use httparse::Header;

use super::stable_hash::hash_bytes;
use crate::http::syntax::{is_token_byte, trim_ows};
use crate::http::RequestHead;

/// What a consistent-hash pool hashes. Written `client-ip`, `path`,
/// `header:NAME` or `cookie:NAME`.
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

impl FromStr for HashKey {
    type Err = String;

    /// `client-ip`, `path`, `header:NAME` or `cookie:NAME`.
    fn from_str(s: &str) -> Result<Self, String> {
        const EXPECTED: &str = "expected client-ip, path, header:NAME or cookie:NAME";
        match s.split_once(':') {
            None if s == "client-ip" => Ok(Self::ClientIp),
            None if s == "path" => Ok(Self::Path),
            Some(("header", name)) => {
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    return Err(format!("`{name}` is not a header name ({EXPECTED})"));
                }
                Ok(Self::Header(name.to_ascii_lowercase()))
            }
            Some(("cookie", name)) => {
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    return Err(format!("`{name}` is not a cookie name ({EXPECTED})"));
                }
                Ok(Self::Cookie(name.to_string()))
            }
            _ => Err(format!("unknown hash key `{s}` ({EXPECTED})")),
        }
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp => f.write_str("client-ip"),
            Self::Path => f.write_str("path"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Cookie(name) => write!(f, "cookie:{name}"),
        }
    }
}

/// Fixed, so every worker and process hashes a key the same.
const KEY_SEED: u64 = 0x636f_7265_6c62;

/// The hash of `key` as found in this request.
pub fn hash_request_key(key: &HashKey, client_ip: IpAddr, req: &RequestHead<'_, '_>) -> u64 {
    match key {
        HashKey::ClientIp => hash_ip(client_ip),
        HashKey::Header(name) => header_value(req.headers, name)
            .map_or_else(|| hash_ip(client_ip), |v| hash_bytes(KEY_SEED, v)),
        HashKey::Path => hash_bytes(KEY_SEED, req.path()),
        HashKey::Cookie(name) => cookie_value(req.headers, name)
            .map_or_else(|| hash_ip(client_ip), |v| hash_bytes(KEY_SEED, v)),
    }
}

/// The hash of a client address. An IPv4 client reaching a dual-stack
/// listener shows up as `::ffff:a.b.c.d`; it is hashed as the IPv4 address
/// so it maps the same whichever socket family accepted it.
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash_bytes(KEY_SEED, &v4.octets()),
        IpAddr::V6(v6) => hash_bytes(KEY_SEED, &v6.octets()),
    }
}

/// The value of the first field called `name` (any case), without the
/// optional whitespace around it.
fn header_value<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| trim_ows(h.value))
}

/// The value of cookie `name` from the `Cookie` fields (`a=1; b=2`).
/// Cookie names are case-sensitive (RFC 6265 §5.4); a client may send
/// several `Cookie` fields, so all of them are searched, first match wins.
fn cookie_value<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        .flat_map(|h| h.value.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = trim_ows(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (cookie_name, value) = (&pair[..eq], &pair[eq + 1..]);
            (trim_ows(cookie_name) == name.as_bytes()).then(|| trim_ows(value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_round_trip() {
        for (text, key) in [
            ("client-ip", HashKey::ClientIp),
            ("path", HashKey::Path),
            ("header:x-user", HashKey::Header("x-user".into())),
            ("cookie:session", HashKey::Cookie("session".into())),
        ] {
            assert_eq!(text.parse::<HashKey>().unwrap(), key);
            assert_eq!(key.to_string(), text);
        }
        assert_eq!(
            "header:X-User".parse::<HashKey>().unwrap(),
            HashKey::Header("x-user".into())
        );
        for bad in [
            "",
            "ip",
            "header:",
            "header:a b",
            "cookie:",
            "cookie:a;b",
            "path:x",
        ] {
            assert!(bad.parse::<HashKey>().is_err(), "{bad}");
        }
    }
    use crate::http::{parse_request, MAX_HEADERS};

    fn hash_of(key: &HashKey, raw: &str) -> u64 {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(raw.as_bytes(), &mut headers)
            .expect("valid request")
            .expect("complete request");
        hash_request_key(key, "192.0.2.1".parse().expect("ip"), &req)
    }

    /// What a request without the key hashes to: its client's address
    /// (`hash_of` sends every request from 192.0.2.1).
    fn fallback() -> u64 {
        hash_ip("192.0.2.1".parse().expect("ip"))
    }

    #[test]
    fn client_ip_is_hashed_canonically() {
        let v4: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        assert_eq!(hash_ip(v4), hash_ip(mapped));
        assert_ne!(hash_ip(v4), hash_ip(other));
        assert_eq!(
            hash_of(&HashKey::ClientIp, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            hash_ip(v4)
        );
    }

    #[test]
    fn header_name_matches_any_case() {
        let key = HashKey::Header("x-user".into());
        let a = hash_of(&key, "GET / HTTP/1.1\r\nHost: x\r\nX-User: alice\r\n\r\n");
        let b = hash_of(
            &key,
            "GET /other HTTP/1.1\r\nx-user:  alice \r\nHost: y\r\n\r\n",
        );
        let c = hash_of(&key, "GET / HTTP/1.1\r\nHost: x\r\nX-USER: bob\r\n\r\n");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, hash_bytes(KEY_SEED, b"alice"));
        assert_eq!(
            hash_of(&key, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            fallback()
        );
    }

    #[test]
    fn path_ignores_query_and_host() {
        let a = hash_of(
            &HashKey::Path,
            "GET /img/1.png?v=2 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let b = hash_of(&HashKey::Path, "GET /img/1.png HTTP/1.1\r\nHost: y\r\n\r\n");
        let c = hash_of(&HashKey::Path, "GET /img/2.png HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn cookie_is_found_among_several() {
        let key = HashKey::Cookie("session".into());
        let want = hash_bytes(KEY_SEED, b"abc123");
        for raw in [
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: session=abc123\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; session=abc123; b=2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\ncookie: a=1;session=abc123\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: session=abc123\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: xsession=no; session=abc123\r\n\r\n",
        ] {
            assert_eq!(hash_of(&key, raw), want, "{raw:?}");
        }
        for raw in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: Session=abc123; other=1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nCookie: session\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Session: session=abc123\r\n\r\n",
        ] {
            assert_eq!(hash_of(&key, raw), fallback(), "{raw:?}");
        }
        let value_with_equals = "GET / HTTP/1.1\r\nHost: x\r\nCookie: session=a=b\r\n\r\n";
        assert_eq!(
            hash_of(&key, value_with_equals),
            hash_bytes(KEY_SEED, b"a=b")
        );
    }
}
