//! A backend nobody can connect to never saw the request, so corelb sends
//! it to another backend of the pool instead of failing the client.

mod common;

use std::net::SocketAddr;

use common::{dead_addr, Backend, Driver, Proxy};

/// corelb in front of `backends`, in that order (round-robin).
fn proxy_for(driver: Driver, backends: &[SocketAddr]) -> Proxy {
    let mut args = vec!["--io-driver".to_string(), driver.as_str().to_string()];
    for b in backends {
        args.push("--backend".into());
        args.push(b.to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(&refs)
}

both_drivers!(refused_connect_moves_to_another_backend, |driver| {
    let alive = Backend::echo_name("alive");
    let dead = dead_addr();
    let proxy = proxy_for(driver, &[dead, alive.addr(), dead]);
    for _ in 0..12 {
        // A new connection each time, so no pooled connection helps.
        let mut client = proxy.client();
        let r = client.get("/");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "alive");
    }
    assert_eq!(alive.request_count(), 12);
});

both_drivers!(a_dead_backends_share_is_spread_over_the_others, |driver| {
    // Round-robin over [dead, b, c]: a third of the requests fail over.
    // They must be spread by weight, not all sent to the dead backend's
    // neighbour in the list (which would carry double load).
    let b = Backend::echo_name("b");
    let c = Backend::echo_name("c");
    let proxy = proxy_for(driver, &[dead_addr(), b.addr(), c.addr()]);
    for _ in 0..300 {
        assert_eq!(proxy.client().get("/").status, 200);
    }
    let (b, c) = (b.request_count(), c.request_count());
    assert_eq!(b + c, 300);
    // Expected 150 each (the failed-over 100 split 50/50, sd 5); the next-in-
    // line rule gives 200/100.
    assert!((120..=180).contains(&b), "b {b}, c {c}");
});

both_drivers!(every_backend_refusing_is_a_502, |driver| {
    let proxy = proxy_for(driver, &[dead_addr(), dead_addr()]);
    common::expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
});

both_drivers!(a_backend_that_answers_badly_is_not_retried, |driver| {
    // The request reached this backend: sending it elsewhere could run it
    // twice, so the client gets the 502.
    let garbage = Backend::fixed(b"NOT HTTP\r\n\r\n");
    let good = Backend::echo_name("good");
    let proxy = proxy_for(driver, &[garbage.addr(), good.addr()]);
    common::expect_error(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        502,
    );
    assert_eq!(good.request_count(), 0);
});

both_drivers!(failover_sends_the_same_body_once, |driver| {
    // The body arrives with the head and another request follows in the
    // same packet. After the failed connect, the next backend must get the
    // same five body bytes, and the pipelined request must stay a request.
    let echo = Backend::echo();
    let dead = dead_addr();
    let proxy = proxy_for(driver, &[dead, echo.addr()]);
    let mut client = proxy.client();
    client.send(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
         GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let first = client.read_response();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        (first.header("x-path"), first.body_str().as_str()),
        (Some("/a"), "hello")
    );
    let second = client.read_response();
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.header("x-path"), Some("/second"));
    // And the backend saw exactly these two requests, nothing glued on.
    let seen: Vec<String> = echo.requests().iter().map(|r| r.path.clone()).collect();
    assert!(seen.iter().all(|p| p == "/a" || p == "/second"), "{seen:?}");
    assert!(echo.malformed().is_empty(), "{:?}", echo.malformed());
});

both_drivers!(failover_of_a_chunked_upload_keeps_its_framing, |driver| {
    let echo = Backend::echo();
    let proxy = proxy_for(driver, &[dead_addr(), echo.addr()]);
    let mut client = proxy.client();
    client.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    std::thread::sleep(std::time::Duration::from_millis(50));
    client.send("2\r\nde\r\n0\r\n\r\n");
    let r = client.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "abcde"), "{r:?}");
    assert!(echo.malformed().is_empty(), "{:?}", echo.malformed());
});
