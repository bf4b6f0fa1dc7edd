//! A hostile web page, opened in a real headless Chromium, cannot change
//! the admin state. The page is served from another local origin (a
//! small server on another loopback port) and tries what needs no CORS
//! permission: a `no-cors` `fetch` POSTing a JSON text as `text/plain` to
//! add a backend, and auto-submitted forms POSTing a drain, each to the
//! admin API both as `127.0.0.1` (same site, another port) and as
//! `localhost` (another site). `/status` must show nothing changed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::admin::{backend_states, proxy_with_admin};
use common::chromium::dump_dom;
use common::Backend;

/// Virtual time the page gets: its requests hold the clock while in flight.
const VIRTUAL_TIME_MS: u32 = 3000;

/// Serves one page to every request, until dropped.
struct PageServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    fn start(page: String) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        serve_page(stream, &page);
                    }
                }
            })
        };
        PageServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve_page(mut stream: TcpStream, page: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
        head.push(byte[0]);
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The attack on the admin API at `port`: add `add` with weight 10000,
/// drain `drain`. The body's `data-done` counts the attempts that ended.
fn hostile_page(port: u16, add: SocketAddr, drain: SocketAddr) -> String {
    let bases = [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ];
    let mut forms = String::new();
    for (i, base) in bases.iter().enumerate() {
        // A text/plain form whose one field reads as JSON, as such attacks
        // do; a drain needs no body at all.
        forms.push_str(&format!(
            r#"<iframe name="sink{i}"></iframe>
<form id="form{i}" method="POST" enctype="text/plain" target="sink{i}"
      action="{base}/pools/default/backends/{drain}/drain">
  <input name='{{"x": "' value='"}}'>
</form>
"#
        ));
    }
    format!(
        r#"<!doctype html>
<html><body data-done="0">
{forms}
<script>
let done = 0;
const ended = () => {{ document.body.dataset.done = String(++done); }};
const body = JSON.stringify({{ addr: "{add}", weight: 10000 }});
for (const base of {bases:?}) {{
  fetch(base + "/pools/default/backends", {{
    method: "POST", mode: "no-cors",
    headers: {{ "Content-Type": "text/plain" }}, body,
  }}).then(ended, ended);
}}
for (const i of [0, 1]) {{
  document.getElementsByName("sink" + i)[0].addEventListener("load", ended, {{ once: true }});
  document.getElementById("form" + i).submit();
}}
</script>
</body></html>
"#
    )
}

#[test]
fn a_page_of_another_origin_cannot_add_or_drain_backends() {
    common::require_tool("chromium");
    let (a, b) = (Backend::echo_name("a"), Backend::echo_name("b"));
    let proxy = proxy_with_admin(&a, &[]);
    let admin = proxy.admin_addr();
    let before = backend_states(admin);
    assert_eq!(before.1, [(a.addr().to_string(), "up".to_string())]);

    let page = PageServer::start(hostile_page(admin.port(), b.addr(), a.addr()));
    // On a loaded machine the browser's virtual clock can run out before
    // the last frame's load event (a frame's navigation does not hold the
    // clock as a fetch does; seen once in a CI run on 2 busy cores): the
    // page is loaded again, at most three times in all. Every load makes
    // all four attempts, so the admin state is checked after all of them.
    let url = format!("http://{}/", page.addr);
    let mut dom = String::new();
    for _ in 0..3 {
        dom = dump_dom(&url, VIRTUAL_TIME_MS);
        if dom.contains(r#"data-done="4""#) {
            break;
        }
    }
    assert!(
        dom.contains(r#"data-done="4""#),
        "the page's four attempts did not all end; dumped DOM:\n{dom}"
    );
    assert_eq!(
        backend_states(admin),
        before,
        "a web page changed the admin state"
    );
    assert!(
        proxy.log().contains("admin API: refused POST"),
        "the page's requests did not reach the admin API (none refused):\n{}",
        proxy.log()
    );
}
