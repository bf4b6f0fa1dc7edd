//! Large bodies both ways, byte-exact (SHA-256), with Content-Length and
//! chunked framing.

#[macro_use]
mod common;

use std::sync::Arc;
use std::thread;

use common::*;

const BIG: usize = 10 * 1024 * 1024;

/// Send `head` and then `body` from another thread (so a proxy that starts
/// answering early cannot deadlock the test), and read one response.
fn post_big(proxy: &Proxy, head: String, body: Vec<u8>) -> Response {
    let mut client = proxy.client();
    let mut writer = client.conn.stream.try_clone().unwrap();
    let sender = thread::spawn(move || -> std::io::Result<()> {
        use std::io::Write;
        // the head and the first body bytes in one write, as most clients do
        let first = body.len().min(1000);
        let mut opening = head.into_bytes();
        opening.extend_from_slice(&body[..first]);
        writer.write_all(&opening)?;
        // then writes of odd sizes, to exercise partial reads on the way
        for piece in body[first..].chunks(300_007) {
            writer.write_all(piece)?;
        }
        Ok(())
    });
    let r = client.try_read_response(false);
    let sent = sender.join().unwrap();
    match (r, sent) {
        (Ok(r), Ok(())) => r,
        (r, sent) => panic!(
            "upload failed: sending: {sent:?}; response: {:?}",
            r.map(|r| (r.status, r.body_str()))
        ),
    }
}

both_drivers!(large_request_body_with_content_length, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let body = pattern(BIG, 1);
    let want = sha256(&body);
    let head = format!("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: {BIG}\r\n\r\n");
    let r = post_big(&proxy, head, body);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), BIG);
    assert_eq!(sha256(&r.body), want, "echoed body differs");
    let req = &backend.requests()[0];
    assert_eq!(req.header("content-length"), Some(BIG.to_string().as_str()));
    assert_eq!(sha256(&req.body), want, "backend received a different body");
});

both_drivers!(large_request_body_chunked, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let body = pattern(BIG, 2);
    let want = sha256(&body);
    let framed = chunked_body(&body, 65_536 + 13);
    let head = "POST /big-chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_string();
    let r = post_big(&proxy, head, framed.clone());
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), want, "echoed body differs");
    let req = &backend.requests()[0];
    assert!(req.chunked, "forwarded chunked: {:?}", req.headers);
    assert!(!req.has_header("content-length"));
    assert_eq!(sha256(&req.body), want, "backend received a different body");
    assert_eq!(
        sha256(&req.raw_body),
        sha256(&framed),
        "chunk framing forwarded byte for byte"
    );
});

both_drivers!(chunked_request_body_sent_with_the_head, |driver| {
    // The first chunks arrive in the same packet as the head.
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let r = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no response: {e}; backend saw {:?}", backend.requests()));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello world");
    let req = &backend.requests()[0];
    assert_eq!(req.raw_body, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
});

both_drivers!(chunked_request_body_split_after_the_head, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_millis(50));
    client.send("5\r\nhel");
    std::thread::sleep(std::time::Duration::from_millis(50));
    client.send("lo\r\n6\r\n world\r\n0\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "hello world");
    assert_eq!(
        backend.requests()[0].raw_body,
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
});

both_drivers!(large_response_body_with_content_length, |driver| {
    let body = Arc::new(pattern(BIG, 3));
    let want = sha256(&body);
    let backend = {
        let body = Arc::clone(&body);
        Backend::start(move |_| Reply::Raw(response(200, "OK", &[], &body)))
    };
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..2 {
        let r = client.get("/download");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
        assert_eq!(r.body.len(), BIG);
        assert_eq!(sha256(&r.body), want);
    }
    assert_eq!(backend.connections(), 1);
});

both_drivers!(large_response_body_chunked, |driver| {
    let body = pattern(BIG, 4);
    let want = sha256(&body);
    let Reply::Raw(bytes) = Reply::chunked(&body, 100_003) else {
        unreachable!()
    };
    let backend = Backend::fixed(&bytes);
    drop(bytes);
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for _ in 0..2 {
        let r = client.get("/download-chunked");
        assert_eq!(r.status, 200);
        assert!(r.chunked);
        assert_eq!(sha256(&r.body), want);
    }
    // HTTP/1.0 clients get it de-chunked, ended by close
    let mut old = proxy.client();
    old.send("GET /download-chunked HTTP/1.0\r\n\r\n");
    let r = old.read_response();
    assert!(r.close_delimited && !r.chunked, "{:?}", r.headers);
    assert_eq!(sha256(&r.body), want);
});

both_drivers!(large_close_delimited_response, |driver| {
    let body = pattern(BIG, 5);
    let want = sha256(&body);
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    bytes.extend_from_slice(&body);
    let backend = Backend::start(move |_| Reply::RawThenClose(bytes.clone()));
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    let r = client.get("/eof");
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), want);
});

both_drivers!(large_bodies_both_ways_on_one_connection, |driver| {
    // upload with Content-Length, answered chunked, three times on one connection
    let backend = Backend::start(|req| Reply::chunked(&req.body, 77_777));
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for seed in 10..13 {
        let body = pattern(BIG / 2 + seed as usize, seed);
        let want = sha256(&body);
        let mut writer = client.conn.stream.try_clone().unwrap();
        let sender = thread::spawn(move || {
            use std::io::Write;
            let head = format!(
                "PUT /x HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            writer.write_all(head.as_bytes()).unwrap();
            writer.write_all(&body).unwrap();
        });
        let r = client.read_response();
        sender.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.chunked);
        assert_eq!(sha256(&r.body), want);
    }
    assert_eq!(backend.connections(), 1);
});

both_drivers!(
    concurrent_clients_bodies_around_buffer_boundaries,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &["--threads", "2"]);
        let addr = proxy.addr();
        let sizes = [
            0usize, 1, 1023, 1024, 1025, 16_383, 16_384, 16_385, 32_769, 65_536, 100_001,
        ];
        let handles: Vec<_> = (0..6u64)
        .map(|t| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for round in 0..3u64 {
                    for (i, &size) in sizes.iter().enumerate() {
                        let body = pattern(size, t * 1000 + round * 100 + i as u64);
                        let mut raw = format!(
                            "POST /t{t}/{round}/{i} HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n"
                        )
                        .into_bytes();
                        raw.extend_from_slice(&body);
                        client.send(&raw);
                        let r = client.read_response();
                        assert_eq!(r.status, 200);
                        assert_eq!(r.header("x-path"), Some(format!("/t{t}/{round}/{i}").as_str()));
                        assert_eq!(r.body.len(), size);
                        assert!(r.body == body, "body of size {size} corrupted");
                    }
                }
            })
        })
        .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(backend.request_count(), 6 * 3 * sizes.len());
    }
);

both_drivers!(small_buffer_and_tiny_chunks_both_ways, |driver| {
    let backend = Backend::start(|req| Reply::chunked(&req.body, 7));
    let proxy = Proxy::with_backends(driver, &[&backend], &["--buffer-size", "1024"]);
    let body = pattern(200_000, 77);
    let mut client = proxy.client();
    client.send("POST /tiny HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut framed = Vec::new();
    for (i, piece) in body.chunks(5).enumerate() {
        // some chunk extensions too
        if i % 100 == 0 {
            framed.extend_from_slice(format!("{:x};n={i}\r\n", piece.len()).as_bytes());
        } else {
            framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        }
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    let mut writer = client.conn.stream.try_clone().unwrap();
    let expected_raw = framed.clone();
    let sender = thread::spawn(move || {
        use std::io::Write;
        writer.write_all(&framed).unwrap();
    });
    let r = client.read_response();
    sender.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.chunked);
    assert_eq!(sha256(&r.body), sha256(&body));
    let req = &backend.requests()[0];
    assert_eq!(sha256(&req.body), sha256(&body));
    assert!(
        req.raw_body == expected_raw,
        "chunk framing changed on the way"
    );
});

both_drivers!(a_transfer_coding_other_than_chunked, |driver| {
    // `Transfer-Encoding: gzip`, delimited by the close: HTTP/1.1 clients
    // get it as it is; an HTTP/1.0 client cannot be told of the coding
    // (RFC 9112 6.1), so it gets a 502 rather than gzip bytes as the body.
    let backend = Backend::start(|_| {
        Reply::RawThenClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Type: text/plain\r\n\r\n\x1f\x8bGZ"
                .to_vec(),
        )
    });
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let r = proxy.client().get("/gz");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("gzip"));
    assert_eq!(r.body, b"\x1f\x8bGZ");

    let mut old = proxy.client();
    old.send("GET /gz HTTP/1.0\r\n\r\n");
    let r = old.read_response();
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.header("transfer-encoding"), None);
});

both_drivers!(
    no_transfer_encoding_to_http10_clients_even_without_a_body,
    |driver| {
        let backend = Backend::start(|_| {
            Reply::Raw(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: head\r\n\r\n".to_vec(),
            )
        });
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        let mut old = proxy.client();
        old.send("HEAD / HTTP/1.0\r\n\r\n");
        let head = old.conn.read_head().unwrap().expect("a response head");
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("X-Kind: head\r\n"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
    }
);
