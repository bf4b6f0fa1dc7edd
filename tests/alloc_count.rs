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

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello world!\n";
const REQUEST: &[u8] = b"GET /alloc HTTP/1.1\r\nHost: test\r\nUser-Agent: alloc-count\r\n\r\n";

/// Answers every request head with `RESPONSE`, one connection at a time,
/// using a fixed stack buffer (no allocation per request).
fn start_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut filled = 0;
                loop {
                    match stream.read(&mut buf[filled..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    // Heads only (GET): answer each complete one.
                    while let Some(end) = find_head_end(&buf[..filled]) {
                        if stream.write_all(RESPONSE).is_err() {
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

/// Send one request and read exactly one `RESPONSE`-sized answer.
fn round_trip(client: &mut TcpStream, buf: &mut [u8]) {
    client.write_all(REQUEST).unwrap();
    let mut got = 0;
    while got < RESPONSE.len() {
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
    let cli = corelb::cli::Cli::parse_from([
        "corelb",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &backend.to_string(),
        "--threads",
        "1",
        "--no-pin",
    ]);
    let config = corelb::config::Config::load(&cli).unwrap();
    let running = corelb::runtime::start(config).unwrap();
    let mut client = TcpStream::connect(running.local_addr).unwrap();
    client.set_nodelay(true).unwrap();
    // corelb passes this response head through unchanged, so the client
    // reads exactly RESPONSE.len() bytes per request.
    let mut buf = vec![0u8; RESPONSE.len()];

    for _ in 0..2_000 {
        round_trip(&mut client, &mut buf);
    }
    const MEASURED: u64 = 10_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    // The counter works: the warm-up (connections, buffers) did allocate.
    assert!(before > 0);
    for _ in 0..MEASURED {
        round_trip(&mut client, &mut buf);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    eprintln!(
        "allocations while proxying {MEASURED} requests: {allocations} ({:.4} per request)",
        allocations as f64 / MEASURED as f64
    );
    assert_eq!(allocations, 0, "steady-state proxying allocated");
}
