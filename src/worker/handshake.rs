//! A TLS client's first moments: its handshake, within
//! `--tls-handshake-timeout` and a cap on handshakes in progress per
//! worker, then the same connection loop as a plaintext client, or
//! HTTP/2 (`crate::h2`) when ALPN chose `h2`.
//!
//! The cap: a handshake costs a worker CPU and a connection's memory
//! before the client has proven anything, so a flood of slow or
//! half-finished handshakes must not crowd out established connections.
//! Beyond it, new TLS connections are closed at once and counted
//! (`corelb_tls_refused_total`); established connections are untouched.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;

use monoio::net::TcpStream;

use crate::h2::serve_h2;
use crate::proxy::{serve_client, ListenerInfo, WorkerContext};
use crate::transport::tls::{TlsAcceptor, TlsPollIo, TlsStream};

/// Handshakes in progress one worker allows at once.
pub const MAX_HANDSHAKES: usize = 1024;

/// May a new TLS connection start its handshake on this worker now?
pub fn handshake_allowed(worker: &WorkerContext) -> bool {
    worker.handshakes.get() < MAX_HANDSHAKES
}

/// Counts a handshake in progress while it lives.
struct InProgress<'a>(&'a WorkerContext);

impl<'a> InProgress<'a> {
    fn start(worker: &'a WorkerContext) -> Self {
        worker.handshakes.set(worker.handshakes.get() + 1);
        Self(worker)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0
            .handshakes
            .set(self.0.handshakes.get().saturating_sub(1));
    }
}

/// Run the handshake on `tcp`, then serve the connection as any other.
/// An `async` block, as `serve_client` is: the task of every TLS
/// connection is this future, and an `async fn` would keep its arguments
/// twice in it.
#[allow(clippy::manual_async_fn)]
pub fn serve_tls_client(
    worker: Rc<WorkerContext>,
    acceptor: Arc<TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: ListenerInfo,
) -> impl Future<Output = ()> {
    async move {
        let Ok(conn) = acceptor.connection() else {
            return;
        };
        drop(acceptor);
        let timeout = worker.settings().timeouts.tls_handshake;
        let in_progress = InProgress::start(&worker);
        // Boxed, and so gone once the handshake is: its state (the rustls
        // session, several times over in the nested futures) is the
        // largest this task ever holds, and every connection's task would
        // keep room for it for the connection's whole life (the task was
        // 8.7 KiB with it inline, 2026-12-07; serving HTTP/1.1 needs 1.9).
        let handshake = Box::pin(TlsStream::accept(tcp, conn, &worker.deadlines, timeout)).await;
        drop(in_progress);
        match handshake {
            Ok(stream) if stream.alpn_protocol().as_deref() == Some(b"h2") => {
                worker.metrics().tls_handshakes.inc();
                let fd = stream.as_raw_fd();
                if let Ok(io) = TlsPollIo::new(stream) {
                    // Boxed: HTTP/1.1 connections' tasks stay small. `io`
                    // boxed apart (see `serve_h2`).
                    Box::pin(serve_h2(worker, Box::new(io), fd, peer, listener)).await;
                }
            }
            Ok(stream) => {
                worker.metrics().tls_handshakes.inc();
                serve_client(worker, stream, peer, listener).await;
            }
            Err(why) => worker.metrics().tls_handshake_failures[why as usize].inc(),
        }
    }
}
