//! File discovery: a backends file replaced the two ways deploy tools do
//! it — a rename over it, and a Kubernetes ConfigMap's `..data` symlink
//! swap — under keep-alive load, with no failed request; a file that does
//! not parse changes nothing and is reported with its line.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::admin::{pool_addrs, status};
use common::dns::{loopback_backends, traffic_reaches};
use common::load::Load;
use common::{wait_until, Backend, Proxy, TempDir};

/// The JSON list of `backends[i]` for each `i` in `which`.
fn list(backends: &[Backend], which: &[usize]) -> String {
    let entries: Vec<String> = which
        .iter()
        .map(|&i| format!("  {{\"addr\": \"{}\", \"weight\": 1}}", backends[i].addr()))
        .collect();
    format!("[\n{}\n]\n", entries.join(",\n"))
}

/// Write `text` next to `path` and rename it over `path` (atomic).
fn rename_over(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn proxy(file: &Path) -> Proxy {
    Proxy::start(&[
        "--backends-file",
        file.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ])
}

/// Wait until the pool is exactly `backends[i]` for `which`; how long.
fn pool_becomes(admin: SocketAddr, backends: &[Backend], which: &[usize]) -> Duration {
    let start = Instant::now();
    let want: Vec<String> = which
        .iter()
        .map(|&i| backends[i].addr().to_string())
        .collect();
    wait_until(&format!("pool {want:?}"), || pool_addrs(admin) == want);
    start.elapsed()
}

/// Under `load`: `backends[gone]` gets no new request.
fn no_new_requests(load: &Load, backend: &Backend) {
    thread::sleep(Duration::from_millis(200)); // requests already sent land
    let last = backend.request_count();
    load.wait_more(300);
    assert_eq!(
        backend.request_count(),
        last,
        "{} got new requests",
        backend.addr()
    );
}

#[test]
fn a_rename_over_the_file_moves_traffic_and_a_broken_file_changes_nothing() {
    let (backends, _) = loopback_backends(2);
    let dir = TempDir::new("backends-file");
    let file = dir.path().join("backends.json");
    std::fs::write(&file, list(&backends, &[0])).unwrap();
    let proxy = proxy(&file);
    let admin = proxy.admin_addr();
    let load = Load::start(proxy.addr(), 4);
    traffic_reaches(&backends[0], 0);
    assert_eq!(status(admin)["pools"][0]["backends"][0]["origin"], "file");

    rename_over(&file, &list(&backends, &[0, 1]));
    let added = traffic_reaches(&backends[1], 0);
    rename_over(&file, &list(&backends, &[1]));
    let removed = pool_becomes(admin, &backends, &[1]);
    no_new_requests(&load, &backends[0]);

    // A broken file: the pool stays as it was, and /status says where.
    rename_over(&file, "[\n  {\"addr\": \"127.0.0.2:1\",}\n]\n");
    wait_until("the bad file is reported", || {
        status(admin)["discovery"][0]["result"] == "invalid"
    });
    let doc = status(admin)["discovery"][0].clone();
    let detail = doc["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("backends.json:2:"), "{doc}");
    assert!(detail.contains("keeping the last good set"), "{doc}");
    // The warning is written as the report is made; it reaches this
    // test's copy of corelb's stderr through a pipe, a moment later.
    wait_until("the log names the file and its line", || {
        proxy.log().contains("backends.json:2:")
    });
    let seen = backends[1].request_count();
    load.wait_more(300);
    traffic_reaches(&backends[1], seen);
    assert_eq!(pool_addrs(admin), [backends[1].addr().to_string()]);

    let (counts, failures) = load.finish_with_failures();
    assert_eq!(counts.not_ok(), 0, "{counts:?} {failures:?}");
    eprintln!(
        "measured: renamed-in address had traffic after {added:?}, renamed-out address left \
         after {removed:?}; {} requests, {} not OK",
        counts.answered,
        counts.not_ok()
    );
}

#[test]
fn a_configmap_symlink_swap_is_seen() {
    // As the kubelet lays out a ConfigMap volume: backends.json ->
    // ..data/backends.json, ..data -> ..<timestamp>; an update writes a new
    // timestamped directory and renames a new ..data link over the old.
    let (backends, _) = loopback_backends(2);
    let dir = TempDir::new("configmap");
    let version = |name: &str, which: &[usize]| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("backends.json"), list(&backends, which)).unwrap();
    };
    version("..2026_12_07_1", &[0]);
    std::os::unix::fs::symlink("..2026_12_07_1", dir.path().join("..data")).unwrap();
    let file = dir.path().join("backends.json");
    std::os::unix::fs::symlink("..data/backends.json", &file).unwrap();
    let proxy = proxy(&file);
    let admin = proxy.admin_addr();
    let load = Load::start(proxy.addr(), 4);
    traffic_reaches(&backends[0], 0);

    let swap = |name: &str| {
        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(name, &tmp).unwrap();
        std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
    };
    version("..2026_12_07_2", &[1]);
    swap("..2026_12_07_2");
    let moved = pool_becomes(admin, &backends, &[1]);
    traffic_reaches(&backends[1], 0);
    no_new_requests(&load, &backends[0]);

    let (counts, failures) = load.finish_with_failures();
    assert_eq!(counts.not_ok(), 0, "{counts:?} {failures:?}");
    eprintln!(
        "measured: ConfigMap swap applied after {moved:?}; {} requests, {} not OK",
        counts.answered,
        counts.not_ok()
    );
}
