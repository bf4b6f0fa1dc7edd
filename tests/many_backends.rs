//! An idle corelb with 10 000 backends (issue 19 §7): its memory stays
//! bounded (the status history is sized by what the dashboard draws, not
//! by time), `/status` is a small summary with paged backend detail, and
//! a reload down to two backends gives the memory back.
//!
//! The backends are addresses nobody listens on and no health check
//! probes them: this is about the cost of having them, not using them.
//! CPU use is measured by `scripts/measure-backends.sh`, not asserted here.

#[macro_use]
mod common;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const BACKENDS: usize = 10_000;

fn config(backends: usize) -> String {
    let mut text = String::from("[[pools]]\nname = \"default\"\nbackends = [\n");
    for i in 0..backends {
        text.push_str(&format!(
            "  {{ addr = \"127.0.{}.{}:9\" }},\n",
            i / 250 + 1,
            i % 250 + 1
        ));
    }
    text.push_str("]\n");
    text
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// `GET path` on the admin API: status and body.
fn admin_get(admin: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut c = Client::connect(admin);
    c.send(format!(
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    ));
    let r = c.read_response();
    (r.status, r.body)
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("/status is JSON")
}

#[test]
fn ten_thousand_idle_backends_cost_bounded_memory_and_a_small_status() {
    let dir = TempDir::new("many-backends");
    let path = dir.path().join("corelb.toml");
    std::fs::write(&path, config(BACKENDS)).unwrap();
    let path_arg = path.to_str().unwrap();
    let proxy = Proxy::start(&[
        "--config",
        path_arg,
        "--admin",
        "127.0.0.1:0",
        "--threads",
        "2",
    ]);
    let admin = proxy.admin_addr();

    // The summary: small, with counts over every backend.
    let (code, body) = admin_get(admin, "/status");
    assert_eq!(code, 200);
    assert!(
        body.len() < 64 * 1024,
        "/status is {} bytes with {BACKENDS} backends",
        body.len()
    );
    let doc = json(&body);
    assert_eq!(doc["pools"][0]["backends_total"], BACKENDS);
    assert_eq!(doc["pools"][0]["backends_up"], BACKENDS);
    assert_eq!(
        doc["pools"][0]["backends"].as_array().map(Vec::len),
        Some(20)
    );

    // Paged detail: the last page is partial, and starts where asked.
    let (code, body) = admin_get(admin, "/status?pool=default&offset=9990&limit=20");
    assert_eq!(code, 200);
    let page = json(&body);
    let rows = page["pools"][0]["backends"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 10, "{page}");
    assert_eq!(rows[0]["addr"], "127.0.40.241:9");
    assert_eq!(page["pools"][0]["offset"], 9990);
    let (code, body) = admin_get(admin, "/status?backends=0");
    assert_eq!(code, 200);
    assert_eq!(json(&body)["pools"][0]["backends"], serde_json::json!([]));
    assert_eq!(admin_get(admin, "/status?pool=nope").0, 404);
    assert_eq!(admin_get(admin, "/status?limit=many").0, 400);

    // Memory: bounded, and not growing with time. (Before, the history
    // grew by about 3 MB a second to a gigabyte.)
    let early = rss_mib(proxy.pid());
    thread::sleep(Duration::from_secs(20));
    let later = rss_mib(proxy.pid());
    assert!(later < 200, "RSS is {later} MiB with {BACKENDS} backends");
    assert!(
        later < early + 25,
        "RSS grew from {early} MiB to {later} MiB in 20 s with no traffic"
    );

    // Reload down to two backends: the memory comes back.
    std::fs::write(&path, config(2)).unwrap();
    proxy.signal("HUP");
    wait_until("the reload is logged", || {
        proxy.log().contains("SIGHUP: reloaded")
    });
    let bound = later / 2;
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut now = rss_mib(proxy.pid());
    while now > bound && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(200));
        now = rss_mib(proxy.pid());
    }
    assert!(
        now <= bound,
        "RSS is {now} MiB 10 s after reloading from {BACKENDS} backends to 2 (was {later} MiB)"
    );
}
