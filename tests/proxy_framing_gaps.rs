//! Framing gaps an HTTP/1.1 proxy conformance suite found, one test each:
//! trailer sections held to the rules of a header section (both ways),
//! Content-Length values beyond a signed 64-bit integer, `_` spellings of
//! fields corelb controls, an empty Host, raw non-ASCII bytes in the
//! request target, and a first byte no request can start with.
//!
//! The parsing rules are pure (`corelb::http`) and the same under either io
//! driver, so each scenario runs once, with epoll (the driver every kernel
//! has); `tests/proxy_hostile.rs` covers the two drivers' I/O paths.

#[macro_use]
mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

const DRIVER: Driver = Driver::Epoll;

/// A backend answering `200` with the request body, its path in `X-Path`.
fn echo_backend() -> Backend {
    Backend::start(|req| Reply::Raw(response(200, "OK", &[("X-Path", &req.path)], &req.body)))
}

/// `raw` is answered with `status` and a close, and corelb never connected
/// to the backend for it.
fn refused_before_backend(proxy: &Proxy, backend: &Backend, raw: &[u8], status: u16) {
    let before = backend.connections();
    expect_error(proxy, raw, status);
    assert_eq!(
        backend.connections(),
        before,
        "{:?} made corelb connect to the backend",
        String::from_utf8_lossy(raw)
    );
}

/// A backend that, on every connection, reads one request head and then
/// writes `pieces` in order, pausing after each for its duration.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Scripted {
    fn start(pieces: Vec<(Vec<u8>, Duration)>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let pieces = pieces.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(SAFETY));
                    let mut conn = Conn::new(stream);
                    if !matches!(conn.read_head(), Ok(Some(_))) {
                        return;
                    }
                    for (bytes, pause) in pieces {
                        if conn.stream.write_all(&bytes).is_err() {
                            return;
                        }
                        thread::sleep(pause);
                    }
                    // Keep the connection until corelb lets it go.
                    let _ = conn.read_to_eof();
                    let _ = conn.stream.shutdown(Shutdown::Both);
                });
            }
        });
        Scripted { addr, connections }
    }

    fn proxy(&self) -> Proxy {
        let addr = self.addr.to_string();
        Proxy::start(&["--io-driver", DRIVER.as_str(), "--backend", &addr])
    }
}

#[test]
fn content_length_beyond_i64_is_refused() {
    // nginx and HAProxy refuse these; a parser keeping the length in an
    // off_t or i64 would read a negative or wrapped length.
    let backend = echo_backend();
    let proxy = Proxy::with_backends(DRIVER, &[&backend], &[]);
    for value in [
        "9223372036854775808",
        "9999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
    ] {
        let raw = format!("POST /cl HTTP/1.1\r\nHost: test\r\nContent-Length: {value}\r\n\r\nabc");
        refused_before_backend(&proxy, &backend, raw.as_bytes(), 400);
        let scripted = Scripted::start(vec![(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\nabc").into_bytes(),
            Duration::ZERO,
        )]);
        let via_scripted = scripted.proxy();
        expect_error(&via_scripted, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n", 502);
        assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn underscore_spellings_of_controlled_fields_are_400() {
    // A CGI/WSGI-style backend maps `_` and `-` alike (HTTP_CONTENT_LENGTH):
    // it would see two framings, or a forwarding field corelb never vouched
    // for.
    let backend = echo_backend();
    let proxy = Proxy::with_backends(DRIVER, &[&backend], &[]);
    for field in [
        "Content_Length: 3",
        "content_length: 3",
        "CONTENT_LENGTH: 0",
        "Transfer_Encoding: chunked",
        "transfer_encoding: chunked",
        "X_Forwarded_For: 10.0.0.1",
        "X-Forwarded_Proto: https",
    ] {
        let raw =
            format!("POST /u HTTP/1.1\r\nHost: test\r\n{field}\r\nContent-Length: 3\r\n\r\nabc");
        refused_before_backend(&proxy, &backend, raw.as_bytes(), 400);
    }
    // Other names with `_` are not corelb's business.
    let mut c = proxy.client();
    c.send("GET /ok HTTP/1.1\r\nHost: test\r\nX_Custom_Thing: 1\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn empty_host_is_400() {
    let backend = echo_backend();
    let proxy = Proxy::with_backends(DRIVER, &[&backend], &[]);
    for raw in [
        &b"GET / HTTP/1.1\r\nHost:\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \t \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: :8080\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: \r\n\r\n",
        b"GET http://:8080/ HTTP/1.1\r\nHost: test\r\n\r\n",
    ] {
        refused_before_backend(&proxy, &backend, raw, 400);
    }
}

#[test]
fn raw_non_ascii_in_the_request_target_is_400() {
    // RFC 9112 §3.2: the target is a URI (RFC 3986), ASCII only; a byte
    // >= 0x80 must be percent-encoded. Parsers that take such bytes differ
    // on how to read them (UTF-8, Latin-1, or as a delimiter).
    let backend = echo_backend();
    let proxy = Proxy::with_backends(DRIVER, &[&backend], &[]);
    for raw in [
        &b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n"[..],
        b"GET /\x80 HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /a?q=\xff HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET http://test/\xce\xb4 HTTP/1.1\r\nHost: test\r\n\r\n",
    ] {
        refused_before_backend(&proxy, &backend, raw, 400);
    }
    let mut c = proxy.client();
    assert_eq!(c.get("/caf%C3%A9").status, 200, "percent-encoded is fine");
}
