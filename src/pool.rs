//! Per-worker pool of idle keep-alive connections to backends.
//!
//! Each worker owns its pool outright (`RefCell`, no locks): a connection is
//! only ever used by the worker that opened it. Idle connections are reused
//! newest first, since the newest is the least likely to have been closed by
//! the backend's own idle timeout. Each is checked with a non-blocking peek
//! before reuse; one the backend closes in the instant after that check is
//! caught by the proxy, which replays an idempotent request on a fresh one.
//!
//! Taking and returning connections only happens with traffic, so a worker
//! also prunes its pool every [`PRUNE_INTERVAL`]: without it, connections
//! the backends closed while no requests came would sit half-closed, each
//! holding a descriptor, until traffic returned.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// Does the backend still keep this idle connection open? A closed one
/// reads as end-of-file; a healthy idle one has nothing to read. Bytes
/// waiting on an idle connection mean the backend broke framing: drop it.
fn is_still_open(stream: &impl AsRawFd) -> bool {
    let mut byte = [0u8; 1];
    let n = crate::syscall::recv(
        stream.as_raw_fd(),
        &mut byte,
        libc::MSG_PEEK | libc::MSG_DONTWAIT,
    );
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// How often a worker drops its aged and backend-closed idle connections.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

struct IdleConnection<S> {
    stream: S,
    since: Instant,
}

/// Idle upstream connections `S` (plain TCP, or TLS with its session:
/// the proxy's `BackendStream`) of one worker, by backend address.
pub struct UpstreamPool<S> {
    /// Fx hashing: two lookups per request, keys are not attacker-chosen.
    idle: RefCell<FxHashMap<SocketAddr, Vec<IdleConnection<S>>>>,
    /// A reload may change it (`--upstream-keepalive`).
    max_idle_per_backend: std::cell::Cell<usize>,
    max_idle_time: Duration,
}

impl<S: AsRawFd> UpstreamPool<S> {
    /// A pool keeping at most `max_idle_per_backend` connections per backend,
    /// each for at most `max_idle_time`.
    pub fn new(max_idle_per_backend: usize, max_idle_time: Duration) -> Self {
        Self {
            idle: RefCell::new(FxHashMap::default()),
            max_idle_per_backend: std::cell::Cell::new(max_idle_per_backend),
            max_idle_time,
        }
    }

    /// Keep at most `max` idle connections per backend from now on (the
    /// extra ones go as they are taken or age out).
    pub fn set_max_idle(&self, max: usize) {
        self.max_idle_per_backend.set(max);
    }

    /// An idle connection to `addr`, if one is fresh enough at `now`.
    ///
    /// `now` may be coarse (the worker's tick clock): idle times are
    /// seconds, and a clock read per take and put would cost more.
    pub fn take(&self, addr: SocketAddr, now: Instant) -> Option<S> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&addr)?;
        // Checked on every reuse, however short the idle time: a backend
        // may close it, or (worse) send stray bytes that would be read as
        // the next client's response. nginx and HAProxy watch idle
        // connections with epoll; a peek when taking one costs one syscall
        // and no task per connection. One that fails is dropped (closed).
        // An io_uring poll armed on each connection as it goes idle was
        // measured instead (perf/README.md): no less CPU per request, since
        // the kernel then completes a poll beside every response, and a
        // worse tail at 256 connections.
        while let Some(conn) = list.pop() {
            if self.is_usable(&conn, now) {
                return Some(conn.stream);
            }
        }
        None
    }

    /// Young enough at `now` (an old one the backend has probably closed),
    /// and still open with nothing to read.
    fn is_usable(&self, conn: &IdleConnection<S>, now: Instant) -> bool {
        now.saturating_duration_since(conn.since) < self.max_idle_time
            && is_still_open(&conn.stream)
    }

    /// Drop every idle connection that has aged out at `now` or that its
    /// backend closed (or sent stray bytes on); how many were dropped.
    pub fn prune(&self, now: Instant) -> usize {
        let mut dropped = 0;
        for list in self.idle.borrow_mut().values_mut() {
            let before = list.len();
            list.retain(|conn| self.is_usable(conn, now));
            dropped += before - list.len();
        }
        dropped
    }

    /// Idle connections held, over all backends.
    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    /// Prune every [`PRUNE_INTERVAL`], for ever (spawned once per worker).
    pub async fn run_pruner(&self) {
        loop {
            monoio::time::sleep(PRUNE_INTERVAL).await;
            self.prune(Instant::now());
        }
    }

    /// Return a connection that finished a response cleanly, at `now`.
    pub fn put(&self, addr: SocketAddr, stream: S, now: Instant) {
        if self.max_idle_per_backend.get() == 0 {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(addr).or_default();
        // Reuse is newest first, so the oldest may never come up again when
        // traffic drops: close it here once it has aged out (or when the
        // list is full), instead of keeping its socket open for ever.
        let oldest_expired = list
            .first()
            .is_some_and(|c| now.saturating_duration_since(c.since) >= self.max_idle_time);
        if oldest_expired || list.len() >= self.max_idle_per_backend.get() {
            list.remove(0);
        }
        list.push(IdleConnection { stream, since: now });
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io::Write;

    use monoio::io::AsyncReadRent;
    use monoio::net::TcpStream;

    use super::*;
    use crate::runtime::{block_on_driver, every_available_driver};

    /// Run `test` once on every driver this machine can run (each io_uring
    /// setup, and epoll): workers run on any of them.
    fn on_every_driver<F: Future<Output = ()>>(test: impl Fn() -> F) {
        for driver in every_available_driver() {
            eprintln!("driver: {}", driver.name());
            block_on_driver(driver, test()).unwrap();
        }
    }

    /// A connected pair: corelb's side as a monoio stream, the backend's
    /// side as a std stream.
    async fn pair(listener: &std::net::TcpListener) -> (TcpStream, std::net::TcpStream) {
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    /// A pool keeping connections 30 s, and a listener standing in for its
    /// backend.
    fn pool_and_backend() -> (UpstreamPool<TcpStream>, std::net::TcpListener, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (
            UpstreamPool::new(8, Duration::from_secs(30)),
            listener,
            addr,
        )
    }

    /// Let bytes and FINs sent on loopback arrive, and the event loop turn.
    async fn settle() {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }

    /// One request's worth of use of a taken connection: the backend
    /// answers, corelb reads the answer; then back into the pool.
    async fn exchange(
        pool: &UpstreamPool<TcpStream>,
        addr: SocketAddr,
        mut ours: TcpStream,
        theirs: &mut std::net::TcpStream,
        now: Instant,
    ) {
        const ANSWER: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        theirs.write_all(ANSWER).unwrap();
        let (read, _) = ours.read(vec![0u8; 64]).await;
        assert_eq!(read.unwrap(), ANSWER.len());
        pool.put(addr, ours, now);
    }

    #[test]
    fn pruning_drops_connections_the_backend_closed_or_wrote_on() {
        on_every_driver(|| async {
            let (pool, listener, addr) = pool_and_backend();
            let now = Instant::now();
            let (open, _open_peer) = pair(&listener).await;
            let (closed, closed_peer) = pair(&listener).await;
            let (stray, mut stray_peer) = pair(&listener).await;
            pool.put(addr, open, now);
            pool.put(addr, closed, now);
            pool.put(addr, stray, now);
            drop(closed_peer);
            stray_peer.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
            settle().await;

            assert_eq!(pool.prune(now), 2);
            assert_eq!(pool.idle_count(), 1);
            assert!(pool.take(addr, now).is_some(), "the open one is kept");
        });
    }

    #[test]
    fn a_connection_written_on_in_the_round_it_went_idle_is_not_reused() {
        // No await between put and take: under io_uring, no round of the
        // event loop comes between them.
        on_every_driver(|| async {
            let (pool, listener, addr) = pool_and_backend();
            let now = Instant::now();
            let (ours, mut theirs) = pair(&listener).await;
            theirs.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            pool.put(addr, ours, now);
            assert!(pool.take(addr, now).is_none());

            let (ours, theirs) = pair(&listener).await;
            drop(theirs);
            std::thread::sleep(Duration::from_millis(20));
            pool.put(addr, ours, now);
            assert!(pool.take(addr, now).is_none());
        });
    }

    #[test]
    fn a_reused_connection_is_checked_again_after_each_exchange() {
        on_every_driver(|| async {
            let (pool, listener, addr) = pool_and_backend();
            let now = Instant::now();
            let (ours, mut theirs) = pair(&listener).await;
            pool.put(addr, ours, now);
            settle().await;
            // The answers of these exchanges must not count against the
            // connection.
            for round in 0..4 {
                let taken = pool.take(addr, now).expect("healthy, so reused");
                exchange(&pool, addr, taken, &mut theirs, now).await;
                if round % 2 == 0 {
                    settle().await;
                }
            }
            settle().await;
            let taken = pool.take(addr, now).expect("healthy, so reused");
            exchange(&pool, addr, taken, &mut theirs, now).await;

            // Now the backend misbehaves while the connection is idle.
            theirs.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
            settle().await;
            assert!(pool.take(addr, now).is_none(), "stray bytes seen");

            let (ours, mut theirs) = pair(&listener).await;
            pool.put(addr, ours, now);
            let taken = pool.take(addr, now).unwrap();
            exchange(&pool, addr, taken, &mut theirs, now).await;
            drop(theirs);
            settle().await;
            assert!(pool.take(addr, now).is_none(), "the close seen");
        });
    }

    #[test]
    fn pruning_drops_connections_idle_too_long() {
        on_every_driver(|| async {
            let (pool, listener, addr) = pool_and_backend();
            let start = Instant::now();
            let (old, _old_peer) = pair(&listener).await;
            let (young, _young_peer) = pair(&listener).await;
            pool.put(addr, old, start);
            pool.put(addr, young, start + Duration::from_secs(20));

            assert_eq!(pool.prune(start + Duration::from_secs(29)), 0);
            assert_eq!(pool.prune(start + Duration::from_secs(31)), 1);
            assert_eq!(pool.idle_count(), 1);
        });
    }
}
