//! A TLS connection in the poll style (tokio's `AsyncRead`/`AsyncWrite`),
//! for the HTTP/2 driver (`crate::h2`), which wants those traits.
//!
//! The same rustls session the handshake made ([`super::TlsStream`] is
//! taken apart, not copied), over monoio's poll-style socket
//! (`TcpStreamPoll`, monoio's `poll-io`), which registers the waker with
//! the worker's own event loop: no second runtime, no other thread.
//! rustls reads ciphertext from the socket into its own buffer and writes
//! from its own buffer, as on the HTTP/1.1 path; a socket with nothing to
//! give (or no room) is `Pending`, and its waker is registered.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::IntoPollIo;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use rustls::Connection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::TlsStream;

/// A TLS session over a poll-style socket.
pub struct TlsPollIo {
    tcp: TcpStreamPoll,
    conn: Connection,
    /// The client closed its side of the TCP connection.
    eof: bool,
    /// Plaintext rustls holds for us (its `IoState` after the last
    /// `process_new_packets`, less what was read since): a read
    /// initializes no more of the caller's buffer than this.
    readable: usize,
}

impl TlsPollIo {
    /// The session of `stream`, after its handshake.
    pub fn new(stream: TlsStream) -> io::Result<Self> {
        let (tcp, mut conn) = stream.into_parts();
        // Plaintext that came with the handshake's last flight. An error
        // here comes back from the first read's `process_new_packets`.
        let readable = conn
            .process_new_packets()
            .map_or(0, |state| state.plaintext_bytes_to_read());
        Ok(Self {
            tcp: tcp.into_poll_io()?,
            conn,
            eof: false,
            readable,
        })
    }

    /// Send what rustls has queued. `Pending`: the socket is full (the
    /// waker is registered).
    fn poll_send_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Polled {
                io: &mut self.tcp,
                cx,
            }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The poll-style socket as `std::io::Read`/`Write` for rustls's
/// `read_tls`/`write_tls`: `Pending` becomes `WouldBlock`.
struct Polled<'a, 'b> {
    io: &'a mut TcpStreamPoll,
    cx: &'a mut Context<'b>,
}

impl Read for Polled<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Polled<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// rustls hands over every queued record at once: one `writev` for
    /// all the frames h2 flushed, not one system call per record.
    fn write_vectored(&mut self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, slices) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for TlsPollIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Only as much of `buf` as there is plaintext to put in it is
            // initialized: h2's read buffer (8 KiB) is never zeroed whole,
            // so an idle connection's pages past its last frame stay
            // untouched. Nothing to read: one byte, for rustls to say
            // whether that is for now (`WouldBlock`) or for good.
            let want = this.readable.clamp(1, buf.remaining());
            match this.conn.reader().read(buf.initialize_unfilled_to(want)) {
                Ok(n) => {
                    this.readable = this.readable.saturating_sub(n);
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A TCP close without close_notify: as a plain close.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Records rustls owes the client (alerts, key updates) go
            // first; a full socket does not stop the read.
            if let Poll::Ready(Err(e)) = this.poll_send_records(cx) {
                return Poll::Ready(Err(e));
            }
            match this.conn.read_tls(&mut Polled {
                io: &mut this.tcp,
                cx,
            }) {
                Ok(0) => this.eof = true,
                Ok(_) => match this.conn.process_new_packets() {
                    Ok(state) => this.readable = state.plaintext_bytes_to_read(),
                    Err(e) => {
                        // rustls queued an alert saying why: best effort.
                        let _ = this.poll_send_records(cx);
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsPollIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            // rustls takes plaintext (as records) up to its buffer limit;
            // they go out at the flush h2 ends each batch of frames with,
            // so a batch is one system call, not one per frame (a 16 KiB
            // DATA frame comes as two writes: its header, its payload).
            let taken = this.conn.writer().write(buf)?;
            if taken > 0 {
                return Poll::Ready(Ok(taken));
            }
            // Full: send what is queued to make room.
            if this.poll_send_records(cx)?.is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_send_records(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.send_close_notify();
        std::task::ready!(this.poll_send_records(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
