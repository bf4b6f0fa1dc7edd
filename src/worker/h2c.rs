//! A plaintext listener with `h2c`: HTTP/2 with prior knowledge beside
//! HTTP/1.1. The first bytes decide, looked at without taking them
//! (`MSG_PEEK`): the 24-byte HTTP/2 preface makes the connection HTTP/2
//! (`crate::h2`); anything else is HTTP/1.1, served as on any listener
//! (its bytes still in the socket). The `Upgrade: h2c` dance is not
//! offered: the HTTP/1.1 path refuses it as ever.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::IntoPollIo;
use monoio::net::TcpStream;

use crate::h2::{serve_h2, PREFACE};
use crate::io::readable_idle_timeout;
use crate::proxy::{serve_client, ListenerInfo, WorkerContext};

/// How long to wait between looks while only part of the preface is here.
const PREFACE_POLL: Duration = Duration::from_millis(5);

/// What the first bytes said.
enum Sniffed {
    Http2,
    Http1,
    /// Closed, failed or idle too long before saying.
    Gone,
}

/// Serve `tcp` as HTTP/2 if it starts with the preface, else HTTP/1.1.
/// An `async` block for the reason `serve_client` is one.
#[allow(clippy::manual_async_fn)]
pub fn serve_plain_or_h2c(
    worker: Rc<WorkerContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: ListenerInfo,
) -> impl Future<Output = ()> {
    async move {
        // Boxed: the look at the first bytes ends, the HTTP/1.1
        // connection's task stays as small as on a plain listener.
        match Box::pin(sniff(&worker, &tcp)).await {
            Sniffed::Http1 => serve_client(worker, tcp, peer, listener).await,
            Sniffed::Http2 => {
                let fd = tcp.as_raw_fd();
                if let Ok(io) = tcp.into_poll_io() {
                    // Boxed: HTTP/1.1 connections' tasks stay small. `io`
                    // boxed apart (see `serve_h2`).
                    Box::pin(serve_h2(worker, Box::new(io), fd, peer, listener)).await;
                }
            }
            Sniffed::Gone => {}
        }
    }
}

/// Wait for the first bytes (idle, as between requests: a drain ends
/// the wait) and compare them with the preface.
async fn sniff(worker: &WorkerContext, tcp: &TcpStream) -> Sniffed {
    let settings = worker.settings();
    let mut started: Option<Instant> = None;
    loop {
        let mut peeked = [0u8; PREFACE.len()];
        let n = crate::syscall::recv(
            tcp.as_raw_fd(),
            &mut peeked,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        );
        let Ok(n) = usize::try_from(n) else {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                return Sniffed::Gone;
            }
            let idle = settings.timeouts.client_idle;
            if readable_idle_timeout(&worker.deadlines, tcp, idle)
                .await
                .is_err()
            {
                return Sniffed::Gone;
            }
            continue;
        };
        if n == 0 {
            return Sniffed::Gone;
        }
        if peeked[..n] != PREFACE[..n] {
            return Sniffed::Http1;
        }
        if n == PREFACE.len() {
            return Sniffed::Http2;
        }
        // Part of the preface: the rest is due within the header timeout.
        let started = *started.get_or_insert_with(Instant::now);
        if started.elapsed() > settings.timeouts.client_header {
            return Sniffed::Gone;
        }
        monoio::time::sleep(PREFACE_POLL).await;
    }
}
