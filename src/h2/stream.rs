//! One HTTP/2 stream as a [`Transport`]: the forwarding core serves it as
//! a client connection that carries exactly one request.
//!
//! Reading gives the request as HTTP/1.1 bytes (`super::request`: the
//! head, then the DATA frames as they come, chunked when no length was
//! given, and the trailers); writing takes the response the core writes
//! for an HTTP/1.1 client and sends it as HEADERS, DATA and trailers
//! (`super::response`), waiting for the client's flow-control window as a
//! socket write waits for room. So plan, balancing, retries, timeouts,
//! limits, metrics and the access log are the HTTP/1.1 path's, on the
//! worker's pooled upstream connections: a stream in flight holds one
//! upstream connection, as any exchange does.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::Context;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::request::Parts;

use super::request::{put_chunk, put_last_chunk, write_request_head, Framing, Malformed};
use super::response::ResponseDecoder;
use super::ConnectionShared;
use crate::deadline::Deadlines;
use crate::io::ReadError;
use crate::transport::{ReadWait, Transport};

/// A stream's request and response, between the h2 connection and the
/// exchange.
pub struct H2Stream {
    /// The connection's socket: a transport names one; nothing here uses
    /// it (a stream is never a tunnel).
    fd: RawFd,
    shared: Rc<ConnectionShared>,
    respond: SendResponse<Bytes>,
    /// The response body's stream, once the head went.
    send: Option<SendStream<Bytes>>,
    /// The request body still coming; `None` once all of it (and its
    /// trailers) is in `pending`.
    recv: Option<RecvStream>,
    framing: Framing,
    /// Request bytes (head, then body) not yet read by the exchange.
    pending: BytesMut,
    /// The exchange took the first bytes of the head: the one request of
    /// this stream has begun.
    begun: bool,
    response: ResponseDecoder,
    /// END_STREAM (or a reset) went: nothing more to send.
    ended: bool,
    /// The exchange said the response was cut short: reset, not end.
    cut: Cell<bool>,
    /// The client reset the stream.
    reset_by_client: bool,
}

impl H2Stream {
    /// The stream of request `parts`, its body `recv`; `Err` (and the
    /// reply handle back) if the request is malformed.
    pub fn new(
        parts: &Parts,
        recv: RecvStream,
        respond: SendResponse<Bytes>,
        fd: RawFd,
        shared: Rc<ConnectionShared>,
    ) -> Result<Self, (Malformed, SendResponse<Bytes>)> {
        let mut pending = BytesMut::with_capacity(512);
        let is_head = parts.method == http::Method::HEAD;
        let framing = match write_request_head(&mut pending, parts, !recv.is_end_stream()) {
            Ok(framing) => framing,
            Err(why) => return Err((why, respond)),
        };
        Ok(Self {
            fd,
            shared,
            respond,
            send: None,
            recv: (framing != Framing::Empty).then_some(recv),
            framing,
            pending,
            begun: false,
            response: ResponseDecoder::new(is_head),
            ended: false,
            cut: Cell::new(false),
            reset_by_client: false,
        })
    }

    /// Note what an h2 error says of the client, and make it an I/O error.
    fn failed(&mut self, e: h2::Error) -> io::Error {
        if e.is_reset() && e.is_remote() {
            self.reset_by_client = true;
        }
        io::Error::other(e)
    }

    /// Has the client reset the stream already (rapid reset: before the
    /// request went anywhere)? Asked without waiting.
    fn reset_already(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if self.respond.poll_reset(&mut cx).is_ready() {
            self.reset_by_client = true;
        }
        self.reset_by_client
    }

    /// Translate what came next on the request body into `pending`.
    async fn receive(&mut self, timeout: Duration) -> Result<(), ReadError> {
        let Some(recv) = self.recv.as_mut() else {
            return Ok(());
        };
        let next = monoio::time::timeout(timeout, recv.data())
            .await
            .map_err(|_| ReadError::Timeout)?;
        match next {
            Some(Ok(data)) => {
                // The window opens as the exchange takes the bytes: the
                // client can send ahead by one window, no more.
                let _ = recv.flow_control().release_capacity(data.len());
                match self.framing {
                    Framing::Chunked => put_chunk(&mut self.pending, &data),
                    _ => self.pending.extend_from_slice(&data),
                }
            }
            Some(Err(e)) => return Err(ReadError::Io(self.failed(e))),
            None => {
                if self.framing == Framing::Chunked {
                    let trailers = monoio::time::timeout(timeout, recv.trailers())
                        .await
                        .map_err(|_| ReadError::Timeout)?;
                    match trailers {
                        Ok(trailers) => put_last_chunk(&mut self.pending, trailers.as_ref()),
                        Err(e) => return Err(ReadError::Io(self.failed(e))),
                    }
                }
                self.recv = None;
            }
        }
        Ok(())
    }

    /// Decode `bytes` of the HTTP/1.1 response and send what they hold.
    async fn send_bytes(&mut self, mut bytes: &[u8], timeout: Duration) -> io::Result<()> {
        while !bytes.is_empty() {
            let taken = self
                .response
                .feed(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
            bytes = &bytes[taken..];
            self.send_decoded(timeout).await?;
            if taken == 0 {
                // Past the end of the response: nothing of this stream.
                break;
            }
        }
        Ok(())
    }

    /// Send the parts decoded so far: interim head, head, body as the
    /// client's window allows (`timeout` at most for each opening), then
    /// the end of the stream or its trailers.
    async fn send_decoded(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(interim) = self.response.interim.take() {
            let _ = self.respond.send_informational(interim);
        }
        let trailers = |r: &ResponseDecoder| r.trailers.as_ref().is_some_and(|t| !t.is_empty());
        if let Some(head) = self.response.head.take() {
            let end = self.response.is_done()
                && self.response.data.is_empty()
                && !trailers(&self.response);
            let sent = self.respond.send_response(head, end);
            self.send = Some(sent.map_err(|e| self.failed(e))?);
            self.ended |= end;
        }
        while !self.response.data.is_empty() {
            let Some(stream) = self.send.as_mut() else {
                break;
            };
            stream.reserve_capacity(self.response.data.len());
            let room = monoio::time::timeout(timeout, poll_fn(|cx| stream.poll_capacity(cx)))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
            let room = match room {
                Some(Ok(room)) => room,
                Some(Err(e)) => return Err(self.failed(e)),
                None => return Err(io::ErrorKind::BrokenPipe.into()),
            };
            let chunk = self.response.take_data(room);
            let end = self.response.is_done()
                && self.response.data.is_empty()
                && !trailers(&self.response);
            if let Err(e) = stream.send_data(chunk, end) {
                return Err(self.failed(e));
            }
            self.ended |= end;
        }
        if self.response.is_done() && !self.ended {
            if let Some(stream) = self.send.as_mut() {
                let sent = match self.response.trailers.take() {
                    Some(fields) if !fields.is_empty() => stream.send_trailers(fields),
                    _ => stream.send_data(Bytes::new(), true),
                };
                sent.map_err(|e| self.failed(e))?;
                self.ended = true;
            }
        }
        Ok(())
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if !self.ended && !self.reset_by_client {
            // Cut short (or never answered): the client must not take
            // what it got for the whole response.
            match self.send.as_mut() {
                Some(stream) => stream.send_reset(Reason::INTERNAL_ERROR),
                None => self.respond.send_reset(Reason::INTERNAL_ERROR),
            }
        }
        self.shared.stream_ended(self.reset_by_client);
    }
}

impl AsRawFd for H2Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Transport for H2Stream {
    async fn read_timeout(
        &mut self,
        _deadlines: &Deadlines,
        buf: &mut BytesMut,
        limit: usize,
        wait: ReadWait,
    ) -> Result<usize, ReadError> {
        let (ReadWait::Busy(timeout) | ReadWait::Idle(timeout)) = wait;
        loop {
            if !self.pending.is_empty() {
                if !self.begun {
                    if self.reset_already() {
                        return Ok(0);
                    }
                    self.begun = true;
                }
                let n = limit.min(self.pending.len());
                buf.extend_from_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Ok(n);
            }
            if self.recv.is_none() {
                return Ok(0);
            }
            self.receive(timeout).await?;
        }
    }

    async fn readable_idle_timeout(
        &self,
        _deadlines: &Deadlines,
        _timeout: Duration,
    ) -> Result<(), ReadError> {
        // One request per stream: after it, the stream is done.
        match self.begun {
            false => Ok(()),
            true => Err(ReadError::Io(io::ErrorKind::ConnectionAborted.into())),
        }
    }

    async fn write_range_timeout(
        &mut self,
        _deadlines: &Deadlines,
        buf: &mut BytesMut,
        range: Range<usize>,
        timeout: Duration,
    ) -> io::Result<()> {
        self.send_bytes(&buf[range], timeout).await
    }

    async fn write_static_timeout(
        &mut self,
        _deadlines: &Deadlines,
        bytes: &'static [u8],
        timeout: Duration,
    ) -> io::Result<()> {
        self.send_bytes(bytes, timeout).await
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        // A body delimited by the close is complete now; anything else
        // cut short is reset when the stream is dropped.
        if !self.cut.get() && self.response.close() {
            self.send_decoded(Duration::from_secs(1)).await?;
        }
        Ok(())
    }

    fn reset_on_close(&self) {
        self.cut.set(true);
    }

    async fn read_shared(&self, _buf: &mut BytesMut, _limit: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn write_shared_timeout(
        &self,
        _deadlines: &Deadlines,
        _bytes: &[u8],
        _timeout: Duration,
    ) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn shutdown_now(&self, _how: libc::c_int) {}
}
