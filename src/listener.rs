//! Listening sockets and the accept loop.
//!
//! Every worker has its own socket bound to the same address with
//! SO_REUSEPORT, so the kernel spreads new connections across workers and
//! no accept lock or hand-off exists between them ([`crate::steering`]
//! tells the kernel how to weigh the workers).

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::proxy::serve_client;
use crate::worker::Worker;

/// Bind `count` SO_REUSEPORT listeners to `addr`. With port 0 the first
/// socket picks a port and the rest join it.
pub fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Failures reported at most once per [`REPORT_EVERY`]: under EMFILE every
/// retry fails, and a line every 10 ms would flood the log.
#[derive(Debug, Default)]
struct ErrorReports {
    last_report: Option<Instant>,
    unreported: u64,
}

/// The least time between two reports of a repeating failure.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl ErrorReports {
    /// A failure at `now`: `Some(n)` to report it, with `n` failures since
    /// the last report that were not; `None` to keep quiet.
    fn report(&mut self, now: Instant) -> Option<u64> {
        match self.last_report {
            Some(last) if now.saturating_duration_since(last) < REPORT_EVERY => {
                self.unreported += 1;
                None
            }
            _ => {
                self.last_report = Some(now);
                Some(std::mem::take(&mut self.unreported))
            }
        }
    }
}

/// The process-wide cap on open client connections.
#[derive(Debug)]
pub struct ConnectionLimit {
    open: AtomicUsize,
    max: usize,
}

impl ConnectionLimit {
    /// Allow at most `max` connections open at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn is_full(&self) -> bool {
        self.open() >= self.max
    }

    fn acquire(self: &Arc<Self>) -> ConnectionPermit {
        self.open.fetch_add(1, Ordering::Relaxed);
        ConnectionPermit(Arc::clone(self))
    }
}

/// One open connection; counted until dropped.
struct ConnectionPermit(Arc<ConnectionLimit>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections forever, serving each in its own task.
pub async fn accept_loop(
    worker: Rc<Worker>,
    listener: monoio::net::TcpListener,
    limit: Arc<ConnectionLimit>,
) {
    let mut accept_errors = ErrorReports::default();
    loop {
        if limit.is_full() {
            // Leave new connections in the kernel backlog until one closes.
            monoio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let permit = limit.acquire();
                let worker = Rc::clone(&worker);
                monoio::spawn(async move {
                    serve_client(worker, stream, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                if let Some(unreported) = accept_errors.report(Instant::now()) {
                    let more = if unreported > 0 {
                        format!(" ({unreported} more failures since the last report)")
                    } else {
                        String::new()
                    };
                    eprintln!("corelb: worker {}: accept failed: {e}{more}", worker.id);
                }
                // EMFILE and friends: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_failure_is_reported_once_a_second_with_a_count() {
        let mut reports = ErrorReports::default();
        let start = Instant::now();
        assert_eq!(reports.report(start), Some(0));
        for i in 1..=5 {
            assert_eq!(reports.report(start + Duration::from_millis(10 * i)), None);
        }
        assert_eq!(reports.report(start + REPORT_EVERY), Some(5));
        assert_eq!(reports.report(start + REPORT_EVERY), None);
    }
}
