//! What a client speaks over: the operations the HTTP/1.1 connection loop
//! (`crate::proxy`) needs from its client side, whatever carries the bytes.
//!
//! [`Transport`] is the seam: the proxy is generic over it, so plain TCP
//! (today, `tcp.rs`) and TLS (a wrapper that decrypts on read and encrypts
//! on write) feed the same forwarding code. Every operation takes its
//! timeout through the worker's [`Deadlines`], as the TCP path always has.
//! What only some transports can do is a method here with the TCP meaning
//! documented, so another transport decides for itself (a TLS stream, for
//! one, must not reset or write around its record layer).

pub mod backend;
mod tcp;
pub mod tls;

use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;

use crate::deadline::Deadlines;
use crate::io::ReadError;

/// How long a read may wait, and what kind of wait it is.
#[derive(Debug, Clone, Copy)]
pub enum ReadWait {
    /// Bytes of a message under way (a head, a body): `timeout` at most.
    Busy(Duration),
    /// A kept-alive connection waiting for its next request: `timeout` at
    /// most, and a drain ends the wait early.
    Idle(Duration),
}

/// What the access log shows of a client's TLS session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSession<'a> {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The name the client asked for (SNI), if it sent one.
    pub sni: Option<&'a str>,
}

/// A client connection's byte stream. See the module docs.
///
/// `async fn` in a trait: corelb's runtimes are single-threaded, so no
/// caller needs the futures to be `Send`.
#[allow(async_fn_in_trait)]
pub trait Transport: AsRawFd {
    /// Append up to `limit` bytes to `buf`, giving up when `wait` says.
    /// `Ok(0)`: the peer closed.
    async fn read_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        limit: usize,
        wait: ReadWait,
    ) -> Result<usize, ReadError>;

    /// Wait, holding no buffer, until there is something to read (or end
    /// of file), giving up after `timeout` or early in a drain.
    async fn readable_idle_timeout(
        &self,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<(), ReadError>;

    /// Write `buf[range]`, giving up after `timeout` (`TimedOut`); `buf`
    /// comes back unchanged.
    async fn write_range_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        range: Range<usize>,
        timeout: Duration,
    ) -> io::Result<()>;

    /// Write a static byte string (`100 Continue`), giving up after `timeout`.
    async fn write_static_timeout(
        &mut self,
        deadlines: &Deadlines,
        bytes: &'static [u8],
        timeout: Duration,
    ) -> io::Result<()>;

    /// Write all of `buf`, giving up after `timeout`; `buf` comes back
    /// unchanged.
    async fn write_all_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        timeout: Duration,
    ) -> io::Result<()> {
        let all = 0..buf.len();
        self.write_range_timeout(deadlines, buf, all, timeout).await
    }

    /// Say that nothing more will be written (TCP: FIN), before reading
    /// what the client still sends.
    async fn shutdown_write(&mut self) -> io::Result<()>;

    /// Make closing tell the client that what it received was cut short
    /// (TCP: RST, where a FIN would look like a complete close-delimited
    /// body).
    fn reset_on_close(&self);

    /// Read through a shared reference, for a tunnel whose two directions
    /// use the connection at once. `Ok(0)`: closed.
    async fn read_shared(&self, buf: &mut BytesMut, limit: usize) -> io::Result<usize>;

    /// Write all of `bytes` through a shared reference (see
    /// [`Transport::read_shared`]), giving up after `timeout`.
    async fn write_shared_timeout(
        &self,
        deadlines: &Deadlines,
        bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()>;

    /// Shut down `how` (`libc::SHUT_WR`, `libc::SHUT_RDWR`) now; errors
    /// change nothing for the caller.
    fn shutdown_now(&self, how: libc::c_int);

    /// The socket itself, when bytes written to it go to the client as
    /// they are (plain TCP), for a body spliced to it
    /// (`crate::splice`); `None` for a transport that must see every byte
    /// (TLS, HTTP/2).
    fn splice_socket(&self) -> Option<&monoio::net::TcpStream> {
        None
    }

    /// Call `f` with the TLS session, if the client speaks TLS (TCP:
    /// `None`). Borrowed, not copied: rustls keeps the SNI once per
    /// connection, and the access log reads it there for each request.
    fn with_tls_session<R>(&self, f: impl FnOnce(Option<TlsSession<'_>>) -> R) -> R {
        f(None)
    }
}
