//! A backend nobody can connect to never saw the request, so corelb sends
//! it to another backend of the pool instead of failing the client.

mod common;

use common::{dead_addr, Backend, Proxy};

both_drivers!(refused_connect_moves_to_another_backend, |driver| {
    let alive = Backend::echo_name("alive");
    let dead = dead_addr();
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &dead.to_string(),
        "--backend",
        &alive.addr().to_string(),
        "--backend",
        &dead.to_string(),
    ]);
    for _ in 0..12 {
        // A new connection each time, so no pooled connection helps.
        let mut client = proxy.client();
        let r = client.get("/");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), "alive");
    }
    assert_eq!(alive.request_count(), 12);
});

both_drivers!(every_backend_refusing_is_a_502, |driver| {
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &dead_addr().to_string(),
        "--backend",
        &dead_addr().to_string(),
    ]);
    common::expect_error(&proxy, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502);
});

both_drivers!(a_backend_that_answers_badly_is_not_retried, |driver| {
    // The request reached this backend: sending it elsewhere could run it
    // twice, so the client gets the 502.
    let garbage = Backend::fixed(b"NOT HTTP\r\n\r\n");
    let good = Backend::echo_name("good");
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &garbage.addr().to_string(),
        "--backend",
        &good.addr().to_string(),
    ]);
    common::expect_error(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        502,
    );
    assert_eq!(good.request_count(), 0);
});
