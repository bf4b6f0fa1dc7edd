//! Requests that loop back into corelb, and authorities corelb refuses
//! (issue 19, §8): a loop through another proxy is answered 508, a
//! backend that is corelb's own listener is refused at load, and a
//! malformed `Host` or userinfo in the target is 400.

#[macro_use]
mod common;

use common::*;

both_drivers!(a_loop_through_another_proxy_is_508, |driver| {
    // Two corelbs, each the other's backend: a request goes round until
    // one of them sees its `Via` entries come back too often.
    let port = free_port();
    let first = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &format!("127.0.0.1:{port}"),
    ]);
    let listen = format!("127.0.0.1:{port}");
    let _second = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--listen",
        &listen,
        "--backend",
        &first.addr().to_string(),
    ]);
    let mut c = first.client();
    let res = c.get("/loop");
    assert_eq!(res.status, 508, "{res:?}");
    // Still serving afterwards: the loop used up nothing.
    let res = first.client().get("/again");
    assert_eq!(res.status, 508, "{res:?}");
});

both_drivers!(one_corelb_in_front_of_another_is_not_a_loop, |driver| {
    let backend = Backend::echo();
    let inner = Proxy::with_backends(driver, &[&backend], &[]);
    let outer = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &inner.addr().to_string(),
    ]);
    let mut c = outer.client();
    c.send("GET / HTTP/1.1\r\nHost: test\r\nVia: 1.1 corelb\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    let via = backend.requests()[0]
        .header("via")
        .unwrap_or("")
        .to_string();
    assert_eq!(via, "1.1 corelb, 1.1 corelb, 1.1 corelb");
});

#[test]
fn a_backend_that_is_the_listener_is_refused_at_load() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // `--check` loads the configuration as a start does, then exits.
    let (code, err) = Proxy::start_failing(&["--check", "--listen", &listen, "--backend", &listen]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("\"default\"") && err.contains(&listen) && err.contains("loop"),
        "{err}"
    );
    // A wildcard listener is reached through loopback too.
    let (code, err) =
        Proxy::start_failing(&["--listen", &format!("0.0.0.0:{port}"), "--backend", &listen]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("own listen address"), "{err}");
}

both_drivers!(malformed_hosts_and_userinfo_are_400, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    for raw in [
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n",
        "GET http://user@test/ HTTP/1.1\r\nHost: test\r\n\r\n",
        "GET http://user:pw@test:80/x HTTP/1.1\r\nHost: test\r\n\r\n",
    ] {
        expect_error(&proxy, raw.as_bytes(), 400);
    }
    assert_eq!(backend.request_count(), 0);
    let mut c = proxy.client();
    c.send("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
});
