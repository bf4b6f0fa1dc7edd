//! Timeouts a client or a backend cannot dodge by sending a little now and
//! then (issue 19, §3 and §4): empty lines before a request line count
//! toward `--client-header-timeout`, and interim (`1xx`) responses do not
//! restart `--response-timeout`.

#[macro_use]
mod common;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Send `\r\n` every `every` until corelb closes the connection; how long
/// that took, or `None` if it was still open after `bound`.
fn blank_lines_until_closed(proxy: &Proxy, every: Duration, bound: Duration) -> Option<Duration> {
    let mut c = proxy.client();
    c.conn.stream.set_read_timeout(Some(every)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while started.elapsed() < bound {
        if c.conn.stream.write_all(b"\r\n").is_err() {
            return Some(started.elapsed());
        }
        match c.conn.stream.read(&mut buf) {
            // Closed (with or without a 400 first: both end it).
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

both_drivers!(empty_lines_count_toward_the_header_timeout, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(
        driver,
        &[&backend],
        &[
            "--client-header-timeout",
            "1s",
            "--client-idle-timeout",
            "60s",
        ],
    );
    // One empty line a second: each used to restart the idle wait (60 s)
    // and the header wait never began.
    let took = blank_lines_until_closed(&proxy, Duration::from_secs(1), SAFETY);
    let took = took.expect("a client sending only empty lines is still connected after 10 s");
    eprintln!("closed after {took:?} of empty lines (--client-header-timeout 1s)");
    assert_eq!(backend.request_count(), 0);
});

both_drivers!(a_flood_of_empty_lines_is_400, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &["--client-header-timeout", "60s"]);
    expect_error(&proxy, &b"\r\n".repeat(100), 400);
    expect_error(&proxy, &b"\n".repeat(100), 400);
    // A flood with a request after it is refused too.
    let mut flood = b"\r\n".repeat(20);
    flood.extend_from_slice(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    expect_error(&proxy, &flood, 400);
    assert_eq!(backend.request_count(), 0);
    // One empty line before a request (RFC 9112 §2.2) is still fine.
    let mut c = proxy.client();
    c.send("\r\nGET /after-one HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    c.send("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\na\r\n");
    assert_eq!(c.read_response().status, 200);
    c.send("GET /after-post-crlf HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
});

/// A backend that reads a request head, then sends `102 Processing` every
/// 50 ms and never a final answer (for at most 20 s).
fn processing_forever() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(20) {
                    if stream
                        .write_all(b"HTTP/1.1 102 Processing\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    addr
}

both_drivers!(
    interim_responses_do_not_restart_the_response_timeout,
    |driver| {
        let backend = processing_forever();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--backend",
            &backend.to_string(),
            "--response-timeout",
            "1s",
        ]);
        let mut c = proxy.client();
        let started = Instant::now();
        c.send("GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
        let mut interim = 0;
        let last = loop {
            assert!(
                started.elapsed() < SAFETY,
                "no final answer after {interim} interim responses in 10 s"
            );
            let res = c.read_response();
            if res.status >= 200 {
                break res;
            }
            interim += 1;
        };
        eprintln!(
            "final {} after {:?} and {interim} interim responses (--response-timeout 1s)",
            last.status,
            started.elapsed()
        );
        assert_eq!(last.status, 504, "{last:?}");
    }
);
