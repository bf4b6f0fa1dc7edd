//! Running out of corelb's own resources is not the backend's fault
//! (issue 19, §5): under a low `nofile` limit, failed upstream connects
//! are answered 503 `local_resources`, never counted against the backend
//! nor ejecting it; and `--max-connections` is exact.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::admin::state;
use common::*;

/// The sum of the `/metrics` samples of `family` whose labels contain
/// every one of `labels` (e.g. `reason="local_resources"`).
fn metric_sum(admin: SocketAddr, family: &str, labels: &[&str]) -> f64 {
    let mut c = Client::connect(admin);
    c.send(format!(
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    ));
    let text = c.read_response().body_str();
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `n` clients at once, each sending one GET; the statuses they got (0:
/// the connection closed without an answer).
fn concurrent_gets(proxy: SocketAddr, n: usize) -> Vec<u16> {
    let clients: Vec<_> = (0..n)
        .map(|i| {
            thread::spawn(move || {
                let Ok(stream) = std::net::TcpStream::connect(proxy) else {
                    return 0;
                };
                stream.set_read_timeout(Some(SAFETY)).unwrap();
                let mut c = Client {
                    conn: Conn::new(stream),
                };
                let req = format!("GET /{i} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
                if std::io::Write::write_all(&mut c.conn.stream, req.as_bytes()).is_err() {
                    return 0;
                }
                c.try_read_response(false).map_or(0, |r| r.status)
            })
        })
        .collect();
    clients.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn running_out_of_descriptors_is_not_blamed_on_the_backend() {
    // Slow enough that connections pile up past the descriptor limit.
    let backend = Backend::start(|_| {
        thread::sleep(Duration::from_millis(300));
        Reply::ok("ok")
    });
    let b = backend.addr().to_string();
    let proxy = Proxy::start_with_nofile(
        48,
        &[
            "--backend",
            &b,
            "--admin",
            "127.0.0.1:0",
            "--max-fails",
            "2",
        ],
    );
    let admin = proxy.admin_addr();
    let warned = proxy.log().contains("nofile limit is 48");
    let statuses = concurrent_gets(proxy.addr(), 120);
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let local = statuses.iter().filter(|&&s| s == 503).count();
    eprintln!(
        "120 clients under nofile 48: {ok} got 200, {local} got 503, others {:?}",
        statuses
            .iter()
            .filter(|&&s| s != 200 && s != 503)
            .collect::<Vec<_>>()
    );
    let counted = metric_sum(
        admin,
        "corelb_generated_responses_total",
        &["reason=\"local_resources\"", "status=\"503\""],
    );
    assert!(
        counted > 0.0,
        "no local_resources answer counted: {statuses:?}"
    );
    assert_eq!(
        metric_sum(admin, "corelb_backend_failures_total", &["connect_refused"]),
        0.0,
        "a local shortage was counted against the backend"
    );
    assert_eq!(
        state(admin, backend.addr()),
        "up",
        "the backend was ejected"
    );
    assert!(
        proxy.log().contains("LimitNOFILE"),
        "no hint in the log:\n{}",
        proxy.log()
    );
    // Load gone: requests succeed again.
    let mut c = proxy.client();
    assert_eq!(c.get("/after").status, 200);
    assert!(
        warned,
        "no warning at start that --max-connections cannot be met"
    );
}

#[test]
fn max_connections_is_exact_across_workers() {
    // Holds every request until released, counting those held at once.
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let backend = {
        let (held, most, release) = (Arc::clone(&held), Arc::clone(&most), Arc::clone(&release));
        Backend::start(move |_| {
            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            while !release.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            held.fetch_sub(1, Ordering::SeqCst);
            Reply::ok("ok")
        })
    };
    let proxy = Proxy::start(&[
        "--backend",
        &backend.addr().to_string(),
        "--threads",
        "2",
        "--max-connections",
        "100",
        "--no-accept-steering",
    ]);
    let addr = proxy.addr();
    let clients = thread::spawn(move || concurrent_gets(addr, 150));
    wait_until("100 requests held at the backend", || {
        held.load(Ordering::SeqCst) >= 100
    });
    // Time for any connection over the cap to come through.
    thread::sleep(Duration::from_millis(500));
    let at_once = most.load(Ordering::SeqCst);
    release.store(true, Ordering::SeqCst);
    let statuses = clients.join().unwrap();
    eprintln!(
        "--max-connections 100, 150 clients: at most {at_once} served at once; \
         {} answered 200",
        statuses.iter().filter(|&&s| s == 200).count()
    );
    assert_eq!(
        at_once, 100,
        "--max-connections 100 served {at_once} at once"
    );
}
