//! One request on a client connection: read and parse its head, plan its
//! tries, forward it (`forward.rs`), answer errors, and record its
//! outcome once, at the end.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

use super::body_limit::BodyLimit;
use super::client::Connection;
use super::context::WorkerContext;
use super::has_head_end;
use crate::access_log::Entry;
use crate::error::{write_error_response, ProxyError};
use crate::http::rewrite::{is_looping, write_https_redirect, write_request_head_upgrading};
use crate::http::upgrade::Protocol;
use crate::http::{head, parse_request, path, BodyKind, RequestHead, MAX_HEADERS};
use crate::io::ReadError;
use crate::plan::Plan;
use crate::state::outcome::{RequestOutcome, TimeoutKind};
use crate::transport::{ReadWait, Transport};

/// What the request head said, once parsed; owned, so it lives across awaits.
pub(super) struct Request {
    pub(super) body: BodyKind,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    pub(super) is_head: bool,
    /// RFC 9110 §9.2.2: may be sent again if a reused connection failed
    /// before any answer.
    pub(super) idempotent: bool,
    pub(super) http11: bool,
    /// Which backend, and what if it fails.
    pub(super) plan: Plan,
    /// The protocol the request asks to switch to, when its pool lets the
    /// ask through to the backend.
    pub(super) upgrade: Option<Protocol>,
    /// What the pool lets the body weigh, and what it weighed so far.
    pub(super) body_limit: BodyLimit,
}

/// Outcome of reading the next request head.
pub(super) enum NextRequest {
    /// A request is ready (its head is in `out`, rewritten).
    Ready(Request),
    /// The listener redirects every request to `https://`: the redirect is
    /// in `out`; `keep_alive`: the connection stays open after it.
    Redirect { keep_alive: bool },
    /// The client closed or went idle between requests: end quietly.
    Closed,
}

/// What the current try at a backend has come to so far.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AttemptState {
    pub(super) status: Option<u16>,
    pub(super) ttfb: Option<Duration>,
    pub(super) replayed: bool,
    pub(super) pooled: bool,
    /// The backend sent something (an interim response counts): the
    /// request reached it, and `out` no longer holds it.
    pub(super) answered: bool,
}

/// How a finished exchange leaves the connection.
pub(super) enum After {
    /// Keep it for the next request.
    KeepAlive,
    /// Close it gently (see [`linger`]).
    Close,
    /// The response was cut short: reset, so the client cannot take it
    /// for complete.
    Abort,
    /// The client is gone: just close.
    Gone,
}

/// One request on a client connection, from its head to its answer: made
/// fresh for each request, so nothing of the last one's state lingers.
pub(super) struct Exchange<'a, T> {
    pub(super) worker: &'a WorkerContext,
    /// The connection the request came on.
    pub(super) conn: &'a mut Connection<T>,
    /// Some of the response went to the client: an error now can only close.
    pub(super) response_started: bool,
    /// The request being answered is a HEAD: an error answer has no body.
    pub(super) answering_head: bool,
    /// When the request's head was complete.
    pub(super) started: Option<Instant>,
    /// What the request has come to so far.
    pub(super) outcome: RequestOutcome,
    /// What the current try has come to so far.
    pub(super) attempt: AttemptState,
}

impl<'a, T: Transport> Exchange<'a, T> {
    /// A new request on `conn`.
    pub(super) fn new(worker: &'a WorkerContext, conn: &'a mut Connection<T>) -> Self {
        Self {
            worker,
            conn,
            response_started: false,
            answering_head: false,
            started: None,
            outcome: RequestOutcome::default(),
            attempt: AttemptState::default(),
        }
    }

    /// Everything of the request after its head was read: forward it (or
    /// send the redirect, or answer the error), then record its outcome.
    /// How the connection goes on afterwards.
    pub(super) async fn complete(mut self, next: Result<NextRequest, ProxyError>) -> After {
        let result = match next {
            Ok(NextRequest::Ready(req)) => self.forward(req).await,
            Ok(NextRequest::Redirect { keep_alive }) => self.send_out().await.map(|()| keep_alive),
            // Nothing parsed and nothing to answer: not a request to count.
            Ok(NextRequest::Closed) => return After::Gone,
            Err(e) => Err(e),
        };
        let after = match result {
            Ok(true) => After::KeepAlive,
            Ok(false) => After::Close,
            // Even when the client is the one that failed: a client that
            // stopped reading (write timeout) is still there, and with a
            // close-delimited body a FIN would tell it the body is complete.
            // The reset also discards the FIN our timed-out write queued.
            Err(_) if self.response_started => After::Abort,
            // Boxed: an error answer is rare, and its state need not make
            // every exchange's block larger.
            Err(err) => Box::pin(self.answer_error(&err)).await,
        };
        self.finish_request();
        after
    }

    /// Send `out` (a head, perhaps with body bytes) to the client.
    pub(super) async fn send_out(&mut self) -> Result<(), ProxyError> {
        let len = self.conn.bufs.out.len() as u64;
        let Connection { client, bufs, .. } = &mut *self.conn;
        client
            .write_all_timeout(
                &self.worker.deadlines,
                &mut bufs.out,
                self.worker.settings().timeouts.client_idle,
            )
            .await
            .map_err(|_| ProxyError::ClientGone)?;
        self.outcome.bytes_out += len;
        Ok(())
    }

    /// Answer `err` with corelb's own response, if the client is there.
    pub(super) async fn answer_error(&mut self, err: &ProxyError) -> After {
        let Some(status) = err.status() else {
            return After::Close;
        };
        self.outcome.status = status;
        self.outcome.generated = err.generated();
        self.conn.bufs.out.clear();
        write_error_response(&mut self.conn.bufs.out, err, self.answering_head);
        match self.send_out().await {
            Ok(()) => After::Close,
            Err(_) => After::Gone,
        }
    }

    /// The one place a request's outcome is recorded: this worker's
    /// metrics, and the access log.
    pub(super) fn finish_request(&mut self) {
        let Some(started) = self.started else {
            // Nothing parsed: a head too large or malformed is still a
            // request answered, and counted; a silent close is not.
            if self.outcome.status == 0 {
                return;
            }
            self.conn.logged.clear();
            self.started = Some(Instant::now());
            return self.finish_request();
        };
        self.outcome.total_time = started.elapsed();
        self.worker.metrics().record_request(&self.outcome);
        if self.outcome.status != 0 {
            if let Some(counts) = self.worker.metrics().listener(self.conn.listener) {
                counts.requests.inc();
            }
        }
        if let Some(log) = &self.worker.access_log {
            if self.outcome.status != 0 {
                let l = &self.conn.logged;
                let listener = log.listener(self.conn.listener);
                self.conn.client.with_tls_session(|tls| {
                    log.record(&Entry {
                        client: self.conn.peer_ip,
                        method: or_dash(l.text(l.method)),
                        target: or_dash(l.text(l.target)),
                        minor_version: l.minor_version,
                        status: self.outcome.status,
                        bytes_out: self.outcome.bytes_out,
                        referer: l.text(l.referer),
                        user_agent: l.text(l.user_agent),
                        backend: l.backend,
                        upstream_time: self.outcome.upstream_time,
                        total_time: self.outcome.total_time,
                        listener,
                        tls,
                    })
                });
            }
        }
    }

    /// Read until a whole request head is buffered, then parse it, pick a
    /// backend and write the forwarded head into `out`.
    pub(super) async fn next_request(&mut self) -> Result<NextRequest, ProxyError> {
        let cfg = self.worker.settings();
        let mut header_deadline: Option<Instant> = None;
        // Bytes already searched for the end of the head: a head trickled in
        // byte by byte is parsed once at its end, not after every read
        // (which would be quadratic work for the sender's linear effort).
        let mut searched = 0;
        // An empty line left over right after the last request's body (old
        // clients send CRLF after a POST body, RFC 9112 §2.2) is dropped
        // here, once: the connection stays idle rather than on the head
        // clock. Empty lines that arrive while waiting start that clock.
        let stray = head::stray_empty_line(&self.conn.bufs.client_in);
        self.conn.bufs.client_in.advance(stray);
        loop {
            // Bytes no request line can start with (a TLS ClientHello on
            // the plain port), or more empty lines than a client sends:
            // answer 400 now, not at the header timeout.
            head::check_request_start(&self.conn.bufs.client_in)?;
            if has_head_end(&self.conn.bufs.client_in, searched) {
                if let Some(next) = self.prepare()? {
                    return Ok(next);
                }
            }
            searched = self.conn.bufs.client_in.len();
            if searched >= cfg.buffer_size {
                return Err(head::oversized_request(&self.conn.bufs.client_in).into());
            }
            // Idle only while nothing at all has come: empty lines before
            // a request line are ignored (RFC 9112 §2.2) but are its first
            // bytes, so they start the header timeout; else a client
            // sending one now and then would hold the connection for ever.
            let idle = header_deadline.is_none() && self.conn.bufs.client_in.is_empty();
            let timeout = match header_deadline {
                None if idle => cfg.timeouts.client_idle,
                None => {
                    header_deadline = Some(Instant::now() + cfg.timeouts.client_header);
                    cfg.timeouts.client_header
                }
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            let deadlines = &self.worker.deadlines;
            let room = cfg.buffer_size - self.conn.bufs.client_in.len();
            // Grown (doubling) only when a head does not fit: most fit
            // the small buffer it starts with.
            self.worker
                .buffers
                .grow_if_full(&mut self.conn.bufs.client_in, cfg.buffer_size);
            let Connection { client, bufs, .. } = &mut *self.conn;
            let buf = &mut bufs.client_in;
            let wait = if idle {
                // A drain closes connections waiting here (see
                // `Deadlines::start_drain`).
                ReadWait::Idle(timeout)
            } else {
                ReadWait::Busy(timeout)
            };
            let read = client.read_timeout(deadlines, buf, room, wait).await;
            match read {
                Ok(0) | Err(ReadError::Io(_)) => return Ok(NextRequest::Closed),
                // A client that stalls mid-head gets no answer: it is either
                // gone or hostile (slowloris), and a 408 helps neither.
                Err(ReadError::Timeout) => {
                    let kind = if idle {
                        TimeoutKind::KeepAlive
                    } else {
                        TimeoutKind::ClientHeader
                    };
                    self.worker.metrics().timed_out(kind);
                    return Ok(NextRequest::Closed);
                }
                // The header deadline starts once bytes are here; it is
                // set above only if the head turns out to be incomplete,
                // which saves a clock read on the common one-read head.
                Ok(_) => {}
            }
        }
    }

    /// Parse the buffered head; if complete, route it, pick a backend and
    /// write the upstream head into `out`. Synchronous: the parsed head
    /// borrows the buffer and must not live across an await.
    fn prepare(&mut self) -> Result<Option<NextRequest>, ProxyError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some(req) = parse_request(&self.conn.bufs.client_in, &mut headers)? else {
            return Ok(None);
        };
        self.answering_head = req.is_head();
        self.started = Some(Instant::now());
        self.outcome.bytes_in = req.len as u64;
        if self.worker.access_log.is_some() {
            self.conn.logged.capture(&req);
        }
        if self.conn.redirect_to != 0 {
            let out = &mut self.conn.bufs.out;
            let keep_alive = redirect(out, &req, self.conn.redirect_to);
            self.outcome.status = if matches!(req.method, "GET" | "HEAD") {
                301
            } else {
                308
            };
            let len = req.len;
            self.conn.bufs.client_in.advance(len);
            return Ok(Some(NextRequest::Redirect { keep_alive }));
        }
        if is_looping(&req) {
            return Err(ProxyError::LoopDetected);
        }
        let plan = path::with_normalized(req.path(), |path| {
            let path = path.ok_or(ProxyError::Downstream {
                status: 414,
                reason: "request path too long to route",
            })?;
            Plan::start(
                &mut self.worker.fresh_routing(),
                &self.worker.retry_budget,
                self.conn.listener,
                self.conn.peer_ip,
                &req,
                path,
            )
        })?;
        self.conn.logged.backend = Some(plan.backend().addr);
        let body_limit = BodyLimit::new(plan.max_body_size, req.body)?;
        let upgrade = req.upgrade.filter(|_| plan.upgrade).and_then(Protocol::new);
        let out = &mut self.conn.bufs.out;
        out.clear();
        write_request_head_upgrading(
            out,
            &req,
            &self.conn.client_addr,
            plan.backend().name.as_bytes(),
            upgrade.as_ref().map(Protocol::as_bytes),
        );
        let prepared = Request {
            body: req.body,
            keep_alive: req.keep_alive,
            expect_continue: req.expect_continue,
            is_head: req.is_head(),
            idempotent: matches!(
                req.method,
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            ),
            http11: req.minor_version == 1,
            plan,
            upgrade,
            body_limit,
        };
        let len = req.len;
        self.conn.bufs.client_in.advance(len);
        Ok(Some(NextRequest::Ready(prepared)))
    }
}

/// Write the redirect of `req` to `https://` on `port` into `out` (a
/// listener with `redirect_https`). A request with a body ends the
/// connection after the answer, its body unread: `false`.
fn redirect(out: &mut BytesMut, req: &RequestHead<'_, '_>, port: u16) -> bool {
    let keep_alive = req.keep_alive && matches!(req.body, BodyKind::Empty | BodyKind::Length(0));
    out.clear();
    write_https_redirect(out, req, port, keep_alive);
    keep_alive
}

fn or_dash(bytes: &[u8]) -> &[u8] {
    if bytes.is_empty() {
        b"-"
    } else {
        bytes
    }
}
