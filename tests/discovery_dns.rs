//! DNS discovery against a real DNS server (dnsmasq on loopback, TTL 1 s):
//! under keep-alive load an added address gets traffic and a removed one
//! stops getting it, with no failed request; a stopped DNS server leaves
//! the last good set serving; NXDOMAIN empties the pool only after
//! `--dns-hold`, and the 503 then says why; SRV weights are honoured.
//!
//! Every wait is bounded; how long each change took is printed (the
//! figures are in the README), never asserted as an upper bound.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::admin::{pool_addrs, status};
use common::dns::{hosts, loopback_backends, traffic_reaches, Dnsmasq};
use common::load::Load;
use common::{wait_until, Proxy, TempDir};

const NAME: &str = "api.lb.test";

fn proxy(dns: &Dnsmasq, port: u16, extra: &[&str]) -> Proxy {
    let target = format!("{NAME}:{port}");
    let resolver = dns.resolver();
    let mut args = vec![
        "--backend-dns",
        &target,
        "--resolver",
        &resolver,
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

/// The default pool's first discovery source in `/status`.
fn source(admin: SocketAddr) -> serde_json::Value {
    status(admin)["discovery"][0].clone()
}

#[test]
fn added_and_removed_addresses_move_traffic_without_a_failed_request() {
    let (backends, port) = loopback_backends(3);
    let mut dns = Dnsmasq::start(&hosts(NAME, &backends, &[0, 1]), &[]);
    let proxy = proxy(&dns, port, &[]);
    let admin = proxy.admin_addr();
    let load = Load::start(proxy.addr(), 4);
    traffic_reaches(&backends[0], 0);
    traffic_reaches(&backends[1], 0);
    let doc = status(admin);
    assert_eq!(doc["pools"][0]["backends"][0]["origin"], "dns", "{doc}");
    assert_eq!(doc["discovery"][0]["result"], "ok", "{doc}");
    assert_eq!(doc["discovery"][0]["ttl_seconds"], 1.0, "{doc}");

    // Added: the new address gets traffic once the TTL runs out.
    dns.set_hosts(&hosts(NAME, &backends, &[0, 1, 2]));
    let added = traffic_reaches(&backends[2], 0);

    // Removed: no new request reaches it once the snapshot dropped it.
    let start = Instant::now();
    dns.set_hosts(&hosts(NAME, &backends, &[1, 2]));
    let gone = backends[0].addr().to_string();
    wait_until("the removed address leaves the pool", || {
        !pool_addrs(admin).contains(&gone)
    });
    let removed = start.elapsed();
    thread::sleep(Duration::from_millis(200)); // requests already sent land
    let last = backends[0].request_count();
    load.wait_more(300);
    assert_eq!(
        backends[0].request_count(),
        last,
        "a removed address got new requests"
    );

    // The DNS server stops: the last good set keeps serving.
    dns.stop();
    wait_until("a failed resolution is reported", || {
        source(admin)["result"] == "failed"
    });
    let seen: Vec<usize> = backends.iter().map(|b| b.request_count()).collect();
    load.wait_more(300);
    traffic_reaches(&backends[1], seen[1]);
    traffic_reaches(&backends[2], seen[2]);
    let doc = source(admin);
    assert!(
        doc["detail"]
            .as_str()
            .is_some_and(|d| d.contains("keeping the last good set")),
        "{doc}"
    );
    assert_eq!(doc["backends"], 2, "{doc}");

    let (counts, failures) = load.finish_with_failures();
    assert_eq!(counts.not_ok(), 0, "{counts:?} {failures:?}");
    eprintln!(
        "measured: added address had traffic after {added:?}, removed address left after \
         {removed:?}; {} requests, {} not OK",
        counts.answered,
        counts.not_ok()
    );
}

#[test]
fn nxdomain_empties_the_pool_after_the_hold_and_the_503_says_why() {
    let (backends, port) = loopback_backends(1);
    let dns = Dnsmasq::start(&hosts(NAME, &backends, &[0]), &[]);
    let proxy = proxy(&dns, port, &["--dns-hold", "2s"]);
    let admin = proxy.admin_addr();
    wait_until("the name is resolved", || {
        proxy.client().get("/").status == 200
    });

    let start = Instant::now();
    dns.set_hosts("");
    let mut kept = 0;
    let answer = loop {
        assert!(start.elapsed() < Duration::from_secs(20), "never emptied");
        let r = proxy.client().get("/");
        if r.status != 200 {
            break r;
        }
        kept += 1;
        thread::sleep(Duration::from_millis(50));
    };
    let emptied = start.elapsed();
    assert_eq!(answer.status, 503, "{}", answer.body_str());
    assert!(
        answer.body_str().contains("--dns-hold"),
        "{}",
        answer.body_str()
    );
    assert!(
        emptied >= Duration::from_secs(2),
        "emptied before the hold: {emptied:?}"
    );
    assert!(kept > 0);
    let doc = source(admin);
    assert_eq!(doc["result"], "nxdomain", "{doc}");
    assert_eq!(doc["backends"], 0, "{doc}");

    // The name comes back: so does the pool.
    let start = Instant::now();
    dns.set_hosts(&hosts(NAME, &backends, &[0]));
    wait_until("the name is back", || proxy.client().get("/").status == 200);
    eprintln!(
        "measured: with --dns-hold 2s the pool emptied {emptied:?} after the name went \
         ({kept} requests answered meanwhile); back {:?} after it returned",
        start.elapsed()
    );
}

#[test]
fn srv_records_give_ports_and_weights() {
    let (backends, port) = loopback_backends(2);
    let srv = [
        format!("_http._tcp.lb.test,a.lb.test,{port},0,1"),
        format!("_http._tcp.lb.test,b.lb.test,{port},0,3"),
    ];
    let names = format!(
        "{} a.lb.test\n{} b.lb.test\n",
        backends[0].addr().ip(),
        backends[1].addr().ip()
    );
    let dns = Dnsmasq::start(&names, &[&srv[0], &srv[1]]);
    let dir = TempDir::new("srv");
    let config = dir.path().join("corelb.toml");
    std::fs::write(
        &config,
        "[[pools]]\nname = \"default\"\nsrv = \"_http._tcp.lb.test\"\n",
    )
    .unwrap();
    let resolver = dns.resolver();
    let proxy = Proxy::start(&[
        "--config",
        config.to_str().unwrap(),
        "--resolver",
        &resolver,
        "--admin",
        "127.0.0.1:0",
    ]);
    wait_until("both SRV targets are in the pool", || {
        pool_addrs(proxy.admin_addr()).len() == 2
    });
    let doc = status(proxy.admin_addr());
    assert_eq!(doc["pools"][0]["backends"][0]["origin"], "srv", "{doc}");
    let weights: Vec<_> = doc["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["weight"].as_u64())
        .collect();
    assert_eq!(weights, [Some(1), Some(3)], "{doc}");
    let mut client = proxy.client();
    for _ in 0..400 {
        assert_eq!(client.get("/").status, 200);
    }
    let (a, b) = (backends[0].request_count(), backends[1].request_count());
    assert!(
        a > 0 && (2 * a..=4 * a).contains(&b),
        "weights 1:3, got {a}:{b}"
    );
}

#[test]
fn a_new_address_in_a_checked_pool_gets_traffic_only_once_its_checks_pass() {
    // 127.0.0.2 is healthy; 127.0.0.3 fails its health checks but would
    // answer requests: it must get none.
    let port = common::free_port();
    let start = |i: u8, health: Arc<AtomicU16>| {
        let addr: SocketAddr = format!("127.0.0.{i}:{port}").parse().unwrap();
        common::Backend::start_with(
            common::BackendOptions {
                addr: Some(addr),
                ..Default::default()
            },
            move |req| {
                let status = if req.path == "/healthz" {
                    health.load(Ordering::SeqCst)
                } else {
                    200
                };
                common::Reply::Raw(common::response(status, "X", &[], b"x"))
            },
        )
    };
    let failing = Arc::new(AtomicU16::new(500));
    let backends = vec![
        start(2, Arc::new(AtomicU16::new(200))),
        start(3, Arc::clone(&failing)),
    ];
    let requests =
        |b: &common::Backend| b.requests().iter().filter(|r| r.path != "/healthz").count();
    let dns = Dnsmasq::start(&hosts(NAME, &backends, &[0]), &[]);
    let proxy = proxy(
        &dns,
        port,
        &["--health-path", "/healthz", "--health-interval", "200ms"],
    );
    let admin = proxy.admin_addr();
    let load = Load::start(proxy.addr(), 2);
    wait_until("traffic at the healthy backend", || {
        requests(&backends[0]) > 0
    });

    dns.set_hosts(&hosts(NAME, &backends, &[0, 1]));
    let new = backends[1].addr().to_string();
    wait_until("the new address is in the pool", || {
        pool_addrs(admin).contains(&new)
    });
    wait_until("the new address is probed", || {
        backends[1].request_count() > requests(&backends[1]) + 2
    });
    load.wait_more(300);
    assert_eq!(
        requests(&backends[1]),
        0,
        "an unchecked backend got traffic"
    );
    let doc = status(admin);
    let entry = doc["pools"][0]["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["addr"] == new.as_str()))
        .cloned();
    assert_eq!(
        entry.map(|b| b["state"].clone()),
        Some("down".into()),
        "{doc}"
    );

    // Its checks pass: it gets traffic.
    let start = Instant::now();
    failing.store(200, Ordering::SeqCst);
    wait_until("traffic once the checks pass", || {
        requests(&backends[1]) > 0
    });
    let (counts, failures) = load.finish_with_failures();
    assert_eq!(counts.not_ok(), 0, "{counts:?} {failures:?}");
    eprintln!(
        "measured: with --health-interval 200ms (rise 2) the new address had traffic {:?} \
         after its checks began to pass",
        start.elapsed()
    );
}

#[test]
fn a_reload_adds_and_removes_a_dns_source() {
    let (backends, port) = loopback_backends(2);
    let dns = Dnsmasq::start(&hosts(NAME, &backends, &[1]), &[]);
    let dir = TempDir::new("dns-reload");
    let config = dir.path().join("corelb.toml");
    let write = |dns_line: &str| {
        let text = format!(
            "resolver = [\"{}\"]\n[[pools]]\nname = \"default\"\nbackends = [{{ addr = \"{}\" }}]\n{dns_line}\n",
            dns.resolver(),
            backends[0].addr()
        );
        std::fs::write(&config, text).unwrap();
    };
    write("");
    let proxy = Proxy::start(&[
        "--config",
        config.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = proxy.admin_addr();
    assert_eq!(pool_addrs(admin), [backends[0].addr().to_string()]);

    write(&format!("dns = [\"{NAME}:{port}\"]"));
    proxy.signal("HUP");
    let both = [
        backends[0].addr().to_string(),
        backends[1].addr().to_string(),
    ];
    wait_until("the DNS source's backend joins", || {
        pool_addrs(admin) == both
    });
    let doc = status(admin);
    assert_eq!(doc["pools"][0]["backends"][0]["origin"], "static", "{doc}");
    assert_eq!(doc["pools"][0]["backends"][1]["origin"], "dns", "{doc}");

    write("");
    proxy.signal("HUP");
    wait_until("the DNS source's backend leaves", || {
        pool_addrs(admin) == [backends[0].addr().to_string()]
    });
    assert_eq!(status(admin)["discovery"], serde_json::json!([]));
}
