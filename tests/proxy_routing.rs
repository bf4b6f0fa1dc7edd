//! Routing between pools (config file) and the balancing algorithms, seen
//! from outside: which backend each request reached.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

/// `GET path` with `Host: host` on `client`: the body of its `200`.
fn body_of(client: &mut Client, path: &str, host: &str) -> String {
    client.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    let r = client.read_response();
    assert_eq!(r.status, 200, "{path} {host}: {r:?}");
    r.body_str()
}

both_drivers!(routes_by_path_prefix_and_host, |driver| {
    let api1 = Backend::echo_name("api1");
    let api2 = Backend::echo_name("api2");
    let stat = Backend::echo_name("static");
    let other = Backend::echo_name("other");
    let (proxy, _dir) = Proxy::with_config(
        driver,
        &format!(
            r#"
[[pools]]
name = "api"
backends = [{{ addr = "{}" }}, {{ addr = "{}" }}]

[[pools]]
name = "static"
backends = [{{ addr = "{}" }}]

[[pools]]
name = "other"
backends = [{{ addr = "{}" }}]

[[routes]]
path_prefix = "/api/"
pool = "api"

[[routes]]
host = "static.example.com"
pool = "static"

[[routes]]
pool = "other"
"#,
            api1.addr(),
            api2.addr(),
            stat.addr(),
            other.addr()
        ),
        &[],
    );
    let mut client = proxy.client();
    let mut fetch = |path: &str, host: &str| body_of(&mut client, path, host);
    let api: HashSet<String> = (0..4).map(|i| fetch(&format!("/api/v{i}"), "x")).collect();
    assert_eq!(api, HashSet::from(["api1".to_string(), "api2".to_string()]));
    assert_eq!(fetch("/index.html", "static.example.com"), "static");
    assert_eq!(fetch("/index.html", "STATIC.example.com:8080"), "static");
    assert_eq!(fetch("/index.html", "www.example.com"), "other");
    assert_eq!(fetch("/apix", "x"), "other");
    // the first matching route wins
    assert!(fetch("/api/x", "static.example.com").starts_with("api"));
});

both_drivers!(every_algorithm_serves_only_configured_backends, |driver| {
    let a = Backend::echo_name("a");
    let b = Backend::echo_name("b");
    let c = Backend::echo_name("c");
    for algorithm in [
        "round-robin",
        "least-connections",
        "random",
        "power-of-two",
        "peak-ewma",
        "consistent-hash",
    ] {
        let before = a.request_count() + b.request_count() + c.request_count();
        let proxy = Proxy::start(&[
            "--io-driver",
            driver.as_str(),
            "--algorithm",
            algorithm,
            "--backend",
            &a.addr().to_string(),
            "--backend",
            &b.addr().to_string(),
            "--backend",
            &c.addr().to_string(),
        ]);
        let mut client = proxy.client();
        for i in 0..30 {
            let r = client.get(&format!("/{algorithm}/{i}"));
            assert_eq!(r.status, 200, "{algorithm}: {r:?}");
            assert!(["a", "b", "c"].contains(&r.body_str().as_str()));
        }
        let after = a.request_count() + b.request_count() + c.request_count();
        assert_eq!(after - before, 30, "{algorithm}");
    }
});

// Sticky consistent hashing (header, cookie, path; across two workers) is
// covered in tests/balance_algorithms.rs.

both_drivers!(least_connections_avoids_the_busy_backend, |driver| {
    let release = Arc::new(AtomicBool::new(false));
    let busy = {
        let release = Arc::clone(&release);
        Backend::start(move |req| {
            if req.path == "/hold" {
                wait_until("the test releases the held request", || {
                    release.load(Ordering::SeqCst)
                });
            }
            Reply::ok("busy")
        })
    };
    let idle = Backend::echo_name("idle");
    let proxy = Proxy::start(&[
        "--io-driver",
        driver.as_str(),
        "--algorithm",
        "least-connections",
        "--backend",
        &busy.addr().to_string(),
        "--backend",
        &idle.addr().to_string(),
    ]);
    // Keep one request in flight on whichever backend gets it first...
    let mut holder = proxy.client();
    let mut held_on_busy = false;
    for _ in 0..2 {
        let idle_before = idle.request_count();
        holder.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
        wait_until("/hold reaches a backend", || {
            busy.request_count() > 0 || idle.request_count() > idle_before
        });
        if busy.request_count() > 0 {
            held_on_busy = true;
            break;
        }
        // it went to the idle backend: read that answer and try again
        assert_eq!(holder.read_response().body_str(), "idle");
    }
    assert!(
        held_on_busy,
        "least-connections never picked the busy backend for /hold"
    );
    // ...then every other request goes to the backend with nothing in flight.
    let mut client = proxy.client();
    for _ in 0..10 {
        assert_eq!(client.get("/quick").body_str(), "idle");
    }
    release.store(true, Ordering::SeqCst);
    assert_eq!(holder.read_response().body_str(), "busy");
});

both_drivers!(routes_match_the_normalised_path_and_host, |driver| {
    let admin = Backend::echo_name("admin");
    let internal = Backend::echo_name("internal");
    let public = Backend::echo_name("public");
    let (proxy, _dir) = Proxy::with_config(
        driver,
        &format!(
            r#"
[[pools]]
name = "default"
backends = [{{ addr = "{}" }}]

[[pools]]
name = "admin"
backends = [{{ addr = "{}" }}]

[[pools]]
name = "internal"
backends = [{{ addr = "{}" }}]

[[routes]]
path_prefix = "/admin/"
pool = "admin"

[[routes]]
host = "internal.example"
pool = "internal"
"#,
            public.addr(),
            admin.addr(),
            internal.addr()
        ),
        &[],
    );
    let mut client = proxy.client();
    let mut fetch = |path: &str, host: &str| body_of(&mut client, path, host);
    for path in [
        "/admin/",
        "/x/../admin/",
        "/%61dmin/",
        "//admin/",
        "/./admin/x",
    ] {
        assert_eq!(fetch(path, "x"), "admin", "{path}");
    }
    assert_eq!(fetch("/administrator", "x"), "public");
    assert_eq!(fetch("/admin%2F", "x"), "public");
    assert_eq!(fetch("/", "internal.example."), "internal");
    assert_eq!(fetch("/", "internal.example.:8080"), "internal");
    assert_eq!(fetch("/", "internal.example"), "internal");
    // The target goes to the backend as it came.
    let raw = admin
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect::<Vec<_>>();
    assert!(raw.contains(&"/x/../admin/".to_string()), "{raw:?}");
    assert!(raw.contains(&"/%61dmin/".to_string()), "{raw:?}");
});
