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
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

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
        // keep room for it for the connection's whole life.
        let handshake = Box::pin(TlsStream::accept(tcp, conn, &worker.deadlines, timeout)).await;
        drop(in_progress);
        // Whole moves only, and no borrow of the session in this block: a
        // local borrowed or moved out of in part keeps its place in the
        // task for the connection's life, and the session is 1.2 KiB.
        let stream = match handshake.map_err(|why| why as usize) {
            Ok(stream) => stream,
            Err(why) => return worker.metrics().tls_handshake_failures[why].inc(),
        };
        worker.metrics().tls_handshakes.inc();
        serve_secured(worker, stream, peer, listener).await
    }
}

/// Serve a connection whose handshake is done: HTTP/2 if ALPN chose it,
/// else HTTP/1.1. A plain function, so that the session is looked at
/// outside the task's `async` block (see there).
fn serve_secured(
    worker: Rc<WorkerContext>,
    stream: TlsStream,
    peer: SocketAddr,
    listener: ListenerInfo,
) -> Served<impl Future<Output = ()>> {
    if stream.alpn_protocol().as_deref() != Some(b"h2") {
        return Served::Http1 {
            serve: serve_client(worker, stream, peer, listener),
        };
    }
    let fd = stream.as_raw_fd();
    match TlsPollIo::new(stream) {
        // Boxed: HTTP/1.1 connections' tasks stay small. `io` boxed
        // apart (see `serve_h2`).
        Ok(io) => Served::Http2 {
            serve: Box::pin(serve_h2(worker, Box::new(io), fd, peer, listener)),
        },
        Err(_) => Served::Closed,
    }
}

pin_project_lite::pin_project! {
    /// The connection after its handshake, as `serve_secured` chose.
    #[project = ServedProjection]
    enum Served<H1> {
        Http1 { #[pin] serve: H1 },
        Http2 { serve: Pin<Box<dyn Future<Output = ()>>> },
        Closed,
    }
}

impl<H1: Future<Output = ()>> Future for Served<H1> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            ServedProjection::Http1 { serve } => serve.poll(cx),
            ServedProjection::Http2 { serve } => serve.as_mut().poll(cx),
            ServedProjection::Closed => Poll::Ready(()),
        }
    }
}
