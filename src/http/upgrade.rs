//! Protocol upgrades (RFC 9110 §7.8): which requests may ask a backend to
//! switch protocols, and which answers turn the connection into a tunnel.
//!
//! The danger is a proxy that opens a tunnel on the wrong answer. If a
//! client asks to upgrade and the backend says anything but `101` (a `426`,
//! a `200` from an application that ignores the ask), the connection is
//! still HTTP: a proxy that starts copying raw bytes anyway lets the client
//! send requests the proxy never parses or routes (the "WebSocket
//! smuggling" pattern). So the tunnel opens only on a `101` whose `Upgrade`
//! names exactly the protocol the request asked for ([`opens_tunnel`]), and
//! every other answer leaves the exchange plain HTTP.
//!
//! Pure: the proxy asks, this answers.

use httparse::Header;

use super::syntax::{is_token_byte, list_items};

/// The protocol every pool lets through (RFC 6455).
pub const WEBSOCKET: &[u8] = b"websocket";

/// Longest protocol name (with its version) corelb forwards; a longer one
/// is stripped like an upgrade no pool allows.
pub const MAX_PROTOCOL_LEN: usize = 32;

/// A protocol name a request asked for, copied out of the read buffer so
/// the answer can be checked against it after the buffer moved on; no
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    bytes: [u8; MAX_PROTOCOL_LEN],
    len: u8,
}

impl Protocol {
    /// `name` as a protocol, if it is short enough.
    pub fn new(name: &[u8]) -> Option<Protocol> {
        if name.is_empty() || name.len() > MAX_PROTOCOL_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_PROTOCOL_LEN];
        bytes[..name.len()].copy_from_slice(name);
        Some(Protocol {
            bytes,
            len: name.len() as u8,
        })
    }

    /// The name as the client wrote it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A `protocol-name["/"protocol-version]` (RFC 9110 §7.8): tokens only.
fn is_protocol(item: &[u8]) -> bool {
    let mut parts = item.splitn(2, |&b| b == b'/');
    let token = |p: &[u8]| !p.is_empty() && p.iter().all(|&b| is_token_byte(b));
    parts.next().is_some_and(token) && parts.next().is_none_or(token)
}

/// The one protocol an `Upgrade` field's values name, if they name exactly
/// one, well formed. A list of several (`h2c, websocket`) is not chosen
/// from: the backend could pick another than the one corelb checks for.
pub fn single_protocol<'b>(headers: &[Header<'b>]) -> Option<&'b [u8]> {
    let mut items = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"))
        .flat_map(|h| list_items(h.value));
    let first = items.next()?;
    (items.next().is_none() && is_protocol(first)).then_some(first)
}

/// May a request asking to switch to `protocol` have it forwarded, in a
/// pool that also allows `allowed` (lower-case names)? WebSocket only on
/// GET (RFC 6455 §4.1); another protocol only if the pool names it. A
/// request with a body never gets here: [`super::parse_request`] refuses it.
pub fn may_forward(method: &str, protocol: &[u8], allowed: &[String]) -> bool {
    if method == "CONNECT" || protocol.len() > MAX_PROTOCOL_LEN {
        return false;
    }
    if protocol.eq_ignore_ascii_case(WEBSOCKET) {
        return method == "GET";
    }
    allowed
        .iter()
        .any(|name| protocol.eq_ignore_ascii_case(name.as_bytes()))
}

/// Does this answer to a request that asked to switch to `asked` (`None`:
/// it asked nothing, or corelb did not forward the ask) switch the
/// connection? Only a `101` whose `Upgrade` names exactly `asked`; a `101`
/// that names another protocol, or answers no ask, switches nothing (and
/// the proxy treats it as a broken answer).
pub fn opens_tunnel(asked: Option<&[u8]>, code: u16, response_headers: &[Header<'_>]) -> bool {
    let Some(asked) = asked else {
        return false;
    };
    code == 101
        && single_protocol(response_headers).is_some_and(|named| named.eq_ignore_ascii_case(asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&'static str, &'static str)]) -> Vec<Header<'static>> {
        pairs
            .iter()
            .map(|(name, value)| Header {
                name,
                value: value.as_bytes(),
            })
            .collect()
    }

    #[test]
    fn one_well_formed_protocol_is_picked_out() {
        assert_eq!(
            single_protocol(&fields(&[("Upgrade", " WebSocket ")])),
            Some(&b"WebSocket"[..])
        );
        assert_eq!(
            single_protocol(&fields(&[("upgrade", "foo/2")])),
            Some(&b"foo/2"[..])
        );
        for bad in [
            &[("Upgrade", "h2c, websocket")][..],
            &[("Upgrade", "websocket"), ("Upgrade", "h2c")],
            &[("Upgrade", "web socket")],
            &[("Upgrade", "foo/")],
            &[("Upgrade", "")],
            &[("X-Upgrade", "websocket")],
        ] {
            assert_eq!(single_protocol(&fields(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn websocket_on_get_others_only_when_allowed() {
        let none: &[String] = &[];
        let h2c = ["h2c".to_string()];
        assert!(may_forward("GET", b"websocket", none));
        assert!(may_forward("GET", b"WebSocket", none));
        assert!(!may_forward("POST", b"websocket", none));
        assert!(!may_forward("GET", b"h2c", none));
        assert!(may_forward("GET", b"H2C", &h2c));
        assert!(may_forward("OPTIONS", b"h2c", &h2c));
        assert!(!may_forward("CONNECT", b"h2c", &h2c));
    }

    #[test]
    fn only_a_101_naming_the_asked_protocol_opens_a_tunnel() {
        let ws = fields(&[("Connection", "upgrade"), ("Upgrade", "websocket")]);
        assert!(opens_tunnel(Some(b"websocket"), 101, &ws));
        assert!(opens_tunnel(Some(b"WebSocket"), 101, &ws));
        // Anything but 101 keeps HTTP, whatever the headers say.
        for code in [200, 204, 400, 426, 100, 102, 103] {
            assert!(!opens_tunnel(Some(b"websocket"), code, &ws), "{code}");
        }
        // 101 for another protocol, or for none, or unasked.
        let h2c = fields(&[("Upgrade", "h2c")]);
        assert!(!opens_tunnel(Some(b"websocket"), 101, &h2c));
        assert!(!opens_tunnel(Some(b"websocket"), 101, &[]));
        assert!(!opens_tunnel(None, 101, &ws));
    }

    #[test]
    fn protocol_names_are_kept_without_allocation_up_to_the_limit() {
        let p = Protocol::new(b"websocket").unwrap();
        assert_eq!(p.as_bytes(), b"websocket");
        assert!(Protocol::new(&[b'a'; MAX_PROTOCOL_LEN]).is_some());
        assert!(Protocol::new(&[b'a'; MAX_PROTOCOL_LEN + 1]).is_none());
        assert!(Protocol::new(b"").is_none());
    }
}
