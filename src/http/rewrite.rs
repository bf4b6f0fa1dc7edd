//! Writing the heads corelb forwards, rebuilt from parsed fields.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
//! message, so they stop here: `Connection` and every field it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade` (until
//! corelb tunnels upgrades). Framing fields are written from the parsed
//! framing, never copied raw. Heads are written into a caller-owned
//! `BytesMut` that is reused across requests, so nothing here allocates
//! once the buffer has grown to size.

use std::net::IpAddr;

use bytes::{BufMut, BytesMut};
use httparse::Header;

use super::body::BodyKind;
use super::head::{list_items, RequestHead, ResponseHead};

/// The `Via` entry corelb adds (RFC 9110 §7.6.3).
const VIA: &[u8] = b"1.1 corelb";

/// Is `name` hop-by-hop whatever the message says? (Checked by length
/// first: this runs for every header of every message.)
fn is_always_hop_by_hop(name: &[u8]) -> bool {
    let is = |h: &[u8]| name.eq_ignore_ascii_case(h);
    match name.len() {
        2 => is(b"te"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        16 => is(b"proxy-connection"),
        _ => false,
    }
}

/// Decides which fields of one message stop at the proxy: the always
/// hop-by-hop ones, and any field a `Connection` field of this message
/// names. Almost every message names only `close` or `keep-alive` there, so
/// the per-field scan of `Connection` runs only when it names something else.
struct HopByHop<'h, 'b> {
    headers: &'h [Header<'b>],
    names_other_fields: bool,
}

impl<'h, 'b> HopByHop<'h, 'b> {
    fn new(headers: &'h [Header<'b>]) -> Self {
        let names_other_fields = connection_options(headers).any(|option| {
            !option.eq_ignore_ascii_case(b"close") && !option.eq_ignore_ascii_case(b"keep-alive")
        });
        Self {
            headers,
            names_other_fields,
        }
    }

    fn drops(&self, name: &[u8]) -> bool {
        is_always_hop_by_hop(name)
            || (self.names_other_fields
                && !is_end_to_end_only(name)
                && connection_options(self.headers).any(|listed| listed.eq_ignore_ascii_case(name)))
    }
}

/// Fields a `Connection` option may not remove: the framing fields (their
/// removal would desynchronise the next hop: the message would end
/// somewhere else) and `Host` (an HTTP/1.1 request must carry one).
fn is_end_to_end_only(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"host")
}

/// Every option listed in the message's `Connection` fields.
fn connection_options<'h, 'b>(headers: &'h [Header<'b>]) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_items(h.value))
}

/// A client's IP address as text, formatted once per connection rather
/// than once per request.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    text: [u8; 45],
    len: usize,
}

impl ClientAddr {
    /// Format `ip` (IPv6 at most 45 characters).
    pub fn new(ip: IpAddr) -> Self {
        use std::io::Write as _;
        let mut text = [0u8; 45];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as usize;
        Self { text, len }
    }

    /// The address as written in `X-Forwarded-For`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// Write the head to send upstream for `req` from `client`.
///
/// `fallback_host` fills in `Host` for HTTP/1.0 requests that had none,
/// since corelb always speaks HTTP/1.1 to backends.
pub fn write_request_head(
    out: &mut BytesMut,
    req: &RequestHead<'_, '_>,
    client: &ClientAddr,
    fallback_host: &[u8],
) {
    let hop_by_hop = HopByHop::new(req.headers);
    out.put_slice(req.method.as_bytes());
    out.put_u8(b' ');
    // An absolute-form target is sent in origin form, its authority as
    // `Host` (RFC 9112 §3.2.2): the backend then cannot see two hosts.
    let absolute = req.absolute_form();
    match absolute {
        Some((_, rest)) => {
            if rest.first() != Some(&b'/') {
                out.put_u8(b'/');
            }
            out.put_slice(rest);
        }
        None => out.put_slice(req.target.as_bytes()),
    }
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some((authority, _)) = absolute {
        put_field(out, b"Host", authority);
    }

    let mut xff_written = false;
    let mut via_written = false;
    for h in req.headers {
        let name = h.name.as_bytes();
        if hop_by_hop.drops(name)
            // framing is rewritten below from the parsed decision
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            // corelb answers `100 Continue` itself
            || name.eq_ignore_ascii_case(b"expect")
            // set by corelb; a client must not choose it
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            // replaced by the target's authority
            || (absolute.is_some() && name.eq_ignore_ascii_case(b"host"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            // Merge every earlier hop's list into one field, then append ours.
            if xff_written {
                continue;
            }
            xff_written = true;
            out.put_slice(b"X-Forwarded-For: ");
            let mut first = true;
            for prior in req
                .headers
                .iter()
                .filter(|p| p.name.eq_ignore_ascii_case("x-forwarded-for"))
            {
                for item in list_items(prior.value) {
                    if !first {
                        out.put_slice(b", ");
                    }
                    out.put_slice(item);
                    first = false;
                }
            }
            if !first {
                out.put_slice(b", ");
            }
            out.put_slice(client.as_bytes());
            out.put_slice(b"\r\n");
            continue;
        }
        if name.eq_ignore_ascii_case(b"via") {
            if via_written {
                continue;
            }
            via_written = true;
            out.put_slice(b"Via: ");
            for prior in req
                .headers
                .iter()
                .filter(|p| p.name.eq_ignore_ascii_case("via"))
            {
                for item in list_items(prior.value) {
                    out.put_slice(item);
                    out.put_slice(b", ");
                }
            }
            out.put_slice(VIA);
            out.put_slice(b"\r\n");
            continue;
        }
        put_field(out, name, h.value);
    }
    if req.host.is_none() && absolute.is_none() {
        put_field(out, b"Host", fallback_host);
    }
    if !xff_written {
        put_field(out, b"X-Forwarded-For", client.as_bytes());
    }
    out.put_slice(b"X-Forwarded-Proto: http\r\n");
    if !via_written {
        put_field(out, b"Via", VIA);
    }
    match req.body {
        BodyKind::Length(n) => {
            out.put_slice(b"Content-Length: ");
            put_decimal(out, n);
            out.put_slice(b"\r\n");
        }
        BodyKind::Chunked => {
            // Keep the codings the client applied (e.g. `gzip, chunked`):
            // the backend must undo them; corelb only checked the framing.
            for h in req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            {
                put_field(out, b"Transfer-Encoding", h.value);
            }
        }
        BodyKind::Empty | BodyKind::CloseDelimited => {}
    }
    out.put_slice(b"\r\n");
}

/// How the response goes back to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSide {
    /// The client speaks HTTP/1.1 (1.0 clients cannot take chunked bodies).
    pub http11: bool,
    /// corelb keeps the client connection open after this response.
    pub keep_alive: bool,
}

impl ClientSide {
    /// A chunked response must be de-chunked (and the connection closed)
    /// for an HTTP/1.0 client.
    pub fn must_dechunk(self, body: BodyKind) -> bool {
        !self.http11 && body == BodyKind::Chunked
    }
}

/// Write the head to send back to the client for `res`.
pub fn write_response_head(out: &mut BytesMut, res: &ResponseHead<'_, '_>, client: ClientSide) {
    out.put_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(res.code));
    out.put_u8(b' ');
    out.put_slice(res.reason.as_bytes());
    out.put_slice(b"\r\n");
    let dechunk = client.must_dechunk(res.body);
    let hop_by_hop = HopByHop::new(res.headers);
    for h in res.headers {
        let name = h.name.as_bytes();
        if hop_by_hop.drops(name) {
            continue;
        }
        if dechunk && name.eq_ignore_ascii_case(b"transfer-encoding") {
            continue;
        }
        put_field(out, name, h.value);
    }
    if !client.keep_alive {
        out.put_slice(b"Connection: close\r\n");
    } else if !client.http11 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Write an interim (1xx) response for an HTTP/1.1 client.
pub fn write_interim_head(out: &mut BytesMut, res: &ResponseHead<'_, '_>) {
    out.put_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(res.code));
    out.put_u8(b' ');
    out.put_slice(res.reason.as_bytes());
    out.put_slice(b"\r\n");
    let hop_by_hop = HopByHop::new(res.headers);
    for h in res.headers {
        if !hop_by_hop.drops(h.name.as_bytes()) {
            put_field(out, h.name.as_bytes(), h.value);
        }
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response, MAX_HEADERS};

    fn forward(raw: &str) -> String {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(raw.as_bytes(), &mut headers)
            .unwrap()
            .unwrap();
        let mut out = BytesMut::new();
        let client = ClientAddr::new("10.1.2.3".parse().unwrap());
        write_request_head(&mut out, &req, &client, b"backend:80");
        String::from_utf8(out.to_vec()).unwrap()
    }

    const KEEP_ALIVE_11: ClientSide = ClientSide {
        http11: true,
        keep_alive: true,
    };

    /// The head corelb sends a client for the response head `raw`.
    fn respond(raw: &[u8], client: ClientSide) -> BytesMut {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(raw, &mut headers, false).unwrap().unwrap();
        let mut out = BytesMut::new();
        write_response_head(&mut out, &res, client);
        out
    }

    #[test]
    fn removes_hop_by_hop_and_listed_fields() {
        let out = forward(
            "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: y\r\nUpgrade: h2c\r\nX-Keep: 2\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET /x HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\nX-Forwarded-For: 10.1.2.3\r\n\
             X-Forwarded-Proto: http\r\nVia: 1.1 corelb\r\n\r\n"
        );
    }

    #[test]
    fn connection_cannot_remove_host_or_framing() {
        let out = forward(
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: host, content-length, transfer-encoding\r\n\
             Content-Length: 3\r\n\r\n",
        );
        assert!(out.contains("Host: a\r\n"), "{out}");
        assert!(out.contains("Content-Length: 3\r\n"), "{out}");
        let out = respond(
            b"HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
            KEEP_ALIVE_11,
        );
        assert!(
            out.ends_with(b"Transfer-Encoding: chunked\r\n\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_host() {
        let out = forward("GET http://internal:81/admin?x=1 HTTP/1.1\r\nHost: public\r\n\r\n");
        assert!(
            out.starts_with("GET /admin?x=1 HTTP/1.1\r\nHost: internal:81\r\n"),
            "{out}"
        );
        assert!(!out.contains("public"), "{out}");
        let out = forward("GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("GET /?q HTTP/1.1\r\nHost: a\r\n"), "{out}");
    }

    #[test]
    fn appends_to_forwarded_for_and_via() {
        let out = forward(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nVia: 1.0 edge\r\n\
             X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Proto: https\r\n\r\n",
        );
        assert!(
            out.contains("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3\r\n"),
            "{out}"
        );
        assert!(out.contains("Via: 1.0 edge, 1.1 corelb\r\n"), "{out}");
        assert_eq!(out.matches("X-Forwarded-For").count(), 1);
        assert!(out.contains("X-Forwarded-Proto: http\r\n"), "{out}");
    }

    #[test]
    fn framing_is_rebuilt_and_version_raised() {
        let out = forward("POST / HTTP/1.0\r\nContent-Length: 007\r\nExpect: 100-continue\r\n\r\n");
        assert!(out.starts_with("POST / HTTP/1.1\r\n"));
        assert!(out.contains("Content-Length: 7\r\n"), "{out}");
        assert!(out.contains("Host: backend:80\r\n"), "{out}");
        assert!(!out.contains("Expect"), "{out}");
    }

    #[test]
    fn response_head_for_clients() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\nServer: t\r\n\r\n";
        assert_eq!(
            &respond(raw, KEEP_ALIVE_11)[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: t\r\n\r\n"
        );
        let closing_10 = ClientSide {
            http11: false,
            keep_alive: false,
        };
        assert_eq!(
            &respond(raw, closing_10)[..],
            b"HTTP/1.1 200 OK\r\nServer: t\r\nConnection: close\r\n\r\n"
        );
    }
}
