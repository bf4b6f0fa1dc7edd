//! Uploads a backend does not wait for: early answers (a backend that
//! answers 413 or 401 after reading only the head) and `max_body_size`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A backend that reads a request's head only, answers `answer` at once
/// and then stops reading (the body is not its business). Counts its
/// connections; each is held open until the peer closes it, or a while.
struct EarlyBackend {
    addr: String,
    connections: Arc<AtomicUsize>,
    /// Connections corelb closed (the backend saw end of file).
    closed_by_proxy: Arc<AtomicUsize>,
}

impl EarlyBackend {
    fn start(answer: &'static [u8]) -> EarlyBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed_by_proxy = Arc::new(AtomicUsize::new(0));
        let (count, closed) = (Arc::clone(&connections), Arc::clone(&closed_by_proxy));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let closed = Arc::clone(&closed);
                thread::spawn(move || {
                    s.set_read_timeout(Some(SAFETY)).unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    s.write_all(answer).unwrap();
                    // Not reading the body: let it pile up in the socket,
                    // then see whether corelb lets go of the connection.
                    thread::sleep(Duration::from_millis(500));
                    let mut sink = vec![0u8; 64 * 1024];
                    loop {
                        match s.read(&mut sink) {
                            Ok(0) => {
                                closed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                                closed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        EarlyBackend {
            addr,
            connections,
            closed_by_proxy,
        }
    }
}

/// Start uploading a large body slowly on `client` (a copy of its socket):
/// 1 KiB every 20 ms, which would take minutes; stops when told or when
/// the connection fails.
fn slow_upload(client: &Client, chunked: bool, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let mut s = client.conn.stream.try_clone().unwrap();
    thread::spawn(move || {
        let piece = vec![b'u'; 1024];
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) && sent < 10_000_000 {
            let ok = if chunked {
                s.write_all(b"400\r\n")
                    .and_then(|_| s.write_all(&piece))
                    .and_then(|_| s.write_all(b"\r\n"))
            } else {
                s.write_all(&piece)
            };
            if ok.is_err() {
                break;
            }
            sent += 1024;
            thread::sleep(Duration::from_millis(20));
        }
        sent
    })
}

fn upload_head(chunked: bool) -> &'static str {
    if chunked {
        "POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    } else {
        "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\n"
    }
}

// The answer reaches the client while it is still uploading (the upload
// would take minutes; the read waits at most the safety bound), corelb
// stops forwarding the body and closes both connections.
both_drivers!(
    an_early_answer_is_relayed_while_the_client_uploads,
    |driver| {
        for (answer, status, chunked) in [
        (
            &b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large"[..],
            413,
            false,
        ),
        (
            b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large",
            413,
            true,
        ),
        // No `Connection: close` from the backend: corelb still may not
        // reuse a connection whose request it never finished.
        (
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n\r\nwho goes?",
            401,
            false,
        ),
    ] {
        let backend = EarlyBackend::start(answer);
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &backend.addr,
            "--admin",
            "off",
        ]);
        let mut client = proxy.client();
        client.send(upload_head(chunked));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let uploader = slow_upload(&client, chunked, Arc::clone(&stop));
        let res = client.read_response();
        let waited = started.elapsed();
        assert_eq!(res.status, status, "{res:?}");
        assert_eq!(res.body.len(), 9, "{res:?}");
        assert!(res.says_close(), "the client connection is not kept: {res:?}");
        // The client connection closes (FIN, or RST once corelb stops
        // reading what the uploader still sends).
        match client.conn.fill() {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the client connection stayed open: {other:?}"),
        }
        stop.store(true, Ordering::SeqCst);
        let sent = uploader.join().unwrap();
        assert!(sent < 10_000_000, "the upload finished first");
        wait_until("corelb to close the upstream connection", || {
            backend.closed_by_proxy.load(Ordering::SeqCst) == 1
        });
        // The next request gets a new upstream connection.
        let mut next = proxy.client();
        next.send("GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(next.read_response().status, status);
        assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
        println!(
            "{driver:?} {status} chunked={chunked}: answer after {waited:?}, {sent} body bytes sent by then"
        );
    }
    }
);

// A body that fits is unaffected by the watch for early answers: it goes
// up whole, slowly, and the answer comes after it.
both_drivers!(
    a_slow_upload_the_backend_reads_is_answered_after_the_body,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(driver, &[&backend], &["--admin", "off"]);
        let body = pattern(200 * 1024, 3);
        let mut client = proxy.client();
        client.send(format!(
            "POST /u HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        for piece in body.chunks(32 * 1024) {
            client.send(piece);
            thread::sleep(Duration::from_millis(30));
        }
        let res = client.read_response();
        assert_eq!(res.status, 200);
        assert_eq!(sha256(&res.body), sha256(&body));
        assert!(!res.says_close());
    }
);

// ---------------------------------------------------------------------------
// max_body_size

both_drivers!(
    a_content_length_over_max_body_size_is_413_before_any_backend,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(
            driver,
            &[&backend],
            &["--admin", "off", "--max-body-size", "1000"],
        );
        let body = pattern(1000, 1);
        let mut client = proxy.client();
        client.send(b"POST /fits HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n");
        client.send(&body);
        let res = client.read_response();
        assert_eq!(res.status, 200);
        assert_eq!(res.body, body);

        let mut too_big =
            b"POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n".to_vec();
        too_big.extend_from_slice(&pattern(1001, 2));
        let r = expect_error(&proxy, &too_big, 413);
        assert!(r.body_str().contains("max_body_size"), "{r:?}");
        // Announced, not sent: refused from the head alone.
        let r = expect_error(
            &proxy,
            b"POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: 5000000000\r\n\r\n",
            413,
        );
        assert!(r.body_str().starts_with("Content Too Large"), "{r:?}");
        assert_eq!(
            backend.request_count(),
            1,
            "only the body that fits went up"
        );
    }
);

both_drivers!(
    a_chunked_body_over_max_body_size_is_cut_and_answered_413,
    |driver| {
        let backend = Backend::echo();
        let proxy = Proxy::with_backends(
            driver,
            &[&backend],
            // No pooling: each request's connect shows its head went up.
            &[
                "--admin",
                "off",
                "--max-body-size",
                "1000",
                "--upstream-keepalive",
                "0",
            ],
        );
        // Within the limit (payload, not framing: 1000 bytes in 10 chunks).
        let fits = pattern(1000, 4);
        let mut client = proxy.client();
        client.send(b"POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
        client.send(chunked_body(&fits, 100));
        let res = client.read_response();
        assert_eq!(res.status, 200);
        assert_eq!(res.body, fits);

        // Over it in the first read: nothing goes up.
        let mut raw =
            b"POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(&chunked_body(&pattern(1001, 5), 1001));
        expect_error(&proxy, &raw, 413);

        // Over it after part of it went upstream: the upstream connection is
        // closed with the body unfinished, and the client gets the 413.
        let before = backend.connections();
        let mut client = proxy.client();
        client.send(b"POST /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
        client.send(b"258\r\n");
        client.send(pattern(600, 6));
        client.send(b"\r\n");
        wait_until("the first chunk to reach the backend", || {
            backend.connections() > before
        });
        thread::sleep(Duration::from_millis(200));
        client.send(b"258\r\n");
        client.send(pattern(600, 7));
        client.send(b"\r\n0\r\n\r\n");
        let res = client.read_response();
        assert_eq!(res.status, 413, "{res:?}");
        assert!(res.says_close());
        assert!(res.body_str().contains("max_body_size"), "{res:?}");
        assert_eq!(
            backend.request_count(),
            1,
            "the cut request never completed upstream"
        );
    }
);

#[test]
fn max_body_size_is_per_pool_in_the_file() {
    let backend = Backend::echo();
    let dir = TempDir::new("body-size");
    let path = dir.path().join("pools.toml");
    std::fs::write(
        &path,
        format!(
            "max_body_size = 100\n\
             [[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{0}\" }}]\n\
             [[pools]]\nname = \"uploads\"\nmax_body_size = 0\nbackends = [{{ addr = \"{0}\" }}]\n\
             [[pools]]\nname = \"tiny\"\nmax_body_size = 10\nbackends = [{{ addr = \"{0}\" }}]\n\
             [[routes]]\npath_prefix = \"/uploads/\"\npool = \"uploads\"\n\
             [[routes]]\npath_prefix = \"/tiny/\"\npool = \"tiny\"\n",
            backend.addr()
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&["--config", path.to_str().unwrap(), "--admin", "off"]);
    let post = |path: &str, len: usize| {
        let mut c = proxy.client();
        c.send(format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n"
        ));
        c.send(pattern(len, len as u64));
        c.read_response().status
    };
    assert_eq!(post("/uploads/a", 100_000), 200, "0: no limit in this pool");
    assert_eq!(post("/other", 100), 200);
    assert_eq!(post("/other", 101), 413, "the top-level limit");
    assert_eq!(post("/tiny/x", 10), 200);
    assert_eq!(post("/tiny/x", 11), 413, "the pool's own limit");

    let (code, stderr) = Proxy::start_failing(&[
        "--config",
        path.to_str().unwrap(),
        "--max-body-size",
        "x",
        "--check",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--max-body-size"), "{stderr}");
}
