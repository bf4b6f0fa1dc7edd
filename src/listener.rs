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
use std::time::Duration;

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
                // EMFILE and friends: back off instead of spinning.
                eprintln!("corelb: worker {}: accept failed: {e}", worker.id);
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
