//! Operating corelb with real processes, signals and clients: graceful
//! stop, hot reload and an overlapping restart under load (counting every
//! failed request), a busy address refused, metrics parsed by the
//! Prometheus reference parser, and the runtime API.

#[macro_use]
mod common;

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::load::Load;
use common::*;

fn config_file(backends: &[&Backend]) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\" }}", b.addr()))
        .collect();
    format!(
        "[[pools]]\nname = \"default\"\nbackends = [{}]\n",
        list.join(", ")
    )
}

#[test]
fn reload_under_load_swaps_backends_without_failing_a_request() {
    let (a, b, c) = (
        Backend::echo_name("a"),
        Backend::echo_name("b"),
        Backend::echo_name("c"),
    );
    let dir = TempDir::new("reload");
    let path = dir.path().join("corelb.toml");
    std::fs::write(&path, config_file(&[&a, &b])).unwrap();
    let proxy = Proxy::start(&[
        "--config",
        path.to_str().unwrap(),
        "--admin",
        "off",
        "--threads",
        "2",
    ]);
    let load = Load::start(proxy.addr(), 8);
    load.wait_more(4_000);

    // Add c, remove a.
    std::fs::write(&path, config_file(&[&b, &c])).unwrap();
    proxy.signal("HUP");
    wait_until("the reload is logged", || {
        proxy.log().contains("SIGHUP: reloaded")
    });
    // Requests already sent to `a` finish; then it gets nothing.
    load.wait_more(500);
    let a_after_swap = a.request_count();
    let c_before = c.request_count();
    load.wait_more(4_000);
    assert_eq!(
        a.request_count(),
        a_after_swap,
        "the removed backend still gets requests"
    );
    assert!(
        c.request_count() > c_before,
        "the added backend gets no traffic"
    );

    // A broken file changes nothing.
    std::fs::write(
        &path,
        "[[pools]]\nname = \"default\"\nbackends = [{ addr = \"nowhere:x\" }]\n",
    )
    .unwrap();
    proxy.signal("HUP");
    wait_until("the failed reload is logged", || {
        proxy.log().contains("reload failed")
    });
    let c_before = c.request_count();
    load.wait_more(3_000);
    let (counts, failures) = load.finish_with_failures();
    assert_eq!(
        counts.not_ok(),
        0,
        "failed requests: {counts:?}; first failures: {failures:?}"
    );
    let answered = counts.status(200);
    assert!(answered >= 10_000, "only {answered} requests");
    assert!(
        c.request_count() > c_before,
        "the old configuration was not kept"
    );
    assert!(
        proxy.log().contains(&format!("{}", path.display())),
        "the reason names the file: {}",
        proxy.log()
    );
}

#[test]
fn sighup_without_a_config_file_keeps_running() {
    let backend = Backend::echo_name("a");
    let proxy = Proxy::start(&["--backend", &backend.addr().to_string(), "--admin", "off"]);
    proxy.signal("HUP");
    wait_until("the reload is logged", || {
        proxy.log().contains("nothing to re-read")
    });
    assert_eq!(proxy.client().get("/").status, 200);
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let backend = Backend::start(|req| {
        if req.path == "/slow" {
            Reply::After(Duration::from_secs(2), Box::new(Reply::ok("slow done")))
        } else {
            Reply::ok("quick")
        }
    });
    let dir = TempDir::new("drain");
    let log = dir.path().join("access.log");
    let mut proxy = Proxy::start(&[
        "--backend",
        &backend.addr().to_string(),
        "--admin",
        "off",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(proxy.client().get("/before").status, 200);
    let addr = proxy.addr();
    let slow = thread::spawn(move || Client::connect(addr).get("/slow"));
    wait_until("the slow request reaches the backend", || {
        backend.request_count() == 2
    });
    proxy.signal("TERM");
    wait_until("the drain is logged", || {
        proxy.log().contains("graceful stop: draining")
    });
    thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "new connections are still accepted while draining"
    );
    let response = slow.join().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_str(), "slow done");
    assert!(
        response.says_close(),
        "the last response should say Connection: close"
    );
    proxy.stopped = true;
    assert_eq!(
        proxy.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        proxy.log()
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(lines.contains("\"GET /before HTTP/1.1\" 200"), "{lines}");
    assert!(lines.contains("\"GET /slow HTTP/1.1\" 200"), "{lines}");
}

#[test]
fn a_busy_address_is_refused_and_takeover_loses_no_request() {
    let backend = Backend::echo_name("a");
    let baddr = backend.addr().to_string();
    let mut old = Proxy::start(&["--backend", &baddr, "--admin", "off"]);
    let listen = old.addr().to_string();

    let (code, stderr) =
        Proxy::start_failing(&["--listen", &listen, "--backend", &baddr, "--admin", "off"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&listen) && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&old.pid().to_string()),
        "the message names the other process: {stderr}"
    );

    let load = Load::start(old.addr(), 8);
    load.wait_more(3_000);
    let new = Proxy::start(&[
        "--listen",
        &listen,
        "--takeover",
        "--backend",
        &baddr,
        "--admin",
        "off",
    ]);
    load.wait_more(2_000);
    old.signal("TERM");
    old.stopped = true;
    assert_eq!(
        old.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        old.log()
    );
    load.wait_more(3_000);
    let (counts, failures) = load.finish_with_failures();
    assert_eq!(
        counts.not_ok(),
        0,
        "failed requests: {counts:?}; first failures: {failures:?}"
    );
    let answered = counts.status(200);
    assert!(answered >= 8_000);
    assert_eq!(new.client().get("/").status, 200);
}

/// What the admin API wants of a call that changes state.
const JSON: &str = "Content-Type: application/json";

/// A call that changes state: `method` with a JSON content type (as the
/// admin API requires) and `args`, with curl; (status, body).
fn change(method: &str, args: &[&str]) -> (u16, String) {
    let mut all = vec!["-X", method, "-H", JSON];
    all.extend_from_slice(args);
    curl(&all)
}

/// `GET http://admin/path` with curl; (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn metrics_count_exactly_what_was_sent() {
    require_tool("curl");
    require_tool("python3");
    let backend = Backend::echo_name("a");
    let proxy = Proxy::start(&[
        "--backend",
        &backend.addr().to_string(),
        "--admin",
        "127.0.0.1:0",
        "--threads",
        "2",
    ]);
    let admin = proxy.admin_addr();
    const N: usize = 137;
    let mut client = proxy.client();
    for i in 0..N {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    // One request corelb answers itself.
    let mut bad = proxy.client();
    bad.send(b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(bad.read_response().status, 400);
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1]).read().decode()
values = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
        values[key] = s.value
for k, v in sorted(values.items()):
    print(k, v)
"#;
    let url = format!("http://{admin}/metrics");
    let mut values = String::new();
    wait_until("metrics parse", || {
        let out = Command::new("python3")
            .args(["-c", script, &url])
            .output()
            .unwrap();
        values = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the reference parser refused /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        true
    });
    let get = |key: &str| -> f64 {
        values
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{key} missing from\n{values}"))
    };
    let b = backend.addr().to_string();
    assert_eq!(
        get(&format!(
            "corelb_requests_total{{backend={b},class=2xx,pool=default}}"
        )),
        N as f64
    );
    assert_eq!(get("corelb_responses_total{class=2xx}"), N as f64);
    assert_eq!(get("corelb_responses_total{class=4xx}"), 1.0);
    assert_eq!(
        get("corelb_generated_responses_total{reason=client_error,status=400}"),
        1.0
    );
    assert_eq!(
        get(&format!("corelb_backend_ttfb_seconds_count{{backend={b}}}")),
        N as f64
    );
    assert_eq!(
        get("corelb_request_duration_seconds_count{}"),
        (N + 1) as f64
    );
    assert_eq!(
        get("corelb_upstream_pool_total{result=hit}")
            + get("corelb_upstream_pool_total{result=miss}"),
        N as f64
    );
    assert_eq!(get("corelb_config_generation{}"), 1.0);
    assert_eq!(backend.request_count(), N);
}

#[test]
fn the_runtime_api_adds_drains_weighs_and_removes_backends() {
    require_tool("curl");
    let (a, b) = (Backend::echo_name("a"), Backend::echo_name("b"));
    let proxy = Proxy::start(&[
        "--backend",
        &a.addr().to_string(),
        "--admin",
        "127.0.0.1:0",
        "--admin-token",
        "s3cret",
    ]);
    let admin = format!("http://{}", proxy.admin_addr());
    let auth = "Authorization: Bearer s3cret";
    let pools = format!("{admin}/pools/default/backends");
    let body = format!(r#"{{"addr": "{}", "weight": 2}}"#, b.addr());

    // Refused calls change nothing.
    assert_eq!(change("POST", &[&pools, "-d", &body]).0, 401);
    assert_eq!(
        change(
            "POST",
            &[&pools, "-H", "Authorization: Bearer wrong", "-d", &body]
        )
        .0,
        401
    );
    let (status, text) = change("POST", &[&pools, "-H", auth, "-d", "{bad"]);
    assert_eq!(status, 400);
    assert!(text.contains("\"error\""), "{text}");
    assert_eq!(curl(&["-X", "GET", &format!("{admin}/reload")]).0, 405);
    assert_eq!(curl(&[&format!("{admin}/nope")]).0, 404);
    let (_, status_json) = curl(&[&format!("{admin}/status")]);
    assert!(status_json.contains("\"generation\": 1"), "{status_json}");

    // Add: b takes traffic on every core within a request.
    assert_eq!(change("POST", &[&pools, "-H", auth, "-d", &body]).0, 200);
    let mut client = proxy.client();
    for _ in 0..30 {
        assert_eq!(client.get("/").status, 200);
    }
    assert!(b.request_count() > 0, "the added backend got nothing");
    let (_, status_json) = curl(&[&format!("{admin}/status")]);
    assert!(status_json.contains(&b.addr().to_string()), "{status_json}");

    // Weight.
    let weight_url = format!("{pools}/{}/weight", b.addr());
    assert_eq!(
        change("PUT", &[&weight_url, "-H", auth, "-d", r#"{"weight": 0}"#]).0,
        400
    );
    assert_eq!(
        change("PUT", &[&weight_url, "-H", auth, "-d", r#"{"weight": 5}"#]).0,
        200
    );
    let (_, status_json) = curl(&[&format!("{admin}/status")]);
    assert!(status_json.contains("\"weight\": 5"), "{status_json}");

    // Drain a: no new requests to it.
    let drain = format!("{pools}/{}/drain", a.addr());
    assert_eq!(change("POST", &[&drain, "-H", auth]).0, 200);
    let a_before = a.request_count();
    for _ in 0..20 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(
        a.request_count(),
        a_before,
        "a drained backend got requests"
    );
    let (_, status_json) = curl(&[&format!("{admin}/status")]);
    assert!(status_json.contains("\"draining\""), "{status_json}");
    assert_eq!(
        change(
            "POST",
            &[&format!("{pools}/{}/enable", a.addr()), "-H", auth]
        )
        .0,
        200
    );

    // Remove b.
    assert_eq!(
        change("DELETE", &[&format!("{pools}/{}", b.addr()), "-H", auth]).0,
        200
    );
    let b_before = b.request_count();
    for _ in 0..20 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(
        b.request_count(),
        b_before,
        "a removed backend got requests"
    );
    assert_eq!(
        change("DELETE", &[&format!("{pools}/{}", b.addr()), "-H", auth]).0,
        404
    );
}

#[test]
fn a_drained_backend_finishes_its_in_flight_request() {
    let slow =
        Backend::start(|_| Reply::After(Duration::from_millis(1500), Box::new(Reply::ok("slow"))));
    let other = Backend::echo_name("other");
    let proxy = Proxy::start(&[
        "--backend",
        &slow.addr().to_string(),
        "--backend",
        &other.addr().to_string(),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = proxy.admin_addr();
    let addr = proxy.addr();
    // Round-robin: the first request goes to the first backend.
    let in_flight = thread::spawn(move || Client::connect(addr).get("/"));
    wait_until("the request reaches the slow backend", || {
        slow.request_count() == 1
    });
    let drain = format!(
        "http://{admin}/pools/default/backends/{}/drain",
        slow.addr()
    );
    assert_eq!(change("POST", &[&drain]).0, 200);
    for _ in 0..10 {
        assert_eq!(proxy.client().get("/").body_str(), "other");
    }
    assert_eq!(in_flight.join().unwrap().body_str(), "slow");
    assert_eq!(slow.request_count(), 1);
}
