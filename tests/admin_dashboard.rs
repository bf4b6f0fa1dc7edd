//! The admin dashboard (`GET /` of `--admin`) in a real headless Chromium.
//!
//! Three backends behind corelb, steady keep-alive load through it, then the
//! page is loaded in `chromium --headless --dump-dom` with a virtual time
//! budget: Chromium runs the page's one-second refresh loop several times
//! (virtual time stands still while a fetch is in flight, so every refresh
//! really reaches `/status`) and prints the DOM as it is at the end. Every
//! backend must have its row (`data-backend="ADDR"`) with a non-zero
//! requests/s (`class="rps"`).
//!
//! `CORELB_DASHBOARD_SCREENSHOT=1` also writes `docs/dashboard.png`.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::chromium::{chromium, dump_dom};
use common::{Backend, Client, Proxy, TempDir};

/// Virtual time each page load gets: about five refreshes.
const VIRTUAL_TIME_MS: u32 = 5000;
/// The load stops by itself after this, whatever happens to the test.
const LOAD_LIMIT: Duration = Duration::from_secs(180);
/// Screenshot size.
const WINDOW: &str = "1280,460";

// ---------------------------------------------------------------------------
// Load

/// Keep-alive GETs through the proxy from a background thread, paced so the
/// proxy, the backends and Chromium share the machine.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    fn start(proxy: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let sent = Arc::clone(&sent);
            thread::spawn(move || {
                let deadline = Instant::now() + LOAD_LIMIT;
                let mut client = Client::connect(proxy);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let res = client.get("/dash");
                    assert_eq!(res.status, 200, "load request failed: {res:?}");
                    sent.fetch_add(1, Ordering::Relaxed);
                    if res.says_close() {
                        client = Client::connect(proxy);
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Load {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stop the load; fails the test if a load request failed.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.sent()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// /status, read directly

fn status(admin: SocketAddr) -> serde_json::Value {
    let res = common::admin::get(admin, "/status");
    assert_eq!(res.status, 200, "GET /status: {res:?}");
    serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| panic!("/status is not JSON ({e}): {}", res.body_str()))
}

/// `(addr, requests_per_second, history length)` of every backend.
fn backend_rates(status: &serde_json::Value) -> Vec<(String, f64, usize)> {
    let pools = status["pools"]
        .as_array()
        .unwrap_or_else(|| panic!("/status has no pools array: {status}"));
    let mut out = Vec::new();
    for pool in pools {
        for b in pool["backends"].as_array().into_iter().flatten() {
            let addr = b["addr"]
                .as_str()
                .unwrap_or_else(|| panic!("backend without addr: {b}"))
                .to_string();
            let rps = b["requests_per_second"].as_f64().unwrap_or(0.0);
            let history = b["history"].as_array().map_or(0, Vec::len);
            out.push((addr, rps, history));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Chromium

fn screenshot(url: &str, to: &std::path::Path) {
    chromium(&[
        format!("--virtual-time-budget={VIRTUAL_TIME_MS}"),
        format!("--window-size={WINDOW}"),
        format!("--screenshot={}", to.display()),
        url.to_string(),
    ]);
}

// ---------------------------------------------------------------------------
// Reading the dumped DOM (the page's own markup, not a general HTML parser)

/// `html` without the contents of `<script>` and `<style>` elements, whose
/// source mentions the very attributes the checks look for.
fn without_code(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    loop {
        let next = ["<script", "<style"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| (i, *open)))
            .min();
        let Some((i, open)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        let close = format!("</{}>", &open[1..]);
        match rest[i..].find(&close) {
            Some(j) => rest = &rest[i + j + close.len()..],
            None => return out,
        }
    }
}

/// The value of attribute `name` on the `<body>` tag.
fn body_attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The text of the `class="rps"` cell in the row `data-backend="addr"`.
fn row_rps<'a>(dom: &'a str, addr: &str) -> Option<&'a str> {
    let key = format!("data-backend=\"{addr}\"");
    let start = dom.find(&key)?;
    let row = &dom[start..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    let cell = "class=\"rps\">";
    let at = row.find(cell)? + cell.len();
    Some(row[at..at + row[at..].find('<')?].trim())
}

// ---------------------------------------------------------------------------

#[test]
fn dashboard_shows_live_traffic_to_every_backend() {
    common::require_tool("chromium");

    let backends = [
        Backend::echo_name("a"),
        Backend::echo_name("b"),
        Backend::echo_name("c"),
    ];
    let addrs: Vec<String> = backends.iter().map(|b| b.addr().to_string()).collect();
    let proxy = Proxy::start(&[
        "--backend",
        &addrs[0],
        "--backend",
        &addrs[1],
        "--backend",
        &addrs[2],
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = proxy.admin_addr();
    let url = format!("http://{admin}/");

    let page = common::admin::get(admin, "/");
    assert_eq!(page.status, 200, "GET / on the admin address: {page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "the dashboard is not served as text/html: {page:?}"
    );
    assert!(
        page.body_str().contains("data-backend"),
        "GET / on the admin address is not the dashboard: {}",
        page.body_str()
    );

    let load = Load::start(proxy.addr());

    // The server side first: every backend has a rate in /status.
    common::wait_until("/status to show traffic to every backend", || {
        thread::sleep(Duration::from_millis(100));
        let rates = backend_rates(&status(admin));
        addrs
            .iter()
            .all(|a| rates.iter().any(|(addr, rps, _)| addr == a && *rps > 0.0))
    });
    let mut listed: Vec<String> = backend_rates(&status(admin))
        .into_iter()
        .map(|(addr, _, _)| addr)
        .collect();
    listed.sort();
    let mut expected = addrs.clone();
    expected.sort();
    assert_eq!(listed, expected, "/status lists other backends");

    // Then the page, as a browser renders it.
    let dom = dump_dom(&url, VIRTUAL_TIME_MS);
    let html = without_code(&dom);
    let context = || format!("dumped DOM:\n{dom}");
    assert_eq!(
        body_attr(&html, "data-conn"),
        Some("live"),
        "the dashboard is not live; {}",
        context()
    );
    let updates: u32 = body_attr(&html, "data-updates")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        updates >= 2,
        "the dashboard refreshed {updates} times in {VIRTUAL_TIME_MS} ms of virtual time; {}",
        context()
    );
    for addr in &addrs {
        let text = row_rps(&html, addr)
            .unwrap_or_else(|| panic!("no row with requests/s for backend {addr}; {}", context()));
        let rps: f64 = text
            .replace(',', "")
            .parse()
            .unwrap_or_else(|_| panic!("backend {addr}: requests/s {text:?} is not a number"));
        assert!(
            rps > 0.0,
            "backend {addr} shows {rps} requests/s; {}",
            context()
        );
    }

    if std::env::var("CORELB_DASHBOARD_SCREENSHOT").as_deref() == Ok("1") {
        // A little history, so the sparklines have a shape.
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until
            && backend_rates(&status(admin))
                .iter()
                .any(|(_, _, history)| *history < 30)
        {
            thread::sleep(Duration::from_millis(500));
        }
        let tmp = TempDir::new("dashboard-shot");
        let shot = tmp.path().join("dashboard.png");
        screenshot(&url, &shot);
        let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        let dest: PathBuf = [env!("CARGO_MANIFEST_DIR"), "docs", "dashboard.png"]
            .iter()
            .collect();
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &png).unwrap();
        eprintln!("screenshot: {} ({} bytes)", dest.display(), png.len());
    }

    let sent = load.finish();
    assert!(sent > 0, "no load request went through");
    for (b, addr) in backends.iter().zip(&addrs) {
        assert!(b.request_count() > 0, "backend {addr} received no request");
    }
}
