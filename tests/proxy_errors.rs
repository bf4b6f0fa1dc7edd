//! Every error corelb answers itself: the status, `Connection: close`, the
//! connection really closed afterwards, and — for anything that could be a
//! smuggling attempt — the backend never received a request. Plus failing
//! backends: unreachable, garbage, timeouts, idle closes, restarts.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;

/// A proxy in front of one recording backend, `--buffer-size 1024`.
fn setup(driver: Driver) -> (Backend, Proxy) {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &["--buffer-size", "1024"]);
    (backend, proxy)
}

fn assert_backend_untouched(backend: &Backend) {
    assert_eq!(
        backend.request_count(),
        0,
        "backend received {:?}",
        backend.requests()
    );
    assert_eq!(backend.connections(), 0, "backend was even connected to");
}

both_drivers!(bad_framing_is_400_and_never_forwarded, |driver| {
    let (backend, proxy) = setup(driver);
    let cases: &[&str] = &[
        // CL.TE and TE.CL smuggling shapes, with a request hidden in the body
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        // duplicate / malformed Content-Length
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 41\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        // Transfer-Encoding that does not end in chunked, or hides it
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // bare LF line endings
        "GET / HTTP/1.1\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: y\n\n",
        // Host: missing on 1.1, repeated, or invalid
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n",
        // malformed heads
        "GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
        "GET noslash HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        // bad chunk syntax, in the same packet as the head
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\"b\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\nb\r\n\r\n",
    ];
    for raw in cases {
        expect_error(&proxy, raw.as_bytes(), 400);
    }
    assert_backend_untouched(&backend);
});

both_drivers!(malformed_request_line_is_refused, |driver| {
    // httparse reads a doubled space as a bad version: 505 rather than 400
    // is acceptable, forwarding it is not.
    let (backend, proxy) = setup(driver);
    for raw in [
        "GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut c = proxy.client();
        c.send(raw);
        let r = c.read_response();
        assert!(matches!(r.status, 400 | 505), "{raw:?} got {r:?}");
        assert!(r.says_close());
        c.expect_closed();
    }
    assert_backend_untouched(&backend);
});

both_drivers!(chunk_payload_cannot_smuggle_a_request, |driver| {
    // The payload of this chunk is itself a valid end of a chunked body and
    // a second request: a proxy that forwards the payload without its
    // framing hands the backend a request the client smuggled in.
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let payload = "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut client = proxy.client();
    client.send(format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{payload}\r\n0\r\n\r\n",
        payload.len()
    ));
    let r = client.try_read_response(false);
    // give a smuggled request time to be answered and recorded
    std::thread::sleep(Duration::from_millis(200));
    let paths: Vec<String> = backend.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        !paths.iter().any(|p| p == "/admin"),
        "backend received a smuggled request: {paths:?}"
    );
    let r = r.expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), payload);
    assert_eq!(paths, ["/upload"]);
});

both_drivers!(bad_chunk_after_the_head_was_forwarded, |driver| {
    let (backend, proxy) = setup(driver);
    let mut client = proxy.client();
    client.send("POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    client.send("5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(50));
    client.send("5\r\nworldXX0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.says_close());
    client.expect_closed();
    std::thread::sleep(Duration::from_millis(100));
    // The head and first chunk went upstream, but no complete request did.
    assert_eq!(backend.request_count(), 0, "{:?}", backend.requests());
});

both_drivers!(request_line_too_long_is_414, |driver| {
    let (backend, proxy) = setup(driver);
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    expect_error(&proxy, long.as_bytes(), 414);
    // just over the buffer, without the rest of the line yet
    let mut c = proxy.client();
    c.send(format!("GET /{}", "b".repeat(1100)));
    let r = c.read_response();
    assert_eq!(r.status, 414);
    c.expect_closed();
    assert_backend_untouched(&backend);
});

// A head over the limit is answered with what is too long: 414 only for
// the request target, 400 for an overlong method or version.
both_drivers!(overlong_method_or_version_is_400_not_414, |driver| {
    let (backend, proxy) = setup(driver);
    let method = format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "G".repeat(100_000));
    expect_error(&proxy, method.as_bytes(), 400);
    let version = format!("GET / HTTP/1.1{}\r\nHost: x\r\n\r\n", "1".repeat(2000));
    expect_error(&proxy, version.as_bytes(), 400);
    // An empty line before the request line is no header field.
    let target = format!("\r\nGET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    expect_error(&proxy, target.as_bytes(), 414);
    assert_backend_untouched(&backend);
});

both_drivers!(header_section_too_large_is_431, |driver| {
    let (backend, proxy) = setup(driver);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "v".repeat(1500)
    );
    expect_error(&proxy, big.as_bytes(), 431);
    let many: String = (0..20)
        .map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(40)))
        .collect();
    expect_error(
        &proxy,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        431,
    );
    assert_backend_untouched(&backend);
});

both_drivers!(too_many_header_fields_is_431, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let fields: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    expect_error(
        &proxy,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").as_bytes(),
        431,
    );
    // 99 + Host = 100 is fine
    let fields: String = (0..99).map(|i| format!("X-{i}: v\r\n")).collect();
    let mut c = proxy.client();
    c.send(format!("GET /ok HTTP/1.1\r\nHost: x\r\n{fields}\r\n"));
    assert_eq!(c.read_response().status, 200);
    assert_eq!(backend.request_count(), 1);
});

both_drivers!(unknown_expectation_is_417, |driver| {
    let (backend, proxy) = setup(driver);
    expect_error(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n",
        417,
    );
    expect_error(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue-please\r\nContent-Length: 2\r\n\r\nhi",
        417,
    );
    assert_backend_untouched(&backend);
});

both_drivers!(connect_is_501, |driver| {
    let (backend, proxy) = setup(driver);
    expect_error(
        &proxy,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
    );
    assert_backend_untouched(&backend);
});

both_drivers!(unsupported_version_is_505, |driver| {
    let (backend, proxy) = setup(driver);
    expect_error(&proxy, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    expect_error(&proxy, b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505);
    assert_backend_untouched(&backend);
});

both_drivers!(unreachable_backend_is_502, |driver| {
    let dead = dead_addr();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &dead.to_string(),
    ]);
    let r = expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
    assert!(r.body_str().starts_with("Bad Gateway"), "{r:?}");
});

both_drivers!(an_error_answering_head_has_no_body, |driver| {
    let dead = dead_addr();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &dead.to_string(),
    ]);
    // A HEAD, then a GET pipelined behind it: a body after the HEAD's
    // answer would be read as the start of the next response.
    let mut client = proxy.client();
    client.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let all = client.conn.read_to_eof().unwrap();
    let text = String::from_utf8_lossy(&all);
    let (head, rest) = text.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(head.contains("Connection: close"), "{text}");
    assert_eq!(rest, "", "bytes after the HEAD answer's head");
});

both_drivers!(garbage_from_backend_is_502, |driver| {
    for garbage in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
        b"HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    ] {
        let backend = Backend::fixed(garbage);
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let r = expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
        assert!(r.body_str().starts_with("Bad Gateway"), "{r:?}");
    }
});

both_drivers!(backend_closing_without_answer_is_502, |driver| {
    let backend = Backend::start(|_| Reply::Close);
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
    assert_eq!(backend.request_count(), 1);

    let backend = Backend::accept_and_close();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
    expect_error(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        502,
    );
});

/// A response cut short shows as an early end of stream or a reset.
fn assert_truncated(err: &std::io::Error) {
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
}

both_drivers!(
    client_that_stops_reading_a_close_delimited_body_gets_a_reset,
    |driver| {
        // A close-delimited body ends where the connection closes cleanly.
        // Cut short because the client stopped reading (write timeout), it
        // must end with a reset, or the client takes what it got as whole.
        let mut raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        raw.resize(raw.len() + 64 * 1024 * 1024, b'x');
        let backend = Backend::start(move |_| Reply::RawThenClose(raw.clone()));
        let proxy = Proxy::with_backends(driver, &[&backend], &["--client-idle-timeout", "300ms"]);
        let mut c = proxy.client();
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // Not reading, well past the timeout: socket buffers hold far less
        // than 64 MiB, so corelb's write to the client stalls.
        std::thread::sleep(Duration::from_millis(1500));
        let err = c
            .try_read_response(false)
            .expect_err("a body cut short must not look complete");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
);

both_drivers!(backend_dying_mid_small_body_is_a_502, |driver| {
    // A small body is gathered before the head goes out, so a backend that
    // dies inside it still gets the client a clean error.
    let backend = Backend::start(|_| {
        Reply::RawThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..".to_vec())
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
});

both_drivers!(backend_dying_mid_large_body_cuts_the_client_off, |driver| {
    // 1 MiB promised, 64 KiB + 10 bytes sent: the head went out already, so
    // all corelb can do is cut the connection (with a reset), leaving the
    // client with a short body it can detect.
    let backend = Backend::start(|_| {
        let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 64 * 1024 + 10));
        Reply::RawThenClose(raw)
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut c = proxy.client();
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let err = c
        .try_read_response(false)
        .expect_err("a truncated body must not look complete");
    assert_truncated(&err);
});

both_drivers!(slow_backend_is_504, |driver| {
    let backend =
        Backend::start(|_| Reply::After(Duration::from_secs(3), Box::new(Reply::ok("late"))));
    let proxy = Proxy::with_backends(driver, &[&backend], &["--upstream-timeout", "300ms"]);
    let r = expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 504);
    assert!(r.body_str().starts_with("Gateway Timeout"), "{r:?}");
});

both_drivers!(slow_small_body_is_a_504, |driver| {
    // head and first bytes at once, then silence longer than the timeout
    let backend = Backend::start(|_| {
        Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst".to_vec())
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &["--upstream-timeout", "300ms"]);
    expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 504);
});

both_drivers!(
    slow_large_body_is_cut_after_the_upstream_timeout,
    |driver| {
        // a streamed (large) body whose backend goes silent half-way
        let backend = Backend::start(|_| {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
            raw.extend(std::iter::repeat_n(b'x', 100 * 1024));
            Reply::Raw(raw)
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &["--upstream-timeout", "300ms"]);
        let mut c = proxy.client();
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = c
            .try_read_response(false)
            .expect_err("the body never completes");
        assert_truncated(&err);
    }
);

both_drivers!(
    idle_closed_pooled_connections_are_replaced_transparently,
    |driver| {
        let backend = Backend::closing_idle_after(Duration::from_secs(1), |req| {
            Reply::ok(format!(
                "{} {} {}",
                req.method,
                req.path,
                String::from_utf8_lossy(&req.body)
            ))
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut client = proxy.client();
        let mut errors = Vec::new();
        for i in 0..6 {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(1100));
            }
            let (raw, want) = if i % 2 == 0 {
                (
                    format!("GET /g{i} HTTP/1.1\r\nHost: x\r\n\r\n"),
                    format!("GET /g{i} "),
                )
            } else {
                (
                    format!("POST /p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nb{i:03}"),
                    format!("POST /p{i} b{i:03}"),
                )
            };
            client.send(raw);
            match client.try_read_response(false) {
                Ok(r) if r.status == 200 && r.body_str() == want => {}
                Ok(r) => errors.push(format!("request {i}: {} {}", r.status, r.body_str())),
                Err(e) => {
                    errors.push(format!("request {i}: {e}"));
                    client = proxy.client();
                }
            }
        }
        assert!(errors.is_empty(), "client saw errors: {errors:?}");
        assert_eq!(backend.request_count(), 6);
        assert!(
            backend.connections() >= 2,
            "the backend's idle close was never exercised"
        );
    }
);

both_drivers!(backend_restart_recovers, |driver| {
    let mut backend = Backend::echo_name("first");
    let addr = backend.addr();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    assert_eq!(client.get("/").body_str(), "first");
    assert_eq!(client.get("/").body_str(), "first");

    backend.stop();
    // the pooled connection is dead and nothing listens: 502
    let r = client.get("/");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.says_close());
    client.expect_closed();
    expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);

    let _again = Backend::start_with(
        BackendOptions {
            addr: Some(addr),
            ..Default::default()
        },
        |_| Reply::ok("second"),
    );
    let mut client = proxy.client();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "second");
    }
});

both_drivers!(
    upstream_connect_timeout_or_refusal_is_an_error_not_a_hang,
    |driver| {
        // 192.0.2.1 (TEST-NET-1) is unroutable: connecting either times out
        // (504 after --connect-timeout) or fails at once (502).
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            "192.0.2.1:80",
            "--connect-timeout",
            "300ms",
        ]);
        let mut c = proxy.client();
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        assert!(r.status == 504 || r.status == 502, "{r:?}");
        assert!(r.says_close());
        c.expect_closed();
    }
);

both_drivers!(interim_response_then_close_is_not_replayed, |driver| {
    // The backend got the request (it answered 1xx) and then died. Sending
    // the request again is not safe, and what goes to a fresh connection
    // must be the request itself.
    let backend = Backend::start(|req| match req.path.as_str() {
        "/hint" => {
            Reply::RawThenClose(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n".to_vec())
        }
        "/continue" => Reply::RawThenClose(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        _ => Reply::ok("warm"),
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &["--upstream-timeout", "3s"]);
    for path in ["/hint", "/continue"] {
        let mut client = proxy.client();
        // warm the pool so the failing request runs on a reused connection
        assert_eq!(client.get("/warm").body_str(), "warm");
        client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
        let mut r = client.read_response();
        if r.status == 103 {
            r = client.read_response();
        }
        assert_eq!(r.status, 502, "{path}: {r:?}");
        client.expect_closed();
        assert!(
            backend.malformed().is_empty(),
            "{path}: backend got {:?}",
            backend.malformed()
        );
        let times = backend.requests().iter().filter(|q| q.path == path).count();
        assert_eq!(
            times, 1,
            "{path} was replayed after the backend had answered 1xx"
        );
    }
});

both_drivers!(stale_pooled_connection_with_streamed_body, |driver| {
    // A body that is still arriving cannot be replayed, so a pooled
    // connection the backend closed while idle must be noticed before the
    // request goes out on it.
    let backend = Backend::closing_idle_after(Duration::from_millis(500), |req| {
        Reply::ok(format!("{} bytes", req.body.len()))
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    assert_eq!(client.get("/warm").status, 200);
    // the backend closes the pooled connection meanwhile
    std::thread::sleep(Duration::from_millis(900));
    client.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 30000\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    client.send(vec![b'u'; 30000]);
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "30000 bytes");
});

/// Sockets in CLOSE_WAIT (the peer closed, we have not) whose remote end is
/// 127.0.0.1:`port`, from the kernel's table.
fn half_closed_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"08")
        })
        .count()
}

both_drivers!(
    idle_connections_the_backend_closed_are_let_go_without_traffic,
    |driver| {
        let backend = Backend::closing_idle_after(Duration::from_millis(300), |_| {
            // Slow enough that the requests below overlap, so each
            // gets an upstream connection of its own.
            std::thread::sleep(Duration::from_millis(200));
            Reply::ok("ok")
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let clients: Vec<_> = (0..6)
            .map(|_| {
                let mut client = proxy.client();
                std::thread::spawn(move || client.get("/").status)
            })
            .collect();
        for client in clients {
            assert_eq!(client.join().unwrap(), 200);
        }
        assert_eq!(backend.connections(), 6);
        // No more traffic. The backend closes its idle ends after 300 ms;
        // corelb must close its own, not hold them until the next request.
        std::thread::sleep(Duration::from_millis(600));
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut left = half_closed_to(backend.addr().port());
        while left > 0 && std::time::Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(100));
            left = half_closed_to(backend.addr().port());
        }
        assert_eq!(
            left, 0,
            "corelb still holds {left} half-closed upstream connections"
        );
    }
);
