//! The balancing algorithms seen from outside: real backends, the real
//! proxy, counted responses. (The exact sequences and distributions are
//! unit-tested next to each algorithm in `src/balance/`.)

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{response, Backend, Proxy, Reply};

/// A backend answering with its name in `X-Backend`, after `delay`.
fn named(name: &str, delay: Duration) -> Backend {
    let name = name.to_string();
    Backend::start(move |_| {
        let reply = Reply::Raw(response(
            200,
            "OK",
            &[("X-Backend", &name)],
            name.as_bytes(),
        ));
        if delay.is_zero() {
            reply
        } else {
            Reply::After(delay, Box::new(reply))
        }
    })
}

/// Send `per_client` requests from each of `clients` concurrent keep-alive
/// clients; count the answers by backend name.
fn spread(proxy: &Proxy, clients: usize, per_client: usize, path: &str) -> HashMap<String, usize> {
    let addr = proxy.addr();
    let path = Arc::new(path.to_string());
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let path = Arc::clone(&path);
            thread::spawn(move || {
                let mut client = common::Client::connect(addr);
                let mut counts = HashMap::new();
                for _ in 0..per_client {
                    let r = client.get(&path);
                    assert_eq!(r.status, 200, "{}", r.body_str());
                    *counts.entry(r.body_str()).or_insert(0) += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = HashMap::new();
    for h in handles {
        for (name, n) in h.join().expect("client thread") {
            *total.entry(name).or_insert(0) += n;
        }
    }
    total
}

fn share(counts: &HashMap<String, usize>, name: &str) -> f64 {
    let total: usize = counts.values().sum();
    *counts.get(name).unwrap_or(&0) as f64 / total as f64
}

/// Weights 1:2:3 give 1/6, 2/6, 3/6 of 6000 requests, within ±3 points.
fn check_weights(algorithm: &str) {
    let (a, b, c) = (
        named("a", Duration::ZERO),
        named("b", Duration::ZERO),
        named("c", Duration::ZERO),
    );
    let proxy = Proxy::start(&[
        "--algorithm",
        algorithm,
        "--threads",
        "2",
        "--backend",
        &format!("{},weight=1", a.addr()),
        "--backend",
        &format!("{},weight=2", b.addr()),
        "--backend",
        &format!("{},weight=3", c.addr()),
    ]);
    let counts = spread(&proxy, 6, 1000, "/");
    assert_eq!(counts.values().sum::<usize>(), 6000);
    for (name, want) in [("a", 1.0 / 6.0), ("b", 2.0 / 6.0), ("c", 3.0 / 6.0)] {
        let got = share(&counts, name);
        assert!(
            (got - want).abs() <= 0.03,
            "{algorithm}: {name} got {got:.3}, want {want:.3} ({counts:?})"
        );
    }
}

#[test]
fn round_robin_weights_1_2_3() {
    check_weights("round-robin");
}

#[test]
fn random_weights_1_2_3() {
    check_weights("random");
}

/// One of three backends answers in 40 ms, the others at once; 32
/// concurrent clients. A load- or latency-aware algorithm sends the slow
/// one clearly less than its third.
fn check_slow_backend_avoided(algorithm: &str) {
    let fast1 = named("fast1", Duration::ZERO);
    let fast2 = named("fast2", Duration::ZERO);
    let slow = named("slow", Duration::from_millis(40));
    let proxy = Proxy::start(&[
        "--algorithm",
        algorithm,
        "--backend",
        &fast1.addr().to_string(),
        "--backend",
        &slow.addr().to_string(),
        "--backend",
        &fast2.addr().to_string(),
    ]);
    let counts = spread(&proxy, 32, 40, "/");
    let slow_share = share(&counts, "slow");
    assert!(
        slow_share < 0.2,
        "{algorithm}: the slow backend got {slow_share:.3} of requests ({counts:?})"
    );
}

#[test]
fn least_connections_avoids_a_slow_backend() {
    check_slow_backend_avoided("least-connections");
}

#[test]
fn power_of_two_avoids_a_slow_backend() {
    check_slow_backend_avoided("power-of-two");
}

#[test]
fn peak_ewma_avoids_a_slow_backend() {
    check_slow_backend_avoided("peak-ewma");
}

#[test]
fn round_robin_does_not_avoid_a_slow_backend() {
    // The control: without load awareness the slow backend keeps its third,
    // which shows the test above measures the algorithm, not the setup.
    let fast = named("fast", Duration::ZERO);
    let slow = named("slow", Duration::from_millis(40));
    let proxy = Proxy::start(&[
        "--backend",
        &fast.addr().to_string(),
        "--backend",
        &slow.addr().to_string(),
    ]);
    let counts = spread(&proxy, 16, 10, "/");
    assert!((share(&counts, "slow") - 0.5).abs() < 0.05, "{counts:?}");
}

/// The same key always lands on the same backend, different keys spread,
/// and two workers (two threads) agree.
fn check_sticky(hash_key: &str, request_for: impl Fn(usize) -> String) {
    let backends: Vec<Backend> = (0..4)
        .map(|i| named(&format!("b{i}"), Duration::ZERO))
        .collect();
    let mut args = vec![
        "--algorithm".to_string(),
        "consistent-hash".into(),
        "--hash-key".into(),
        hash_key.into(),
        "--threads".into(),
        "2".into(),
    ];
    for b in &backends {
        args.push("--backend".into());
        args.push(b.addr().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = Proxy::start(&refs);
    let mut chosen: HashMap<usize, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..40 {
            // A new connection each time: SO_REUSEPORT may hand it to either worker.
            let mut client = proxy.client();
            client.send(request_for(user));
            let name = client.read_response().body_str();
            let first = chosen.entry(user).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "user {user} moved backends in round {round}");
        }
    }
    let used: std::collections::HashSet<&String> = chosen.values().collect();
    assert!(used.len() >= 3, "40 keys landed on only {used:?}");
}

#[test]
fn consistent_hash_by_header_is_sticky() {
    check_sticky("header:X-User", |user| {
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-User: user-{user}\r\n\r\n")
    });
}

#[test]
fn consistent_hash_by_cookie_is_sticky() {
    check_sticky("cookie:session", |user| {
        format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: theme=dark; session=s{user}\r\n\r\n")
    });
}

#[test]
fn consistent_hash_by_path_is_sticky() {
    check_sticky("path", |user| {
        format!(
            "GET /item/{user}?v={} HTTP/1.1\r\nHost: x\r\n\r\n",
            user % 3
        )
    });
}
