//! Request and response heads: parsing (httparse) plus the RFC 9112 checks
//! httparse leaves to us, and the body-length decision.
//!
//! The rule throughout: if two HTTP parsers could disagree about where this
//! message ends, refuse it. A proxy that forwards an ambiguous message lets
//! a client smuggle a second request past it.

use httparse::{Header, Status};

use super::body::BodyKind;
use super::field;
use super::syntax::{is_token_byte, list_items};
use super::upgrade;

/// A head that cannot be forwarded, with the status to answer and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    /// HTTP status for the error response (4xx for clients, 502 for backends).
    pub status: u16,
    /// Short reason, sent in the error body.
    pub reason: &'static str,
}

const fn bad_request(reason: &'static str) -> HeadError {
    HeadError {
        status: 400,
        reason,
    }
}

const fn bad_gateway(reason: &'static str) -> HeadError {
    HeadError {
        status: 502,
        reason,
    }
}

/// A parsed request head borrowing from the read buffer.
#[derive(Debug)]
pub struct RequestHead<'h, 'b> {
    /// Method token.
    pub method: &'b str,
    /// Request target as sent.
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order.
    pub headers: &'h [Header<'b>],
    /// Length of the head in bytes, including the final CRLF.
    pub len: usize,
    /// How the body is framed.
    pub body: BodyKind,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The `Host` value, if any.
    pub host: Option<&'b [u8]>,
    /// The whole head as received (`len` bytes); header lines kept as they
    /// are can be copied from it in runs.
    pub raw: &'b [u8],
    /// The protocol an HTTP/1.1 request asks to switch to (`Connection:
    /// upgrade` and an `Upgrade` naming exactly one protocol); whether it
    /// is forwarded is the pool's call ([`super::upgrade::may_forward`]).
    pub upgrade: Option<&'b [u8]>,
}

impl<'b> RequestHead<'_, 'b> {
    /// Is this a HEAD request (whose response never has a body)?
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// The path of the target, without the query string.
    pub fn path(&self) -> &[u8] {
        let t = self.target.as_bytes();
        let path = match t.iter().position(|&b| b == b'?') {
            Some(q) => &t[..q],
            None => t,
        };
        // absolute-form: skip "scheme://authority"
        if let Some(rest) = strip_scheme(path) {
            return rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(b"/", |i| &rest[i..]);
        }
        path
    }

    /// The host name the request is for, without port, for routing. For an
    /// absolute-form target that is the target's authority: RFC 9112
    /// §3.2.2 says to ignore `Host` then.
    pub fn host_name(&self) -> &'b [u8] {
        match self.absolute_form() {
            Some((authority, _)) => strip_port(authority),
            None => self.host.map_or(b"", strip_port),
        }
    }

    /// For an absolute-form target (`http://host:port/path?q`): the
    /// authority (`host:port`, without any `user@`) and the rest of the
    /// target (`/path?q`, possibly empty).
    pub fn absolute_form(&self) -> Option<(&'b [u8], &'b [u8])> {
        split_absolute_form(self.target.as_bytes())
    }
}

/// `http://user@host:port/path?q` → (`host:port`, `/path?q`); `None` for a
/// target that is not in absolute form.
fn split_absolute_form(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = strip_scheme(target)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    Some((authority, &rest[end..]))
}

/// Does an absolute-form target carry `user@` before its host?
fn has_userinfo(target: &[u8]) -> bool {
    let rest = strip_scheme(target).unwrap_or(b"");
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    rest[..end].contains(&b'@')
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

/// Does an authority (`Host` value, or the target's) name a host? RFC 9110
/// §4.2.1: an http(s) URI with an empty host is invalid and a recipient
/// MUST reject it, and the request's target URI is built from `Host`
/// (RFC 9112 §3.3). RFC 9112 §3.2 lets a client send an empty `Host` only
/// for a target URI without an authority, which is not a request corelb
/// can route or a backend can serve; and the request goes upstream as
/// HTTP/1.1 whatever version it came in, so HTTP/1.0 gets the same rule.
fn names_a_host(authority: &[u8]) -> bool {
    !strip_port(authority).is_empty()
}

/// A parsed response head borrowing from the upstream read buffer.
#[derive(Debug)]
pub struct ResponseHead<'h, 'b> {
    /// Status code.
    pub code: u16,
    /// Reason phrase (may be empty).
    pub reason: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order.
    pub headers: &'h [Header<'b>],
    /// Length of the head in bytes.
    pub len: usize,
    /// How the body is framed.
    pub body: BodyKind,
    /// The backend will keep the connection open after this response.
    pub keep_alive: bool,
    /// The whole head as received (`len` bytes).
    pub raw: &'b [u8],
}

impl ResponseHead<'_, '_> {
    /// 1xx: an interim response; the final one follows.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.code)
    }

    /// The body is sent in a transfer coding other than chunked (e.g.
    /// `Transfer-Encoding: gzip`, delimited by the close). An HTTP/1.0
    /// client cannot be told of it (RFC 9112 6.1), so it cannot take it.
    pub fn has_other_transfer_coding(&self) -> bool {
        self.body == BodyKind::CloseDelimited
            && self
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    }
}

/// What the framing-relevant header fields said, gathered in one pass.
#[derive(Debug, Default)]
struct FramingFields<'b> {
    content_length: Option<u64>,
    /// Number of Transfer-Encoding fields seen.
    transfer_encodings: usize,
    /// The last transfer coding listed is `chunked`.
    chunked_last: bool,
    /// `chunked` appears more than once, or not last.
    chunked_misplaced: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    /// `Connection` lists `upgrade`.
    connection_upgrade: bool,
    /// Number of `Upgrade` fields seen.
    upgrades: usize,
    host: Option<&'b [u8]>,
    hosts: usize,
    expect: Option<&'b [u8]>,
    /// A field named like a framing or forwarding field with `_` for `-`
    /// (`Content_Length`): see [`field::is_underscore_alias`].
    underscore_alias: bool,
}

fn scan_fields<'b>(headers: &[Header<'b>]) -> Result<FramingFields<'b>, &'static str> {
    let mut f = FramingFields::default();
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if f.content_length.is_some() {
                return Err("more than one Content-Length");
            }
            f.content_length = Some(parse_content_length(h.value).ok_or("invalid Content-Length")?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.transfer_encodings += 1;
            let mut any = false;
            for coding in list_items(h.value) {
                if !coding.iter().all(|&b| is_token_byte(b)) {
                    return Err("invalid Transfer-Encoding");
                }
                if f.chunked_last {
                    // something follows `chunked`
                    f.chunked_misplaced = true;
                }
                f.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                any = true;
            }
            if !any {
                return Err("empty Transfer-Encoding");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list_items(h.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    f.connection_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    f.connection_keep_alive = true;
                } else if option.eq_ignore_ascii_case(b"upgrade") {
                    f.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            f.hosts += 1;
            f.host = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            f.expect = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            f.upgrades += 1;
        } else if field::is_underscore_alias(name) {
            f.underscore_alias = true;
        }
    }
    Ok(f)
}

/// Largest Content-Length accepted: `i64::MAX`, as for chunk sizes.
const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;

/// RFC 9110 §8.6: `1*DIGIT`, nothing else (no sign, no spaces, no list),
/// and at most `i64::MAX`. The grammar sets no bound, but a parser keeping
/// the length in an `off_t` or `i64` (nginx, HAProxy, most servers) reads a
/// larger one as negative or refuses it: forwarded, the two hops would
/// disagree on where the body ends. nginx and HAProxy refuse it too.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|&n| n <= MAX_CONTENT_LENGTH)
}

/// httparse accepts a bare LF as a line end; RFC 9112 §2.2 lets a recipient
/// do so, but a proxy must not: the next hop may not, and the disagreement
/// is a smuggling vector. Every LF in the head must follow a CR.
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

/// Host field values: a reg-name, IPv4 or bracketed IPv6, optional port
/// (RFC 3986 §3.2.2). Refuse bytes, and shapes (`[::1`, `a:b:c`), that
/// could change how the next hop reads the authority.
fn is_valid_host(value: &[u8]) -> bool {
    let port = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => &value[end + 1..],
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => &value[colon..],
            None => b"",
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    port_ok && has_host_bytes_only(value)
}

fn has_host_bytes_only(value: &[u8]) -> bool {
    value.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            )
    })
}

fn map_parse_error(e: httparse::Error, upstream: bool) -> HeadError {
    if upstream {
        return bad_gateway("invalid response head from backend");
    }
    match e {
        httparse::Error::TooManyHeaders => HeadError {
            status: 431,
            reason: "too many header fields",
        },
        httparse::Error::Version => bad_request("malformed request line"),
        httparse::Error::HeaderName => bad_request("invalid header name"),
        httparse::Error::HeaderValue => bad_request("invalid header value"),
        httparse::Error::Token => bad_request("invalid method or request target"),
        _ => bad_request("malformed request head"),
    }
}

/// Does the request line end in a well-formed `HTTP/d.d` that httparse
/// refused (so: a version other than 1.0 and 1.1, answered 505)? Anything
/// else httparse calls a version error is just a malformed line (400).
fn names_other_http_version(buf: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
        && line.iter().filter(|&&b| b == b' ').count() == 2
}

/// The error for a request head that did not fit in `limit` bytes, naming
/// what is too long: 431 once the request line is complete (the header
/// fields are), 414 while the request target is the unfinished part, 400
/// when the method or the version is (no client sends such, and "URI Too
/// Long" would send one looking in the wrong place).
pub fn oversized_request(buf: &[u8]) -> HeadError {
    // Empty lines before the request line (RFC 9112 §2.2) are not it.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    if memchr::memchr(b'\n', line).is_some() {
        return HeadError {
            status: 431,
            reason: "request header fields too large",
        };
    }
    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
    let mut parts = line.splitn(3, |&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), None) => HeadError {
            status: 414,
            reason: "request target too long",
        },
        (Some(_), None, _) => bad_request("request method too long"),
        _ => bad_request("request line too long"),
    }
}

/// The length of one empty line (CRLF, or a bare LF) at the start of
/// `buf`; 0 if there is none.
pub fn stray_empty_line(buf: &[u8]) -> usize {
    match buf {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => 0,
    }
}

/// How far into a connection's next bytes [`check_request_start`] looks:
/// enough for a few empty lines and any method in use, and a bound on the
/// work per read, which runs again after every read of an unfinished head.
const REQUEST_START_WINDOW: usize = 64;

/// Empty lines tolerated before a request line. RFC 9112 §2.2 asks a
/// server to ignore "at least one" (old clients send a CRLF after a POST
/// body); nginx and HAProxy take a few. More is not a client, and each
/// one would otherwise cost a read.
pub const MAX_EMPTY_LINES: usize = 4;

/// Can `buf`, the bytes received so far for the next request, still begin
/// a request? Called after each read of an unfinished head, so that
/// something that is not HTTP at all (a TLS ClientHello, first byte 0x16,
/// sent to the plain-HTTP port) is answered 400 at once instead of holding
/// the connection for the header timeout.
///
/// RFC 9112 §2.2 lets empty lines come before the request line; §3 makes
/// the line start with the method, a token (RFC 9110 §9.1), ended by SP.
/// `Ok` only means "not refused yet": [`parse_request`] judges the head.
pub fn check_request_start(buf: &[u8]) -> Result<(), HeadError> {
    let window = &buf[..buf.len().min(REQUEST_START_WINDOW)];
    let line_start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let empty_lines = memchr::memchr_iter(b'\n', &window[..line_start]).count();
    if empty_lines > MAX_EMPTY_LINES {
        return Err(bad_request("too many empty lines before the request line"));
    }
    if line_start == window.len() {
        return Ok(());
    }
    let line = &window[line_start..];
    let method_len = line
        .iter()
        .position(|&b| !is_token_byte(b))
        .unwrap_or(line.len());
    match line.get(method_len) {
        Some(_) if method_len == 0 => Err(bad_request("not an HTTP request")),
        None | Some(b' ') => Ok(()),
        Some(_) => Err(bad_request("not an HTTP request")),
    }
}

/// Parse a request head at the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet; read more.
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
) -> Result<Option<RequestHead<'h, 'b>>, HeadError> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) if names_other_http_version(buf) => {
            return Err(HeadError {
                status: 505,
                reason: "HTTP version not supported",
            })
        }
        Err(e) => return Err(map_parse_error(e, false)),
    };
    if has_bare_lf(&buf[..len]) {
        return Err(bad_request("line ending without CR"));
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(bad_request("malformed request line"));
    };
    if method == "CONNECT" {
        return Err(HeadError {
            status: 501,
            reason: "CONNECT is not supported",
        });
    }
    let t = target.as_bytes();
    if !t.is_ascii() {
        // RFC 9112 §3.2: the target is a URI (RFC 3986 §2), ASCII only;
        // other bytes must be percent-encoded. httparse passes bytes
        // >= 0x80 for the sake of raw UTF-8 paths, but next hops read them
        // differently (UTF-8, Latin-1, refused, or cut at): refuse them.
        return Err(bad_request("raw non-ASCII byte in request target"));
    }
    let target_ok = t.first() == Some(&b'/')
        || strip_scheme(t).is_some_and(|rest| !rest.is_empty())
        || (t == b"*" && method == "OPTIONS");
    if !target_ok {
        return Err(bad_request("invalid request target"));
    }
    let headers: &'h [Header<'b>] = req.headers;
    let f = scan_fields(headers).map_err(bad_request)?;
    if f.underscore_alias {
        // Refused, not dropped: a request that spells a framing field two
        // ways is a smuggling probe or a broken client, and dropping the
        // field silently would hide the probe and still change the message.
        return Err(bad_request(
            "`_` for `-` in a Content-Length, Transfer-Encoding or X-Forwarded-* field name",
        ));
    }

    if let Some((authority, _)) = split_absolute_form(t) {
        // RFC 9110 §4.2.4: userinfo in an http(s) URI is deprecated, and a
        // recipient should treat it as an error (nginx answers 400): it is
        // a phishing shape, and next hops disagree on it.
        if has_userinfo(t) {
            return Err(bad_request("userinfo in request target"));
        }
        if !names_a_host(authority) || !is_valid_host(authority) {
            return Err(bad_request("invalid authority in request target"));
        }
    }
    if f.hosts > 1 {
        return Err(bad_request("more than one Host"));
    }
    if minor_version == 1 && f.hosts == 0 {
        return Err(bad_request("HTTP/1.1 request without Host"));
    }
    if f.host.is_some_and(|h| !is_valid_host(h)) {
        return Err(bad_request("invalid Host"));
    }
    if f.host.is_some_and(|h| !names_a_host(h)) {
        return Err(bad_request("empty Host"));
    }

    // RFC 9112 §6.3, for requests.
    let body = if f.transfer_encodings > 0 {
        if minor_version == 0 {
            // §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            return Err(bad_request("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if f.content_length.is_some() {
            // §6.1: both present is a smuggling attempt or a broken client.
            return Err(bad_request("both Transfer-Encoding and Content-Length"));
        }
        if !f.chunked_last || f.chunked_misplaced {
            // §6.3 item 4: without a final `chunked` the length is unknowable.
            return Err(bad_request("Transfer-Encoding must end with chunked"));
        }
        BodyKind::Chunked
    } else {
        match f.content_length {
            Some(0) | None => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
        }
    };

    // RFC 9110 §7.8: a request that asks to switch protocols. With a body,
    // the backend could switch before or after reading it, and the two
    // hops would disagree on where HTTP ends: refused.
    let asks_upgrade = f.connection_upgrade && f.upgrades > 0;
    if asks_upgrade && body != BodyKind::Empty {
        return Err(bad_request(
            "a request that asks to upgrade must not have a body",
        ));
    }
    let upgrade = if asks_upgrade && minor_version == 1 {
        upgrade::single_protocol(headers)
    } else {
        None
    };

    let expect_continue = match f.expect {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => {
            return Err(HeadError {
                status: 417,
                reason: "unsupported expectation",
            })
        }
    };
    let keep_alive = if minor_version == 1 {
        !f.connection_close
    } else {
        f.connection_keep_alive && !f.connection_close
    };

    Ok(Some(RequestHead {
        method,
        target,
        minor_version,
        headers,
        len,
        body,
        keep_alive,
        expect_continue,
        host: f.host,
        raw: &buf[..len],
        upgrade,
    }))
}

/// Parse a response head at the start of `buf`, for a request that was
/// (`request_was_head`) or was not a HEAD request.
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    request_was_head: bool,
) -> Result<Option<ResponseHead<'h, 'b>>, HeadError> {
    let mut res = httparse::Response::new(headers);
    let len = match res.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e, true)),
    };
    if has_bare_lf(&buf[..len]) {
        return Err(bad_gateway("backend sent a line ending without CR"));
    }
    let (Some(code), Some(minor_version)) = (res.code, res.version) else {
        return Err(bad_gateway("malformed status line from backend"));
    };
    if !(100..=999).contains(&code) {
        return Err(bad_gateway("invalid status code from backend"));
    }
    let reason = res.reason.unwrap_or("");
    let headers: &'h [Header<'b>] = res.headers;
    let f =
        scan_fields(headers).map_err(|_| bad_gateway("invalid framing headers from backend"))?;

    // RFC 9112 §6.3, for responses.
    let body = if request_was_head || (100..200).contains(&code) || code == 204 || code == 304 {
        BodyKind::Empty
    } else if f.transfer_encodings > 0 {
        if f.content_length.is_some() || minor_version == 0 {
            return Err(bad_gateway("ambiguous framing from backend"));
        }
        if f.chunked_misplaced {
            // `chunked` twice, or not last: parsers disagree on these.
            return Err(bad_gateway("ambiguous Transfer-Encoding from backend"));
        }
        if f.chunked_last {
            BodyKind::Chunked
        } else {
            BodyKind::CloseDelimited
        }
    } else {
        match f.content_length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::CloseDelimited,
        }
    };
    let persistent = if minor_version == 1 {
        !f.connection_close
    } else {
        f.connection_keep_alive && !f.connection_close
    };
    Ok(Some(ResponseHead {
        code,
        reason,
        minor_version,
        headers,
        len,
        body,
        keep_alive: persistent && body != BodyKind::CloseDelimited,
        raw: &buf[..len],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::MAX_HEADERS;

    fn req(raw: &str) -> Result<Option<(BodyKind, bool, usize)>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_request(raw.as_bytes(), &mut headers)
            .map(|r| r.map(|h| (h.body, h.keep_alive, h.len)))
    }

    fn status_of(raw: &str) -> u16 {
        req(raw).expect_err(raw).status
    }

    #[test]
    fn simple_get() {
        let raw = "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(req(raw).unwrap(), Some((BodyKind::Empty, true, raw.len())));
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    }

    #[test]
    fn body_framing() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .unwrap()
                .0,
            BodyKind::Length(5)
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .unwrap()
                .unwrap()
                .0,
            BodyKind::Chunked
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(status_of(raw), 400, "{raw:?}");
        }
    }

    #[test]
    fn content_length_fits_in_i64() {
        assert_eq!(
            parse_content_length(b"9223372036854775807"),
            Some(i64::MAX as u64)
        );
        assert_eq!(parse_content_length(b"0000000000000000005"), Some(5));
        for too_big in [
            &b"9223372036854775808"[..],
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_content_length(too_big), None, "{too_big:?}");
            let raw = format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                String::from_utf8_lossy(too_big)
            );
            assert_eq!(status_of(&raw), 400);
            let raw = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                String::from_utf8_lossy(too_big)
            );
            assert_eq!(res(&raw, false).unwrap_err().status, 502);
        }
    }

    #[test]
    fn other_client_errors() {
        assert_eq!(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status_of("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("GET / FOO\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("GET / http/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n"),
            417
        );
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            status_of(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")),
            431
        );
        assert_eq!(oversized_request(b"GET /aaaaaaaa").status, 414);
        assert_eq!(oversized_request(b"\r\nGET /aaaaaaaa").status, 414);
        assert_eq!(oversized_request(b"GET / HTTP/1.1\r\nX: aaaa").status, 431);
        assert_eq!(oversized_request(b"GETGETGETGETGET").status, 400);
        assert_eq!(oversized_request(b"GET / HTTP/1.1111111").status, 400);
    }

    #[test]
    fn underscore_spellings_of_framing_fields_are_refused() {
        for field in [
            "Content_Length: 3",
            "CONTENT_LENGTH: 0",
            "transfer_encoding: chunked",
            "X_Forwarded_For: 10.0.0.1",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\n{field}\r\nContent-Length: 3\r\n\r\n");
            assert_eq!(status_of(&raw), 400, "{raw:?}");
        }
        assert!(req("GET / HTTP/1.1\r\nHost: x\r\nX_Custom: 1\r\n\r\n").is_ok());
        // A response is read by the client, not by a CGI-style server.
        assert!(res(
            "HTTP/1.1 200 OK\r\nContent_Length: 3\r\nContent-Length: 0\r\n\r\n",
            false
        )
        .is_ok());
    }

    #[test]
    fn request_target_is_ascii() {
        for raw in [
            &b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /a?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET http://x/\xce\xb4 HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let got = parse_request(raw, &mut headers).map(|r| r.is_some());
            assert_eq!(got.unwrap_err().status, 400, "{raw:?}");
        }
        assert!(req("GET /caf%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n").is_ok());
    }

    #[test]
    fn malformed_authorities_and_userinfo_are_refused() {
        for raw in [
            "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
            "GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://u:p@a:80/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(status_of(raw), 400, "{raw:?}");
        }
        for raw in [
            "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.example:80\r\n\r\n",
            "GET http://a/x?u@v HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(req(raw).is_ok(), "{raw:?}");
        }
    }

    #[test]
    fn empty_host_is_refused() {
        for raw in [
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: \r\n\r\n",
            "GET / HTTP/1.1\r\nHost: \t \r\n\r\n",
            "GET / HTTP/1.1\r\nHost: :8080\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: \r\n\r\n",
            "GET http://:8080/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(status_of(raw), 400, "{raw:?}");
        }
        assert!(req("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").is_ok());
        assert!(req("GET / HTTP/1.0\r\n\r\n").is_ok(), "1.0 may omit Host");
    }

    #[test]
    fn what_cannot_begin_a_request_is_told_at_once() {
        let client_hello = [0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00];
        for start in [
            &client_hello[..],
            &client_hello[..1],
            b"\r\n\r\n\x16",
            b"\n\x16\x03",
            b" GET / HTTP/1.1\r\n",
            b"GET\t/",
            b"GET\r\n",
            b"G\x00",
            b"\xff",
            b"\r\n\r \r\n",
        ] {
            assert_eq!(
                check_request_start(start).map_err(|e| e.status),
                Err(400),
                "{start:?}"
            );
        }
        for start in [
            &b""[..],
            b"\r\n",
            b"\r\n\r\n\r",
            b"G",
            b"GET",
            b"GET ",
            b"GET /\x16 anything: the parser judges the rest",
            b"\r\nPOST /x HTTP/1.1\r\n",
            b"M-SEARCH",
        ] {
            assert!(check_request_start(start).is_ok(), "{start:?}");
        }
        // A few empty lines are ignored; more are refused.
        let few = b"\r\n".repeat(MAX_EMPTY_LINES);
        assert!(check_request_start(&few).is_ok());
        let flood = b"\r\n".repeat(MAX_EMPTY_LINES + 1);
        assert_eq!(check_request_start(&flood).map_err(|e| e.status), Err(400));
        assert!(check_request_start(&[b'\n'; REQUEST_START_WINDOW]).is_err());
        // Past the window nothing is judged (the parser will be).
        let mut long_method = vec![b'A'; REQUEST_START_WINDOW];
        long_method.push(0x16);
        assert!(check_request_start(&long_method).is_ok());
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !req("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .1
        );
        assert!(!req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().1);
        assert!(
            req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .1
        );
    }

    #[test]
    fn path_and_host_for_routing() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw =
            b"GET http://Example.com:8080/api/x?y=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
        let h = parse_request(raw, &mut headers).unwrap().unwrap();
        assert_eq!(h.path(), b"/api/x");
        assert_eq!(h.host_name(), b"Example.com");
        assert_eq!(
            h.absolute_form(),
            Some((&b"Example.com:8080"[..], &b"/api/x?y=1"[..]))
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"GET http://internal/admin HTTP/1.1\r\nHost: public\r\n\r\n";
        let h = parse_request(raw, &mut headers).unwrap().unwrap();
        assert_eq!(
            h.host_name(),
            b"internal",
            "the target's authority wins over Host"
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse_request(raw, &mut headers).unwrap_err().status, 400);
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    }

    fn res(raw: &str, head: bool) -> Result<(u16, BodyKind, bool), HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_response(raw.as_bytes(), &mut headers, head)
            .map(|r| r.map(|h| (h.code, h.body, h.keep_alive)).unwrap())
    }

    #[test]
    fn other_transfer_codings_are_told_apart_from_chunked() {
        let other = |raw: &str, head: bool| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            parse_response(raw.as_bytes(), &mut headers, head)
                .unwrap()
                .unwrap()
                .has_other_transfer_coding()
        };
        assert!(other(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false
        ));
        assert!(!other(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false
        ));
        assert!(
            !other("HTTP/1.1 200 OK\r\n\r\n", false),
            "plain close-delimited"
        );
        assert!(
            !other("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", true),
            "no body"
        );
    }

    #[test]
    fn response_framing() {
        assert_eq!(
            res("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false).unwrap(),
            (200, BodyKind::Length(3), true)
        );
        assert_eq!(
            res("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true).unwrap(),
            (200, BodyKind::Empty, true)
        );
        assert_eq!(
            res("HTTP/1.1 204 No Content\r\n\r\n", false).unwrap(),
            (204, BodyKind::Empty, true)
        );
        assert_eq!(
            res(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .unwrap()
            .1,
            BodyKind::Empty
        );
        assert_eq!(
            res(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .unwrap()
            .1,
            BodyKind::Chunked
        );
        assert_eq!(
            res("HTTP/1.1 200 OK\r\n\r\n", false).unwrap(),
            (200, BodyKind::CloseDelimited, false)
        );
        assert!(
            !res("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
                .unwrap()
                .2
        );
        assert_eq!(
            res(
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .unwrap_err()
            .status,
            502
        );
        assert_eq!(
            res("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false)
                .unwrap_err()
                .status,
            502
        );
        assert_eq!(
            res("HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", false)
                .unwrap_err()
                .status,
            502
        );
    }
}
