//! A worker's accept loop: take connections from its own SO_REUSEPORT
//! listener (`listen.rs`; [`crate::steering`] tells the kernel how to
//! weigh the workers), within the connection limits, and serve each in a
//! task of its own; and the drain's last accepts.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::h2c::serve_plain_or_h2c;
use super::handshake::{handshake_allowed, serve_tls_client};
use super::proxy_header::serve_proxied;
use super::refusals::{refuse_over_limit, refuse_over_per_ip_limit};
use crate::proxy::{serve_client, ListenerInfo, WorkerContext};
use crate::proxy_protocol::Trusted;
use crate::state::limits::{ConnectionLimit, ConnectionPermit};
use crate::state::per_ip::PerIpPermit;
use crate::transport::tls::TlsAcceptor;

/// The least time between two reports of a repeating accept failure: under
/// EMFILE every retry fails, and a line every 10 ms would flood the log.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// One listener as every worker serves it: what its clients speak there.
/// Built once at start and shared by the workers.
pub struct Endpoint {
    /// `Some`: a TLS listener, with its certificates.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// `Some`: a PROXY protocol listener, taking headers from these peers
    /// (`proxy_header.rs`).
    pub proxy_protocol: Option<Trusted>,
    /// What a connection's requests learn of the listener.
    pub info: ListenerInfo,
    /// HTTP/2 here: by ALPN (TLS), or h2c with prior knowledge (plaintext).
    pub h2: bool,
}

/// Serve `stream` in a task of its own, counted against the limits and by
/// the worker until it closes; or, if its address already has
/// `--max-connections-per-ip` open (or, on a TLS listener, the worker has
/// its maximum of handshakes in progress), close it at once. On a PROXY
/// protocol listener the client's address is known only after its header,
/// so the per-IP limit is taken then (`proxy_header.rs`).
fn spawn_connection(
    worker: &Rc<WorkerContext>,
    endpoint: &Arc<Endpoint>,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
) {
    if let Some(counts) = worker.metrics().listener(endpoint.info.index) {
        counts.accepted.inc();
    }
    if endpoint.tls.is_some() && !handshake_allowed(worker) {
        worker.metrics().tls_refused.inc();
        return;
    }
    let per_ip = match endpoint.proxy_protocol {
        Some(_) => None,
        None => match worker.shared.per_ip.try_acquire(peer.ip()) {
            Some(per_ip) => Some(per_ip),
            None => return refuse_over_per_ip_limit(worker, stream, peer),
        },
    };
    let Some(permit) = worker.shared.limit.try_acquire() else {
        refuse_over_limit(worker, stream, peer);
        return;
    };
    let _ = stream.set_nodelay(true);
    worker.connection_opened();
    if endpoint.proxy_protocol.is_some() {
        monoio::spawn(ConnectionTask {
            serve: serve_proxied(Rc::clone(worker), Arc::clone(endpoint), stream, peer),
            worker: Rc::clone(worker),
            _permit: permit,
            _per_ip: per_ip,
        });
        return;
    }
    match &endpoint.tls {
        None if endpoint.h2 => monoio::spawn(ConnectionTask {
            serve: serve_plain_or_h2c(Rc::clone(worker), stream, peer, endpoint.info),
            worker: Rc::clone(worker),
            _permit: permit,
            _per_ip: per_ip,
        }),
        None => monoio::spawn(ConnectionTask {
            serve: serve_client(Rc::clone(worker), stream, peer, endpoint.info),
            worker: Rc::clone(worker),
            _permit: permit,
            _per_ip: per_ip,
        }),
        Some(acceptor) => monoio::spawn(ConnectionTask {
            serve: serve_tls_client(
                Rc::clone(worker),
                Arc::clone(acceptor),
                stream,
                peer,
                endpoint.info,
            ),
            worker: Rc::clone(worker),
            _permit: permit,
            _per_ip: per_ip,
        }),
    };
}

pin_project_lite::pin_project! {
    /// One client connection's task: serving it, then counting it closed;
    /// its places under the limits go when the task does.
    ///
    /// A struct rather than an `async move` block, for the sake of every
    /// idle connection's memory: a block keeps what it captures (the
    /// stream, the peer address) for its whole life, beside the future
    /// that took them, which holds them too.
    struct ConnectionTask<F> {
        #[pin]
        serve: F,
        worker: Rc<WorkerContext>,
        _permit: ConnectionPermit,
        // `None` on a PROXY protocol listener: the task takes it itself.
        _per_ip: Option<PerIpPermit>,
    }
}

impl<F: Future<Output = ()>> Future for ConnectionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        std::task::ready!(this.serve.poll(cx));
        this.worker.connection_closed();
        Poll::Ready(())
    }
}

/// Connections one wakeup of the accept loop takes at most (the one the
/// wakeup brought, and queued ones after it).
///
/// One accept per turn of the event loop is too few when connections come
/// in a burst (2 000 clients connecting at once): each turn of a loaded
/// worker takes a while, so the last of them waited a second for their
/// first answer. nginx (`multi_accept`) and HAProxy (`tune.maxaccept`)
/// take many at once too. The bound keeps a long burst from holding up the
/// worker's established connections.
const ACCEPT_BATCH: usize = 64;

/// After an accept: take up to [`ACCEPT_BATCH`] - 1 more connections
/// already queued on `fd`, without waiting, as long as the limits allow.
fn take_more_queued(
    worker: &Rc<WorkerContext>,
    endpoint: &Arc<Endpoint>,
    fd: RawFd,
    limit: &ConnectionLimit,
) {
    for _ in 1..ACCEPT_BATCH {
        if limit.is_full() || worker.draining() {
            return;
        }
        let Some((stream, peer)) = accept_queued(worker, fd) else {
            return;
        };
        spawn_connection(worker, endpoint, stream, peer);
    }
}

/// A connection already in `fd`'s queue, accepted without waiting; `None`
/// when the queue is empty (or the accept failed: the accept loop's next
/// accept reports failures).
fn accept_queued(
    worker: &WorkerContext,
    fd: RawFd,
) -> Option<(monoio::net::TcpStream, SocketAddr)> {
    loop {
        // SAFETY: `fd` is this worker's listener, open while the accept
        // loop or the drain runs; `try_init` passes storage and its
        // length, which accept4 fills in with the peer's address.
        let accepted = unsafe {
            socket2::SockAddr::try_init(|addr, len| {
                let conn = libc::accept4(
                    fd,
                    addr.cast(),
                    len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                );
                if conn < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(conn)
                }
            })
        };
        let (conn, addr) = accepted.ok()?;
        // SAFETY: `conn` is a new descriptor that nothing else owns.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(conn) };
        let peer = addr
            .as_socket()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        match monoio::net::TcpStream::from_std(std_stream) {
            Ok(stream) => return Some((stream, peer)),
            // Closed (dropped); the next one may do.
            Err(e) => warn!(
                "worker {}: cannot serve a queued connection: {e}",
                worker.id
            ),
        }
    }
}

/// Accept connections until the drain closes the listener, serving each
/// in its own task.
pub async fn accept_loop(
    worker: Rc<WorkerContext>,
    listener: monoio::net::TcpListener,
    endpoint: Arc<Endpoint>,
) {
    use std::os::fd::AsRawFd;
    let limit = Arc::clone(&worker.shared.limit);
    let accept_errors = crate::logging::Limiter::new(REPORT_EVERY);
    loop {
        if worker.draining() {
            return;
        }
        if limit.is_full() {
            // Leave new connections in the kernel backlog until one closes.
            monoio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                spawn_connection(&worker, &endpoint, stream, peer);
                take_more_queued(&worker, &endpoint, listener.as_raw_fd(), &limit);
            }
            // The drain shut the listener down.
            Err(_) if worker.draining() => return,
            Err(e) => {
                if let Some(unreported) = accept_errors.allow(Instant::now()) {
                    let more = if unreported > 0 {
                        format!(" ({unreported} more failures since the last report)")
                    } else {
                        String::new()
                    };
                    error!("worker {}: accept failed: {e}{more}", worker.id);
                }
                // EMFILE and friends: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The drain's first step on one worker: accept (without waiting) every
/// connection already in the listener's queue and serve it, then shut the
/// listener down, which ends the accept loop's pending accept. A
/// connection left in the queue would be reset when the listener closes;
/// taken here, it is served like any other (with `Connection: close`).
pub fn take_queued(worker: &Rc<WorkerContext>, endpoint: &Arc<Endpoint>, fd: RawFd) {
    while let Some((stream, peer)) = accept_queued(worker, fd) {
        spawn_connection(worker, endpoint, stream, peer);
    }
    // SAFETY: a plain syscall on the open listener.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}
