//! Load balancing and connection reuse, black-box over loopback.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::thread;

use common::*;

fn names(responses: &[Response]) -> Vec<String> {
    responses.iter().map(|r| r.body_str()).collect()
}

both_drivers!(round_robin_rotates_exactly_on_one_connection, |driver| {
    let a = Backend::echo_name("a");
    let b = Backend::echo_name("b");
    let c = Backend::echo_name("c");
    let proxy = Proxy::with_backends(driver, &[&a, &b, &c], &[]);
    let mut client = proxy.client();
    let got: Vec<Response> = (0..30).map(|i| client.get(&format!("/r{i}"))).collect();
    for r in &got {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-backend"), Some(r.body_str().as_str()));
    }
    let seq = names(&got);
    let mut first: Vec<&String> = seq[..3].iter().collect();
    first.sort();
    first.dedup();
    assert_eq!(
        first.len(),
        3,
        "first three requests not spread over the three backends: {seq:?}"
    );
    for (i, name) in seq.iter().enumerate() {
        assert_eq!(name, &seq[i % 3], "not a strict rotation: {seq:?}");
    }
    assert_eq!(
        a.request_count() + b.request_count() + c.request_count(),
        30
    );
    for be in [&a, &b, &c] {
        assert_eq!(be.request_count(), 10);
        assert_eq!(
            be.connections(),
            1,
            "one kept-alive upstream connection per backend"
        );
    }
});

both_drivers!(
    round_robin_is_even_over_many_connections_and_two_workers,
    |driver| {
        let a = Backend::echo_name("a");
        let b = Backend::echo_name("b");
        let c = Backend::echo_name("c");
        let proxy = Proxy::with_backends(driver, &[&a, &b, &c], &["--threads", "2"]);
        let addr = proxy.addr();
        let handles: Vec<_> = (0..3)
            .map(|t| {
                thread::spawn(move || {
                    (0..20)
                        .map(|i| {
                            let mut client = Client::connect(addr);
                            let r = client.get(&format!("/t{t}/{i}"));
                            assert_eq!(r.status, 200, "{r:?}");
                            r.body_str()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for h in handles {
            for name in h.join().unwrap() {
                *counts.entry(name).or_default() += 1;
            }
        }
        assert_eq!(counts.values().sum::<usize>(), 60);
        assert_eq!(counts.len(), 3, "{counts:?}");
        // Each worker rotates on its own, so per worker the counts differ by at
        // most one; over two workers, by at most two.
        let max = counts.values().max().unwrap();
        let min = counts.values().min().unwrap();
        assert!(max - min <= 2, "uneven distribution: {counts:?}");
        assert_eq!(a.request_count(), counts["a"]);
        assert_eq!(b.request_count(), counts["b"]);
        assert_eq!(c.request_count(), counts["c"]);
    }
);

both_drivers!(weighted_round_robin_follows_weights, |driver| {
    let heavy = Backend::echo_name("heavy");
    let light = Backend::echo_name("light");
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--backend",
        &format!("{},weight=3", heavy.addr()),
        "--backend",
        &format!("{},weight=1", light.addr()),
    ]);
    let mut client = proxy.client();
    let seq: Vec<String> = (0..40).map(|_| client.get("/").body_str()).collect();
    // Smooth weighted round-robin: every window of four picks is 3:1.
    for window in seq.chunks(4) {
        assert_eq!(
            window.iter().filter(|n| *n == "heavy").count(),
            3,
            "{seq:?}"
        );
    }
    assert_eq!(heavy.request_count(), 30);
    assert_eq!(light.request_count(), 10);
});

both_drivers!(keep_alive_reuses_one_connection_on_each_side, |driver| {
    let backend = Backend::echo();
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    for i in 0..100 {
        let body = format!("request {i}");
        client.send(format!(
            "POST /k/{i} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        let r = client.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body_str(), body);
        assert!(!r.says_close(), "{r:?}");
    }
    assert_eq!(backend.request_count(), 100);
    assert!(
        backend.connections() <= 2,
        "100 requests on one client connection used {} backend connections",
        backend.connections()
    );
});

both_drivers!(
    upstream_connections_are_pooled_across_client_connections,
    |driver| {
        let backend = Backend::echo_name("one");
        let proxy = Proxy::with_backends(driver, &[&backend], &[]);
        for _ in 0..20 {
            // a fresh client connection each time, closed after the response
            let mut client = proxy.client();
            let r = client.get("/");
            assert_eq!(r.status, 200);
            drop(client);
        }
        assert_eq!(backend.request_count(), 20);
        assert!(
            backend.connections() <= 2,
            "pool not reused: {} connections",
            backend.connections()
        );
    }
);

both_drivers!(upstream_keepalive_zero_disables_pooling, |driver| {
    let backend = Backend::echo_name("one");
    let proxy = Proxy::with_backends(driver, &[&backend], &["--upstream-keepalive", "0"]);
    let mut client = proxy.client();
    for _ in 0..5 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(backend.request_count(), 5);
    assert_eq!(backend.connections(), 5);
});

both_drivers!(client_connection_close_is_honoured, |driver| {
    let backend = Backend::echo_name("one");
    let proxy = Proxy::with_backends(driver, &[&backend], &[]);
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = client.read_response();
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{r:?}");
    client.expect_closed();
    // the upstream connection is still pooled: the close was the client's
    let mut client = proxy.client();
    assert_eq!(client.get("/").status, 200);
    assert_eq!(backend.connections(), 1);
});

both_drivers!(max_connections_holds_back_new_clients, |driver| {
    let backend = Backend::echo_name("one");
    let proxy = Proxy::with_backends(driver, &[&backend], &["--max-connections", "1"]);
    let mut first = proxy.client();
    assert_eq!(first.get("/").status, 200);
    let mut second = proxy.client();
    second.send("GET /second HTTP/1.1\r\nHost: test\r\n\r\n");
    // While the first connection is open the second is not served.
    second.expect_silence(std::time::Duration::from_millis(300));
    assert_eq!(backend.request_count(), 1);
    drop(first);
    let r = second.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(backend.request_count(), 2);
});
