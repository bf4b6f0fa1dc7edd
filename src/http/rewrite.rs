//! Writing the heads corelb forwards, rebuilt from parsed fields.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
//! message, so they stop here: `Connection` and every field it names,
//! `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`; an
//! upgrade a pool lets through gets its own `Connection: upgrade` and
//! `Upgrade` written anew, on the request and on the `101`. Framing fields are written from the parsed
//! framing, never copied raw. Heads are written into a caller-owned
//! `BytesMut` that is reused across requests, so nothing here allocates
//! once the buffer has grown to size.

use std::net::IpAddr;

use bytes::{BufMut, BytesMut};
use httparse::Header;

use super::body::BodyKind;
use super::head::{RequestHead, ResponseHead};
use super::syntax::list_items;

/// The `Via` entry corelb adds (RFC 9110 §7.6.3).
const VIA: &[u8] = b"1.1 corelb";

/// How many of corelb's own `Via` entries a request may already carry: one
/// per corelb it passed. Tiers of corelb in front of each other are fine;
/// a request that passed this many is going round in a loop (a backend
/// that is corelb's own listener, or a proxy pointing back at it), which
/// would otherwise go on until every descriptor is used.
pub const MAX_CORELB_HOPS: usize = 4;

/// Has `req` already passed [`MAX_CORELB_HOPS`] corelbs (by their `Via`
/// entries)? Then it is looping: answer 508 rather than forward it again.
pub fn is_looping(req: &RequestHead<'_, '_>) -> bool {
    values_of(req.headers, Field::Via)
        .filter(|item| item.eq_ignore_ascii_case(VIA))
        .nth(MAX_CORELB_HOPS - 1)
        .is_some()
}

/// The header fields the rewriters treat specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Always hop-by-hop (RFC 9110 §7.6.1).
    HopByHop,
    /// `Content-Length`, `Transfer-Encoding`: written from the parsed framing.
    Framing,
    Host,
    Expect,
    ForwardedFor,
    ForwardedProto,
    /// `X-Forwarded-Port`: corelb's own over TLS, the client's otherwise.
    ForwardedPort,
    Via,
    /// Anything else: forwarded as it came.
    Other,
}

/// What `name` is, matched by length first: this runs for every field of
/// every message, and most fields match nothing.
fn classify(name: &[u8]) -> Field {
    let is = |h: &[u8]| name.eq_ignore_ascii_case(h);
    match name.len() {
        2 if is(b"te") => Field::HopByHop,
        3 if is(b"via") => Field::Via,
        4 if is(b"host") => Field::Host,
        6 if is(b"expect") => Field::Expect,
        7 if is(b"trailer") || is(b"upgrade") => Field::HopByHop,
        10 if is(b"connection") || is(b"keep-alive") => Field::HopByHop,
        14 if is(b"content-length") => Field::Framing,
        15 if is(b"x-forwarded-for") => Field::ForwardedFor,
        16 if is(b"proxy-connection") => Field::HopByHop,
        17 if is(b"transfer-encoding") => Field::Framing,
        16 if is(b"x-forwarded-port") => Field::ForwardedPort,
        17 if is(b"x-forwarded-proto") => Field::ForwardedProto,
        _ => Field::Other,
    }
}

/// Copies kept header lines from the received head to `out`, merging
/// lines that were adjacent there into one copy: a head is mostly fields
/// forwarded unchanged, and one copy of a run beats one per name, colon,
/// value and line end.
struct LineCopier<'b> {
    raw: &'b [u8],
    /// The pending run, as a range of `raw`.
    start: usize,
    end: usize,
}

impl<'b> LineCopier<'b> {
    fn new(raw: &'b [u8]) -> Self {
        Self {
            raw,
            start: 0,
            end: 0,
        }
    }

    /// Forward the field line `name: value` as received.
    fn keep(&mut self, out: &mut BytesMut, h: &Header<'b>) {
        let base = self.raw.as_ptr() as usize;
        let name_at = (h.name.as_ptr() as usize).wrapping_sub(base);
        let value_end = (h.value.as_ptr() as usize)
            .wrapping_sub(base)
            .wrapping_add(h.value.len());
        let line_end = value_end + 2;
        // The line as received: name, colon, whitespace, value, CRLF. (An
        // empty value need not point into the buffer, and trailing
        // whitespace sits between value and CRLF: write those by hand.)
        if h.value.is_empty()
            || name_at >= value_end
            || self.raw.get(value_end..line_end) != Some(&b"\r\n"[..])
        {
            self.flush(out);
            put_field(out, h.name.as_bytes(), h.value);
            return;
        }
        if name_at != self.end {
            self.flush(out);
            self.start = name_at;
        }
        self.end = line_end;
    }

    /// Write the pending run; call before writing anything else.
    fn flush(&mut self, out: &mut BytesMut) {
        if self.end > self.start {
            out.put_slice(&self.raw[self.start..self.end]);
        }
        self.start = 0;
        self.end = 0;
    }
}

/// Which other fields of one message a `Connection` field names (they stop
/// at the proxy too). Almost every message names only `close` or
/// `keep-alive` there, so the per-field scan runs only when it names
/// something else. Framing fields and `Host` are never removed this way:
/// their removal would desynchronise the next hop or leave it without a
/// host; [`classify`] handles those before this is asked.
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

    /// Does a `Connection` field of this message name `name`? (Not asked
    /// for the fields [`classify`] knows.)
    fn lists(&self, name: &[u8]) -> bool {
        self.names_other_fields
            && connection_options(self.headers).any(|listed| listed.eq_ignore_ascii_case(name))
    }
}

/// Every option listed in the message's `Connection` fields.
fn connection_options<'h, 'b>(headers: &'h [Header<'b>]) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| list_items(h.value))
}

/// A client as the forwarded head names it: its IP address as text,
/// formatted once per connection rather than once per request, and, when
/// it came over TLS, the port it connected to (`X-Forwarded-Proto: https`,
/// `X-Forwarded-Port`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr {
    text: [u8; 45],
    /// A `u8`: this sits in every connection's task, idle ones too.
    len: u8,
    /// 0: plaintext.
    tls_port: u16,
}

impl ClientAddr {
    /// Format `ip` (IPv6 at most 45 characters).
    pub fn new(ip: IpAddr) -> Self {
        use std::io::Write as _;
        let mut text = [0u8; 45];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as u8;
        Self {
            text,
            len,
            tls_port: 0,
        }
    }

    /// The same client, connected over TLS to `port`.
    pub fn over_tls(self, port: u16) -> Self {
        Self {
            tls_port: port,
            ..self
        }
    }

    /// The address as written in `X-Forwarded-For`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
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

/// The list items of every field of kind `field`, in order.
fn values_of<'h, 'b>(
    headers: &'h [Header<'b>],
    field: Field,
) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| classify(h.name.as_bytes()) == field)
        .flat_map(|h| list_items(h.value))
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
    write_request_head_upgrading(out, req, client, fallback_host, None);
}

/// [`write_request_head`] for a request whose ask to switch to `upgrade`
/// goes to the backend (`None`: like [`write_request_head`]): the head
/// then ends with `Connection: upgrade` and `Upgrade: PROTOCOL`, rebuilt
/// like every hop-by-hop field, so nothing else the client listed in
/// `Connection` goes along.
pub fn write_request_head_upgrading(
    out: &mut BytesMut,
    req: &RequestHead<'_, '_>,
    client: &ClientAddr,
    fallback_host: &[u8],
    upgrade: Option<&[u8]>,
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

    let mut copier = LineCopier::new(req.raw);
    let mut xff_written = false;
    let mut via_written = false;
    for h in req.headers {
        let name = h.name.as_bytes();
        match classify(name) {
            // Framing is rewritten below from the parsed decision; corelb
            // answers `100 Continue` itself; a client must not choose
            // X-Forwarded-Proto.
            Field::HopByHop | Field::Framing | Field::Expect | Field::ForwardedProto => {}
            // replaced by the target's authority
            Field::Host if absolute.is_some() => {}
            Field::Host => copier.keep(out, h),
            // Merge every earlier hop's list into one field, then append ours.
            Field::ForwardedFor if !xff_written => {
                xff_written = true;
                copier.flush(out);
                out.put_slice(b"X-Forwarded-For: ");
                for item in values_of(req.headers, Field::ForwardedFor) {
                    out.put_slice(item);
                    out.put_slice(b", ");
                }
                out.put_slice(client.as_bytes());
                out.put_slice(b"\r\n");
            }
            Field::Via if !via_written => {
                via_written = true;
                copier.flush(out);
                out.put_slice(b"Via: ");
                for item in values_of(req.headers, Field::Via) {
                    out.put_slice(item);
                    out.put_slice(b", ");
                }
                out.put_slice(VIA);
                out.put_slice(b"\r\n");
            }
            Field::ForwardedFor | Field::Via => {}
            // Over TLS corelb says which port the client connected to.
            Field::ForwardedPort if client.tls_port != 0 => {}
            Field::Other | Field::ForwardedPort if hop_by_hop.lists(name) => {}
            Field::Other | Field::ForwardedPort => copier.keep(out, h),
        }
    }
    copier.flush(out);
    if req.host.is_none() && absolute.is_none() {
        put_field(out, b"Host", fallback_host);
    }
    if !xff_written {
        put_field(out, b"X-Forwarded-For", client.as_bytes());
    }
    if client.tls_port == 0 {
        out.put_slice(b"X-Forwarded-Proto: http\r\n");
    } else {
        out.put_slice(b"X-Forwarded-Proto: https\r\nX-Forwarded-Port: ");
        put_decimal(out, u64::from(client.tls_port));
        out.put_slice(b"\r\n");
    }
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
    if let Some(protocol) = upgrade {
        put_upgrade(out, protocol);
    }
    out.put_slice(b"\r\n");
}

fn put_upgrade(out: &mut BytesMut, protocol: &[u8]) {
    out.put_slice(b"Connection: upgrade\r\nUpgrade: ");
    out.put_slice(protocol);
    out.put_slice(b"\r\n");
}

/// Write the `101 Switching Protocols` to relay to the client for `res`,
/// which switched to `protocol` ([`super::upgrade::opens_tunnel`] said
/// so): the backend's end-to-end fields (`Sec-WebSocket-Accept`, ...),
/// then `Connection: upgrade` and `Upgrade` rebuilt.
pub fn write_switching_head(out: &mut BytesMut, res: &ResponseHead<'_, '_>, protocol: &[u8]) {
    out.put_slice(b"HTTP/1.1 101 ");
    out.put_slice(res.reason.as_bytes());
    out.put_slice(b"\r\n");
    let hop_by_hop = HopByHop::new(res.headers);
    let mut copier = LineCopier::new(res.raw);
    for h in res.headers {
        let name = h.name.as_bytes();
        match classify(name) {
            // A 101 has no body: no framing field means anything.
            Field::HopByHop | Field::Framing => {}
            Field::Other | Field::ForwardedPort if hop_by_hop.lists(name) => {}
            _ => copier.keep(out, h),
        }
    }
    copier.flush(out);
    put_upgrade(out, protocol);
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

/// Write corelb's redirect of `req` to `https://` on `port` (443 is left
/// out of the URL): 301 for GET and HEAD, 308 (which keeps the method and
/// body) for the rest. `keep_alive`: the connection stays open after it.
pub fn write_https_redirect(
    out: &mut BytesMut,
    req: &RequestHead<'_, '_>,
    port: u16,
    keep_alive: bool,
) {
    let (status, reason): (u64, &[u8]) = match req.method {
        "GET" | "HEAD" => (301, b"Moved Permanently"),
        _ => (308, b"Permanent Redirect"),
    };
    out.put_slice(b"HTTP/1.1 ");
    put_decimal(out, status);
    out.put_u8(b' ');
    out.put_slice(reason);
    out.put_slice(b"\r\nLocation: https://");
    let host = req.host_name();
    out.put_slice(host);
    if port != 443 {
        out.put_u8(b':');
        put_decimal(out, u64::from(port));
    }
    match req.absolute_form() {
        Some((_, rest)) if rest.first() == Some(&b'/') => out.put_slice(rest),
        Some(_) => out.put_u8(b'/'),
        None => out.put_slice(req.target.as_bytes()),
    }
    out.put_slice(b"\r\nContent-Length: 0\r\n");
    if !keep_alive {
        out.put_slice(b"Connection: close\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Write the head to send back to the client for `res`.
pub fn write_response_head(out: &mut BytesMut, res: &ResponseHead<'_, '_>, client: ClientSide) {
    out.put_slice(b"HTTP/1.1 ");
    put_decimal(out, u64::from(res.code));
    out.put_u8(b' ');
    out.put_slice(res.reason.as_bytes());
    out.put_slice(b"\r\n");
    let hop_by_hop = HopByHop::new(res.headers);
    let mut copier = LineCopier::new(res.raw);
    for h in res.headers {
        let name = h.name.as_bytes();
        let keep = match classify(name) {
            Field::HopByHop => false,
            // Transfer-Encoding never goes to an HTTP/1.0 client (RFC 9112
            // 6.1): its chunked body is de-chunked and delimited by the close.
            Field::Framing => client.http11 || !name.eq_ignore_ascii_case(b"transfer-encoding"),
            Field::Other | Field::ForwardedPort => !hop_by_hop.lists(name),
            _ => true,
        };
        if keep {
            copier.keep(out, h);
        }
    }
    copier.flush(out);
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
    let mut copier = LineCopier::new(res.raw);
    for h in res.headers {
        let name = h.name.as_bytes();
        match classify(name) {
            Field::HopByHop => {}
            Field::Other | Field::ForwardedPort if hop_by_hop.lists(name) => {}
            _ => copier.keep(out, h),
        }
    }
    copier.flush(out);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response};
    use crate::http::MAX_HEADERS;

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
    fn kept_lines_survive_odd_spacing() {
        let out = forward(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Pad:   v  \r\nX-Empty:\r\nX-Tab:\tt\r\nTE: x\r\nX-Last: z\r\n\r\n",
        );
        assert!(
            out.starts_with(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: v\r\nX-Empty: \r\nX-Tab:\tt\r\nX-Last: z\r\nX-Forwarded-For"
            ),
            "{out:?}"
        );
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
    fn a_request_through_too_many_corelbs_is_looping() {
        let with_via = |via: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\nVia: {via}\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let req = parse_request(raw.as_bytes(), &mut headers)
                .unwrap()
                .unwrap();
            is_looping(&req)
        };
        assert!(!with_via("1.1 corelb"));
        assert!(!with_via("1.0 edge, 1.1 corelb, 1.1 corelb"));
        assert!(with_via(&["1.1 corelb"; MAX_CORELB_HOPS].join(", ")));
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
    fn a_forwarded_upgrade_is_rebuilt_and_nothing_else_listed_goes() {
        let raw = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Secret\r\nX-Secret: 1\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = parse_request(raw.as_bytes(), &mut headers)
            .unwrap()
            .unwrap();
        assert_eq!(req.upgrade, Some(&b"websocket"[..]));
        let mut out = BytesMut::new();
        let client = ClientAddr::new("10.1.2.3".parse().unwrap());
        write_request_head_upgrading(&mut out, &req, &client, b"b", req.upgrade);
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            out.ends_with("Via: 1.1 corelb\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
            "{out}"
        );
        assert!(
            out.contains("Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n"),
            "{out}"
        );
        assert!(!out.contains("X-Secret"), "{out}");
        assert_eq!(out.matches("pgrade").count(), 2, "{out}");

        let raw =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: x\r\nContent-Length: 5\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let res = parse_response(raw, &mut headers, false).unwrap().unwrap();
        let mut out = BytesMut::new();
        write_switching_head(&mut out, &res, b"websocket");
        assert_eq!(
            &out[..],
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\
              Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
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
