//! An HTTP/2 request as the HTTP/1.1 request head the forwarding core
//! reads (`crate::proxy`): pure translation, no I/O.
//!
//! The rules (RFC 9113 §8.2.2, §8.3.1):
//! - `:method` and `:path` make the request line (`CONNECT`: its
//!   `:authority`, which the HTTP/1.1 parser answers 501 as ever);
//!   `:authority` becomes `Host` (a `Host` field beside it is dropped).
//! - Connection-specific fields (`Connection`, `Keep-Alive`,
//!   `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, and `TE` other
//!   than `trailers`) make the request malformed: the stream is reset
//!   with `PROTOCOL_ERROR`. (The h2 crate refuses them already; this is
//!   the second lock, and the one the tests read.)
//! - `Cookie` fields, which HTTP/2 clients send one per crumb, are joined
//!   with `"; "` into one field (§8.2.3).
//! - A body without `Content-Length` is sent chunked; the DATA frames
//!   become its chunks (`super::stream`). With one, the h2 crate checks
//!   the DATA frames against it and resets a stream that disagrees.
//!
//! Everything else (header size, routing, limits) is the HTTP/1.1
//! path's: the head written here is parsed by the one HTTP/1 parser.

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderName};
use http::request::Parts;
use http::Method;

/// Why a request cannot be forwarded: its stream is reset with
/// `PROTOCOL_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// How the request body goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (the stream ended with its HEADERS).
    Empty,
    /// `Content-Length` given: DATA goes as it comes.
    Length,
    /// Chunked: each DATA frame a chunk, trailers after the last.
    Chunked,
}

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2), `TE` apart.
fn is_connection_specific(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Write the HTTP/1.1 head of `req` into `out`. `has_body`: the client
/// did not end the stream with its HEADERS.
pub fn write_request_head(
    out: &mut BytesMut,
    req: &Parts,
    has_body: bool,
) -> Result<Framing, Malformed> {
    for (name, value) in &req.headers {
        if is_connection_specific(name) {
            return Err(Malformed("connection-specific header field in HTTP/2"));
        }
        if name == header::TE && value != "trailers" {
            return Err(Malformed("TE other than \"trailers\" in HTTP/2"));
        }
    }
    let authority = req.uri.authority().map(|a| a.as_str());
    out.put_slice(req.method.as_str().as_bytes());
    out.put_u8(b' ');
    if req.method == Method::CONNECT {
        out.put_slice(authority.unwrap_or("").as_bytes());
    } else {
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        out.put_slice(if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        });
    }
    out.put_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = authority {
        put_field(out, b"host", authority.as_bytes());
    }
    let mut cookies = req.headers.get_all(header::COOKIE).iter();
    if let Some(first) = cookies.next() {
        out.put_slice(b"cookie: ");
        out.put_slice(first.as_bytes());
        for crumb in cookies {
            out.put_slice(b"; ");
            out.put_slice(crumb.as_bytes());
        }
        out.put_slice(b"\r\n");
    }
    for (name, value) in &req.headers {
        if name == header::COOKIE || (name == header::HOST && authority.is_some()) {
            continue;
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = if req.headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if has_body {
        out.put_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::Empty
    };
    out.put_slice(b"\r\n");
    Ok(framing)
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Frame one DATA frame's bytes as a chunk of a chunked body.
pub fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        // A zero-size chunk would end the body.
        return;
    }
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// End a chunked body: the last chunk and the request's trailers.
pub fn put_last_chunk(out: &mut BytesMut, trailers: Option<&http::HeaderMap>) {
    out.put_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>, has_body: bool) -> Result<(String, Framing), Malformed> {
        let (parts, ()) = req.into_parts();
        let mut out = BytesMut::new();
        let framing = write_request_head(&mut out, &parts, has_body)?;
        Ok((String::from_utf8(out.to_vec()).unwrap(), framing))
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let req = http::Request::get("https://example.com:8443/a?b=c")
            .header("host", "other.example")
            .header("cookie", "a=1")
            .header("user-agent", "t")
            .header("cookie", "b=2")
            .body(())
            .unwrap();
        let (text, framing) = head(req, false).unwrap();
        assert_eq!(
            text,
            "GET /a?b=c HTTP/1.1\r\nhost: example.com:8443\r\ncookie: a=1; b=2\r\n\
             user-agent: t\r\n\r\n"
        );
        assert_eq!(framing, Framing::Empty);
    }

    #[test]
    fn a_body_without_length_is_chunked_with_its_trailers() {
        let req = http::Request::post("http://h/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (text, framing) = head(req, true).unwrap();
        assert!(text.ends_with("te: trailers\r\ntransfer-encoding: chunked\r\n\r\n"));
        assert_eq!(framing, Framing::Chunked);
        let mut out = BytesMut::new();
        put_chunk(&mut out, b"hello");
        put_chunk(&mut out, b"");
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "5".parse().unwrap());
        put_last_chunk(&mut out, Some(&trailers));
        assert_eq!(&out[..], b"5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n");

        let req = http::Request::put("http://h/")
            .header("content-length", "3")
            .body(())
            .unwrap();
        assert_eq!(head(req, true).unwrap().1, Framing::Length);
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for (name, value) in [
            ("connection", "close"),
            ("keep-alive", "5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ] {
            let req = http::Request::get("http://h/")
                .header(name, value)
                .body(())
                .unwrap();
            assert!(head(req, false).is_err(), "{name}: {value}");
        }
    }

    #[test]
    fn connect_names_its_authority() {
        let req = http::Request::connect("example.com:443").body(()).unwrap();
        let (text, _) = head(req, false).unwrap();
        assert!(text.starts_with("CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n"));
    }
}
