//! Slow and idle clients cost the admin API a connection each, not its
//! ability to answer: with 500 of them attached (half trickling a request
//! head a byte a second, half sending nothing), `/metrics` and `/status`
//! still answer; each slow one is closed after `--admin-header-timeout`;
//! beyond the cap of open admin connections a new one is closed at once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::admin::proxy_with_admin;
use common::{Backend, Proxy, SAFETY};

/// The slow clients attached at once.
const SLOW_CLIENTS: usize = 500;
/// The admin API's cap on open connections (its documented constant).
const MAX_CONNECTIONS: usize = 1024;

/// Let this process (and the corelb it starts) hold `n` more descriptors
/// than it needs anyway, raising its soft `nofile` limit if it must.
fn allow_descriptors(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let wanted = (n + 512).min(limit.rlim_max);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

fn corelb() -> (Backend, Proxy) {
    let backend = Backend::echo_name("a");
    let proxy = proxy_with_admin(&backend, &["--admin-header-timeout", "5s"]);
    (backend, proxy)
}

/// A connection to `admin` that sent `partial` (maybe nothing).
fn attach(admin: SocketAddr, partial: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&admin, SAFETY).expect("connect to the admin API");
    s.set_write_timeout(Some(SAFETY)).unwrap();
    s.write_all(partial.as_bytes()).unwrap();
    s
}

/// `GET path` from the admin API on a new connection: its status and how
/// long the answer took, or the error if none came within [`SAFETY`].
fn timed_get(admin: SocketAddr, path: &str) -> (Result<u16, String>, Duration) {
    let start = Instant::now();
    let result = (|| {
        let mut s = TcpStream::connect_timeout(&admin, SAFETY).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(SAFETY))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer);
        text.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {text:.200}"))
    })();
    (result, start.elapsed())
}

/// Wait (within a generous bound) for the server to close `s`: `true` if
/// it answered something first.
fn closed_by_server(mut s: TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => !got.is_empty(),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => !got.is_empty(),
        Err(e) => panic!("the server did not close a slow connection within {within:?}: {e}"),
    }
}

#[test]
fn metrics_and_status_answer_with_500_slow_clients_attached() {
    allow_descriptors(2 * SLOW_CLIENTS as u64);
    let (_backend, proxy) = corelb();
    let admin = proxy.admin_addr();

    let head = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nX-Slow: ");
    let mut trickling = Vec::new();
    let mut idle = Vec::new();
    for i in 0..SLOW_CLIENTS {
        if i % 2 == 0 {
            trickling.push(attach(admin, &head));
        } else {
            idle.push(attach(admin, ""));
        }
    }
    // A byte a second on half of them, never ending the head.
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut trickling {
                    let _ = s.write_all(b"x");
                }
                thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // While they are attached (the header timeout is 5 s), scrape.
    let mut took = Vec::new();
    for path in ["/metrics", "/status", "/metrics", "/status"] {
        let (status, elapsed) = timed_get(admin, path);
        assert_eq!(
            status,
            Ok(200),
            "GET {path} with {SLOW_CLIENTS} slow clients attached, after {elapsed:?}"
        );
        took.push(format!("{path} {:.1} ms", elapsed.as_secs_f64() * 1e3));
    }
    eprintln!(
        "with {SLOW_CLIENTS} slow clients attached: {}",
        took.join(", ")
    );

    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    drop(idle);
}

#[test]
fn slow_clients_are_closed_after_the_header_timeout() {
    let (_backend, proxy) = corelb();
    let admin = proxy.admin_addr();
    let slow = attach(admin, &format!("GET /status HTTP/1.1\r\nHost: {admin}\r\n"));
    let idle = attach(admin, "");
    let within = Duration::from_secs(15);
    let (slow_answered, idle_answered) = thread::scope(|s| {
        let slow = s.spawn(|| closed_by_server(slow, within));
        let idle = s.spawn(|| closed_by_server(idle, within));
        (slow.join().unwrap(), idle.join().unwrap())
    });
    assert!(
        slow_answered,
        "a client that sent part of a request is told why it is closed"
    );
    assert!(!idle_answered, "an idle client is closed without a word");
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    allow_descriptors(2 * MAX_CONNECTIONS as u64);
    let (_backend, proxy) = corelb();
    let admin = proxy.admin_addr();
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| attach(admin, "")).collect();
    // Accepted after the cap's worth: closed without an answer, well
    // before the header timeout would have.
    let extra = attach(admin, "");
    assert!(!closed_by_server(extra, Duration::from_secs(4)));
    // One fewer held: room for a scrape.
    held.pop();
    common::wait_until("a scrape once a connection is free", || {
        timed_get(admin, "/metrics").0 == Ok(200)
    });
    drop(held);
}
