//! A connection on a PROXY protocol listener: its header read off the
//! socket before anything else (before TLS, on a TLS listener), then the
//! connection served as any other, with the address the header carries as
//! the client's: `X-Forwarded-For`, the access log, consistent hashing by
//! client IP and `--max-connections-per-ip` all see it. The per-IP limit
//! is therefore taken here, after the header, not at accept.
//!
//! The header is peeked, then exactly its bytes are consumed: what follows
//! (the request, the ClientHello) stays in the socket for the transport.
//! A peer in `proxy_protocol_from` must send one; any other must not (it
//! is served with its own address if its first bytes are not a header).
//! Everything that is not a good header within `--client-header-timeout`
//! closes the connection, and is logged (rate-limited).

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;

use super::h2c::serve_plain_or_h2c;
use super::handshake::serve_tls_client;
use super::refusals::{refuse_over_per_ip_limit, refuse_proxy_header};
use super::Endpoint;
use crate::deadline::{Armed, Direction};
use crate::proxy::{serve_client, WorkerContext};
use crate::proxy_protocol::{parse, sniff, Parsed, Sniff, Trusted, MAX_LEN};

/// How long a peer that must not send a header waits between looks at
/// first bytes that could still begin one (`PRO`, `\r\n`): the bytes stay
/// in the socket, so waiting for readability again would return at once.
const SNIFF_AGAIN: Duration = Duration::from_millis(10);

/// Why a connection closed before its first byte: the peer closed it.
const CLOSED: &str = "closed before a byte";

/// Serve a connection accepted on a PROXY protocol listener (see the
/// module docs). An `async` block, as `serve_client` is, so the task
/// keeps its arguments once.
#[allow(clippy::manual_async_fn)]
pub fn serve_proxied(
    worker: Rc<WorkerContext>,
    endpoint: Arc<Endpoint>,
    stream: TcpStream,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    async move {
        let trusted = endpoint.proxy_protocol.as_ref();
        // The header's read and the rarer h2c and TLS paths are boxed, so
        // an idle HTTP/1.1 connection's task is about the size it is on a
        // listener without the PROXY protocol (6.2 KiB unboxed).
        let client = match Box::pin(client_address(&worker, &stream, peer, trusted)).await {
            Ok(client) => client,
            // A peer that connects and closes (an L4 hop's TCP check, a
            // port scan) is not worth a line.
            Err(CLOSED) => return,
            Err(why) => return refuse_proxy_header(&worker, peer, why),
        };
        let Some(per_ip) = worker.shared.per_ip.try_acquire(client.ip()) else {
            return refuse_over_per_ip_limit(&worker, stream, client);
        };
        let info = endpoint.info;
        match &endpoint.tls {
            None if endpoint.h2 => Box::pin(serve_plain_or_h2c(worker, stream, client, info)).await,
            None => serve_client(worker, stream, client, info).await,
            Some(acceptor) => {
                let acceptor = Arc::clone(acceptor);
                drop(endpoint);
                Box::pin(serve_tls_client(worker, acceptor, stream, client, info)).await
            }
        }
        drop(per_ip);
    }
}

/// The client's address: the header's if `peer` is trusted (its own for
/// a `LOCAL`/`UNKNOWN` header), else `peer` itself once its first bytes
/// show no header. `Err`: why the connection is to be closed.
async fn client_address(
    worker: &WorkerContext,
    stream: &TcpStream,
    peer: SocketAddr,
    trusted: Option<&Trusted>,
) -> Result<SocketAddr, &'static str> {
    let size = worker.settings().buffer_size.max(MAX_LEN);
    // A small buffer holds the longest header (`MAX_LEN` <= `SMALL`).
    let mut buf = worker.buffers.take();
    buf.resize(MAX_LEN, 0);
    let wait = worker.deadlines.arm(
        stream.as_raw_fd(),
        Direction::Read,
        worker.settings().timeouts.client_header,
    );
    let found = if trusted.is_some_and(|t| t.contains(peer.ip())) {
        read_header(stream, &wait, &mut buf)
            .await
            .map(|c| c.unwrap_or(peer))
    } else {
        no_header(stream, &wait, &mut buf).await.map(|()| peer)
    };
    drop(wait);
    worker.buffers.give(buf, size);
    found
}

/// Read a header, consuming exactly its bytes, however they are split
/// across reads.
async fn read_header(
    stream: &TcpStream,
    wait: &Armed<'_>,
    buf: &mut [u8],
) -> Result<Option<SocketAddr>, &'static str> {
    let fd = stream.as_raw_fd();
    let mut have = 0;
    loop {
        let n = match peek(stream, wait, &mut buf[have..]).await {
            Err(CLOSED) if have > 0 => return Err("closed inside its PROXY header"),
            peeked => peeked?,
        };
        match parse(&buf[..have + n]) {
            Parsed::Header { len, client } => {
                consume(fd, &mut buf[have..len])?;
                return Ok(client);
            }
            // All of it is header so far: take it, and wait for the rest
            // (peeking again without taking would find the same bytes).
            Parsed::Incomplete if have + n < buf.len() => {
                consume(fd, &mut buf[have..have + n])?;
                have += n;
            }
            Parsed::Incomplete => return Err("header longer than corelb accepts"),
            Parsed::Invalid(why) => return Err(why),
        }
    }
}

/// Check that the first bytes of a peer that may not send a header are
/// not one; consumes nothing.
async fn no_header(
    stream: &TcpStream,
    wait: &Armed<'_>,
    buf: &mut [u8],
) -> Result<(), &'static str> {
    loop {
        let n = peek(stream, wait, &mut buf[..16]).await?;
        match sniff(&buf[..n]) {
            Sniff::Neither => return Ok(()),
            Sniff::V1 | Sniff::V2 => {
                return Err("a PROXY header from a peer not in proxy_protocol_from")
            }
            Sniff::TooShort => {
                monoio::time::sleep(SNIFF_AGAIN).await;
                if wait.expired() {
                    return Err("nothing read within --client-header-timeout");
                }
            }
        }
    }
}

/// Wait for bytes and copy what is there into `buf` without consuming
/// it; at least one byte.
async fn peek(stream: &TcpStream, wait: &Armed<'_>, buf: &mut [u8]) -> Result<usize, &'static str> {
    loop {
        let ready = stream.readable(false).await;
        // The sweeper shuts the read side down at the deadline: that reads
        // as an end of stream, so the timeout is checked first.
        if wait.expired() {
            return Err("nothing read within --client-header-timeout");
        }
        ready.map_err(|_| "connection failed")?;
        let n = crate::syscall::recv(stream.as_raw_fd(), buf, libc::MSG_PEEK | libc::MSG_DONTWAIT);
        match n {
            0 => return Err(CLOSED),
            n if n > 0 => return Ok(n as usize),
            _ => match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => {}
                _ => return Err("connection failed"),
            },
        }
    }
}

/// Take `buf.len()` bytes already peeked off the socket.
fn consume(fd: RawFd, buf: &mut [u8]) -> Result<(), &'static str> {
    let n = crate::syscall::recv(fd, buf, libc::MSG_DONTWAIT);
    if usize::try_from(n).ok() == Some(buf.len()) {
        Ok(())
    } else {
        Err("connection failed")
    }
}
