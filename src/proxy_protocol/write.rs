//! Writing a PROXY protocol header, for backends that want one
//! (`send_proxy_protocol = "v1" | "v2"` on a pool). Pure: into a buffer
//! on the caller's stack, no allocation.

use std::io::Write;
use std::net::SocketAddr;

use super::parse::V2_SIGNATURE;

/// Room for the longest header written: a v1 line is at most 107 bytes,
/// a v2 header with IPv6 addresses 52.
pub const MAX_WRITTEN: usize = 108;

/// Which header a pool's backends are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            _ => Err("expected \"v1\" or \"v2\"".into()),
        }
    }
}

/// A header saying the connection carries `client`'s, which reached
/// corelb at `local`; into `out`, returning its length. Addresses of
/// different families (an IPv4 client on an IPv6 listener) are both
/// written as IPv6, mapped.
pub fn encode(
    version: Version,
    client: SocketAddr,
    local: SocketAddr,
    out: &mut [u8; MAX_WRITTEN],
) -> usize {
    let (client, local) = same_family(client, local);
    match version {
        Version::V1 => {
            let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            // Cannot fail: the longest line (two full IPv6 addresses) fits.
            let _ = write!(
                cursor,
                "PROXY {family} {} {} {} {}\r\n",
                client.ip(),
                local.ip(),
                client.port(),
                local.port()
            );
            cursor.position() as usize
        }
        Version::V2 => {
            out[..12].copy_from_slice(&V2_SIGNATURE);
            out[12] = 0x21; // version 2, PROXY
            let mut len = 16;
            match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    out[13] = 0x11; // INET, STREAM
                    for part in [&c.ip().octets()[..], &l.ip().octets()[..]] {
                        out[len..len + part.len()].copy_from_slice(part);
                        len += part.len();
                    }
                }
                (c, l) => {
                    out[13] = 0x21; // INET6, STREAM
                    for ip in [c.ip(), l.ip()] {
                        out[len..len + 16].copy_from_slice(&v6(ip).octets());
                        len += 16;
                    }
                }
            }
            for port in [client.port(), local.port()] {
                out[len..len + 2].copy_from_slice(&port.to_be_bytes());
                len += 2;
            }
            let body = (len - 16) as u16;
            out[14..16].copy_from_slice(&body.to_be_bytes());
            len
        }
    }
}

/// The header of a connection corelb makes on its own behalf (a health
/// check): v2 `LOCAL`, v1 `UNKNOWN`; the backend then takes the
/// connection's own addresses.
pub fn local(version: Version) -> &'static [u8] {
    match version {
        Version::V1 => b"PROXY UNKNOWN\r\n",
        Version::V2 => b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
    }
}

fn v6(ip: std::net::IpAddr) -> std::net::Ipv6Addr {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    }
}

/// Both addresses in one family: IPv6 (mapped) unless both are IPv4.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        return (a, b);
    }
    let map = |s: SocketAddr| SocketAddr::new(v6(s.ip()).into(), s.port());
    (map(a), map(b))
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse, Parsed};
    use super::*;

    fn round_trip(version: Version, client: &str, local: &str) -> Vec<u8> {
        let mut out = [0u8; MAX_WRITTEN];
        let len = encode(
            version,
            client.parse().unwrap(),
            local.parse().unwrap(),
            &mut out,
        );
        let written = out[..len].to_vec();
        match parse(&written) {
            Parsed::Header {
                len: l,
                client: Some(c),
            } => {
                assert_eq!(l, len);
                assert_eq!(c.port(), client.parse::<SocketAddr>().unwrap().port());
            }
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(&written)),
        }
        written
    }

    #[test]
    fn what_is_written_parses_back() {
        let v1 = round_trip(Version::V1, "192.0.2.7:5000", "10.0.0.1:443");
        assert_eq!(v1, b"PROXY TCP4 192.0.2.7 10.0.0.1 5000 443\r\n");
        assert_eq!(
            round_trip(Version::V2, "192.0.2.7:5000", "10.0.0.1:443").len(),
            28
        );
        assert_eq!(
            round_trip(Version::V2, "[2001:db8::1]:1", "[::1]:2").len(),
            52
        );
        round_trip(Version::V1, "192.0.2.7:5000", "[::1]:2");
        let longest = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        assert_eq!(round_trip(Version::V1, longest, longest).len(), 104);
    }

    #[test]
    fn local_headers_carry_no_address() {
        for v in [Version::V1, Version::V2] {
            let h = local(v);
            assert_eq!(
                parse(h),
                Parsed::Header {
                    len: h.len(),
                    client: None
                }
            );
        }
    }
}
