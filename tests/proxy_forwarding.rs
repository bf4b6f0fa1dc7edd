//! What corelb forwards and how: pipelining, bodiless responses,
//! `100 Continue`, header rewriting, HTTP/1.0 clients, client timeouts.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;

both_drivers!(pipelined_requests_are_answered_in_order, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    let mut batch = Vec::new();
    batch.extend_from_slice(b"GET /one HTTP/1.1\r\nHost: test\r\n\r\n");
    batch.extend_from_slice(
        b"POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nsecond body",
    );
    batch.extend_from_slice(
        b"POST /three HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthird\r\n5\r\n body\r\n0\r\n\r\n",
    );
    batch.extend_from_slice(b"GET /four HTTP/1.1\r\nHost: test\r\n\r\n");
    batch.extend_from_slice(b"PUT /five HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nlast");
    client.send(&batch);
    let expected = [
        ("GET", "/one", ""),
        ("POST", "/two", "second body"),
        ("POST", "/three", "third body"),
        ("GET", "/four", ""),
        ("PUT", "/five", "last"),
    ];
    for (method, path, body) in expected {
        let r = client.try_read_response(false).unwrap_or_else(|e| {
            panic!(
                "no response to {method} {path}: {e}; backend saw {:?}",
                backend.requests()
            )
        });
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-method"), Some(method));
        assert_eq!(r.header("x-path"), Some(path));
        assert_eq!(r.body_str(), body);
    }
    // the connection is still good afterwards
    assert_eq!(client.get("/six").header("x-path"), Some("/six"));
    let seen: Vec<String> = backend.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(seen, ["/one", "/two", "/three", "/four", "/five", "/six"]);
    let third = &backend.requests()[2];
    assert!(third.chunked, "chunked request body forwarded chunked");
    assert_eq!(third.raw_body, b"5\r\nthird\r\n5\r\n body\r\n0\r\n\r\n");
});

both_drivers!(pipelined_requests_with_a_bad_one_stop_there, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send(
        "GET /ok HTTP/1.1\r\nHost: test\r\n\r\n\
         GET /bad HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx\
         GET /never HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path"), Some("/ok"));
    let r = client.read_response();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.says_close());
    client.expect_closed();
    let seen: Vec<String> = backend.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(seen, ["/ok"]);
});

both_drivers!(head_response_has_no_body, |driver| {
    let backend = Backend::start(|req| {
        if req.method == "HEAD" {
            // what a server says for HEAD: the length the GET body would have
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Kind: head\r\n\r\n".to_vec())
        } else {
            Reply::ok(format!("get {}", req.path))
        }
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..3 {
        client.send("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n");
        let r = client.read_head_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("1234"));
        assert_eq!(r.header("x-kind"), Some("head"));
        // The next response starts right after the head: no body was sent.
        let r = client.get("/after");
        assert_eq!(r.body_str(), "get /after");
    }
    assert_eq!(backend.connections(), 1, "upstream kept alive across HEAD");
});

both_drivers!(no_content_and_not_modified_have_no_body, |driver| {
    let backend = Backend::start(|req| match req.path.as_str() {
        "/204" => Reply::Raw(b"HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n".to_vec()),
        // a 304 may carry the Content-Length of the representation
        "/304" => Reply::Raw(
            b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 9\r\n\r\n".to_vec(),
        ),
        _ => Reply::ok("plain"),
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..2 {
        let r = client.get("/204");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("x-kind"), Some("204"));
        assert!(r.body.is_empty());
        assert_eq!(client.get("/x").body_str(), "plain");
        client.send("GET /304 HTTP/1.1\r\nHost: test\r\nIf-None-Match: \"v1\"\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some("\"v1\""));
        assert_eq!(client.get("/x").body_str(), "plain");
    }
    assert_eq!(backend.connections(), 1);
    let cond = backend
        .requests()
        .into_iter()
        .find(|r| r.path == "/304")
        .unwrap();
    assert_eq!(cond.header("if-none-match"), Some("\"v1\""));
});

both_drivers!(expect_100_continue_is_answered_by_the_proxy, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for round in 0..2 {
        client.send(
            "POST /upload HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n",
        );
        let interim = client.read_response();
        assert_eq!(interim.status, 100, "round {round}: {interim:?}");
        client.send("hello, world");
        let r = client.read_response();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "hello, world");
    }
    // Body sent right away with the head: no 100 needed, the final response comes first.
    client.send("POST /eager HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\neager");
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "eager");
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 3);
    for req in &reqs {
        assert!(!req.has_header("expect"), "backend saw Expect: {req:?}");
    }
});

both_drivers!(expect_100_continue_with_chunked_body, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("PUT /c HTTP/1.1\r\nHost: test\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(client.read_response().status, 100);
    client.send("3\r\nabc\r\n");
    client.send("4\r\ndefg\r\n0\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "abcdefg");
    assert!(!backend.requests()[0].has_header("expect"));
});

both_drivers!(http10_client_gets_no_100_continue, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    // An HTTP/1.0 client does not understand 1xx: nothing must come yet.
    client.expect_silence(Duration::from_millis(200));
    client.send("abc");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "abc");
});

both_drivers!(backend_interim_responses, |driver| {
    let backend = Backend::start(|req| match req.path.as_str() {
        // a backend's own 100 is swallowed: corelb owns that exchange
        "/100" => Reply::Raw(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
                .to_vec(),
        ),
        // other 1xx go to HTTP/1.1 clients
        _ => Reply::Raw(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints"
                .to_vec(),
        ),
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    let r = client.get("/100");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "final");
    let r = client.get("/103");
    assert_eq!(r.status, 103, "{r:?}");
    assert_eq!(r.header("link"), Some("</s.css>; rel=preload"));
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hints");
    // an HTTP/1.0 client gets only the final response
    let mut old = proxy.client();
    old.send("GET /103 HTTP/1.0\r\n\r\n");
    let r = old.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "hints");
});

both_drivers!(hop_by_hop_fields_are_removed, |driver| {
    let backend = Backend::start(|_| {
        Reply::Raw(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
              Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Resp-Keep: yes\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        )
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send(
        "GET /h HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Secret, x-other\r\nX-Secret: s\r\n\
         X-Other: o\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
         Trailer: X-T\r\nUpgrade: websocket\r\nX-Keep: k\r\n\r\n",
    );
    let r = client.read_response();
    assert_eq!(r.status, 200);
    for name in [
        "x-resp-hop",
        "keep-alive",
        "upgrade",
        "proxy-connection",
        "trailer",
    ] {
        assert!(!r.has_header(name), "client saw {name}: {r:?}");
    }
    assert!(r
        .header_all("connection")
        .iter()
        .all(|v| !v.to_ascii_lowercase().contains("x-resp-hop")));
    assert_eq!(r.header("x-resp-keep"), Some("yes"));
    let req = &backend.requests()[0];
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-secret",
        "x-other",
    ] {
        assert!(
            !req.has_header(name),
            "backend saw {name}: {:?}",
            req.headers
        );
    }
    assert_eq!(req.header("x-keep"), Some("k"));
    assert_eq!(req.header("host"), Some("test"));
    // the client's keep-alive still holds
    assert_eq!(client.get("/again").status, 200);
});

both_drivers!(forwarded_for_proto_and_via, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.get("/plain");
    client.send(
        "GET /chain HTTP/1.1\r\nHost: test\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n\
         X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: https\r\nVia: 1.0 edge, 1.1 mid\r\n\r\n",
    );
    assert_eq!(client.read_response().status, 200);
    let reqs = backend.requests();
    let plain = &reqs[0];
    assert_eq!(plain.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(plain.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(plain.header_all("via"), ["1.1 corelb"]);
    let chain = &reqs[1];
    assert_eq!(
        chain.header_all("x-forwarded-for"),
        ["203.0.113.7, 198.51.100.2, 192.0.2.1, 127.0.0.1"]
    );
    assert_eq!(
        chain.header_all("x-forwarded-proto"),
        ["http"],
        "client cannot choose the proto"
    );
    assert_eq!(chain.header_all("via"), ["1.0 edge, 1.1 mid, 1.1 corelb"]);
});

both_drivers!(request_line_and_fields_reach_the_backend_intact, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send(
        "DELETE /a/b%20c?x=1&y=%2F#frag HTTP/1.1\r\nHost: example.com:8080\r\nX-Custom: a,  b ;c\r\n\
         Cookie: k=v\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(client.read_response().status, 200);
    let req = &backend.requests()[0];
    assert_eq!(req.method, "DELETE");
    assert_eq!(req.path, "/a/b%20c?x=1&y=%2F#frag");
    assert_eq!(req.version, 1);
    assert_eq!(req.header("host"), Some("example.com:8080"));
    assert_eq!(req.header("x-custom"), Some("a,  b ;c"));
    assert_eq!(req.header("cookie"), Some("k=v"));
    assert_eq!(req.header("accept"), Some("*/*"));
    assert!(req.body.is_empty());
});

both_drivers!(
    http10_client_is_upgraded_upstream_and_closed_downstream,
    |driver| {
        let backend = Backend::start(|req| match req.path.as_str() {
            "/chunked" => Reply::chunked(b"de-chunked for an old client", 7),
            _ => Reply::ok("old"),
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);

        let mut client = proxy.client();
        client.send("GET /plain HTTP/1.0\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "old");
        client.expect_closed();
        let req = &backend.requests()[0];
        assert_eq!(req.version, 1, "corelb speaks HTTP/1.1 upstream");
        assert_eq!(
            req.header("host"),
            Some(backend.addr().to_string().as_str())
        );

        // chunked is not HTTP/1.0: the body arrives de-chunked, ended by close
        let mut client = proxy.client();
        client.send("GET /chunked HTTP/1.0\r\nHost: test\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200);
        assert!(!r.chunked, "{r:?}");
        assert!(r.close_delimited, "{r:?}");
        assert_eq!(r.body_str(), "de-chunked for an old client");

        // HTTP/1.0 keep-alive
        let mut client = proxy.client();
        for _ in 0..3 {
            client.send("GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            let r = client.read_response();
            assert_eq!(r.body_str(), "old");
            assert_eq!(
                r.header("connection")
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("keep-alive")
            );
        }
    }
);

both_drivers!(close_delimited_response_is_relayed_and_closes, |driver| {
    let backend = Backend::start(|_| {
        Reply::RawThenClose(
            b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\nall of this until the end".to_vec(),
        )
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    let r = client.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "all of this until the end");
    assert!(r.close_delimited || r.says_close(), "{r:?}");
    // the response ended by closing; a second request needs a new connection
    let mut client = proxy.client();
    assert_eq!(client.get("/").body_str(), "all of this until the end");
    assert_eq!(backend.connections(), 2);
});

both_drivers!(chunked_response_with_trailers_and_extensions, |driver| {
    let backend = Backend::fixed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          4;name=value\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Checksum: 42\r\n\r\n",
    );
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!(r.status, 200);
        assert!(r.chunked);
        assert_eq!(r.body_str(), "abcdefg");
    }
    assert_eq!(backend.connections(), 1);
});

both_drivers!(idle_client_is_closed_after_the_idle_timeout, |driver| {
    let backend = Backend::echo_name("one");
    let proxy = Proxy::with_backends(driver, &[&backend], &["--client-idle-timeout", "300ms"]);
    let mut client = proxy.client();
    assert_eq!(client.get("/").status, 200);
    client.expect_closed();
});

both_drivers!(slow_head_is_closed_after_the_header_timeout, |driver| {
    let backend = Backend::echo_name("one");
    let proxy = Proxy::with_backends(driver, &[&backend], &["--client-header-timeout", "300ms"]);
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost: te");
    client.expect_closed();
    assert_eq!(backend.request_count(), 0);
    assert_eq!(backend.connections(), 0);
});

both_drivers!(
    a_stray_empty_line_after_a_body_keeps_the_idle_timeout,
    |driver| {
        // Old clients send CRLF after a POST body. That empty line is not the
        // start of a request head, so the connection stays idle (60 s here),
        // not on the 300 ms head clock.
        let backend = Backend::echo();
        let proxy =
            Proxy::with_backends(driver, &[&backend], &["--client-header-timeout", "300ms"]);
        let mut client = proxy.client();
        client.send("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n");
        assert_eq!(client.read_response().status, 200);
        std::thread::sleep(Duration::from_millis(700));
        let r = client.get("/next");
        assert_eq!(r.status, 200, "{r:?}");
    }
);

both_drivers!(many_pipelined_requests_through_a_small_buffer, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &["--buffer-size", "1024"]);
    let mut client = proxy.client();
    let mut batch = String::new();
    for i in 0..100 {
        if i % 3 == 0 {
            batch.push_str(&format!(
                "POST /p{i} HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\nbody{i:02}"
            ));
        } else {
            batch.push_str(&format!("GET /g{i} HTTP/1.1\r\nHost: test\r\n\r\n"));
        }
    }
    assert!(batch.len() > 4 * 1024);
    client.send(&batch);
    for i in 0..100 {
        let r = client.read_response();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        if i % 3 == 0 {
            assert_eq!(r.header("x-path"), Some(format!("/p{i}").as_str()));
            assert_eq!(r.body_str(), format!("body{i:02}"));
        } else {
            assert_eq!(r.header("x-path"), Some(format!("/g{i}").as_str()));
        }
    }
    assert_eq!(backend.request_count(), 100);
});

both_drivers!(pipelined_request_after_a_streamed_chunked_body, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("POST /first HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    client.send("5\r\nhello\r\n");
    std::thread::sleep(Duration::from_millis(50));
    // the end of the body and the next request in one packet
    client.send("0\r\n\r\nGET /next HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.header("x-path"), Some("/first"));
    assert_eq!(r.body_str(), "hello");
    let r = client.read_response();
    assert_eq!(r.header("x-path"), Some("/next"));
    let reqs = backend.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].raw_body, b"5\r\nhello\r\n0\r\n\r\n");
});

both_drivers!(
    pipelined_request_after_connection_close_is_dropped,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut client = proxy.client();
        client.send(
        "GET /a HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: test\r\n\r\n",
    );
        let r = client.read_response();
        assert_eq!(r.header("x-path"), Some("/a"));
        assert!(r.says_close());
        client.expect_closed();
        let paths: Vec<String> = backend.requests().iter().map(|r| r.path.clone()).collect();
        assert_eq!(paths, ["/a"]);
    }
);

both_drivers!(
    expect_100_continue_without_a_body_gets_no_interim,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut client = proxy.client();
        client.send("GET /nobody HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200, "{r:?}");
        client.send("POST /zero HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(backend.requests().iter().all(|r| !r.has_header("expect")));
    }
);

both_drivers!(head_response_declaring_chunked_has_no_body, |driver| {
    let backend = Backend::start(|req| {
        if req.method == "HEAD" {
            Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec())
        } else {
            Reply::chunked(b"real body", 4)
        }
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = client.read_head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let r = client.get("/");
    assert_eq!(r.body_str(), "real body");
    assert_eq!(backend.connections(), 1);
});

both_drivers!(
    backend_connection_close_keeps_the_client_connection,
    |driver| {
        let backend = Backend::start(|req| {
            Reply::RawThenClose(response(
                200,
                "OK",
                &[("Connection", "close")],
                req.path.as_bytes(),
            ))
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut client = proxy.client();
        for path in ["/1", "/2", "/3"] {
            let r = client.get(path);
            assert_eq!(r.status, 200);
            assert_eq!(r.body_str(), path);
            assert!(!r.says_close(), "the backend's close is hop-by-hop: {r:?}");
        }
        assert_eq!(
            backend.connections(),
            3,
            "a connection the backend closes is never pooled"
        );
    }
);

both_drivers!(http10_backend_response_is_not_pooled, |driver| {
    let backend = Backend::start(|_| {
        Reply::RawThenClose(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..3 {
        let r = client.get("/");
        assert_eq!(r.status, 200);
        assert_eq!(r.version, 1, "corelb answers HTTP/1.1");
        assert_eq!(r.body_str(), "ok");
    }
    assert_eq!(backend.connections(), 3);
});

both_drivers!(
    extra_bytes_after_a_response_are_not_read_as_the_next_one,
    |driver| {
        let backend = Backend::fixed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 666 Bogus\r\n\r\n",
        );
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut client = proxy.client();
        for _ in 0..3 {
            let r = client.get("/");
            assert_eq!(r.status, 200);
            assert_eq!(r.body_str(), "ok");
        }
        assert_eq!(
            backend.connections(),
            3,
            "a connection with stray bytes must not be reused"
        );
    }
);

both_drivers!(
    client_gone_mid_upload_and_mid_download_leaves_the_proxy_healthy,
    |driver| {
        let big = pattern(4 * 1024 * 1024, 9);
        let backend = {
            let big = big.clone();
            Backend::start(move |req| match req.path.as_str() {
                "/big" => Reply::Raw(response(200, "OK", &[], &big)),
                _ => Reply::ok(format!("{} bytes", req.body.len())),
            })
        };
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        // upload abandoned half way
        let mut c = proxy.client();
        c.send("POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n");
        c.send(vec![b'x'; 5000]);
        drop(c);
        // download abandoned after the head
        let mut c = proxy.client();
        c.send("GET /big HTTP/1.1\r\nHost: test\r\n\r\n");
        c.conn.fill().unwrap();
        drop(c);
        // still serving, and the abandoned upload never reached the app complete
        let mut c = proxy.client();
        let r = c.get("/after");
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), "0 bytes");
        let r = c.get("/big");
        assert_eq!(sha256(&r.body), sha256(&big));
        assert!(backend.requests().iter().all(|r| r.path != "/up"));
    }
);

both_drivers!(oversized_response_head_is_502, |driver| {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nX-Huge: {}\r\nContent-Length: 2\r\n\r\nok",
        "h".repeat(3000)
    );
    let backend = Backend::fixed(huge.as_bytes());
    let proxy = Proxy::with_backends(driver, &[&backend], &["--buffer-size", "1024"]);
    let r = expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n", 502);
    assert!(r.body_str().starts_with("Bad Gateway"));
});

both_drivers!(
    oversized_response_head_is_502_after_a_body_grew_the_buffer,
    |driver| {
        // A 4 KiB body first grows the connection's upstream buffer well
        // past --buffer-size; the next response's head must still be held
        // to --buffer-size, though a single read now takes all of it.
        let huge_head = format!(
            "HTTP/1.1 200 OK\r\nX-Huge: {}\r\nContent-Length: 2\r\n\r\nok",
            "h".repeat(3000)
        );
        let backend = Backend::start(move |req| match req.path.as_str() {
            "/body" => Reply::Raw(response(200, "OK", &[], &[b'b'; 4096])),
            _ => Reply::Raw(huge_head.clone().into_bytes()),
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &["--buffer-size", "1024"]);
        let mut client = proxy.client();
        let r = client.get("/body");
        assert_eq!((r.status, r.body.len()), (200, 4096));
        let r = client.get("/huge");
        assert_eq!(r.status, 502, "{r:?}");
        assert!(r.body_str().starts_with("Bad Gateway"));
    }
);

both_drivers!(options_star_and_absolute_form_targets, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    client.send("GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(client.read_response().status, 200);
    let reqs = backend.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("OPTIONS", "*")
    );
    assert_eq!(reqs[1].header("host"), Some("example.com"));
    assert!(reqs[1].path.ends_with("/abs?q=1"), "{}", reqs[1].path);
});

both_drivers!(half_closed_client_still_gets_its_response, |driver| {
    // `printf 'GET ...' | nc host port` style: request, then FIN at once.
    let backend = Backend::start(|_| {
        Reply::After(
            Duration::from_millis(100),
            Box::new(Reply::ok("late but here")),
        )
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    client
        .conn
        .stream
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "late but here");
    client.expect_closed();
});
