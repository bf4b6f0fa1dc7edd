//! A changing fleet, as clients see it (issue 22 §3), with real processes
//! over loopback: backends restarted one after another the way a rolling
//! deploy does it cost no request when their pool has `retry_on`, and
//! cost some without it; a backend restarted on the same address gets
//! traffic again within rise × interval of its return, whether the health
//! checks took it down or only the data plane's failures ejected it.
//!
//! The tests take turns ([`exclusive`]) so that one's load does not slow
//! the other's timings. Every wait is bounded; each test prints what it
//! measured (`--nocapture`).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::admin::{metric, state};
use common::load::{Counts, Load};
use common::*;

/// The path health probes ask for; never counted as traffic.
const HEALTH: &str = "/health";
/// `--health-interval`, and the default `rise`.
const INTERVAL: Duration = Duration::from_millis(300);
const RISE: u32 = 2;

/// One load test at a time.
fn exclusive() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a returning backend may wait for traffic: rise × interval
/// and a second (the bound).
fn return_bound() -> Duration {
    INTERVAL * RISE + Duration::from_secs(1)
}

/// [`wait_until`] `cond` holds; how long it took.
fn timed(what: &str, cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    wait_until(what, cond);
    start.elapsed()
}

/// A backend of the fleet: serves `200` (no body to a HEAD), counting in
/// `hits` every request that is not a probe; while `draining`, answers
/// everything (probes too) `503` and closes the connection, as a server
/// shutting down does.
fn member(name: &str, hits: &Arc<AtomicU64>, draining: &Arc<AtomicBool>) -> Backend {
    member_at(None, name, hits, draining)
}

fn member_at(
    addr: Option<SocketAddr>,
    name: &str,
    hits: &Arc<AtomicU64>,
    draining: &Arc<AtomicBool>,
) -> Backend {
    let (name, hits, draining) = (name.to_string(), Arc::clone(hits), Arc::clone(draining));
    let options = BackendOptions {
        addr,
        ..Default::default()
    };
    Backend::start_with(options, move |req| {
        let head = req.method == "HEAD";
        if draining.load(SeqCst) {
            let body: &[u8] = if head { b"" } else { b"shutting down\n" };
            let mut answer = response(503, "Service Unavailable", &[("Connection", "close")], body);
            if head {
                answer = head_only(answer, 14);
            }
            return Reply::RawThenClose(answer);
        }
        if req.path != HEALTH {
            hits.fetch_add(1, SeqCst);
        }
        let answer = response(200, "OK", &[], name.as_bytes());
        Reply::Raw(if head {
            head_only(answer, name.len())
        } else {
            answer
        })
    })
}

/// `answer` without its body, announcing `len` bytes (a HEAD's answer).
fn head_only(answer: Vec<u8>, len: usize) -> Vec<u8> {
    let text = String::from_utf8(answer).unwrap();
    let head_end = text.find("\r\n\r\n").unwrap();
    let head = &text[..head_end];
    let head = match head.rfind("Content-Length:") {
        Some(i) => format!("{}Content-Length: {len}", &head[..i]),
        None => head.to_string(),
    };
    format!("{head}\r\n\r\n").into_bytes()
}

/// corelb with `toml` as its config file, its admin API on loopback and
/// two workers.
fn proxy_with(toml: &str) -> (Proxy, TempDir) {
    let dir = TempDir::new("rolling");
    let path = dir.path().join("corelb.toml");
    std::fs::write(&path, toml).unwrap();
    let proxy = Proxy::start(&[
        "--config",
        path.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
        "--threads",
        "2",
    ]);
    (proxy, dir)
}

/// What a rolling deploy of three backends cost.
struct Deploy {
    gets: Counts,
    heads: Counts,
    failures: Vec<String>,
    /// Per backend: from its return to its first request.
    returns: Vec<Duration>,
    retries: u64,
}

/// Three backends behind corelb (checks every [`INTERVAL`]; the pool's
/// `retry_on` as given), under keep-alive GET and HEAD load, restarted
/// one after another: `503` and closing for 1 s, gone for 2 s, back on
/// the same address; the next one rolls once the last has traffic again.
fn rolling_deploy(retry_on: &str) -> Deploy {
    let hits: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let draining: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut servers: Vec<Option<Backend>> = (0..3)
        .map(|i| Some(member(&format!("b{i}"), &hits[i], &draining[i])))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().flatten().map(Backend::addr).collect();
    let backends: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    let toml = format!(
        "health_interval = \"{}ms\"\n\
         [[pools]]\nname = \"default\"\nhealth_path = \"{HEALTH}\"\n{retry_on}\n\
         backends = [{}]\n",
        INTERVAL.as_millis(),
        backends.join(", ")
    );
    let (proxy, _dir) = proxy_with(&toml);
    let admin = proxy.admin_addr();
    let gets = Load::start(proxy.addr(), 6);
    let heads = Load::start_head(proxy.addr(), 2);
    gets.wait_more(2_000);
    heads.wait_more(500);

    let mut returns = Vec::new();
    for i in 0..3 {
        draining[i].store(true, SeqCst);
        thread::sleep(Duration::from_secs(1));
        drop(servers[i].take());
        thread::sleep(Duration::from_secs(2));
        let back = Arc::new(AtomicU64::new(0));
        draining[i].store(false, SeqCst);
        let returned = Instant::now();
        servers[i] = Some(member_at(
            Some(addrs[i]),
            &format!("b{i}"),
            &back,
            &draining[i],
        ));
        timed("the restarted backend gets traffic", || {
            back.load(SeqCst) > 0
        });
        returns.push(returned.elapsed());
        thread::sleep(Duration::from_millis(300));
    }
    gets.wait_more(1_000);
    let retries = metric(admin, "corelb_retries_total{result=\"sent\"}") as u64;
    let (gets, mut failures) = gets.finish_with_failures();
    let (heads, head_failures) = heads.finish_with_failures();
    failures.extend(head_failures);
    Deploy {
        gets,
        heads,
        failures,
        returns,
        retries,
    }
}

#[test]
fn a_rolling_deploy_costs_no_request_with_retry_on_and_some_without() {
    let _turn = exclusive();
    let with = rolling_deploy("retry_on = [502, 503, 504]");
    let without = rolling_deploy("");
    for (what, d) in [("with retry_on", &with), ("without", &without)] {
        println!(
            "rolling deploy {what}: {} GETs ({} not 200), {} HEADs ({} not 200), \
             {} retries; traffic again {:?} after each return (bound {:?})",
            d.gets.answered,
            d.gets.not_ok(),
            d.heads.answered,
            d.heads.not_ok(),
            d.retries,
            d.returns,
            return_bound()
        );
    }
    assert_eq!(
        with.gets.not_ok() + with.heads.not_ok(),
        0,
        "GETs {:?}, HEADs {:?}: {:?}",
        with.gets,
        with.heads,
        with.failures
    );
    assert!(with.retries > 0, "no answer was retried");
    for (i, took) in with.returns.iter().enumerate() {
        assert!(
            *took <= return_bound(),
            "backend {i} waited {took:?} for traffic after its return"
        );
    }
    // The same deploy without `retry_on` hands the 503s to clients.
    assert!(
        without.gets.status(503) + without.heads.status(503) > 0,
        "no 503 reached a client without retry_on: GETs {:?}, HEADs {:?}",
        without.gets,
        without.heads
    );
}

/// corelb in front of three backends with checks every [`INTERVAL`] and
/// nothing else set (the down interval is the interval by default).
fn checked_proxy(addrs: &[SocketAddr]) -> Proxy {
    let interval = format!("{}ms", INTERVAL.as_millis());
    let mut args = vec![
        "--admin".to_string(),
        "127.0.0.1:0".into(),
        "--threads".into(),
        "2".into(),
        "--health-path".into(),
        HEALTH.into(),
        "--health-interval".into(),
        interval,
    ];
    for a in addrs {
        args.push("--backend".into());
        args.push(a.to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Proxy::start(&refs)
}

#[test]
fn a_restarted_backend_gets_traffic_within_rise_intervals_of_its_return() {
    let _turn = exclusive();
    let hits: Vec<_> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let never_draining = Arc::new(AtomicBool::new(false));
    let a = member("a", &hits[0], &never_draining);
    let b = member("b", &hits[1], &never_draining);
    let mut c = Some(member("c", &hits[2], &never_draining));
    let c_addr = c.as_ref().map(Backend::addr).unwrap();
    let proxy = checked_proxy(&[a.addr(), b.addr(), c_addr]);
    let admin = proxy.admin_addr();
    let load = Load::start(proxy.addr(), 6);
    load.wait_more(2_000);

    // 1. Away for less than fall × interval: the load's failures eject
    // it at once, the checks never take it down. Before, it then waited
    // out the ejection time (5 s) however its checks went.
    drop(c.take());
    let ejected_after = timed("c is ejected by the failures", || {
        state(admin, c_addr) == "open"
    });
    let back = Arc::new(AtomicU64::new(0));
    c = Some(member_at(Some(c_addr), "c", &back, &never_draining));
    let short_return = timed("c gets traffic after a short absence", || {
        back.load(SeqCst) > 0
    });
    let log = proxy.log();
    let short_passed = log.contains(&format!(
        "backend {c_addr}: health check passed {RISE} times in a row since its ejection"
    ));

    // 2. Away long enough for the checks to take it down as well (after
    // the failures ejected it). Before, a backend down was probed every
    // 5 s whatever the interval.
    drop(c.take());
    let down_after = timed("c is marked down by its checks", || {
        state(admin, c_addr) == "down"
    });
    let back = Arc::new(AtomicU64::new(0));
    let _c = member_at(Some(c_addr), "c", &back, &never_draining);
    let long_return = timed("c gets traffic after being down", || back.load(SeqCst) > 0);
    let up_after = timed("c is up", || state(admin, c_addr) == "up");

    load.wait_more(1_000);
    let (counts, failures) = load.finish_with_failures();
    println!(
        "restarted backend: ejected {ejected_after:?} after it went away; traffic again \
         {short_return:?} after a short absence (checks never down), {long_return:?} after \
         being down ({down_after:?} to notice; up in /status {up_after:?} later); bound {:?}; \
         {} GETs, {} not 200",
        return_bound(),
        counts.answered,
        counts.not_ok()
    );
    assert!(
        short_passed,
        "the ejection was not lifted by the checks: {log}"
    );
    for took in [short_return, long_return] {
        assert!(
            took <= return_bound(),
            "the restarted backend waited {took:?} for traffic (bound {:?})",
            return_bound()
        );
    }
    assert_eq!(counts.not_ok(), 0, "{counts:?}: {failures:?}");
}

#[test]
fn a_503_answer_ends_its_upstream_connection() {
    // A backend shutting down answers 503 without `Connection: close`:
    // the next request must not go down that same connection.
    let answered = AtomicU64::new(0);
    let backend = Backend::start(move |_| {
        if answered.fetch_add(1, SeqCst) == 0 {
            Reply::Raw(response(503, "Service Unavailable", &[], b"busy\n"))
        } else {
            Reply::ok("ok")
        }
    });
    let addr = backend.addr().to_string();
    let proxy = Proxy::start(&["--backend", &addr]);
    let mut client = proxy.client();
    assert_eq!(
        client.get("/").status,
        503,
        "relayed as it is without retry_on"
    );
    assert_eq!(client.get("/").status, 200);
    let conns: Vec<usize> = backend.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_ne!(
        conns[0], conns[1],
        "the request after a 503 reused its connection"
    );
}

/// A backend answering every request `status` with `name` as the body.
fn answering(status: u16, name: &'static str) -> Backend {
    Backend::start(move |_| Reply::Raw(response(status, "Whatever", &[], name.as_bytes())))
}

#[test]
fn retry_on_moves_only_replayable_requests_and_the_last_answer_is_the_clients() {
    let broken = answering(503, "broken");
    let fine = answering(200, "fine");
    let (broken_addr, fine_addr) = (broken.addr().to_string(), fine.addr().to_string());
    // No ejection: every request meets the broken backend in turn; and
    // a retry budget that lets each of these few retries through.
    let proxy = Proxy::start(&[
        "--backend",
        &broken_addr,
        "--backend",
        &fine_addr,
        "--retry-on",
        "502,503,504",
        "--max-fails",
        "0",
        "--retry-budget",
        "100%",
    ]);
    let mut client = proxy.client();
    for _ in 0..6 {
        let r = client.get("/");
        assert_eq!((r.status, r.body_str()), (200, "fine".to_string()));
        client.send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(client.read_head_response().status, 200);
    }
    // A POST may not be sent twice: its 503 is the client's.
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            client.send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi");
            client.read_response().status
        })
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        broken.request_count() >= 6 + 2,
        "the broken backend was not tried"
    );

    // Every backend answers 503: the last try's answer goes to the client
    // (a backend's, not one corelb made up), after one retry (--retries 1).
    let other = answering(503, "other");
    let other_addr = other.addr().to_string();
    let proxy = Proxy::start(&[
        "--backend",
        &broken_addr,
        "--backend",
        &other_addr,
        "--retry-on",
        "503",
        "--retries",
        "1",
        "--max-fails",
        "0",
    ]);
    let before = (broken.request_count(), other.request_count());
    let r = proxy.client().get("/");
    assert_eq!(r.status, 503);
    assert!(
        ["broken", "other"].contains(&r.body_str().as_str()),
        "{}",
        r.body_str()
    );
    let tries = broken.request_count() + other.request_count() - before.0 - before.1;
    assert_eq!(tries, 2, "one try and one retry");
}
