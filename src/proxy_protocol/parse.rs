//! Reading a PROXY protocol header (v1 text or v2 binary, as HAProxy's
//! `proxy-protocol.txt` defines them) from the first bytes of a
//! connection. Pure: the caller peeks at the socket and hands the bytes
//! so far; the answer says whether a whole header is there, how long it
//! is, and the client address it carries.
//!
//! Not `ppp`, the crate that parses these: the caller needs a three-way
//! answer on a prefix (more bytes needed / a header of exactly N bytes /
//! never a header) to consume exactly the header and not one byte of the
//! request or TLS record behind it, and a bound of its own on the length;
//! the whole of both formats is under 200 lines here, fuzzed
//! (`fuzz/fuzz_targets/proxy_header.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Every v1 header starts with these.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The longest v1 header, `\r\n` included (the spec's bound).
pub const V1_MAX_LEN: usize = 107;

/// The longest v2 header accepted, its 16 fixed bytes included: the
/// addresses (36 bytes for IPv6) and room for the TLVs L4 balancers add
/// (AWS's VPC endpoint id, HAProxy's unique id, a CRC). A longer one is
/// refused rather than read: a header is the first thing a peer sends and
/// must not make a worker hold a large buffer.
pub const MAX_LEN: usize = 512;

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A prefix of a header: read more (no more than [`MAX_LEN`] in all).
    Incomplete,
    /// A whole header of `len` bytes. `client`: the address it carries;
    /// `None` for v2 `LOCAL` (the L4 hop's own check) and v1 `UNKNOWN`,
    /// where the connection's own peer is the client.
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
    /// Not a header, or a broken one: close the connection.
    Invalid(&'static str),
}

/// Parse the start of a connection's bytes as a PROXY header.
pub fn parse(bytes: &[u8]) -> Parsed {
    match sniff(bytes) {
        Sniff::V1 => parse_v1(bytes),
        Sniff::V2 => parse_v2(bytes),
        Sniff::TooShort => Parsed::Incomplete,
        Sniff::Neither => Parsed::Invalid("no PROXY protocol header"),
    }
}

/// Which header the first bytes begin, as far as they tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    V1,
    V2,
    /// A prefix of one of the two signatures: more bytes will tell.
    TooShort,
    /// Neither (an HTTP request, a TLS ClientHello).
    Neither,
}

/// Does `bytes` begin a PROXY header? Used on peers not allowed to send
/// one too: such a peer is refused only if it does.
pub fn sniff(bytes: &[u8]) -> Sniff {
    if bytes.starts_with(V1_PREFIX) {
        Sniff::V1
    } else if bytes.starts_with(&V2_SIGNATURE) {
        Sniff::V2
    } else if V1_PREFIX.starts_with(bytes) || V2_SIGNATURE.starts_with(bytes) {
        Sniff::TooShort
    } else {
        Sniff::Neither
    }
}

/// `PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n`, `PROXY UNKNOWN…\r\n`.
fn parse_v1(bytes: &[u8]) -> Parsed {
    let window = &bytes[..bytes.len().min(V1_MAX_LEN)];
    // The line ends at its first CR, which must come before any LF.
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return match window.len() {
            V1_MAX_LEN => Parsed::Invalid("v1 header longer than 107 bytes"),
            _ => Parsed::Incomplete,
        };
    };
    if window[cr] == b'\n' {
        return Parsed::Invalid("v1 header ends in a bare LF");
    }
    match window.get(cr + 1) {
        None if cr + 1 == V1_MAX_LEN => return Parsed::Invalid("v1 header longer than 107 bytes"),
        None => return Parsed::Incomplete,
        Some(b'\n') => {}
        Some(_) => return Parsed::Invalid("v1 header: CR not followed by LF"),
    }
    let len = cr + 2;
    let Ok(line) = std::str::from_utf8(&window[V1_PREFIX.len()..cr]) else {
        return Parsed::Invalid("v1 header is not ASCII");
    };
    if line.starts_with("UNKNOWN") {
        // The sender could not tell: the rest of the line is ignored.
        return Parsed::Header { len, client: None };
    }
    match v1_source(line) {
        Some(client) => Parsed::Header {
            len,
            client: Some(client),
        },
        None => Parsed::Invalid("v1 header: malformed addresses"),
    }
}

/// `TCP4 SRC DST SPORT DPORT` (single spaces) → `SRC:SPORT`.
fn v1_source(line: &str) -> Option<SocketAddr> {
    let mut fields = line.split(' ');
    let family = fields.next()?;
    let (src, dst, sport, dport) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    // The destination is checked, not used: a header whose addresses do
    // not parse is broken, whichever one.
    let src: IpAddr = match family {
        "TCP4" => {
            dst.parse::<Ipv4Addr>().ok()?;
            src.parse::<Ipv4Addr>().ok()?.into()
        }
        "TCP6" => {
            dst.parse::<Ipv6Addr>().ok()?;
            src.parse::<Ipv6Addr>().ok()?.into()
        }
        _ => return None,
    };
    v1_port(dport)?;
    Some(SocketAddr::new(src, v1_port(sport)?))
}

/// A port as v1 writes it: decimal, no sign, no leading zero.
fn v1_port(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// The 16 fixed bytes, then the addresses and TLVs (`len` of them).
fn parse_v2(bytes: &[u8]) -> Parsed {
    let Some(fixed) = bytes.get(..16) else {
        return Parsed::Incomplete;
    };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Parsed::Invalid("v2 header: version is not 2");
    }
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let len = 16 + body_len;
    if len > MAX_LEN {
        return Parsed::Invalid("v2 header longer than corelb accepts");
    }
    let Some(body) = bytes.get(16..len) else {
        return Parsed::Incomplete;
    };
    let (family, transport) = (fixed[13] >> 4, fixed[13] & 0x0f);
    match command {
        // LOCAL: the L4 hop's own connection (a health check).
        0 => Parsed::Header { len, client: None },
        1 => match v2_source(family, transport, body) {
            Ok(client) => Parsed::Header { len, client },
            Err(why) => Parsed::Invalid(why),
        },
        _ => Parsed::Invalid("v2 header: unknown command"),
    }
}

/// A `PROXY` command's source address; `None` for an unspecified (or
/// UNIX) family, which leaves the connection's own address.
fn v2_source(family: u8, transport: u8, body: &[u8]) -> Result<Option<SocketAddr>, &'static str> {
    if transport > 2 {
        return Err("v2 header: unknown transport");
    }
    let short = "v2 header: addresses longer than the header";
    match family {
        0 | 3 => Ok(None),
        1 => {
            let a = body.get(..12).ok_or(short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[8], a[9]]),
            )))
        }
        2 => {
            let a = body.get(..36).ok_or(short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            )))
        }
        _ => Err("v2 header: unknown address family"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, client: &str) -> Parsed {
        Parsed::Header {
            len,
            client: Some(client.parse().unwrap()),
        }
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET /";
        assert_eq!(parse(h), header(h.len() - 5, "192.0.2.7:56324"));
        let h = b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n";
        assert_eq!(parse(h), header(h.len(), "[2001:db8::1]:1"));
        let h = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: h.len(),
                client: None
            }
        );
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 2\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\rX",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
            // Found by fuzz/fuzz_targets/proxy_header.rs: an LF before the
            // CR, in an UNKNOWN line whose rest is otherwise ignored.
            b"PROXY UNKNOWNL\n 1 2\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
        // A CR as the 107th byte leaves no room for its LF.
        let cr_last = [b"PROXY UNKNOWN ".as_slice(), &[b'1'; 92], b"\r\n"].concat();
        assert!(matches!(parse(&cr_last), Parsed::Invalid(_)));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_inet_inet6_local_and_tlvs() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80];
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a NOOP TLV, skipped
        let h = v2(1, 0x11, &body);
        assert_eq!(parse(&h), header(h.len(), "192.0.2.9:8080"));
        let mut body = [0u8; 36];
        body[15] = 1;
        body[32..34].copy_from_slice(&7u16.to_be_bytes());
        let h = v2(1, 0x21, &body);
        assert_eq!(parse(&h), header(h.len(), "[::1]:7"));
        let h = v2(0, 0x00, &[]);
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len: 16,
                client: None
            }
        );
    }

    #[test]
    fn v2_refusals() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(parse(&wrong_version), Parsed::Invalid(_)));
        assert!(matches!(parse(&v2(1, 0x11, &[0; 8])), Parsed::Invalid(_)));
        assert!(matches!(parse(&v2(2, 0x11, &[0; 12])), Parsed::Invalid(_)));
        assert!(matches!(parse(&v2(1, 0x41, &[0; 12])), Parsed::Invalid(_)));
        let mut oversized = v2(1, 0x11, &[0; 12]);
        oversized[14..16].copy_from_slice(&600u16.to_be_bytes());
        assert!(matches!(parse(&oversized), Parsed::Invalid(_)));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n".to_vec();
        let v2 = v2(1, 0x11, &[192, 0, 2, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]);
        for h in [v1, v2] {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "cut at {cut}");
            }
        }
    }

    #[test]
    fn sniffing_tells_requests_and_handshakes_apart() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::Neither);
        assert_eq!(sniff(&[0x16, 3, 1]), Sniff::Neither);
        assert_eq!(sniff(b"PRO"), Sniff::TooShort);
        assert_eq!(sniff(b"\r\n\r\n"), Sniff::TooShort);
        assert_eq!(sniff(b"PROXY T"), Sniff::V1);
        assert_eq!(sniff(&V2_SIGNATURE), Sniff::V2);
    }
}
