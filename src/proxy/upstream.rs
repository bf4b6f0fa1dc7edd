//! Talking to the backend: send the request (head, then any body still
//! coming from the client) and read the response head, relaying interim
//! (1xx) responses on the way.
//!
//! While a body streams up, the backend is watched: one that answers
//! before the body is complete (413, 401, ...) gets its answer relayed at
//! once, the rest of the body is not forwarded, and neither connection is
//! kept ([`SendError::EarlyAnswer`]).

use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::Poll;

use bytes::Buf;

use super::exchange::{Exchange, Request};
use super::final_head::{final_response, Response};
use super::has_head_end;
use crate::deadline::Direction;
use crate::error::ProxyError;
use crate::http::rewrite::{
    write_interim_head, write_response_head, write_switching_head, ClientSide,
};
use crate::http::upgrade::{self, Protocol};
use crate::http::{parse_response, BodyKind, BodyProgress, MAX_HEADERS};
use crate::io::ReadError;
use crate::state::outcome::TimeoutKind;
use crate::transport::backend::BackendStream;
use crate::transport::{ReadWait, Transport};

/// Interim (1xx) responses accepted before the final one, per try. Time
/// is bounded by `--response-timeout`, which runs to the final head; this
/// bounds the work a backend flooding tiny 1xx heads can cause meanwhile
/// (each is parsed and perhaps relayed).
const MAX_INTERIM_RESPONSES: u32 = 1000;

/// Why sending the request failed.
pub(super) enum SendError {
    /// Writing to the backend failed.
    Upstream,
    /// The backend stopped taking the request for `--upstream-timeout`;
    /// our side of the connection is shut for writing (the backend sees the
    /// request cut short), so it is never replayed.
    UpstreamTimeout,
    /// The client failed or sent a bad body.
    Client(ProxyError),
    /// The backend sent something (an answer, or its close) before the
    /// whole body was sent: what it sent is to be read and relayed, and
    /// the rest of the body is not forwarded.
    EarlyAnswer,
}

/// What the bytes at the front of `upstream_in` came to.
enum HeadStep {
    /// Not a whole head yet.
    Incomplete,
    /// An interim (1xx) head, taken off; `relay`: it is in `out`, for
    /// the client.
    Interim { relay: bool },
    /// The final head.
    Final(Response),
}

/// Why no response head arrived.
pub(super) enum HeadFailure {
    /// The backend closed (or reset) before sending a single byte.
    ClosedEarly,
    /// Anything else.
    Error(ProxyError),
}

fn upstream_write_failure(e: std::io::Error) -> SendError {
    if e.kind() == std::io::ErrorKind::TimedOut {
        SendError::UpstreamTimeout
    } else {
        SendError::Upstream
    }
}

impl<T: Transport> Exchange<'_, T> {
    /// Send the head (with any body bytes already in `out`), then stream
    /// the rest of the request body.
    pub(super) async fn send_request(
        &mut self,
        upstream: &mut BackendStream,
        req: &Request,
        req_body: &mut BodyProgress,
    ) -> Result<(), SendError> {
        let upstream_timeout = self.worker.settings().timeouts.upstream;
        upstream
            .write_all_timeout(
                &self.worker.deadlines,
                &mut self.conn.bufs.out,
                upstream_timeout,
            )
            .await
            .map_err(upstream_write_failure)?;
        if req_body.is_done() {
            return Ok(());
        }
        let idle = self.worker.settings().timeouts.client_idle;
        if req.expect_continue && req.http11 {
            self.conn
                .client
                .write_static_timeout(
                    &self.worker.deadlines,
                    b"HTTP/1.1 100 Continue\r\n\r\n",
                    idle,
                )
                .await
                .map_err(|_| SendError::Client(ProxyError::ClientGone))?;
            self.outcome.bytes_out += 25;
        }
        // The body streams up while the backend is watched for an answer;
        // both hold the upstream socket by shared reference (see
        // `io::read_shared`), so neither needs it to itself.
        let upstream: &BackendStream = upstream;
        let worker = self.worker;
        let mut answered = pin!(upstream.answered());
        let body_first = {
            let mut body = pin!(self.stream_body(upstream, req, req_body));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(sent) = body.as_mut().poll(cx) {
                    return Poll::Ready(Some(sent));
                }
                answered.as_mut().poll(cx).map(|_| None)
            })
            .await
        };
        match body_first {
            // Dropping the body's pending read or write is fine here: both
            // connections close after an early answer.
            None => Err(SendError::EarlyAnswer),
            Some(Err(e)) => Err(e),
            Some(Ok(())) => {
                // Wait out the readiness watch rather than drop it (a
                // dropped io_uring poll costs a cancel and an allocation):
                // it is the first wait for the response anyway.
                // Per try, as for any response head (`--response-timeout`).
                let response_timeout = worker.settings().timeouts.response;
                let wait =
                    worker
                        .deadlines
                        .arm(upstream.as_raw_fd(), Direction::Read, response_timeout);
                let ready = answered.await;
                if wait.expired() {
                    return Err(SendError::UpstreamTimeout);
                }
                ready.map_err(|_| SendError::Upstream)
            }
        }
    }

    /// Stream the rest of the request body from the client to `upstream`.
    async fn stream_body(
        &mut self,
        upstream: &BackendStream,
        req: &Request,
        req_body: &mut BodyProgress,
    ) -> Result<(), SendError> {
        let cfg = self.worker.settings();
        let (size, body_timeout) = (cfg.buffer_size, cfg.timeouts.client_body);
        let mut body_limit = req.body_limit;
        while !req_body.is_done() {
            let buf = &mut self.conn.bufs.client_in;
            self.worker.buffers.room_for_body(buf, size);
            let limit = req_body.read_limit(buf.capacity() - buf.len());
            match self
                .conn
                .client
                .read_timeout(
                    &self.worker.deadlines,
                    buf,
                    limit,
                    ReadWait::Busy(body_timeout),
                )
                .await
            {
                Err(ReadError::Timeout) => {
                    self.worker.metrics().timed_out(TimeoutKind::ClientBody);
                    return Err(SendError::Client(ProxyError::ClientGone));
                }
                Ok(0) | Err(_) => return Err(SendError::Client(ProxyError::ClientGone)),
                Ok(_) => {}
            }
            let progress = req_body
                .advance(&self.conn.bufs.client_in, |data| body_limit.count(data))
                .map_err(|e| {
                    SendError::Client(ProxyError::Downstream {
                        status: 400,
                        reason: e.reason(),
                    })
                })?;
            // Over the limit: this part is not sent, and the connection
            // is dropped with the body unfinished.
            body_limit.check().map_err(SendError::Client)?;
            self.outcome.bytes_in += progress.consumed as u64;
            upstream
                .write_shared_timeout(
                    &self.worker.deadlines,
                    &self.conn.bufs.client_in[..progress.consumed],
                    cfg.timeouts.upstream,
                )
                .await
                .map_err(upstream_write_failure)?;
            // As `forward_range`: cleared, not advanced, when all was body,
            // so the next read has the whole buffer again.
            let buf = &mut self.conn.bufs.client_in;
            if progress.consumed == buf.len() {
                buf.clear();
            } else {
                buf.advance(progress.consumed);
            }
        }
        Ok(())
    }

    /// Read the final response head into `upstream_in`, forwarding any
    /// interim (1xx) responses to the client on the way.
    ///
    /// `request_sent`: the whole request reached the backend. If not (an
    /// early answer), neither connection can be kept afterwards.
    /// `replayable`: the request could be sent to another backend, should
    /// its answer be one the pool retries on.
    pub(super) async fn read_response_head(
        &mut self,
        upstream: &mut BackendStream,
        req: &Request,
        request_sent: bool,
        replayable: bool,
    ) -> Result<Response, HeadFailure> {
        let cfg = self.worker.settings();
        let size = cfg.buffer_size;
        self.conn.bufs.upstream_in.clear();
        // Whether the backend sent anything at all (interim responses count):
        // only a connection that stayed silent may be retried.
        let mut received = false;
        let mut interim_responses = 0;
        // Per try, to the *final* head: interim responses do not restart
        // it, or a backend sending `102 Processing` now and then would
        // hold the client for ever. The worker's coarse clock is enough.
        let deadline = self.worker.deadlines.now() + cfg.timeouts.response;
        // Bytes already searched for the end of the head: a head trickled in
        // byte by byte is parsed once at its end, not after every read.
        let mut searched = 0;
        loop {
            if has_head_end(&self.conn.bufs.upstream_in, searched) {
                let step =
                    self.take_response_head(req, request_sent, replayable, interim_responses)?;
                match step {
                    HeadStep::Incomplete => {}
                    HeadStep::Interim { relay } => {
                        interim_responses += 1;
                        searched = 0;
                        if relay {
                            self.send_out().await.map_err(HeadFailure::Error)?;
                        }
                        continue;
                    }
                    HeadStep::Final(response) => return Ok(response),
                }
            }
            let buf = &mut self.conn.bufs.upstream_in;
            if buf.len() >= size {
                return Err(HeadFailure::Error(ProxyError::Upstream(
                    "response head from backend too large",
                )));
            }
            searched = buf.len();
            self.worker.buffers.grow_if_full(buf, size);
            // All the free space, not just up to `size`: a buffer grown for
            // an earlier small body then takes the next head *and* body in
            // one read (a 16 KiB body otherwise always needs a second read,
            // a second trip round the event loop). The head limit is still
            // `size`, checked on the parsed head.
            let room = buf.capacity() - buf.len();
            // What is left of it: what a retry waits for before it moves on.
            let left = deadline.saturating_duration_since(self.worker.deadlines.now());
            match upstream
                .read_timeout(&self.worker.deadlines, buf, room, ReadWait::Busy(left))
                .await
            {
                Ok(0) | Err(ReadError::Io(_)) if !received => return Err(HeadFailure::ClosedEarly),
                Ok(0) | Err(ReadError::Io(_)) => {
                    return Err(HeadFailure::Error(ProxyError::UpstreamClosed(
                        "backend closed the connection mid-head",
                    )))
                }
                Err(ReadError::Timeout) => {
                    return Err(HeadFailure::Error(ProxyError::UpstreamTimeout))
                }
                Ok(_) => {
                    received = true;
                    self.attempt.answered = true;
                }
            }
        }
    }

    /// Parse the response head at the front of `upstream_in` and act on
    /// it: an interim head is taken off (and written to `out` if the
    /// client is to get it), a final head is written to `out` (unless the
    /// plan may retry on it) and described.
    ///
    /// Not async, on purpose: the parser's field array (3 KiB) then lives
    /// on the stack for the call, not in every exchange's future, which is
    /// written whole into its slot for each request.
    fn take_response_head(
        &mut self,
        req: &Request,
        request_sent: bool,
        replayable: bool,
        interim_responses: u32,
    ) -> Result<HeadStep, HeadFailure> {
        let cfg = self.worker.settings();
        let size = cfg.buffer_size;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_response(&self.conn.bufs.upstream_in, &mut headers, req.is_head) {
            Err(e) => Err(HeadFailure::Error(e.into())),
            Ok(None) => Ok(HeadStep::Incomplete),
            Ok(Some(res)) if res.len > size => Err(HeadFailure::Error(ProxyError::Upstream(
                "response head from backend too large",
            ))),
            Ok(Some(res)) if res.code == 101 => {
                let asked = req.upgrade.as_ref().map(Protocol::as_bytes);
                let asked = asked.filter(|_| request_sent);
                let Some(protocol) =
                    asked.filter(|p| upgrade::opens_tunnel(Some(p), 101, res.headers))
                else {
                    // Unasked, or to another protocol than asked: nothing
                    // to relay, and no tunnel either.
                    return Err(HeadFailure::Error(ProxyError::Upstream(
                        "backend switched protocols it was not asked for",
                    )));
                };
                self.attempt.status = Some(101);
                self.conn.bufs.out.clear();
                write_switching_head(&mut self.conn.bufs.out, &res, protocol);
                Ok(HeadStep::Final(Response {
                    body: BodyKind::Empty,
                    upstream_keep_alive: false,
                    client: ClientSide {
                        http11: true,
                        keep_alive: false,
                    },
                    head_len: res.len,
                    tunnel: true,
                    held: false,
                }))
            }
            Ok(Some(res)) if res.is_informational() => {
                if interim_responses >= MAX_INTERIM_RESPONSES {
                    return Err(HeadFailure::Error(ProxyError::Upstream(
                        "too many interim responses from backend",
                    )));
                }
                // `100 Continue` was corelb's to send; other 1xx (e.g.
                // 103 Early Hints) go to HTTP/1.1 clients.
                let relay = res.code != 100 && req.http11;
                let len = res.len;
                self.conn.bufs.out.clear();
                if relay {
                    write_interim_head(&mut self.conn.bufs.out, &res);
                }
                self.conn.bufs.upstream_in.advance(len);
                Ok(HeadStep::Interim { relay })
            }
            Ok(Some(res)) if !req.http11 && res.has_other_transfer_coding() => {
                Err(HeadFailure::Error(ProxyError::Upstream(
                    "transfer coding an HTTP/1.0 client cannot take",
                )))
            }
            Ok(Some(res)) => {
                self.attempt.status = Some(res.code);
                // An answer the pool retries on is held back: its head is
                // not written for the client (`out` still holds the
                // request, for the next backend) until the plan says it is
                // the client's after all. Not after an interim response:
                // that cleared `out`.
                let held = request_sent
                    && interim_responses == 0
                    && req
                        .plan
                        .may_retry_answer(res.code, replayable, &cfg.resilience);
                let response =
                    final_response(&res, req, request_sent, self.worker.draining(), held);
                if !held {
                    self.conn.bufs.out.clear();
                    write_response_head(&mut self.conn.bufs.out, &res, response.client);
                }
                Ok(HeadStep::Final(response))
            }
        }
    }
}
