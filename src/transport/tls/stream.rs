//! A TLS connection, as a [`Transport`]: from a client (server side,
//! [`TlsStream::accept`]) or to a backend (client side,
//! [`TlsStream::connect`]); rustls does the record layer and the
//! cryptography; this file only moves ciphertext between rustls and the
//! socket.
//!
//! rustls reads ciphertext straight from the socket into its own buffer
//! and writes straight from its own buffer to the socket, through
//! non-blocking `recv`/`send` ([`SocketIo`]); when the socket has nothing
//! (or takes nothing), the stream waits for readiness. So a TLS connection
//! holds no ciphertext buffer of corelb's, and its waits are the same
//! socket waits the plain path arms on [`Deadlines`]: a timeout shuts the
//! socket down, the wait ends, and the connection is closed, never reused
//! (a TLS stream cut mid-record cannot be resumed).
//!
//! The tunnel's two directions use the connection at once through a shared
//! reference, so the rustls state sits in a `RefCell`, borrowed only
//! between awaits, never across one.

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use bytes::BytesMut;
use monoio::net::TcpStream;
use rustls::{ClientConnection, Connection, ServerConnection};

use crate::deadline::{Armed, Deadlines, Direction};
use crate::io::{self as owned, ReadError};
use crate::state::outcome::HandshakeFailure;
use crate::transport::{ReadWait, TlsSession, Transport};

/// The most plaintext taken from rustls per read: what fits the caller's
/// buffer anyway, at most one record.
const MAX_PLAINTEXT_READ: usize = 16 * 1024;

/// A TLS connection after its handshake.
pub struct TlsStream {
    tcp: TcpStream,
    conn: RefCell<Connection>,
}

/// Why a handshake failed, and rustls's word on it when it refused
/// what the peer sent (a backend's certificate, say).
pub struct HandshakeError {
    /// As the client-side counters count it.
    pub failure: HandshakeFailure,
    /// rustls's error, when it refused the peer's handshake.
    pub tls: Option<rustls::Error>,
}

/// Non-blocking socket I/O as `std::io::Read`/`Write`, for rustls's
/// `read_tls`/`write_tls`. `WouldBlock` when the socket has nothing now.
struct SocketIo(RawFd);

impl Read for SocketIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = crate::syscall::recv(self.0, buf, libc::MSG_DONTWAIT);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Write for SocketIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = crate::syscall::send(self.0, buf, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// rustls hands over every queued record at once: one system call
    /// for a response of several records (16 KiB of plaintext each).
    fn write_vectored(&mut self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        let n = crate::syscall::send_vectored(self.0, slices, flags);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What reading ciphertext came to.
enum Filled {
    /// rustls took new records (maybe plaintext, maybe only handshake or
    /// alert records).
    Records,
    /// The peer closed the TCP connection.
    Eof,
}

impl TlsStream {
    /// Run the server side of the handshake on `tcp` within `timeout`.
    /// On failure the connection is done; the error says why (for the
    /// handshake failure counters).
    pub async fn accept(
        tcp: TcpStream,
        conn: ServerConnection,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<TlsStream, HandshakeFailure> {
        Self::handshake(tcp, conn.into(), deadlines, timeout)
            .await
            .map_err(|e| e.failure)
    }

    /// Run the client side of the handshake (to a backend) on `tcp`
    /// within `timeout`.
    pub async fn connect(
        tcp: TcpStream,
        conn: ClientConnection,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        Self::handshake(tcp, conn.into(), deadlines, timeout).await
    }

    async fn handshake(
        tcp: TcpStream,
        conn: Connection,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        let fail = |failure| HandshakeError { failure, tls: None };
        let stream = TlsStream {
            tcp,
            conn: RefCell::new(conn),
        };
        let read_wait = deadlines.arm(stream.fd(), Direction::Read, timeout);
        loop {
            stream
                .flush(Some((deadlines, timeout)))
                .await
                .map_err(|_| fail(HandshakeFailure::Io))?;
            if !stream.conn.borrow().is_handshaking() {
                return Ok(stream);
            }
            match stream.fill(Some(&read_wait)).await {
                Ok(Filled::Records) => {}
                Ok(Filled::Eof) => return Err(fail(HandshakeFailure::Closed)),
                Err(ReadError::Timeout) => return Err(fail(HandshakeFailure::Timeout)),
                Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    // rustls queued an alert saying why: send it, best effort.
                    let _ = stream
                        .flush(Some((deadlines, Duration::from_millis(100))))
                        .await;
                    let tls = e
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<rustls::Error>())
                        .cloned();
                    return Err(HandshakeError {
                        failure: HandshakeFailure::Protocol,
                        tls,
                    });
                }
                Err(ReadError::Io(_)) => return Err(fail(HandshakeFailure::Io)),
            }
        }
    }

    /// Plaintext already decrypted and not yet read (or a close seen):
    /// a read would not wait.
    pub fn has_plaintext(&self) -> bool {
        let mut conn = self.conn.borrow_mut();
        let mut reader = conn.reader();
        !matches!(reader.fill_buf(), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Wait until the peer sent application data (or closed, or broke
    /// the connection): records that carry none (TLS 1.3 session tickets,
    /// say) are taken in and waited past. For watching a backend while a
    /// request body streams up; no deadline of its own (the caller's
    /// socket wait ends it by shutting the socket down).
    pub async fn sent_data(&self) {
        while !self.has_plaintext() {
            if !matches!(self.fill(None).await, Ok(Filled::Records)) {
                return;
            }
        }
    }

    fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// The socket and the rustls session, for a driver that reads and
    /// writes in the poll style (HTTP/2: [`super::poll::TlsPollIo`]).
    pub fn into_parts(self) -> (TcpStream, Connection) {
        (self.tcp, self.conn.into_inner())
    }

    /// The protocol the client and corelb agreed on by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Move at least one read's worth of ciphertext from the socket into
    /// rustls and process it, waiting under `wait` while the socket is
    /// empty.
    async fn fill(&self, wait: Option<&Armed<'_>>) -> Result<Filled, ReadError> {
        loop {
            let read = self.conn.borrow_mut().read_tls(&mut SocketIo(self.fd()));
            match read {
                Ok(0) => return Ok(Filled::Eof),
                Ok(_) => {
                    let processed = self.conn.borrow_mut().process_new_packets();
                    return match processed {
                        Ok(_) => Ok(Filled::Records),
                        Err(e) => Err(ReadError::Io(io::Error::new(io::ErrorKind::InvalidData, e))),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = self.tcp.readable(false).await;
                    if wait.is_some_and(Armed::expired) {
                        return Err(ReadError::Timeout);
                    }
                    ready.map_err(ReadError::Io)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Send every record rustls has queued, giving up after `timeout` if
    /// there is one (`None`: the caller bounds the wait itself).
    async fn flush(&self, deadline: Option<(&Deadlines, Duration)>) -> io::Result<()> {
        let mut wait = None;
        loop {
            let written = {
                let mut conn = self.conn.borrow_mut();
                if !conn.wants_write() {
                    return Ok(());
                }
                conn.write_tls(&mut SocketIo(self.fd()))
            };
            match written {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if wait.is_none() {
                        wait = deadline.map(|(deadlines, timeout)| {
                            deadlines.arm(self.fd(), Direction::Write, timeout)
                        });
                    }
                    let ready = self.tcp.writable(false).await;
                    if wait.as_ref().is_some_and(Armed::expired) {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    ready?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Move plaintext rustls has decrypted into `buf` (at most `limit`
    /// bytes). `Some(0)`: the client closed the TLS session; `None`:
    /// nothing decrypted yet.
    fn take_plaintext(&self, buf: &mut BytesMut, limit: usize) -> io::Result<Option<usize>> {
        let mut conn = self.conn.borrow_mut();
        let mut reader = conn.reader();
        match reader.fill_buf() {
            Ok(data) => {
                let n = data.len().min(limit).min(MAX_PLAINTEXT_READ);
                buf.extend_from_slice(&data[..n]);
                reader.consume(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // A TCP close without close_notify: as a plain close would be.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Read plaintext into `buf`, taking ciphertext from the socket as
    /// needed under `wait`.
    async fn read_plaintext(
        &self,
        buf: &mut BytesMut,
        limit: usize,
        wait: Option<&Armed<'_>>,
    ) -> Result<usize, ReadError> {
        if limit == 0 {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.take_plaintext(buf, limit).map_err(ReadError::Io)? {
                return Ok(n);
            }
            if let Filled::Eof = self.fill(wait).await? {
                // Whatever was decrypted before the close is still read.
                return Ok(self
                    .take_plaintext(buf, limit)
                    .map_err(ReadError::Io)?
                    .unwrap_or(0));
            }
        }
    }

    /// Encrypt `bytes` and send them, giving up after `timeout`.
    async fn write_plaintext(
        &self,
        deadlines: &Deadlines,
        bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        let mut sent = 0;
        while sent < bytes.len() {
            sent += self.conn.borrow_mut().writer().write(&bytes[sent..])?;
            self.flush(Some((deadlines, timeout))).await?;
        }
        Ok(())
    }
}

impl AsRawFd for TlsStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl Transport for TlsStream {
    async fn read_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        limit: usize,
        wait: ReadWait,
    ) -> Result<usize, ReadError> {
        let armed = match wait {
            ReadWait::Busy(timeout) => deadlines.arm(self.fd(), Direction::Read, timeout),
            ReadWait::Idle(timeout) => deadlines.arm_idle(self.fd(), timeout),
        };
        self.read_plaintext(buf, limit, Some(&armed)).await
    }

    async fn readable_idle_timeout(
        &self,
        deadlines: &Deadlines,
        timeout: Duration,
    ) -> Result<(), ReadError> {
        // Plaintext already decrypted (pipelined requests) is there now.
        if self.has_plaintext() {
            return Ok(());
        }
        owned::readable_idle_timeout(deadlines, &self.tcp, timeout).await
    }

    async fn write_range_timeout(
        &mut self,
        deadlines: &Deadlines,
        buf: &mut BytesMut,
        range: Range<usize>,
        timeout: Duration,
    ) -> io::Result<()> {
        self.write_plaintext(deadlines, &buf[range], timeout).await
    }

    async fn write_static_timeout(
        &mut self,
        deadlines: &Deadlines,
        bytes: &'static [u8],
        timeout: Duration,
    ) -> io::Result<()> {
        self.write_plaintext(deadlines, bytes, timeout).await
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.get_mut().send_close_notify();
        // A client that reads nothing more must not hold the close up.
        let _ = monoio::time::timeout(Duration::from_secs(1), self.flush(None)).await;
        owned::shutdown_now(self.fd(), libc::SHUT_WR);
        Ok(())
    }

    fn reset_on_close(&self) {
        owned::reset_on_close(&self.tcp);
    }

    async fn read_shared(&self, buf: &mut BytesMut, limit: usize) -> io::Result<usize> {
        // The tunnel times out by shutting the socket down, which ends the
        // readiness wait; no deadline of its own here.
        match self.read_plaintext(buf, limit, None).await {
            Ok(n) => Ok(n),
            Err(ReadError::Io(e)) => Err(e),
            Err(ReadError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    async fn write_shared_timeout(
        &self,
        deadlines: &Deadlines,
        bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        self.write_plaintext(deadlines, bytes, timeout).await
    }

    fn shutdown_now(&self, how: libc::c_int) {
        if how != libc::SHUT_RD {
            // Tell the client the stream ended on purpose, if the socket
            // takes it at once; then the FIN.
            let mut conn = self.conn.borrow_mut();
            conn.send_close_notify();
            let _ = conn.write_tls(&mut SocketIo(self.fd()));
        }
        owned::shutdown_now(self.fd(), how);
    }

    fn with_tls_session<R>(&self, f: impl FnOnce(Option<TlsSession<'_>>) -> R) -> R {
        // Never borrowed across an await, so free whenever the log asks.
        let Ok(conn) = self.conn.try_borrow() else {
            return f(None);
        };
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        f(Some(TlsSession {
            version,
            // A client-side stream (to a backend) has no client's SNI to log.
            sni: match &*conn {
                Connection::Server(server) => server.server_name(),
                Connection::Client(_) => None,
            },
        }))
    }
}
