//! Heap allocations per proxied request, in steady state.
//!
//! This test binary installs a counting global allocator, runs corelb
//! in-process (one worker), a keep-alive backend and a keep-alive client
//! that themselves allocate nothing per request, warms up, then counts
//! every allocation made while proxying a batch of requests. The target is
//! zero: buffers, pooled connections and balancer state are all reused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SMALL_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello world!\n";
const SMALL_REQUEST: &[u8] =
    b"GET /alloc HTTP/1.1\r\nHost: test\r\nUser-Agent: alloc-count\r\n\r\n";
/// The other body size of `perf/compare.sh`: 16 KiB, more than one read.
const LARGE_REQUEST: &[u8] = b"GET /16k HTTP/1.1\r\nHost: test\r\nUser-Agent: alloc-count\r\n\r\n";
const LARGE_BODY: usize = 16 * 1024;

fn large_response() -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {LARGE_BODY}\r\n\r\n").into_bytes();
    r.extend((0..LARGE_BODY).map(|i| b'a' + (i % 26) as u8));
    r
}

/// Answers every request head (`GET /16k` with the 16 KiB response, anything
/// else with the small one), one connection at a time,
/// using a fixed stack buffer (no allocation per request).
fn start_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let large = large_response();
                let mut buf = [0u8; 4096];
                let mut filled = 0;
                loop {
                    match stream.read(&mut buf[filled..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    // Heads only (GET): answer each complete one.
                    while let Some(end) = find_head_end(&buf[..filled]) {
                        let response = if buf.starts_with(b"GET /16k ") {
                            &large[..]
                        } else {
                            SMALL_RESPONSE
                        };
                        if stream.write_all(response).is_err() {
                            return;
                        }
                        buf.copy_within(end..filled, 0);
                        filled -= end;
                    }
                }
            });
        }
    });
    addr
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Send `request` and read a response of exactly `buf.len()` bytes.
fn round_trip(client: &mut TcpStream, request: &[u8], buf: &mut [u8]) {
    client.write_all(request).unwrap();
    let mut got = 0;
    while got < buf.len() {
        let n = client.read(&mut buf[got..]).unwrap();
        assert!(n > 0, "proxy closed the connection");
        got += n;
    }
    assert_eq!(&buf[..9], b"HTTP/1.1 ");
    assert_eq!(
        &buf[9..12],
        b"200",
        "{}",
        String::from_utf8_lossy(&buf[..got])
    );
}

#[test]
fn steady_state_proxying_does_not_allocate() {
    let backend = start_backend();
    // With the access log on: formatting a line per request must not
    // allocate either (metrics are always on).
    let log = std::env::temp_dir().join(format!("corelb-alloc-{}.log", std::process::id()));
    let cli = corelb::cli::Cli::parse_from([
        "corelb",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.to_string(),
        "--threads",
        "1",
        "--no-pin",
        "--admin",
        "off",
        "--access-log",
        log.to_str().unwrap(),
    ]);
    let config = corelb::config::Config::load(&cli).unwrap();
    let running = corelb::runtime::start(config, cli, Vec::new()).unwrap();
    // corelb passes these response heads through unchanged, so the client
    // reads exactly the backend's bytes per request.
    for (label, request, response_len) in [
        ("13 B", SMALL_REQUEST, SMALL_RESPONSE.len()),
        ("16 KiB", LARGE_REQUEST, large_response().len()),
    ] {
        let mut client = TcpStream::connect(running.local_addr).unwrap();
        client.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; response_len];
        for _ in 0..2_000 {
            round_trip(&mut client, request, &mut buf);
        }
        const MEASURED: u64 = 10_000;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        // The counter works: the warm-up (connections, buffers) did allocate.
        assert!(before > 0);
        for _ in 0..MEASURED {
            round_trip(&mut client, request, &mut buf);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        eprintln!(
            "{label} bodies: allocations while proxying {MEASURED} requests: {allocations} ({:.4} per request)",
            allocations as f64 / MEASURED as f64
        );
        assert_eq!(
            allocations, 0,
            "steady-state proxying of {label} bodies allocated"
        );
    }
    // The log got lines (it is flushed once a second).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 && std::time::Instant::now() < give_up
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        written.contains("\"GET /alloc HTTP/1.1\" 200"),
        "{}",
        &written[..written.len().min(500)]
    );
}
